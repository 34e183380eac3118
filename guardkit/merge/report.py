"""Writing the UniGuard folder (calibrated, with its card) and comparing it with its sources on a split."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from guardkit.calibration import DEFAULT_EVERYDAY_FPR, UNCALIBRATED_THRESHOLD, score_summary, threshold_metrics
from guardkit.guard import PAIR_FOLDER, Guard, copy_guard_folder, save_guard
from guardkit.guard_card import CardResult, render_guard_card
from guardkit.merge.methods import get_method
from guardkit.merge.recipe import MergeRecipe
from guardkit.merge.workspace import MergeWorkspace

RECIPE_FILE = "merge.yaml"
COMPARISON_CSV = "comparison.csv"
COMPARISON_TABLE = "comparison.md"


def _merge_lines(recipe: MergeRecipe, head_accuracy: dict[str, float]) -> list[str]:
    method = get_method(recipe.merge_method)
    search = recipe.search
    lines = []
    if search is not None and search.fell_back_to and search.best_trial is None:
        lines.append("Every source has the same encoder, so no merge could differ from it: the UniGuard keeps it (no search ran).")
    elif search is not None and search.fell_back_to:
        lines.append(
            f"No merge beat the best source alone on validation ({search.objective} {search.value:.4f} for `{search.fell_back_to}`, "
            f"best of {search.trials} merge trials lower): the UniGuard keeps that source's encoder."
        )
    else:
        over = f" (task vectors over the pre-trained encoder `{recipe.base_model}`)" if method.uses_base else ""
        lines.append(f"Encoder: merge method `{method.name}`{over}, {recipe.granularity} weights per source.")
        if recipe.parameters or recipe.options:
            settings = {**recipe.parameters, **recipe.options}
            lines.append(
                "Method settings: "
                + ", ".join(f"{name} = {value:.4g}" if isinstance(value, float) else f"{name} = {value}" for name, value in settings.items())
                + "."
            )
        for source in recipe.sources:
            weights = ", ".join(f"{group} {weight:.3f}" for group, weight in source.weights.items())
            lines.append(f"Source `{source.model}`: {weights}.")
        if search is not None:
            lines.append(
                f"Weights found by an Optuna {search.sampler.upper()} search: trial {search.best_trial} of {search.trials}, "
                f"validation {search.objective} {search.value:.4f} on {search.validation_rows} rows "
                f"(best source alone: {max(search.source_values.values()):.4f})."
            )
    heads = recipe.heads
    rows = f"up to {heads.rows_per_label}" if heads.rows_per_label else "all its"
    lines.append(
        f"One head per policy, a logistic regression (C={heads.c:g}) fitted on the encoder's features of {rows} "
        f"training rows per label and the policy's own examples (training accuracy {min(head_accuracy.values()):.3f}-{max(head_accuracy.values()):.3f})."
    )
    if recipe.pair_source:
        lines.append(f"Policies it never saw are scored by `pair/`, a copy of the pair guard `{recipe.pair_source}`.")
    return lines


def _calibration_words(recipe: MergeRecipe) -> str:
    if recipe.calibration == "none":
        return f"{UNCALIBRATED_THRESHOLD} for every policy, the class-balanced heads' own boundary"
    if recipe.calibration == "everyday":
        share = DEFAULT_EVERYDAY_FPR if recipe.target_fpr is None else recipe.target_fpr
        return f"{UNCALIBRATED_THRESHOLD}, raised per policy until at most {share:g} of the everyday validation texts is flagged"
    return "maximum F1 per policy on validation" if recipe.target_fpr is None else f"best recall at FPR <= {recipe.target_fpr:g} per policy"


def save_uniguard(
    workspace: MergeWorkspace, recipe: MergeRecipe, output: Path, *, license: str, repo_id: str | None, batch_size: int
) -> Guard:
    """Merge by `recipe`, refit the heads, calibrate each policy on all validation rows, evaluate on test, save the
    guard (with the pair guard in pair/); return it as read back."""
    workspace.apply(workspace.recipe_plan(recipe), recipe.weights_by_group(), recipe.parameters)
    head_accuracy = workspace.fit_heads()
    validation = workspace.encoded_split("validation")
    thresholds = validation.calibrate(validation.score(workspace.scorer, batch_size), recipe.calibration, recipe.target_fpr)
    results = []
    if "test" in workspace.splits:
        test = workspace.encoded_split("test")
        scores = test.score(workspace.scorer, batch_size)
        for index, policy_id in enumerate(test.policy_ids):
            rows = test.policy_of_row == index
            if rows.any():
                results.append(CardResult(policy_id, score_summary(test.labels[rows], scores[rows], thresholds.get(policy_id, 0.5))))
    output.mkdir(parents=True, exist_ok=True)
    pair_folder = None
    default_threshold = 0.5
    if recipe.pair_source:
        pair = next(source for source in workspace.sources if source.name == recipe.pair_source)
        copy_guard_folder(pair.guard.folder, output / PAIR_FOLDER)
        pair_folder, default_threshold = PAIR_FOLDER, pair.guard.threshold
    manifest = workspace.scorer.manifest
    policies = list(workspace.policies.values())
    card = render_guard_card(
        kind="uniguard",
        policies=policies,
        base_model=manifest.base_model,
        merged_from=[source.model for source in recipe.sources],
        datasets=[workspace.dataset],
        license=license,
        threshold=default_threshold,
        thresholds=thresholds,
        calibration=_calibration_words(recipe),
        max_length=manifest.max_length,
        results=results,
        repo_id=repo_id,
        dataset_config="default",
        input_format="multilabel",
        training_lines=_merge_lines(recipe, head_accuracy),
    )
    save_guard(
        output,
        workspace.scorer.model,
        workspace.scorer.tokenizer,
        kind="uniguard",
        policies=policies,
        threshold=default_threshold,
        thresholds=thresholds,
        max_length=manifest.max_length,
        base_model=manifest.base_model,
        card=card,
        datasets=[workspace.dataset],
        recipe=recipe.to_dict(),
        recipe_file=RECIPE_FILE,
        input_format="multilabel",
        pair_folder=pair_folder,
    )
    return Guard.from_pretrained(output)


@dataclass(frozen=True)
class ComparisonRow:
    guard: str
    kind: str
    policy: str
    support: int
    f1: float
    precision: float
    recall: float
    fpr: float
    threshold: float


def compare_guards(workspace: MergeWorkspace, uniguard: Guard, split: str, batch_size: int) -> list[ComparisonRow]:
    """Per-policy metrics on `split` of every source (in its own input format, at its own thresholds) and of the UniGuard.

    A TaskGuard is scored on its own policy's rows only; pair guards and the UniGuard on the rows of every policy.
    """
    rows = workspace.splits[split]
    policy_column = np.asarray(rows["policy"], dtype=object)
    texts, labels = list(rows["text"]), np.asarray(rows["label"], dtype=np.int64)
    guards = [(source.name, source.guard) for source in workspace.sources] + [("UniGuard", uniguard)]
    comparison = []
    for name, guard in guards:
        text_input = guard.manifest.input_format == "text"
        for policy_id, policy in workspace.policies.items():
            if text_input and policy_id not in guard.manifest.policies:
                continue
            members = np.flatnonzero(policy_column == policy_id)
            if len(members) == 0:
                continue
            # The Policy itself, not its id: a pair guard scores a policy it never saw from the policy's text.
            scores = guard.score([texts[row] for row in members], policy, batch_size=batch_size)
            threshold = guard.threshold_for(policy)
            metrics = threshold_metrics(labels[members], scores, threshold)
            comparison.append(
                ComparisonRow(name, guard.kind, policy_id, len(members), metrics.f1, metrics.precision, metrics.recall, metrics.fpr, threshold)
            )
    return comparison


def comparison_table(rows: Sequence[ComparisonRow]) -> str:
    """Markdown: F1 per policy (rows) of the TaskGuards (one column), each other source and the UniGuard, then a verdict.

    Each source is compared with the UniGuard on the policies that source covers, so like meets like.
    """
    columns = ["TaskGuards"] if any(row.kind == "task" for row in rows) else []
    columns += list(dict.fromkeys(row.guard for row in rows if row.kind != "task"))
    f1 = {(("TaskGuards" if row.kind == "task" else row.guard), row.policy): row.f1 for row in rows}
    policies = list(dict.fromkeys(row.policy for row in rows))
    label = {column: Path(column).name or column for column in columns}
    lines = [
        "| policy | " + " | ".join(label[column] for column in columns) + " | UniGuard beats every source here |",
        "| --- |" + " --- |" * len(columns) + " --- |",
    ]
    for policy in policies:
        cells = [f"{f1[(column, policy)]:.3f}" if (column, policy) in f1 else "–" for column in columns]
        rivals = [f1[(column, policy)] for column in columns if column != "UniGuard" and (column, policy) in f1]
        verdict = "–" if ("UniGuard", policy) not in f1 or not rivals else "yes" if f1[("UniGuard", policy)] > max(rivals) else "no"
        lines.append(f"| {policy} | " + " | ".join(cells) + f" | {verdict} |")
    lines.append("")
    wins = []
    for column in columns:
        if column == "UniGuard":
            continue
        covered = [policy for policy in policies if (column, policy) in f1 and ("UniGuard", policy) in f1]
        if not covered:
            continue
        rival = float(np.mean([f1[(column, policy)] for policy in covered]))
        uniguard = float(np.mean([f1[("UniGuard", policy)] for policy in covered]))
        outcome = "better than" if uniguard > rival else "equal to" if uniguard == rival else "WORSE than"
        wins.append(uniguard > rival)
        lines.append(f"- UniGuard mean F1 {uniguard:.3f} is {outcome} {label[column]} ({rival:.3f}) on its {len(covered)} policies.")
    if wins:
        lines.append(f"- Verdict: the UniGuard {'beats every source' if all(wins) else 'does NOT beat every source'}.")
    return "\n".join(lines)


def write_comparison(rows: Sequence[ComparisonRow], output: Path) -> str:
    """Write comparison.csv (one row per guard and policy) and comparison.md; return the markdown."""
    with (output / COMPARISON_CSV).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(ComparisonRow.__dataclass_fields__))
        writer.writeheader()
        writer.writerows(asdict(row) for row in rows)
    table = comparison_table(rows)
    (output / COMPARISON_TABLE).write_text(table + "\n", encoding="utf-8")
    return table
