"""The cost side of the paper's claim: a MiniLM guard against the SmolLM2 judge and the cheap baselines.

    python -m benchmarks.bench_evaluate [--model GUARD_DIR] [--output DIR] [--texts 64]

Runs the `efficiency` suite of `guardkit evaluate` (p50/p95 latency of one text, throughput at batch 32,
peak RSS of a fresh process, size on disk, one text against every shipped policy) on the same texts for
the guard and the llm-judge, keyword and embedding-knn baselines, and prints the table with the
guard / judge throughput ratio. Without --model it first trains a MiniLM TaskGuard for a few steps on
the jailbreak policy's own examples (its speed, not its quality, is what is measured here).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

TRAIN_STEPS = 4


def train_quick_guard(workdir: Path, steps: int = TRAIN_STEPS, **options) -> Path:
    """A MiniLM TaskGuard for jailbreak, `steps` steps on the policy's own examples; options: more TaskGuardConfig fields."""
    from guardkit.data.io import split_file
    from guardkit.data.schema import rows_to_dataset
    from guardkit.policies import get_policy
    from guardkit.train.config import TaskGuardConfig
    from guardkit.train.task import train_task_guard

    policy = get_policy("jailbreak")
    examples = policy.all_examples()
    data = workdir / "data"
    for offset, split in enumerate(("train", "validation", "test")):
        rows = [{"text": text, "label": label, "policy": policy.id} for text, label in examples[offset::3]]
        path = split_file(data, split)
        path.parent.mkdir(parents=True, exist_ok=True)
        rows_to_dataset(rows).to_parquet(str(path))
    (data / "policies").mkdir(exist_ok=True)
    (data / "policies" / f"{policy.id}.yaml").write_text(policy.to_yaml(), encoding="utf-8")
    config = TaskGuardConfig(dataset=str(data), output=str(workdir / "minilm-guard"), policy=policy.id, max_steps=steps, **options)
    train_task_guard(config)
    return Path(config.output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a trained guard folder (default: train a MiniLM TaskGuard for a few steps)")
    parser.add_argument("--output", help="report folder (default: a temporary one)")
    parser.add_argument("--texts", type=int, default=64, help="texts timed for every scorer")
    parser.add_argument("--threads", type=int, help="CPU threads per measured process (default: torch's, one per core)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from guardkit.evaluate.config import EvaluateConfig
    from guardkit.evaluate.runner import run_evaluation

    with tempfile.TemporaryDirectory(prefix="bench-evaluate-") as workdir:
        model = Path(args.model) if args.model else train_quick_guard(Path(workdir))
        output = Path(args.output or Path(workdir) / "report")
        config = EvaluateConfig(
            output=str(output),
            model=[str(model)],
            baseline=["llm-judge", "keyword", "embedding-knn"],
            suite=["efficiency"],
            efficiency_texts=args.texts,
            efficiency_threads=args.threads,
        )
        run_evaluation(config)
        print("## efficiency" + (output / "report.md").read_text(encoding="utf-8").split("## efficiency", 1)[1])


if __name__ == "__main__":
    main()
