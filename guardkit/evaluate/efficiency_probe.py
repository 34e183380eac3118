"""The efficiency suite's measurement of one scorer, run in a fresh process so that its peak RSS is its own.

`python -m guardkit.evaluate.efficiency_probe REQUEST.json RESULT.json`: the request names the scorer,
the config to build it with, the texts and the policies; the result holds the timings, the peak
resident memory of this process (VmHWM: interpreter, torch and the scorer together) and the size on
disk.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

THROUGHPUT_BATCH = 32
ALL_POLICY_REPEATS = 5


def peak_rss_bytes() -> int:
    """The high-water mark of this process's resident memory.

    Linux keeps ru_maxrss across fork and exec, so a child started from a large parent would report the
    parent's peak; VmHWM belongs to the process's own address space. macOS reports ru_maxrss in bytes.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure(request: dict) -> dict:
    from guardkit.evaluate.config import EvaluateConfig
    from guardkit.evaluate.scorers import ScorerSpec, build_scorer
    from guardkit.policies import Policy, shipped_policies

    config = EvaluateConfig(**request["config"])
    texts: list[str] = request["texts"]
    policies = [Policy.model_validate(raw) for raw in request["policies"]]
    started = time.perf_counter()
    scorer = build_scorer(ScorerSpec(**request["spec"]), request["name"], config)
    load_seconds = time.perf_counter() - started
    scorer.disable_memo()
    policy = next((policy for policy in policies if scorer.can_score(policy.id)), None)
    if policy is None:
        raise SystemExit(f"{request['name']} can score none of the evaluated policies")
    # Warm-up: first calls pay one-off costs (allocator growth, a judge's policy-prefix cache).
    scorer.score(policy, texts[:2])
    latencies = []
    for repeat in range(config.latency_repeats):
        text = texts[repeat % len(texts)]
        started = time.perf_counter()
        scorer.score(policy, [text])
        latencies.append(time.perf_counter() - started)
    started = time.perf_counter()
    for start in range(0, len(texts), THROUGHPUT_BATCH):
        scorer.score(policy, texts[start : start + THROUGHPUT_BATCH])
    throughput = len(texts) / (time.perf_counter() - started)
    covered = [policy for policy in shipped_policies().values() if scorer.can_score(policy.id)]
    # Per-policy setup is paid once per deployment, not per text.
    scorer.score_policies(covered, texts[:1])
    all_policies = []
    for repeat in range(min(ALL_POLICY_REPEATS, len(texts))):
        started = time.perf_counter()
        scorer.score_policies(covered, [texts[repeat]])
        all_policies.append(time.perf_counter() - started)
    return {
        "policy": policy.id,
        "latency_p50_ms": float(np.percentile(latencies, 50)) * 1000,
        "latency_p95_ms": float(np.percentile(latencies, 95)) * 1000,
        "latency_repeats": len(latencies),
        "throughput_texts_per_s": throughput,
        "texts": len(texts),
        "all_policies_latency_ms": float(np.median(all_policies)) * 1000,
        "policies_covered": len(covered),
        "policies_shipped": len(shipped_policies()),
        "load_s": load_seconds,
        # None when the scorer never needed torch (the keyword lists).
        "torch_threads": sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None,
        "peak_rss_mb": peak_rss_bytes() / 2**20,
        "size_on_disk_mb": None if (size := scorer.size_on_disk()) is None else size / 2**20,
    }


def main(argv: list[str]) -> int:
    from guardkit.errors import GuardkitError

    request_path, result_path = argv
    try:
        result = measure(json.loads(Path(request_path).read_text(encoding="utf-8")))
    except GuardkitError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    Path(result_path).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
