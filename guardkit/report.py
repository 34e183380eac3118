"""REPORT.md of a `make reproduce` run, generated from its results.json (never typed by hand)."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from guardkit import __version__
from guardkit.data.evaluation_sets import bench_scope_of
from guardkit.errors import GuardkitError
from guardkit.evaluate.results import LOWER_IS_BETTER, read_results

# Column titles of the guard kinds; every TaskGuard shares one column, each holding its own policy.
KIND_TITLES = {"uniguard": "UniGuard", "multitask": "MultiTaskGuard", "task": "TaskGuard", "judge": "JudgeGuard"}
HEADLINE_SUITES = ("policy-bench", "synthetic")
DETAIL_TABLES = {"robustness": "recall_drop", "over-refusal": "false_positive_rate"}
# The README's headline: one row per (suite, metric), the mean over policies of each guard kind and baseline.
# "{bench}": which policy-bench rows the run read, from the evaluation config in results.json.
HEADLINE_ROWS = (
    ("policy-bench", "f1", "F1 on hand-written policy-bench rows: {bench}"),
    ("synthetic", "f1", "F1, synthetic test split"),
    ("over-refusal", "false_positive_rate", "over-refusal FPR on policy-bench hard negatives: {bench} (lower is better)"),
    ("robustness", "recall_drop", "recall drop under obfuscation (lower is better)"),
)
# Real text and policy following: (title, suite, dataset, policy, metric, lower is better), the mean over the matching rows of a
# scorer; a dataset ending in "/" matches every dataset under it (each cross-policy cell).
REAL_TEXT_ROWS = (
    ("offline-corpora harmful vs benign, AUPRC", "offline-corpora", "harmful-vs-benign", "any", "auprc", False),
    ("offline-corpora harmful vs benign, F1", "offline-corpora", "harmful-vs-benign", "any", "f1", False),
    ("offline-corpora harmful vs benign, recall at 1% FPR", "offline-corpora", "harmful-vs-benign", "any", "recall_at_1pct_fpr", False),
    ("offline-corpora injection vs benign, AUPRC", "offline-corpora", "injection-vs-benign", "any", "auprc", False),
    ("offline-corpora jailbreak vs benign, AUPRC", "offline-corpora", "jailbreak-vs-benign", "any", "auprc", False),
    ("offline-corpora StrongREJECT, each category under its own policy: recall at 1% FPR", "offline-corpora", "strongreject/", None, "recall_at_1pct_fpr", False),
    ("offline-corpora StrongREJECT, each category under its own policy: AUPRC vs benign", "offline-corpora", "strongreject/", None, "auprc", False),
    ("offline-corpora real benign requests, FPR (all registers)", "offline-corpora", "benign", "any", "false_positive_rate", True),
    ("offline-corpora long benign documents (2-100 KB), FPR", "offline-corpora", "long-benign", "any", "false_positive_rate", True),
    ("policy-following cross-policy FPR (mean over policies)", "policy-following", "policy-bench/other policies", None, "mean_cross_policy_fpr", True),
    ("policy-following unseen policies, F1 (zero-shot)", "policy-following", "unseen-policies", "mean", "f1", False),
    ("policy-following unseen policies, off-scope FPR", "policy-following", "unseen-policies/off_scope", "mean", "false_positive_rate", True),
)
REAL_TEXT_NOTE = (
    "Real prompts from the corpora inside PyPI wheels (their evaluation side, decontaminated), a text flagged when any "
    "harm policy flags it; policy following: other policies' unsafe policy-bench rows under each policy, and policies "
    "no guard was trained on, read from their instruction."
)
README_BLOCK = ("<!-- reproduce-results:start -->", "<!-- reproduce-results:end -->")
# The guards a UniGuard is merged from: per policy, the report says whether it is ahead of both.
SOURCE_COLUMNS = (KIND_TITLES["task"], KIND_TITLES["multitask"])
EFFICIENCY_METRICS = ("latency_p50_ms", "latency_p95_ms", "throughput_texts_per_s", "all_policies_latency_ms", "peak_rss_mb", "size_on_disk_mb")


def _columns(scorers: list[dict[str, Any]]) -> tuple[list[str], dict[str, str]]:
    """Column titles in display order and the column each scorer's numbers go to."""
    column_of: dict[str, str] = {}
    for scorer in scorers:
        kind = scorer.get("kind")
        column_of[scorer["name"]] = KIND_TITLES.get(kind, scorer["name"]) if scorer["type"] == "model" else scorer["name"]
    return list(dict.fromkeys(column_of.values())), column_of


def _format(value: float | None, bold: bool) -> str:
    if value is None:
        return "–"
    text = f"{value:.3f}" if abs(value) < 10 else f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}"
    return f"**{text}**" if bold else text


def _row(label: str, values: list[float | None], lower_is_better: bool = False) -> str:
    present = [value for value in values if value is not None]
    best = (min if lower_is_better else max)(present) if len(present) > 1 else None
    return "| " + " | ".join([label] + [_format(value, value == best) for value in values]) + " |"


def _table(header: list[str], rows: list[tuple[str, list[float | None]]], lower_is_better: bool = False) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + [_row(label, values, lower_is_better) for label, values in rows])


def pivot(results: dict[str, Any], suite: str, metric: str) -> tuple[list[str], list[tuple[str, list[float | None]]]]:
    """Rows per policy (plus their mean), a column per guard kind or baseline, for one suite's metric."""
    columns, column_of = _columns(results["scorers"])
    # A column several scorers share (the TaskGuards) has one value per policy, but none for pooled rows.
    shared = {column for column in columns if list(column_of.values()).count(column) > 1}
    cells: dict[str, dict[str, float]] = defaultdict(dict)
    for row in results["results"]:
        if row["suite"] == suite and row["metric"] == metric and row["value"] is not None:
            column = column_of[row["model"]]
            if column not in shared or row["policy"] in results["policies"]:
                cells[row["policy"]][column] = row["value"]
    policies = [policy for policy in results["policies"] if policy in cells]
    policies += sorted(set(cells) - set(policies))
    used = [column for column in columns if any(column in cells[policy] for policy in policies)]
    rows = [(policy, [cells[policy].get(column) for column in used]) for policy in policies]
    per_policy = [policy for policy in policies if policy in results["policies"]]
    if len(per_policy) > 1:
        means = []
        for column in used:
            values = [cells[policy][column] for policy in per_policy if column in cells[policy]]
            means.append(sum(values) / len(values) if len(values) == len(per_policy) else None)
        rows.append((f"mean of {len(per_policy)} policies", means))
    return used, rows


def efficiency_table(results: dict[str, Any]) -> str:
    values: dict[str, dict[str, float]] = defaultdict(dict)
    for row in results["results"]:
        if row["suite"] == "efficiency" and row["metric"] in EFFICIENCY_METRICS:
            values[row["model"]][row["metric"]] = row["value"]
    if not values:
        return "_efficiency suite not run_"
    header = ["scorer"] + list(EFFICIENCY_METRICS)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model, metrics in values.items():
        lines.append("| " + " | ".join([model] + [_format(metrics.get(metric), False) for metric in EFFICIENCY_METRICS]) + " |")
    return "\n".join(lines)


def real_text_table(results: dict[str, Any]) -> str | None:
    """The real-text and policy-following means of each guard kind and baseline (None when neither suite ran)."""
    columns, column_of = _columns(results["scorers"])
    rows = []
    for title, suite, dataset, policy, metric, lower in REAL_TEXT_ROWS:
        values: dict[str, list[float]] = defaultdict(list)
        for row in results["results"]:
            matches = row["dataset"].startswith(dataset) if dataset.endswith("/") else row["dataset"] == dataset
            if row["suite"] == suite and matches and row["metric"] == metric and policy in (None, row["policy"]) and row["value"] is not None:
                values[column_of[row["model"]]].append(row["value"])
        if values:
            rows.append((title, [sum(values[column]) / len(values[column]) if values[column] else None for column in columns], lower))
    if not rows:
        return None
    used = [index for index, _ in enumerate(columns) if any(values[index] is not None for _, values, _ in rows)]
    lines = ["| mean | " + " | ".join(columns[index] for index in used) + " |", "|" + "---|" * (len(used) + 1)]
    lines += [_row(title, [values[index] for index in used], lower) for title, values, lower in rows]
    return "\n".join(lines)


def uniguard_versus_sources(results: dict[str, Any]) -> str | None:
    """Per policy, the UniGuard's policy-bench F1 beside its own TaskGuard's and the MultiTaskGuard's and which is
    ahead (None when the run lacks any of the three)."""
    columns, rows = pivot(results, "policy-bench", "f1")
    wanted = (KIND_TITLES["uniguard"],) + SOURCE_COLUMNS
    if not all(column in columns for column in wanted):
        return None
    index = [columns.index(column) for column in wanted]
    lines = ["| policy | " + " | ".join(wanted) + " | verdict |", "|" + "---|" * (len(wanted) + 2)]
    ahead = compared = 0
    for policy, values in rows:
        if policy not in results["policies"]:
            continue
        merged, *sources = (values[position] for position in index)
        if merged is None or None in sources:
            continue
        compared += 1
        best = max(sources)
        if merged > best:
            ahead += 1
            verdict = "ahead of both"
        elif merged == best:
            verdict = "tied with " + " and ".join(name for name, value in zip(SOURCE_COLUMNS, sources) if value == best)
        else:
            verdict = "behind " + " and ".join(name for name, value in zip(SOURCE_COLUMNS, sources) if value > merged)
        lines.append("| " + " | ".join([policy] + [_format(value, False) for value in (merged, *sources)] + [verdict]) + " |")
    if not compared:
        return None
    return "\n".join(lines + ["", f"The UniGuard is ahead of both on {ahead} of {compared} policies."])


def headline_table(results: dict[str, Any]) -> str:
    """Policy means of the headline metrics, a column per guard kind and baseline; the best of each row in bold."""
    means: dict[str, tuple[dict[str, float | None], bool]] = {}
    bench = bench_scope_of(results["config"])
    for suite, metric, title in HEADLINE_ROWS:
        title = title.format(bench=bench)
        columns, rows = pivot(results, suite, metric)
        policy_rows = [values for label, values in rows if label.startswith("mean of ") or label in results["policies"]]
        if policy_rows:
            # pivot puts the mean row last when there is more than one policy.
            means[title] = (dict(zip(columns, policy_rows[-1])), metric in LOWER_IS_BETTER)
    columns = list(dict.fromkeys(column for values, _ in means.values() for column in values))
    lines = ["| mean over policies | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 1)]
    lines += [_row(title, [values.get(column) for column in columns], lower) for title, (values, lower) in means.items()]
    return "\n".join(lines)


def render(out: Path, config_path: Path, machine: str) -> str:
    results = read_results(out / "eval" / "results.json")
    finished = datetime.fromisoformat(results["created"]).astimezone(timezone.utc)
    timings_path = out / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    parts = [
        "# guardkit reproduce report",
        "",
        f"- run finished: {finished:%Y-%m-%d %H:%M} UTC (evaluation written); guardkit {__version__}",
        f"- machine: {machine}",
        f"- config: `{config_path}` (copied below); artifacts under `{out}`",
        "",
        "## Step times",
        "",
        _table(["step", "minutes"], [(name, [seconds / 60]) for name, seconds in timings.items()])
        + f"\n| **total** | {sum(timings.values()) / 60:.1f} |",
    ]
    for suite in HEADLINE_SUITES:
        columns, rows = pivot(results, suite, "f1")
        if rows:
            scope = f" ({bench_scope_of(results['config'])})" if suite == "policy-bench" else ""
            parts += ["", f"## F1 per policy: {suite}{scope}", "", _table(["policy"] + columns, rows)]
    versus = uniguard_versus_sources(results)
    if versus:
        scope = bench_scope_of(results["config"])
        parts += ["", f"## UniGuard against the guards it was merged from: policy-bench F1 ({scope})", "", versus]
    for suite, metric in DETAIL_TABLES.items():
        columns, rows = pivot(results, suite, metric)
        if rows:
            parts += ["", f"## {suite}: {metric} (lower is better)", "", _table(["policy"] + columns, rows, metric in LOWER_IS_BETTER)]
    real_text = real_text_table(results)
    if real_text:
        parts += ["", "## Real text and policy following", "", REAL_TEXT_NOTE, "", real_text]
    parts += ["", "## Efficiency (same inputs for every scorer)", "", efficiency_table(results)]
    skipped = {name: info for name, info in results["suites"].items() if info["status"] != "ok"}
    if skipped:
        parts += ["", "## Suites not fully run", ""]
        parts += [f"- {name}: {info['status']}; {' '.join(info['notes'])}" for name, info in skipped.items()]
    plots = sorted((out / "eval").glob("*.png"))
    if plots:
        parts += ["", "## Plots", ""] + [f"![{plot.stem}](eval/{plot.name})" for plot in plots]
    parts += [
        "",
        "Every table above is computed from `eval/results.json`; `eval/report.md` has all metrics with 95% confidence intervals.",
        "",
        "## Config",
        "",
        "```yaml",
        yaml.safe_dump(yaml.safe_load(config_path.read_text(encoding="utf-8")), sort_keys=False).rstrip(),
        "```",
        "",
    ]
    return "\n".join(parts)


def write_report(out: Path, config_path: Path, machine: str) -> Path:
    path = out / "REPORT.md"
    path.write_text(render(out, config_path, machine), encoding="utf-8")
    print(f"reproduce: wrote {path}")
    return path


def replace_readme_block(readme: Path, content: str) -> None:
    start, end = README_BLOCK
    text = readme.read_text(encoding="utf-8")
    if start not in text or end not in text:
        raise GuardkitError(f"{readme}: no '{start}' ... '{end}' lines to put the headline table between")
    before, rest = text.split(start, 1)
    after = rest.split(end, 1)[1]
    readme.write_text(f"{before}{start}\n{content}\n{end}{after}", encoding="utf-8")


def publish_to_docs(out: Path, docs: Path, readme: Path) -> None:
    """Copy a full run's report and plots into the committed docs/ (docs/results.md, docs/results/*.png)
    and its headline table into the README."""
    images = docs / "results"
    images.mkdir(parents=True, exist_ok=True)
    for plot in (out / "eval").glob("*.png"):
        shutil.copy2(plot, images / plot.name)
    text = (out / "REPORT.md").read_text(encoding="utf-8").replace("](eval/", "](results/")
    (docs / "results.md").write_text(text, encoding="utf-8")
    results = read_results(out / "eval" / "results.json")
    run_line = next(line for line in text.splitlines() if line.startswith("- run finished:"))
    real_text = real_text_table(results)
    tables = headline_table(results) + (f"\n\n{REAL_TEXT_NOTE}\n\n{real_text}" if real_text else "")
    summary = f"{tables}\n\nFrom `make reproduce` ({run_line[2:]}); every table of that run is in [docs/results.md](docs/results.md)."
    replace_readme_block(readme, summary)
