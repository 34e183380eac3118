"""`robustness`: every unsafe test text perturbed (typos, leetspeak, homoglyphs, casing, whitespace, base64
wrapper, jailbreak-template wrapper), and how much recall each perturbation costs.

The unsafe texts come from the guardkit dataset's test split, or from policy-bench when no dataset is
at hand. Recall drop = recall on the originals - recall on the perturbed texts, with a paired bootstrap
interval; policy "all" pools every policy's texts.
"""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from guardkit.errors import GuardkitError
from guardkit.evaluate import perturbations, statistics
from guardkit.evaluate.harness import UNSAFE, EvaluationContext, Measurement, SuiteOutcome, SuiteSkipped, finite_or_none
from guardkit.evaluate.scorers import DECISION_THRESHOLD
from guardkit.evaluate.suites import register_suite

NAME = "robustness"
POOLED = "all"
RECALL = ("recall",)


def _unsafe_texts(context: EvaluationContext, outcome: SuiteOutcome) -> tuple[str, dict[str, list[str]]]:
    """(source name, unsafe texts per evaluated policy)."""
    try:
        test = context.test_split
        texts: dict[str, list[str]] = {}
        for text, label, policy_id in zip(test["text"], test["label"], test["policy"]):
            if label == UNSAFE and policy_id in context.policies:
                texts.setdefault(policy_id, []).append(text)
        if texts:
            return context.dataset_name, texts
        reason = f"the test split of {context.dataset_name} has no unsafe rows for the evaluated policies"
    except SuiteSkipped as error:
        reason = str(error)
    texts = {
        policy_id: [row.text for row in rows if row.label == UNSAFE] for policy_id, rows in context.policy_bench.items()
    }
    texts = {policy_id: rows for policy_id, rows in texts.items() if rows}
    if not texts:
        raise SuiteSkipped(f"no unsafe texts to perturb: {reason}; and no policy-bench file for {', '.join(context.policies)}")
    outcome.notes.append(f"unsafe texts from policy-bench ({reason})")
    return "policy-bench", texts


def _recall_drop(original: np.ndarray, perturbed: np.ndarray, context: EvaluationContext) -> tuple[float | None, tuple[float, float] | None]:
    def drop(before: np.ndarray, after: np.ndarray) -> np.ndarray:
        return before.mean(axis=-1) - after.mean(axis=-1)

    config = context.config
    paired = [original.astype(np.float64), perturbed.astype(np.float64)]
    value, low, high = statistics.point_and_interval(drop, paired, config.bootstrap_resamples, config.confidence_level, config.seed)
    return finite_or_none(value), (low, high) if low is not None and high is not None else None


@register_suite(NAME, "recall drop of unsafe texts under typos, leetspeak, homoglyphs, casing, whitespace, base64, jailbreak wrappers")
def run(context: EvaluationContext) -> SuiteOutcome:
    names = context.config.perturbations or list(perturbations.PERTURBATIONS)
    unknown = [name for name in names if name not in perturbations.PERTURBATIONS]
    if unknown:
        raise GuardkitError(f"unknown perturbation(s) {', '.join(unknown)}; choose from {', '.join(perturbations.PERTURBATIONS)}")
    outcome = SuiteOutcome(NAME)
    source, texts_of = _unsafe_texts(context, outcome)
    texts_of = {policy_id: [texts[index] for index in context.sample([UNSAFE] * len(texts))] for policy_id, texts in texts_of.items()}
    perturbed = {name: {policy_id: perturbations.apply(name, texts, context.config.seed) for policy_id, texts in texts_of.items()} for name in names}
    outcome.data[source] = {"unsafe_texts": sum(map(len, texts_of.values())), "perturbations": names}
    for scorer in tqdm(context.scorers, desc=NAME, unit="model"):
        flagged: dict[str, list[np.ndarray]] = {name: [] for name in ["original", *names]}
        for policy_id, texts in texts_of.items():
            if not scorer.can_score(policy_id):
                continue
            policy = [context.policies[policy_id]]
            labels = [UNSAFE] * len(texts)
            measurements, scores = context.measure(
                scorer, policy, texts, labels, suite=NAME, dataset=f"{source}+original", policy=policy_id, metrics=RECALL
            )
            outcome.measurements.extend(measurements)
            original = scores >= DECISION_THRESHOLD
            flagged["original"].append(original)
            for name in names:
                dataset = f"{source}+{name}"
                measurements, scores = context.measure(
                    scorer, policy, perturbed[name][policy_id], labels, suite=NAME, dataset=dataset, policy=policy_id, metrics=RECALL
                )
                outcome.measurements.extend(measurements)
                flagged[name].append(scores >= DECISION_THRESHOLD)
                value, ci = _recall_drop(original, flagged[name][-1], context)
                outcome.measurements.append(Measurement(scorer.name, NAME, dataset, policy_id, "recall_drop", value, ci, len(texts)))
        if not flagged["original"]:
            continue
        pooled = np.concatenate(flagged["original"])
        for name in names:
            value, ci = _recall_drop(pooled, np.concatenate(flagged[name]), context)
            outcome.measurements.append(Measurement(scorer.name, NAME, f"{source}+{name}", POOLED, "recall_drop", value, ci, len(pooled)))
    return outcome
