"""`policy-bench`: guardkit's hand-written test set per shipped policy (benchmarks/policy_bench/<policy>.jsonl).

Written apart from the policies' own examples and never used as generation seeds or few-shot material,
so it measures the custom policies that no public benchmark covers.
"""

from __future__ import annotations

from tqdm.auto import tqdm

from guardkit.evaluate.harness import EvaluationContext, SuiteOutcome, SuiteSkipped
from guardkit.evaluate.suites import register_suite

NAME = "policy-bench"


@register_suite(NAME, "guardkit's hand-written benchmark of each shipped policy, hard negatives included")
def run(context: EvaluationContext) -> SuiteOutcome:
    outcome = SuiteOutcome(NAME)
    bench = context.policy_bench
    if not bench:
        raise SuiteSkipped(
            f"no policy-bench file in {context.config.policy_bench_dir} for the evaluated policies "
            f"({', '.join(context.policies)}); set --policy_bench_dir to the folder of <policy>.jsonl files"
        )
    outcome.notes.append(f"rows: policy-bench's {context.policy_bench_scope}")
    absent = [policy_id for policy_id in context.policies if policy_id not in bench]
    if absent:
        outcome.notes.append(f"no policy-bench file for: {', '.join(absent)}")
    work = [(policy_id, scorer) for policy_id in bench for scorer in context.scorers if scorer.can_score(policy_id)]
    for policy_id, scorer in tqdm(work, desc=NAME, unit="policy x model"):
        rows = bench[policy_id]
        chosen = context.sample([row.label for row in rows])
        measurements, _ = context.measure(
            scorer,
            [context.policies[policy_id]],
            [rows[index].text for index in chosen],
            [rows[index].label for index in chosen],
            suite=NAME,
            dataset=NAME,
            policy=policy_id,
            curves=outcome.curves,
        )
        outcome.measurements.extend(measurements)
    return outcome
