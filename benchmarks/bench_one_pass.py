"""One text against every shipped policy: the one-pass (multilabel) path against instruction pairs and TaskGuards.

    python -m benchmarks.bench_one_pass [--run runs/reproduce] [--threads 2] [--repeats 200] [--onnx fp32|int8] [--output results.json]

Each path answers `Guard.check(text)` for all 11 shipped policies; the paths take turns call by call, so
load from other processes falls on all of them alike, and the p50 / p95 latency of a short and of a
chat-length text is reported with each path's ratio to the one pass. With --run (a `make reproduce`
output folder) the guards are that run's: the UniGuard's one pass (uniguard/), the pair guard it hands
unseen policies to (uniguard/pair/: one instruction pair per policy), and the 11 TaskGuards one after
another; the policy-bench is then scored by the one pass and by the pair guard at their stored
thresholds. Without --run it builds untrained MiniLM guards of the same shapes (time does not depend on
the weights), so only latency is measured. --onnx adds the one pass exported by `guardkit export` and run
by ONNX Runtime, the way it is served (with --run, through the export's verdict check on the policy-bench).
Targets (issue 16): one-pass p50 <= 15 ms on 2 cores; policy-bench mean F1 no more than 0.01 below the
pair UniGuard's.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from benchmarks.quiet import quiet_offline

TEXTS = {
    "short": "how do I reset my online banking password?",
    "chat": (
        "I'm writing a short story for my creative writing class about a detective in 1920s Chicago who "
        "has to solve a jewel theft at a jazz club. Can you help me outline three acts, suggest two plot "
        "twists, and give the detective a memorable habit?"
    ),
}
P50_TARGET_MS = 15.0
F1_TOLERANCE = 0.01


def untrained_guards(workdir: Path) -> dict[str, list]:
    """A multilabel MiniLM guard over the shipped policies and a MiniLM instruction-pair guard beside it."""
    from huggingface_hub import ModelCard
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from guardkit.assets import DEFAULT_ENCODER, hub_id_of, resolve_model
    from guardkit.guard import Guard, save_guard
    from guardkit.policies import shipped_policies

    encoder = resolve_model(DEFAULT_ENCODER)
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    policies = list(shipped_policies().values())
    card = ModelCard("---\nlicense: apache-2.0\n---\n\n# benchmark guard (untrained head)\n")
    common = dict(policies=policies, threshold=0.5, base_model=hub_id_of(DEFAULT_ENCODER), card=card)
    one_pass = AutoModelForSequenceClassification.from_pretrained(encoder, num_labels=len(policies))
    save_guard(workdir / "one-pass", one_pass, tokenizer, kind="uniguard", max_length=256, input_format="multilabel", **common)
    pair = AutoModelForSequenceClassification.from_pretrained(encoder, num_labels=2)
    # The pair guards of `make reproduce` are trained at 160 tokens: ~95 of them are the instruction.
    save_guard(workdir / "pair", pair, tokenizer, kind="multitask", max_length=160, **common)
    return {
        "one_pass": [Guard.from_pretrained(workdir / "one-pass", device="cpu")],
        "instruction_pairs": [Guard.from_pretrained(workdir / "pair", device="cpu")],
    }


def run_guards(run: Path) -> dict[str, list]:
    from guardkit.guard import PAIR_FOLDER, Guard, guard_folders

    uniguard = Guard.from_pretrained(run / "uniguard", device="cpu")
    if uniguard.manifest.input_format != "multilabel":
        raise SystemExit(f"{run / 'uniguard'} reads {uniguard.manifest.input_format}, not multilabel: it has no one-pass path")
    task_guards = [Guard.from_pretrained(folder, device="cpu") for folder in guard_folders(run / "taskguards")]
    paths = {"one_pass": [uniguard], "instruction_pairs": [Guard.from_pretrained(run / "uniguard" / PAIR_FOLDER, device="cpu")]}
    if task_guards:
        paths["task_guards"] = task_guards
    return paths


def check_all(guards: list, text: str) -> None:
    for guard in guards:
        guard.check([text])


def latency(paths: dict[str, list], repeats: int) -> dict:
    import numpy as np

    results = {}
    for label, text in TEXTS.items():
        for guards in paths.values():
            for _ in range(5):
                check_all(guards, text)
        timings: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(repeats):
            for name, guards in paths.items():
                started = time.perf_counter()
                check_all(guards, text)
                timings[name].append((time.perf_counter() - started) * 1000)
        tokenizer = paths["one_pass"][0].tokenizer
        row = {"tokens": len(tokenizer(text)["input_ids"])}
        for name, values in timings.items():
            row[f"{name}_p50_ms"] = float(np.percentile(values, 50))
            row[f"{name}_p95_ms"] = float(np.percentile(values, 95))
        for name in paths:
            if name != "one_pass":
                row[f"{name}_vs_one_pass"] = row[f"{name}_p50_ms"] / row["one_pass_p50_ms"]
        results[label] = row
    return results


def onnx_one_pass(folder: Path, output: Path, precision: str, max_disagreement: float) -> list:
    """The one-pass guard exported by `guardkit export` (fp32, or `--quantize int8`), run by ONNX Runtime."""
    from guardkit.export import ExportConfig, export_guard
    from guardkit.guard import Guard

    quantize = None if precision == "fp32" else precision
    export_guard(ExportConfig(model=str(folder), output=str(output), quantize=quantize, overwrite=True, max_disagreement=max_disagreement))
    return [Guard.from_pretrained(output, backend="onnx")]


def policy_bench_f1(guards: dict) -> dict:
    """Per-policy F1 of each guard ({path name: guard}) on the whole policy-bench, at its stored thresholds."""
    import numpy as np

    from guardkit.data.evaluation_sets import DEFAULT_POLICY_BENCH_DIR, read_policy_bench
    from guardkit.evaluate.statistics import as_arrays, f1

    per_policy = {}
    for policy_id in guards["one_pass"].policy_ids:
        path = Path(DEFAULT_POLICY_BENCH_DIR) / f"{policy_id}.jsonl"
        if not path.is_file():
            continue
        rows = read_policy_bench(path)
        texts, labels = [row.text for row in rows], [row.label for row in rows]
        row = {"rows": len(rows)}
        for name, guard in guards.items():
            references, scores = as_arrays(labels, guard.score(texts, policy_id))
            row[f"{name}_f1"] = float(f1(references, scores, guard.threshold_for(policy_id)))
        per_policy[policy_id] = row
    means = {f"{name}_mean_f1": float(np.mean([row[f"{name}_f1"] for row in per_policy.values()])) for name in guards}
    return {"per_policy": per_policy, **means, "one_pass_minus_pairs": means["one_pass_mean_f1"] - means["instruction_pairs_mean_f1"]}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="a `make reproduce` output folder (uniguard/, taskguards/); default: untrained guards of the same shapes")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--repeats", type=int, default=200, help="timed calls per path and text")
    parser.add_argument(
        "--onnx", choices=("fp32", "int8"),
        help="also time the one pass exported to ONNX at this precision (guardkit export; with --run its policy-bench F1 too)",
    )  # fmt: skip
    parser.add_argument(
        "--max-disagreement", type=float, default=0.01,
        help="the export's --max_disagreement with --run (untrained guards score every text near their threshold, "
        "where int8 noise flips verdicts: their export is timed, not checked)",
    )  # fmt: skip
    parser.add_argument("--output", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    quiet_offline(args.threads)
    import torch
    with tempfile.TemporaryDirectory(prefix="bench-one-pass-") as scratch:
        paths = run_guards(Path(args.run)) if args.run else untrained_guards(Path(scratch))
        if args.onnx:
            one_pass_dir = Path(args.run) / "uniguard" if args.run else Path(scratch) / "one-pass"
            allowed = args.max_disagreement if args.run else 0.99
            paths[f"one_pass_ort_{args.onnx}"] = onnx_one_pass(one_pass_dir, Path(scratch) / "one-pass-onnx", args.onnx, allowed)
        load_before = os.getloadavg()[0]
        results = {
            "guards": args.run or "untrained MiniLM guards (one pass: 11 sigmoid outputs; pairs: max length 160)",
            "policies": len(paths["one_pass"][0].policy_ids),
            "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "load_average_before": load_before,
            "latency": latency(paths, args.repeats),
            "load_average_after": os.getloadavg()[0],
            "p50_target_ms": P50_TARGET_MS,
        }
        if args.run:
            results["policy_bench"] = policy_bench_f1({name: guards[0] for name, guards in paths.items() if name != "task_guards"})
            results["policy_bench"]["f1_tolerance"] = F1_TOLERANCE
    print(json.dumps(results, indent=2))
    for label, row in results["latency"].items():
        others = ", ".join(f"{name} {row[f'{name}_p50_ms']:.1f} ms ({row[f'{name}_vs_one_pass']:.1f}x)" for name in paths if name != "one_pass")
        print(f"{label} text ({row['tokens']} tokens), all {results['policies']} policies, p50: one pass {row['one_pass_p50_ms']:.1f} ms; {others}")
    if args.run:
        bench = results["policy_bench"]
        print("policy-bench mean F1: " + ", ".join(f"{key[: -len('_mean_f1')]} {value:.3f}" for key, value in bench.items() if key.endswith("_mean_f1")))
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
