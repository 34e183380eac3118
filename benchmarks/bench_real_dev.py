"""Real text as a development set: the corpora's training side that no compared guard was trained on.

    python -m benchmarks.bench_real_dev --model runs/reproduce/taskguards --model runs/reproduce/multitask \
        [--exclude OTHER_RUN/dataset] [--output dev.json]

`offline-corpora` measures on the corpora's evaluation side; a default tuned there would leave no real text
held out. This benchmark draws, with a fixed seed, up to --per_corpus texts from the training side of every
benign, harmful, injection and jailbreak corpus, leaving out every text of the datasets the models were trained
on (their manifests name them; --exclude adds more, so that guards trained on different data meet the same
texts), and --long_documents long benign documents of the training side. Every model scores the same texts; a
text is flagged when any harm policy flags it at the model's thresholds (scope policies such as
banking_assistant flag everything off their topic and are left out). Reported per model: the FPR on each benign
corpus and its mean over corpora, recall per attack kind, harmful-vs-benign AUPRC, and the mean F1 on
policy-bench's dev half (the half defaults are tuned on).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from benchmarks.quiet import quiet_offline

LONG_DOCUMENTS = "long-documents"


def dev_sample(excluded: set[str], per_corpus: int, long_documents: int, seed: int) -> dict[str, tuple[str, list[str]]]:
    """corpus name -> (kind, texts): training-side texts outside `excluded`, a seeded sample per corpus."""
    from guardkit.data.corpora import CORPORA, installed, load_corpus_texts, long_benign_documents
    from guardkit.guard import MAX_TEXT_CHARS

    rng = random.Random(seed)
    sample = {}
    for name in installed()[0]:
        corpus = CORPORA[name]
        if corpus.eval_only or corpus.kind == "sensitive":
            continue
        texts = sorted({row.text for row in load_corpus_texts([name], "train") if row.text not in excluded and len(row.text) <= MAX_TEXT_CHARS})
        if texts:
            sample[name] = (corpus.kind, rng.sample(texts, min(per_corpus, len(texts))))
    documents = sorted(document.text[:MAX_TEXT_CHARS] for document in long_benign_documents("train"))
    if documents and long_documents:
        sample[LONG_DOCUMENTS] = ("benign", rng.sample(documents, min(long_documents, len(documents))))
    return sample


def load_scorer(model: str):
    """The evaluation harness's scorer of `model`: one guard, or a folder of TaskGuards flagged together."""
    from guardkit.evaluate.scorers import GuardScorer, GuardSetScorer, is_guard_set

    return (GuardSetScorer if is_guard_set(model) else GuardScorer).load(model, Path(model).name, batch_size=32, device="cpu")


def training_texts(scorers: list, extra: list[str]) -> set[str]:
    """Every text of the datasets the scorers' models were trained on, and of the --exclude datasets."""
    from guardkit.data.io import load_guard_dataset
    from guardkit.errors import GuardkitError

    sources = set((folder, None) for folder in extra)
    for scorer in scorers:
        sources |= set(scorer.training_dataset_ids())
    texts: set[str] = set()
    for dataset, revision in sources:
        for config in ("default", "multitask"):
            try:
                splits, _ = load_guard_dataset(dataset, config, revision=revision)
            except GuardkitError:  # a dataset without that config
                continue
            for split in splits.values():
                texts.update(split["text"])
    return texts


def measure(model: str, scorer, sample: dict[str, tuple[str, list[str]]]) -> dict:
    import numpy as np

    from guardkit.data.evaluation_sets import DEFAULT_POLICY_BENCH_DIR, read_policy_bench
    from guardkit.evaluate.scorers import DECISION_THRESHOLD
    from guardkit.evaluate.statistics import as_arrays, average_precision, f1

    policies = [policy for policy in map(scorer.stored_policy, scorer.own_policies) if policy is not None and not policy.restricts_scope]
    flagged = {name: scorer.decision_scores(policies, texts) for name, (_, texts) in sample.items()}
    kinds = {name: kind for name, (kind, _) in sample.items()}
    benign = [name for name, kind in kinds.items() if kind == "benign"]
    harmful = [name for name, kind in kinds.items() if kind == "harmful"]
    references = np.r_[np.ones(sum(len(flagged[name]) for name in harmful)), np.zeros(sum(len(flagged[name]) for name in benign))]
    combined = np.concatenate([flagged[name] for name in harmful + benign])
    bench_f1 = []
    for policy in map(scorer.stored_policy, scorer.own_policies):
        rows = [row for row in read_policy_bench(Path(DEFAULT_POLICY_BENCH_DIR) / f"{policy.id}.jsonl") if row.half == "dev"]
        labels, scores = as_arrays([row.label for row in rows], scorer.score(policy, [row.text for row in rows]))
        bench_f1.append(float(f1(labels, scores, scorer.threshold_for(policy))))
    fpr = {name: float(np.mean(flagged[name] >= DECISION_THRESHOLD)) for name in benign}
    return {
        "model": model,
        "policies": [policy.id for policy in policies],
        "benign_fpr_by_corpus": fpr,
        "benign_fpr_mean_over_corpora": float(np.mean(list(fpr.values()))),
        **{
            f"{kind}_recall": float(np.mean(np.concatenate([flagged[name] for name in sample if kinds[name] == kind]) >= DECISION_THRESHOLD))
            for kind in ("harmful", "injection", "jailbreak")
            if kind in kinds.values()
        },
        "harmful_vs_benign_auprc": float(average_precision(references[None], combined[None])[0]),
        "policy_bench_dev_f1": float(np.mean(bench_f1)),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, help="a guard folder or a folder of TaskGuards (repeat to compare on the same texts)")
    parser.add_argument("--exclude", action="append", default=[], help="a dataset folder whose texts are left out too (e.g. another run's)")
    parser.add_argument("--per_corpus", type=int, default=30, help="texts drawn from each corpus's training side at most")
    parser.add_argument("--long_documents", type=int, default=12, help="long benign documents of the training side")
    parser.add_argument("--seed", type=int, default=1, help="seed of the sample")
    parser.add_argument("--output", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    quiet_offline()
    scorers = [load_scorer(model) for model in args.model]
    sample = dev_sample(training_texts(scorers, args.exclude), args.per_corpus, args.long_documents, args.seed)
    results = [measure(model, scorer, sample) for model, scorer in zip(args.model, scorers)]
    for row in results:
        print(
            f"{row['model']}: benign FPR {row['benign_fpr_mean_over_corpora']:.3f} (mean over {len(row['benign_fpr_by_corpus'])} corpora), "
            f"recall harmful {row.get('harmful_recall', float('nan')):.3f} / injection {row.get('injection_recall', float('nan')):.3f} / jailbreak "
            f"{row.get('jailbreak_recall', float('nan')):.3f}, harmful-vs-benign AUPRC {row['harmful_vs_benign_auprc']:.3f}; "
            f"policy-bench dev F1 {row['policy_bench_dev_f1']:.3f}"
        )
        for name, value in row["benign_fpr_by_corpus"].items():
            print(f"    {name:32s} FPR {value:.2f}")
    if args.output:
        counts = {name: {"kind": kind, "texts": len(texts)} for name, (kind, texts) in sample.items()}
        Path(args.output).write_text(json.dumps({"sample": counts, "results": results}, indent=2) + "\n", encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
