"""`over-refusal`: safe texts that look unsafe, and how many of them a guard flags (false-positive rate).

Sources: the hard negatives of policy-bench, per policy, and XSTest's safe prompts when the benchmark is
available (scored under all evaluated policies, flagged when any flags them).
"""

from __future__ import annotations

from tqdm.auto import tqdm

from guardkit.data.benchmarks import BenchmarkUnavailable, load_benchmark
from guardkit.data.schema import LABEL2ID
from guardkit.evaluate.harness import ANY_POLICY, FETCH_HINT, EvaluationContext, SuiteOutcome, SuiteSkipped, first_sentence
from guardkit.evaluate.suites import register_suite

NAME = "over-refusal"
SAFE = LABEL2ID["safe"]
XSTEST = "xstest"
METRICS = ("false_positive_rate",)


@register_suite(NAME, "false-positive rate on safe texts that look unsafe (policy-bench hard negatives, XSTest safe)")
def run(context: EvaluationContext) -> SuiteOutcome:
    outcome = SuiteOutcome(NAME)
    hard_negatives = {
        policy_id: [row.text for row in rows if row.hard_negative and row.label == SAFE]
        for policy_id, rows in context.policy_bench.items()
    }
    hard_negatives = {policy_id: texts for policy_id, texts in hard_negatives.items() if texts}
    try:
        xstest = load_benchmark(XSTEST, data_files=context.config.benchmark_file_map().get(XSTEST))
        xstest_safe = [text for text, label in zip(xstest["text"], xstest["label"]) if label == SAFE]
    except BenchmarkUnavailable as error:
        xstest_safe = []
        outcome.notes.append(f"XSTest not scored: {first_sentence(error)}; {FETCH_HINT.replace('NAME', XSTEST)}")
    if not hard_negatives and not xstest_safe:
        raise SuiteSkipped(
            f"no over-refusal texts: no policy-bench hard negatives in {context.config.policy_bench_dir} for "
            f"{', '.join(context.policies)} and XSTest is unavailable"
        )
    if hard_negatives:
        outcome.notes.append(f"hard negatives: policy-bench's {context.policy_bench_scope}")
    work = [(policy_id, scorer) for policy_id in hard_negatives for scorer in context.scorers if scorer.can_score(policy_id)]
    for policy_id, scorer in tqdm(work, desc=f"{NAME} hard negatives", unit="policy x model"):
        texts = hard_negatives[policy_id]
        texts = [texts[index] for index in context.sample([SAFE] * len(texts))]
        measurements, _ = context.measure(
            scorer,
            [context.policies[policy_id]],
            texts,
            [SAFE] * len(texts),
            suite=NAME,
            dataset="policy-bench-hard-negatives",
            policy=policy_id,
            metrics=METRICS,
        )
        outcome.measurements.extend(measurements)
    if xstest_safe:
        texts = [xstest_safe[index] for index in context.sample([SAFE] * len(xstest_safe))]
        outcome.data["xstest-safe"] = {"rows": len(texts)}
        for scorer in tqdm(context.scorers, desc=f"{NAME} xstest", unit="model"):
            policies = context.scorable(scorer, list(context.policies))
            if policies:
                measurements, _ = context.measure(
                    scorer, policies, texts, [SAFE] * len(texts), suite=NAME, dataset="xstest-safe", policy=ANY_POLICY, metrics=METRICS
                )
                outcome.measurements.extend(measurements)
    return outcome
