"""`policy-following`: does a guard judge a text by the policy it is given, or by how harmful it looks?

Two measurements.

Cross-policy (policy-bench). Every unsafe policy-bench row is annotated with the other shipped policies
it is also unsafe under (`also_unsafe_under`) and those where it could go either way (`ambiguous_under`).
Under each evaluated shipped policy P, the unsafe rows of every other policy S that are neither unsafe
nor ambiguous under P are safe texts, and the share a scorer flags is the false-positive rate of cell
(S, P); the diagonal cell (P, P) is the recall of P's own unsafe rows. Every cell is thus the share
flagged: a guard that follows its policy reads 1 on the diagonal and 0 elsewhere, a guard that flags
whatever looks harmful reads 1 everywhere. Per P, `mean_cross_policy_fpr` is the mean over its cells.

Unseen policies (benchmarks/policy_following/). Policies written for this suite, unlike the shipped
ones and in no training set, each with hand-labelled rows of three kinds: `in_scope_unsafe` (what the
policy flags), `in_scope_safe` (allowed look-alikes on the policy's own subject) and `off_scope`
(outside what the policy governs, so safe under it, though many look unsafe by other standards). Each
is scored as a Policy object: pair guards read its instruction, judges and baselines its text, and
TaskGuards, which know only their own policy, are left out. Metrics per policy: F1, precision, recall
and AUPRC over all rows, the false-positive rate on the off_scope and on the in_scope_safe rows; and
their mean over the policies for each scorer that scored all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from guardkit.data.evaluation_sets import PolicyBenchRow, read_jsonl
from guardkit.data.schema import LABEL2ID
from guardkit.errors import GuardkitError
from guardkit.evaluate.harness import (
    UNSAFE,
    EvaluationContext,
    Measurement,
    SuiteOutcome,
    SuiteSkipped,
    first_sentence,
)
from guardkit.evaluate.scorers import Scorer
from guardkit.evaluate.suites import register_suite
from guardkit.policies import Policy, load_policy_files, shipped_policies

NAME = "policy-following"
SAFE = LABEL2ID["safe"]
KINDS = ("in_scope_unsafe", "in_scope_safe", "off_scope")
LABEL_OF_KIND = {"in_scope_unsafe": "unsafe", "in_scope_safe": "safe", "off_scope": "safe"}
# Measurement datasets: a cross-policy cell is "policy-bench/<source policy>" under policy P.
CROSS_PREFIX = "policy-bench/"
CROSS_MEAN_DATASET = "policy-bench/other policies"
CROSS_MEAN_METRIC = "mean_cross_policy_fpr"
UNSEEN_DATASET = "unseen-policies"
MEAN_POLICY = "mean"
UNSEEN_METRICS = ("f1", "precision", "recall", "auprc")
FPR = ("false_positive_rate",)
RECALL = ("recall",)


@dataclass(frozen=True)
class PolicyFollowingRow:
    text: str
    label: int
    policy: str
    kind: str


def _row(raw: dict) -> PolicyFollowingRow:
    kind, label = raw["kind"], raw["label"]
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    if LABEL_OF_KIND[kind] != label:
        raise ValueError(f"a {kind} row is {LABEL_OF_KIND[kind]}, not {label!r}")
    return PolicyFollowingRow(raw["text"], LABEL2ID[label], raw["policy"], kind)


def read_rows(path: Path) -> list[PolicyFollowingRow]:
    """Rows of one unseen policy's file: `{"text", "label": "safe"|"unsafe", "policy", "kind"}` per line."""
    return read_jsonl(path, _row, "a policy-following row; expected text, label, policy, kind")


def load_unseen(folder: str | Path) -> dict[str, tuple[Policy, list[PolicyFollowingRow]]]:
    """Each unseen policy of `folder` (policies/<id>.yaml) with its rows (<id>.jsonl), by id."""
    folder = Path(folder)
    policies = load_policy_files(sorted((folder / "policies").glob("*.yaml")))
    shipped = [policy.id for policy in policies if policy.id in shipped_policies()]
    if shipped:
        raise GuardkitError(f"{folder}: unseen policies must not reuse shipped policy ids ({', '.join(shipped)})")
    unseen = {}
    for policy in policies:
        path = folder / f"{policy.id}.jsonl"
        if not path.is_file():
            raise GuardkitError(f"{path} is missing: every policy in {folder / 'policies'} needs its rows")
        rows = read_rows(path)
        others = sorted({row.policy for row in rows} - {policy.id})
        if others:
            raise GuardkitError(f"{path}: rows of other policies ({', '.join(others)}); a file holds its own policy's rows")
        unseen[policy.id] = (policy, rows)
    return unseen


def held_out_texts(folder: str | Path) -> list[str]:
    """Every text of the folder, rows and the policies' own examples: none of them may reach training."""
    return [
        text
        for policy, rows in load_unseen(folder).values()
        for text in [row.text for row in rows] + [example for example, _ in policy.all_examples()]
    ]


# --- cross-policy ------------------------------------------------------------------------------------


def cross_policy_cells(sources: dict[str, list[PolicyBenchRow]], policy_id: str) -> tuple[dict[str, list[str]], dict[str, dict]]:
    """Under `policy_id`: the texts of each cell by source (its own unsafe rows on the diagonal, elsewhere
    the unsafe rows safe under it), and per other source how many rows the annotations took out."""
    cells: dict[str, list[str]] = {}
    excluded: dict[str, dict] = {}
    for source, rows in sources.items():
        if source == policy_id:
            cells[source] = [row.text for row in rows]
            continue
        unsafe = [policy_id in row.also_unsafe_under for row in rows]
        ambiguous = [policy_id in row.ambiguous_under for row in rows]
        excluded[source] = {"also_unsafe": sum(unsafe), "ambiguous": sum(ambiguous)}
        texts = [row.text for row, out, unsure in zip(rows, unsafe, ambiguous) if not (out or unsure)]
        if texts:
            cells[source] = texts
    return cells, excluded


def _annotated_sources(context: EvaluationContext, outcome: SuiteOutcome) -> dict[str, list[PolicyBenchRow]]:
    """The unsafe policy-bench rows of every shipped policy, for the files whose rows are annotated."""
    library = shipped_policies()
    sources, unannotated, unknown = {}, [], set()
    for policy_id in library:
        rows = [row for row in context.policy_bench_rows(policy_id) if row.label == UNSAFE]
        if not rows:
            continue
        if any(row.also_unsafe_under is None or row.ambiguous_under is None for row in rows):
            unannotated.append(policy_id)
            continue
        unknown |= {other for row in rows for other in (*row.also_unsafe_under, *row.ambiguous_under) if other not in library}
        sources[policy_id] = rows
    if unannotated:
        outcome.notes.append(f"policy-bench files without also_unsafe_under / ambiguous_under left out: {', '.join(unannotated)}")
    if unknown:
        outcome.notes.append(f"policy-bench annotations name policies that are not shipped: {', '.join(sorted(unknown))}")
    return sources


def _prescore(scorer: Scorer, policy: Policy, texts: list[str], outcome: SuiteOutcome) -> bool:
    """Score all texts in one call (the memo then serves each slice), or note why the scorer cannot.

    A pair guard refuses a policy whose instruction leaves too few of its tokens for the text.
    """
    try:
        scorer.score(policy, texts)
    except GuardkitError as error:
        outcome.notes.append(f"{scorer.name} cannot score {policy.id}: {first_sentence(error)}")
        return False
    return True


def run_cross_policy(context: EvaluationContext, outcome: SuiteOutcome) -> bool:
    sources = _annotated_sources(context, outcome)
    columns = [policy_id for policy_id in context.policies if policy_id in sources]
    if not columns:
        outcome.notes.append(
            f"cross-policy matrix not measured: no annotated policy-bench file in {context.config.policy_bench_dir} "
            f"for the evaluated policies ({', '.join(context.policies)})"
        )
        return False
    outcome.notes.append(f"cross-policy rows: policy-bench's {context.policy_bench_scope}")
    cells = {policy_id: cross_policy_cells(sources, policy_id) for policy_id in columns}
    no_cells = [policy_id for policy_id in columns if len(cells[policy_id][0]) == 1]
    if no_cells:
        outcome.notes.append(
            f"no cross-policy cells under {', '.join(no_cells)}: every other policy's unsafe row is also unsafe "
            "or ambiguous under it"
        )
    flag_rate: dict[str, dict[str, dict[str, float | None]]] = {}
    work = [(policy_id, scorer) for policy_id in columns for scorer in context.scorers if scorer.can_score(policy_id)]
    for policy_id, scorer in tqdm(work, desc=f"{NAME} cross-policy", unit="policy x model"):
        policy = context.policies[policy_id]
        chosen = {
            source: [texts[index] for index in context.sample([UNSAFE] * len(texts))]
            for source, texts in cells[policy_id][0].items()
        }
        if not _prescore(scorer, policy, [text for texts in chosen.values() for text in texts], outcome):
            continue
        rates: list[float] = []
        for source, texts in chosen.items():
            own = source == policy_id
            measurements, _ = context.measure(
                scorer,
                [policy],
                texts,
                [UNSAFE if own else SAFE] * len(texts),
                suite=NAME,
                dataset=CROSS_PREFIX + source,
                policy=policy_id,
                metrics=RECALL if own else FPR,
            )
            outcome.measurements.extend(measurements)
            value = measurements[0].value
            flag_rate.setdefault(scorer.name, {}).setdefault(source, {})[policy_id] = value
            if not own and value is not None:
                rates.append(value)
        if rates:
            cross_rows = sum(len(texts) for source, texts in chosen.items() if source != policy_id)
            mean = float(np.mean(rates))
            mean_row = Measurement(scorer.name, NAME, CROSS_MEAN_DATASET, policy_id, CROSS_MEAN_METRIC, mean, None, cross_rows)
            outcome.measurements.append(mean_row)
    outcome.data["cross-policy"] = {
        "sources": list(sources),
        "policies": columns,
        "rows": {policy_id: {source: len(texts) for source, texts in cells[policy_id][0].items()} for policy_id in columns},
        "excluded": {policy_id: cells[policy_id][1] for policy_id in columns},
        "flag_rate": flag_rate,
    }
    return True


# --- unseen policies ---------------------------------------------------------------------------------


def run_unseen(context: EvaluationContext, outcome: SuiteOutcome) -> bool:
    folder = Path(context.config.policy_following_dir)
    if not (folder / "policies").is_dir():
        outcome.notes.append(f"unseen policies not measured: no folder {folder / 'policies'} (set --policy_following_dir)")
        return False
    unseen = load_unseen(folder)
    if not unseen:
        outcome.notes.append(f"unseen policies not measured: no policy file in {folder / 'policies'}")
        return False
    outcome.data[UNSEEN_DATASET] = {
        "folder": str(folder),
        "rows": {
            policy_id: {kind: sum(row.kind == kind for row in rows) for kind in KINDS} for policy_id, (_, rows) in unseen.items()
        },
    }
    skipped = [scorer.name for scorer in context.scorers if not any(scorer.can_score(policy_id) for policy_id in unseen)]
    if skipped:
        outcome.notes.append(f"unseen policies not scored by {', '.join(skipped)}: it scores only the policies it was trained on")
    # (model, dataset, metric) -> the value of each policy, and the rows behind them.
    values: dict[tuple[str, str, str], list[float]] = {}
    counts: dict[tuple[str, str, str], int] = {}
    scored: dict[str, int] = {}
    work = [(policy_id, scorer) for policy_id in unseen for scorer in context.scorers if scorer.can_score(policy_id)]
    for policy_id, scorer in tqdm(work, desc=f"{NAME} unseen policies", unit="policy x model"):
        policy, rows = unseen[policy_id]
        chosen = [rows[index] for index in context.sample([KINDS.index(row.kind) for row in rows])]
        if not _prescore(scorer, policy, [row.text for row in chosen], outcome):
            continue
        scored[scorer.name] = scored.get(scorer.name, 0) + 1
        slices = [(UNSEEN_DATASET, chosen, UNSEEN_METRICS)]
        slices += [(f"{UNSEEN_DATASET}/{kind}", [row for row in chosen if row.kind == kind], FPR) for kind in KINDS[1:]]
        for dataset, members, metrics in slices:
            if not members:
                continue
            measurements, _ = context.measure(
                scorer,
                [policy],
                [row.text for row in members],
                [row.label for row in members],
                suite=NAME,
                dataset=dataset,
                policy=policy_id,
                metrics=metrics,
                curves=outcome.curves if dataset == UNSEEN_DATASET else None,
            )
            outcome.measurements.extend(measurements)
            for measurement in measurements:
                key = (scorer.name, dataset, measurement.metric)
                if measurement.value is not None:
                    values.setdefault(key, []).append(measurement.value)
                counts[key] = counts.get(key, 0) + measurement.n
    for (model, dataset, metric), members in values.items():
        # A mean over some of the policies is not comparable with one over all: only full sets get one.
        if scored.get(model) == len(unseen) and len(members) == len(unseen):
            mean, rows = float(np.mean(members)), counts[(model, dataset, metric)]
            outcome.measurements.append(Measurement(model, NAME, dataset, MEAN_POLICY, metric, mean, None, rows))
    partial = [model for model, count in scored.items() if count < len(unseen)]
    if partial:
        outcome.notes.append(f"no mean over unseen policies for {', '.join(partial)}: it could not score all {len(unseen)}")
    return True


@register_suite(NAME, "whether a guard follows the policy it is given: cross-policy false positives, policies it never saw")
def run(context: EvaluationContext) -> SuiteOutcome:
    outcome = SuiteOutcome(NAME)
    measured = [run_cross_policy(context, outcome), run_unseen(context, outcome)]
    if not any(measured):
        raise SuiteSkipped("; ".join(outcome.notes))
    return outcome


def report_tables(measurements: list[Measurement]) -> list[tuple[str, list[Measurement]]]:
    """The report's two tables: the matrix summary (full matrix in the heatmaps) and the unseen policies."""
    summary = [
        row
        for row in measurements
        if row.dataset == CROSS_MEAN_DATASET or (row.dataset == CROSS_PREFIX + row.policy and row.metric == "recall")
    ]
    summary.sort(key=lambda row: (row.policy, row.dataset == CROSS_MEAN_DATASET))
    unseen = [row for row in measurements if row.dataset.startswith(UNSEEN_DATASET)]
    unseen.sort(key=lambda row: (row.policy == MEAN_POLICY, row.policy))
    return [
        ("Cross-policy matrix: recall on the policy's own unsafe rows, mean false-positive rate on the other policies' "
         "unsafe rows that are safe under it (every cell: the heatmaps and results.json)", summary),
        ("Unseen policies: F1, precision, recall and AUPRC on all rows, false-positive rate on the off-scope and "
         "in-scope-safe rows", unseen),
    ]
