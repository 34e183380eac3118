"""`synthetic`: the test split of the guardkit dataset, per policy."""

from __future__ import annotations

from collections import defaultdict

from tqdm.auto import tqdm

from guardkit.evaluate.harness import EvaluationContext, SuiteOutcome
from guardkit.evaluate.suites import register_suite

NAME = "synthetic"


@register_suite(NAME, "the test split of a guardkit dataset (--dataset or the one the models name), per policy")
def run(context: EvaluationContext) -> SuiteOutcome:
    outcome = SuiteOutcome(NAME)
    test = context.test_split
    rows_of: dict[str, list[int]] = defaultdict(list)
    for index, policy_id in enumerate(test["policy"]):
        rows_of[policy_id].append(index)
    absent = [policy_id for policy_id in context.policies if policy_id not in rows_of]
    if absent:
        outcome.notes.append(f"no test rows in {context.dataset_name} for: {', '.join(absent)}")
    work = [
        (policy_id, scorer)
        for policy_id in context.policies
        if policy_id in rows_of
        for scorer in context.scorers
        if scorer.can_score(policy_id)
    ]
    for policy_id, scorer in tqdm(work, desc=NAME, unit="policy x model"):
        subset = test.select(rows_of[policy_id])
        chosen = context.sample(subset["label"])
        subset = subset.select(chosen)
        measurements, _ = context.measure(
            scorer,
            [context.policies[policy_id]],
            subset["text"],
            subset["label"],
            suite=NAME,
            dataset=context.dataset_name,
            policy=policy_id,
            curves=outcome.curves,
        )
        outcome.measurements.extend(measurements)
    return outcome
