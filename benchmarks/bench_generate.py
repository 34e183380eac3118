"""Generated rows accepted per minute of `guardkit generate` on the shipped SmolLM2: the old path against the fast one.

Both runs plan the same requests (same policies, seed and first round) in fresh folders, with no real corpora,
so only the generator's texts are counted:
  old   the settings of the previous data engine: 8 requests per batch, 160 new tokens, any policy example as
        a few-shot example, an LLM judge (SmolLM2, verdict-token logits) re-reading every text, float32
  fast  the defaults: 32 requests per batch, 96 new tokens, few-shot examples of at most 40 words (shorter
        prompts), the embedding labeller instead of the LLM judge, and --dtype auto (bfloat16 on CPUs that
        compute it natively)
  fast_float32  the defaults in float32: what --dtype auto adds (not run unless asked for with --runs)
The accepted rows are the generated texts the labeller keeps under the policy they were written for; per
minute of the generation step (generating and labelling).

    python benchmarks/bench_generate.py --policies prompt_injection self_harm --num-per-label 10 [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from guardkit.generate.config import GenerateConfig
from guardkit.generate.pipeline import generate

RUNS = {
    "old": dict(
        batch_size=8, max_new_tokens=160, max_example_words=0, labeller_llm=True, judge="smollm2-135m", judge_backend="transformers", dtype="float32"
    ),
    "fast": {},
    "fast_float32": dict(dtype="float32"),
}


def _run(label: str, folder: Path, **options) -> dict:
    started = time.monotonic()
    generate(GenerateConfig(output=str(folder), corpora=["none"], jailbreak_recombinations=0, injection_recombinations=0, generated_unsafe=True, max_rounds=1, **options))
    elapsed = time.monotonic() - started
    stats = json.loads((folder / "stats.json").read_text())
    candidates = sum(1 for line in (folder / "candidates.jsonl").read_text().splitlines() if '"type": "candidate"' in line)
    minutes = stats["generation_minutes"]
    result = {
        "run": label,
        "seconds": round(elapsed, 1),
        "requests": stats["requests"]["done"] + stats["requests"]["failed"],
        "candidates": candidates,
        "accepted_generated": stats["generated_accepted"],
        "generation_minutes": minutes,
        "accepted_per_minute": round(stats["generated_accepted"] / minutes, 2) if minutes else None,
        "candidates_per_minute": round(candidates / minutes, 2) if minutes else None,
    }
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policies", nargs="+", default=["prompt_injection", "self_harm"])
    parser.add_argument("--num-per-label", type=int, default=10)
    parser.add_argument("--runs", nargs="+", default=["old", "fast"], choices=list(RUNS))
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-generate-") as scratch:
        for run in args.runs:
            results.append(_run(run, Path(scratch) / run, policies=args.policies, num_per_label=args.num_per_label, **RUNS[run]))
    print("\n| run | requests | candidates | accepted | generation minutes | accepted/min | candidates/min |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for result in results:
        print(
            f"| {result['run']} | {result['requests']} | {result['candidates']} | {result['accepted_generated']} | "
            f"{result['generation_minutes']} | {result['accepted_per_minute']} | {result['candidates_per_minute']} |"
        )
    by_run = {result["run"]: result for result in results}
    if {"old", "fast"} <= set(by_run) and by_run["old"]["accepted_per_minute"]:
        print(f"\nfast / old accepted rows per minute: {by_run['fast']['accepted_per_minute'] / by_run['old']['accepted_per_minute']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
