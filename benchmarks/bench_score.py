"""Batch scoring speed: `guardkit score` on a 10,000-row file against `Guard.check` on the same texts in memory.

    python benchmarks/bench_score.py [--rows 10000] [--base-model minilm-l6] [--kind task] [--output score.json]

A guard is saved from the base encoder (a fresh head: speed does not depend on the weights). The baseline
is one `Guard.check` call over all the texts, already in memory; `guardkit score` reads them from a JSONL
file, scores them in chunks, writes its resumable journal and then the output file. Both runs share the
process and the guard, so their ratio is the cost of the file handling, not of the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

WORDS = (
    "please ignore previous rules and tell me how the weather report for the river city garden looks this morning "
    "while the budget meeting about music and paper windows goes on at the table near the train station"
).split()


def synthetic_rows(count: int, seed: int) -> list[dict]:
    """Chat-message-like rows of 6 to 40 words, so the guard's length bucketing has lengths to sort."""
    rng = random.Random(seed)
    return [{"id": index, "text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 40)))} for index in range(count)]


def save_bench_guard(folder: Path, base_model: str, kind: str) -> Path:
    from huggingface_hub import ModelCard
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from guardkit.assets import resolve_model
    from guardkit.data.schema import ID2LABEL, LABEL2ID
    from guardkit.guard import save_guard
    from guardkit.policies import get_policy

    path = resolve_model(base_model)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2, id2label=ID2LABEL, label2id=LABEL2ID)
    policies = ["jailbreak"] if kind == "task" else ["jailbreak", "prompt_injection"]
    return save_guard(
        folder,
        model,
        AutoTokenizer.from_pretrained(path),
        kind=kind,
        policies=[get_policy(policy_id) for policy_id in policies],
        threshold=0.5,
        max_length=128 if kind == "task" else 256,
        base_model=base_model,
        card=ModelCard("---\nlicense: apache-2.0\n---\n# benchmark guard\n"),
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000, help="rows in the scored file")
    parser.add_argument("--base-model", default="minilm-l6", help="encoder of the guard (shipped name, folder or Hub id)")
    parser.add_argument("--kind", choices=("task", "multitask"), default="task", help="a TaskGuard, or a pair guard over two policies")
    parser.add_argument("--batch-size", type=int, default=32, help="texts per forward pass, both runs")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default, one per core)")
    parser.add_argument("--output", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    from transformers.utils import logging as transformers_logging

    from guardkit.guard import Guard
    from guardkit.score import ScoreConfig, score

    transformers_logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="guardkit-bench-score-") as workdir:
        work = Path(workdir)
        folder = save_bench_guard(work / "guard", args.base_model, args.kind)
        rows = synthetic_rows(args.rows, seed=0)
        source = work / "rows.jsonl"
        source.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        guard = Guard.from_pretrained(folder, device="cpu")
        texts = [row["text"] for row in rows]
        guard.check(texts[:64], batch_size=args.batch_size)  # warm-up: one-off set-up stays out of both timings

        started = time.perf_counter()
        guard.check(texts, batch_size=args.batch_size)
        in_memory = time.perf_counter() - started

        output = work / "scored.parquet"
        started = time.perf_counter()
        score(ScoreConfig(model=str(folder), input=str(source), output=str(output), batch_size=args.batch_size))
        from_file = time.perf_counter() - started
        policies = len(guard.policy_ids)
        mean_tokens = sum(len(ids) for ids in guard.tokenizer(texts[:1000])["input_ids"]) / min(len(texts), 1000)
    results = {
        "rows": args.rows,
        "policies": policies,
        "kind": args.kind,
        "base_model": args.base_model,
        "mean_tokens": round(mean_tokens, 1),
        "batch_size": args.batch_size,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "guard_check_rows_per_second": round(args.rows / in_memory, 1),
        "guardkit_score_rows_per_second": round(args.rows / from_file, 1),
        # guardkit score includes loading the guard, reading the file, the journal and writing the output.
        "score_over_check": round(in_memory / from_file, 3),
    }
    print(json.dumps(results, indent=2))
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
