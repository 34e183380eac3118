"""TaskGuards run together on real text: what a deployment checking every harm policy at once flags.

    python -m benchmarks.bench_real_text --taskguards runs/reproduce/taskguards [--taskguards OTHER ...] [--output results.json]

A deployment runs every TaskGuard and flags a text when any of them does: `guardkit evaluate --model
taskguards/` scores them so as one set (`GuardSetScorer`), and this benchmark uses that set on the evaluation side of the corpora in
`guardkit.data.corpora` (never a training candidate): benign texts of every register (at most 4,000
characters), harmful requests, injections and jailbreaks, sampled with a fixed seed, so several sets of
TaskGuards (`--taskguards` repeated) meet the same texts. Scope policies (banking_assistant: off-topic is
what it flags) are left out of "any". It also reports each set's mean F1, FPR and AUPRC over the same
policies on policy-bench's test half, the half no default was tuned on.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from benchmarks.quiet import quiet_offline

SAMPLE = {"benign": 400, "harmful": 300, "injection": 150, "jailbreak": 150}
MAX_CHARS = 4000


def corpus_sample(seed: int) -> dict[str, list[str]]:
    from guardkit.data.corpora import CORPORA, load_corpus_texts

    rng = random.Random(seed)
    sample = {}
    for kind, count in SAMPLE.items():
        rows = [row.text for row in load_corpus_texts([name for name, corpus in CORPORA.items() if corpus.kind == kind], "eval") if len(row.text) <= MAX_CHARS]
        sample[kind] = rng.sample(rows, min(count, len(rows)))
    return sample


def measure(folder: Path, sample: dict[str, list[str]]) -> dict:
    import numpy as np

    from guardkit.data.evaluation_sets import DEFAULT_POLICY_BENCH_DIR, read_policy_bench
    from guardkit.evaluate.scorers import DECISION_THRESHOLD, GuardSetScorer
    from guardkit.evaluate.statistics import as_arrays, average_precision, f1, false_positive_rate

    # The harness's own set of TaskGuards: each policy by its guard, flagged under several when any flags it.
    scorer = GuardSetScorer.load(str(folder), "taskguards", batch_size=32, device="cpu")
    policies = [policy for policy in map(scorer.stored_policy, scorer.own_policies) if not policy.restricts_scope]
    flagged = {kind: scorer.decision_scores(policies, texts) for kind, texts in sample.items()}
    bench = []
    for policy in policies:
        threshold = scorer.threshold_for(policy)
        rows = [row for row in read_policy_bench(Path(DEFAULT_POLICY_BENCH_DIR) / f"{policy.id}.jsonl") if row.half == "test"]
        references, scores = as_arrays([row.label for row in rows], scorer.score(policy, [row.text for row in rows]))
        bench.append((float(f1(references, scores, threshold)), float(false_positive_rate(references, scores, threshold)), float(average_precision(references[None], scores[None])[0])))
    references = np.r_[np.ones(len(flagged["harmful"])), np.zeros(len(flagged["benign"]))]
    combined = np.r_[flagged["harmful"], flagged["benign"]]
    return {
        "taskguards": str(folder),
        "policies": [policy.id for policy in policies],
        "benign_fpr": float(np.mean(flagged["benign"] >= DECISION_THRESHOLD)),
        **{f"{kind}_recall": float(np.mean(flagged[kind] >= DECISION_THRESHOLD)) for kind in ("harmful", "injection", "jailbreak")},
        "harmful_vs_benign_auprc": float(average_precision(references[None], combined[None])[0]),
        "policy_bench_test_f1": float(np.mean([row[0] for row in bench])),
        "policy_bench_test_fpr": float(np.mean([row[1] for row in bench])),
        "policy_bench_test_auprc": float(np.mean([row[2] for row in bench])),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--taskguards", action="append", required=True, help="a folder of TaskGuard folders (repeat to compare sets on the same texts)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the corpus sample")
    parser.add_argument("--output", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    quiet_offline()
    sample = corpus_sample(args.seed)
    results = [measure(Path(folder), sample) for folder in args.taskguards]
    for row in results:
        print(
            f"{row['taskguards']}: benign FPR {row['benign_fpr']:.3f}, recall harmful {row['harmful_recall']:.3f} / injection "
            f"{row['injection_recall']:.3f} / jailbreak {row['jailbreak_recall']:.3f}, harmful-vs-benign AUPRC "
            f"{row['harmful_vs_benign_auprc']:.3f}; policy-bench test F1 {row['policy_bench_test_f1']:.3f}"
        )
    if args.output:
        Path(args.output).write_text(json.dumps({"sample": {kind: len(texts) for kind, texts in sample.items()}, "results": results}, indent=2) + "\n", encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
