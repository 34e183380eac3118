"""`efficiency`: p50/p95 latency of one text, throughput at batch 32, peak RSS, size on disk, and the cost
of checking one text against every shipped policy; the same texts for every model and baseline.

Each scorer is measured alone in a fresh Python process (guardkit.evaluate.efficiency_probe), so its
peak RSS (VmHWM of that process: interpreter, torch and the scorer) is not mixed with the others'.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from tqdm.auto import tqdm

from guardkit.evaluate.harness import ANY_POLICY, EvaluationContext, Measurement, SuiteOutcome, SuiteSkipped
from guardkit.evaluate.suites import register_suite

NAME = "efficiency"
DATASET = "efficiency-inputs"
# Result fields of the probe that become measurements, with the policy column they are reported under.
PER_POLICY = ("latency_p50_ms", "latency_p95_ms", "throughput_texts_per_s")
WHOLE_SCORER = ("peak_rss_mb", "size_on_disk_mb", "load_s")
ERROR_TAIL = 600


def _inputs(context: EvaluationContext) -> tuple[list[str], list[str]]:
    """(sources, texts): --efficiency_texts texts from the dataset's test split, topped up from policy-bench
    and then from the policies' own examples, in an order fixed by the seed."""
    pools: list[tuple[str, list[str]]] = []
    try:
        pools.append((context.dataset_name, list(context.test_split["text"])))
    except SuiteSkipped:
        pass
    pools.append(("policy-bench", [row.text for rows in context.policy_bench.values() for row in rows]))
    pools.append(("policy examples", [text for policy in context.policies.values() for text, _ in policy.all_examples()]))
    generator = random.Random(context.config.seed)
    wanted = context.config.efficiency_texts
    texts: list[str] = []
    sources: list[str] = []
    for source, pool in pools:
        fresh = [text for text in dict.fromkeys(pool) if text not in texts]
        generator.shuffle(fresh)
        taken = fresh[: wanted - len(texts)]
        if taken:
            sources.append(source)
            texts += taken
    return sources, texts


def _probe(request: dict, threads: int | None) -> dict:
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads)} if threads else None
    with tempfile.TemporaryDirectory(prefix="guardkit-efficiency-") as folder:
        request_path, result_path = Path(folder) / "request.json", Path(folder) / "result.json"
        request_path.write_text(json.dumps(request), encoding="utf-8")
        completed = subprocess.run(
            [sys.executable, "-m", "guardkit.evaluate.efficiency_probe", str(request_path), str(result_path)],
            capture_output=True,
            text=True,
            env=environment,
        )
        if completed.returncode != 0:
            raise RuntimeError(completed.stderr.strip()[-ERROR_TAIL:] or f"exit status {completed.returncode}")
        return json.loads(result_path.read_text(encoding="utf-8"))


@register_suite(NAME, "latency p50/p95, throughput at batch 32, peak RSS, size on disk, cost of all shipped policies")
def run(context: EvaluationContext) -> SuiteOutcome:
    outcome = SuiteOutcome(NAME)
    sources, texts = _inputs(context)
    mean_chars = sum(map(len, texts)) / len(texts)
    outcome.data[DATASET] = {"sources": sources, "texts": len(texts), "mean_characters": round(mean_chars, 1)}
    outcome.notes.append(
        f"inputs: the same {len(texts)} texts from {' + '.join(sources)} (mean {mean_chars:.0f} characters) for every model and baseline; "
        "each measured alone in a fresh process; peak_rss_mb is that process's peak resident memory (VmHWM: Python, torch and the scorer)"
        + (f"; {context.config.efficiency_threads} CPU thread(s) each" if context.config.efficiency_threads else "")
    )
    config = dataclasses.asdict(context.config)
    policies = [policy.model_dump() for policy in context.policies.values()]
    for scorer in tqdm(context.scorers, desc=NAME, unit="model"):
        request = {
            "config": config,
            "spec": dataclasses.asdict(scorer.spec),
            "name": scorer.name,
            "texts": texts,
            "policies": policies,
        }
        try:
            result = _probe(request, context.config.efficiency_threads)
        except RuntimeError as error:
            outcome.notes.append(f"{scorer.name}: measurement failed: {error}")
            continue
        for metric in PER_POLICY:
            count = result["latency_repeats"] if metric.startswith("latency") else result["texts"]
            outcome.measurements.append(Measurement(scorer.name, NAME, DATASET, result["policy"], metric, result[metric], None, count))
        for metric in WHOLE_SCORER:
            if result[metric] is not None:
                outcome.measurements.append(Measurement(scorer.name, NAME, DATASET, ANY_POLICY, metric, result[metric], None, 1))
        outcome.measurements.append(
            Measurement(
                scorer.name, NAME, DATASET, ANY_POLICY, "all_policies_latency_ms", result["all_policies_latency_ms"], None, result["policies_covered"]
            )
        )
        if result["policies_covered"] < result["policies_shipped"]:
            outcome.notes.append(
                f"{scorer.name} covers {result['policies_covered']} of the {result['policies_shipped']} shipped policies; "
                "its all_policies_latency_ms checks only those"
            )
        outcome.data.setdefault("torch_threads", {})[scorer.name] = result["torch_threads"]
        if result["size_on_disk_mb"] is None:
            outcome.notes.append(f"{scorer.name} runs on a remote server: no size on disk")
    return outcome
