"""Accepted examples per minute of `guardkit generate` on the shipped SmolLM2.

Three runs on the same policies and settings, each in a fresh folder:
  transformers  the local backend (batched sampling, KV-cached logit judge)
  openai c=1    the openai backend against a real `transformers serve --continuous-batching` process, 1 in flight
  openai c=8    the same server, 8 requests in flight
The judge is the local logit judge in every run, so the runs differ only in how the texts are generated.

    python benchmarks/bench_generate.py --policies prompt_injection --num-per-label 8 [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from guardkit.assets import resolve_model  # noqa: E402
from guardkit.generate.config import GenerateConfig  # noqa: E402
from guardkit.generate.pipeline import generate  # noqa: E402


def _run(label: str, folder: Path, **options) -> dict:
    started = time.monotonic()
    generate(GenerateConfig(output=str(folder), **options))
    elapsed = time.monotonic() - started
    stats = json.loads((folder / "stats.json").read_text())
    accepted = sum(sum(split.values()) for policy in stats["counts"]["default"].values() for split in policy.values())
    result = {
        "run": label,
        "seconds": round(elapsed, 1),
        "candidates": stats["candidates"],
        "accepted_rows": accepted,
        "accepted_per_minute": round(stats["accepted_per_minute"], 2),
        "candidates_per_minute": round(stats["candidates"] / (elapsed / 60), 2),
        "requests": stats["requests"],
    }
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policies", nargs="+", default=["prompt_injection"])
    parser.add_argument("--num-per-label", type=int, default=8)
    parser.add_argument("--runs", nargs="+", default=["transformers", "openai-1", "openai-8"], choices=["transformers", "openai-1", "openai-8"])
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    common = dict(policies=args.policies, num_per_label=args.num_per_label, judge="smollm2-135m", judge_backend="transformers")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-generate-") as scratch:
        scratch = Path(scratch)
        if "transformers" in args.runs:
            results.append(_run("transformers", scratch / "transformers", **common))
        openai_runs = [run for run in args.runs if run.startswith("openai")]
        if openai_runs:
            from test_generate_backends import Server

            model = resolve_model("smollm2-135m")
            server = Server(Path(model), scratch / "serve.log")
            server.start()
            try:
                for run in openai_runs:
                    concurrency = int(run.split("-")[1])
                    results.append(
                        _run(
                            f"openai c={concurrency}", scratch / run, backend="openai", generator=model, base_url=server.base_url,
                            prompt_style="list", concurrency=concurrency, **common,
                        )
                    )
            finally:
                server.kill()
    print("\n| run | seconds | candidates | accepted rows | accepted/min | candidates/min |\n| --- | ---: | ---: | ---: | ---: | ---: |")
    for result in results:
        print(f"| {result['run']} | {result['seconds']} | {result['candidates']} | {result['accepted_rows']} | {result['accepted_per_minute']} | {result['candidates_per_minute']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
