"""`public`: the registry of public guardrail benchmarks (guardkit.data.benchmarks), each mapped to policies.

A benchmark row is scored under every evaluated policy its categories map to, and flagged when any of
them flags it (policy "any"); unsafe rows whose category names one policy also get that policy's recall.
Offline, benchmarks that are not in the local datasets cache are listed as missing and the rest are scored.
"""

from __future__ import annotations

from tqdm.auto import tqdm

from guardkit.data.benchmarks import BENCHMARKS, BenchmarkUnavailable, get_benchmark, load_benchmark
from guardkit.evaluate.harness import ANY_POLICY, UNSAFE, EvaluationContext, FETCH_HINT, SuiteOutcome, SuiteSkipped
from guardkit.evaluate.suites import register_suite

NAME = "public"


@register_suite(NAME, "public guardrail benchmarks mapped to policies; offline, the ones in the local cache")
def run(context: EvaluationContext) -> SuiteOutcome:
    outcome = SuiteOutcome(NAME)
    files = context.config.benchmark_file_map()
    names = context.config.benchmarks or list(BENCHMARKS)
    missing: dict[str, list[str]] = {}
    for name in tqdm(names, desc=NAME, unit="benchmark"):
        benchmark = get_benchmark(name)
        try:
            data = load_benchmark(name, data_files=files.get(name))
        except BenchmarkUnavailable as error:
            missing.setdefault(error.reason, []).append(name)
            continue
        data = data.select(context.sample(data["label"]))
        outcome.data[name] = {"rows": len(data), "hub_id": benchmark.hub_id}
        for scorer in context.scorers:
            policies = context.scorable(scorer, benchmark.policies)
            if not policies:
                outcome.notes.append(f"{scorer.name} covers none of {name}'s policies ({', '.join(benchmark.policies)})")
                continue
            measurements, _ = context.measure(
                scorer, policies, data["text"], data["label"], suite=NAME, dataset=name, policy=ANY_POLICY, curves=outcome.curves
            )
            outcome.measurements.extend(measurements)
            rows = list(zip(data["text"], data["label"], data["policy"]))
            for policy in policies:
                unsafe = [text for text, label, row_policy in rows if label == UNSAFE and row_policy == policy.id]
                if unsafe:
                    measurements, _ = context.measure(
                        scorer, [policy], unsafe, [UNSAFE] * len(unsafe), suite=NAME, dataset=name, policy=policy.id
                    )
                    outcome.measurements.extend(measurements)
    # Offline every benchmark fails for the same reason: it is said once, with the names it applies to.
    reasons = [f"{', '.join(names)}: {reason}" for reason, names in missing.items()]
    if not outcome.data:
        raise SuiteSkipped("no public benchmark could be read: " + "; ".join(reasons) + f"; {FETCH_HINT}")
    if missing:
        outcome.notes.extend(["missing benchmarks, not scored:", *reasons, FETCH_HINT])
    return outcome
