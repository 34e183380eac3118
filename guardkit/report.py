"""REPORT.md of a `make reproduce` run, generated from its results.json (never typed by hand)."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from guardkit import __version__
from guardkit.evaluate.results import LOWER_IS_BETTER, read_results

# Column titles of the guard kinds; every TaskGuard shares one column, each holding its own policy.
KIND_TITLES = {"uniguard": "UniGuard", "multitask": "MultiTaskGuard", "task": "TaskGuard", "judge": "JudgeGuard"}
HEADLINE_SUITES = ("policy-bench", "synthetic")
DETAIL_TABLES = {"robustness": "recall_drop", "over-refusal": "false_positive_rate"}
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


def _table(header: list[str], rows: list[tuple[str, list[float | None]]], lower_is_better: bool = False) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, values in rows:
        present = [value for value in values if value is not None]
        best = (min if lower_is_better else max)(present) if len(present) > 1 else None
        lines.append("| " + " | ".join([label] + [_format(value, value == best) for value in values]) + " |")
    return "\n".join(lines)


def pivot(results: dict[str, Any], suite: str, metric: str) -> tuple[list[str], list[tuple[str, list[float | None]]]]:
    """Rows per policy (plus their mean), a column per guard kind or baseline, for one suite's metric."""
    columns, column_of = _columns(results["scorers"])
    cells: dict[str, dict[str, float]] = defaultdict(dict)
    for row in results["results"]:
        if row["suite"] == suite and row["metric"] == metric and row["value"] is not None:
            cells[row["policy"]][column_of[row["model"]]] = row["value"]
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


def render(out: Path, config_path: Path, machine: str, when: datetime) -> str:
    results = read_results(out / "eval" / "results.json")
    timings_path = out / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    parts = [
        "# guardkit reproduce report",
        "",
        f"- run finished: {when:%Y-%m-%d %H:%M} UTC; guardkit {__version__}",
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
            parts += ["", f"## F1 per policy: {suite}", "", _table(["policy"] + columns, rows)]
    for suite, metric in DETAIL_TABLES.items():
        columns, rows = pivot(results, suite, metric)
        if rows:
            parts += ["", f"## {suite}: {metric} (lower is better)", "", _table(["policy"] + columns, rows, metric in LOWER_IS_BETTER)]
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


def write_report(out: Path, config_path: Path, machine: str, when: datetime) -> Path:
    path = out / "REPORT.md"
    path.write_text(render(out, config_path, machine, when), encoding="utf-8")
    print(f"reproduce: wrote {path}")
    return path


def publish_to_docs(out: Path, docs: Path) -> None:
    """Copy a full run's report and plots into the committed docs/ (docs/results.md, docs/results/*.png)."""
    images = docs / "results"
    images.mkdir(parents=True, exist_ok=True)
    for plot in (out / "eval").glob("*.png"):
        shutil.copy2(plot, images / plot.name)
    text = (out / "REPORT.md").read_text(encoding="utf-8").replace("](eval/", "](results/")
    (docs / "results.md").write_text(text, encoding="utf-8")
