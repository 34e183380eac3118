"""How a guard's windows make one score on long texts: benign documents, and the same documents with a harmful request planted inside.

    python -m benchmarks.bench_windows --run runs/reproduce [--documents 80] [--discounts 0.25,0.5,0.75,1] [--output windows.json]

A guard reads a text longer than its `max_length` as overlapping windows and combines their scores
(`window_aggregation` in guardkit.json). Under "max" every window is one more chance for a benign
document to cross a threshold calibrated on short texts; under "mean" a harmful paragraph is diluted by
the pages around it. This benchmark scores every window once and compares the aggregations on:

- long benign documents of the corpora's evaluation side (2 KB up to `MAX_TEXT_CHARS`): FPR;
- the same documents with one harmful request of the evaluation side pasted at a random line break:
  recall, and AUROC against the unplanted documents;
- short benign requests (at most 4,000 characters): the FPR a long document should not exceed.

The documents are split into two halves by a hash of their uid. The aggregation is chosen on the dev
half (the highest planted recall among those whose long-document FPR is at most the short requests'
FPR) and reported on the test half. Guards: the UniGuard (one pass) and the TaskGuards of a
`make reproduce` run; a text counts as flagged when any policy that is not a scope policy flags it.
Nothing here is a training candidate: the data engine reads the corpora's train side only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from pathlib import Path

from benchmarks.quiet import quiet_offline

SHORT_BENIGN = 200
SHORT_MAX_CHARS = 4000
PLANTED_MAX_CHARS = 600


def sample_texts(documents: int, seed: int) -> dict[str, dict[str, list[str]]]:
    """Per half ("dev", "test"): long benign documents, the same with a planted request, short benign requests."""
    from guardkit.data.corpora import CORPORA, load_corpus_texts
    from guardkit.data.corpora.registry import long_benign_documents
    from guardkit.guard import MAX_TEXT_CHARS

    rng = random.Random(seed)
    long_documents = [document for document in long_benign_documents("eval") if len(document.text) <= MAX_TEXT_CHARS]
    long_documents = rng.sample(long_documents, min(documents, len(long_documents)))
    harmful = [row.text for row in load_corpus_texts([name for name, corpus in CORPORA.items() if corpus.kind == "harmful"], "eval")]
    harmful = rng.sample([text for text in harmful if len(text) <= PLANTED_MAX_CHARS], len(long_documents))
    benign = [row.text for row in load_corpus_texts([name for name, corpus in CORPORA.items() if corpus.kind == "benign"], "eval")]
    benign = rng.sample([text for text in benign if len(text) <= SHORT_MAX_CHARS], SHORT_BENIGN)
    halves = {half: {"long_benign": [], "planted": [], "short_benign": []} for half in ("dev", "test")}
    for document, request in zip(long_documents, harmful):
        half = halves[_half(document.uid)]
        breaks = [position for position, character in enumerate(document.text) if character == "\n"] or [len(document.text) // 2]
        cut = rng.choice(breaks)
        half["long_benign"].append(document.text)
        half["planted"].append(f"{document.text[:cut]}\n\n{request}\n\n{document.text[cut:]}")
    for position, text in enumerate(benign):
        halves["dev" if position % 2 == 0 else "test"]["short_benign"].append(text)
    return halves


def _half(uid: str) -> str:
    return "dev" if hashlib.sha256(uid.encode()).digest()[0] % 2 == 0 else "test"


def guard_windows(folder: Path, halves: dict[str, dict[str, list[str]]]):
    """(guard, its harm policy ids, per half and text set: (windows, window probabilities, text count))."""
    from guardkit.guard import Guard
    from guardkit.policies import get_policy

    guard = Guard.from_pretrained(folder)
    if guard.manifest.input_format not in ("text", "multilabel"):
        raise SystemExit(f"{folder}: bench_windows measures text and multilabel guards, not {guard.manifest.input_format}")
    policies = [policy_id for policy_id in guard.policy_ids if not get_policy(policy_id).restricts_scope]
    scored = {}
    for half, sets in halves.items():
        for name, texts in sets.items():
            windows = guard.encode_pairs(texts, None)
            scored[half, name] = (windows, guard.window_probabilities(windows, 32, progress=False, label=f"{folder.name} {half} {name}"), len(texts))
    return guard, policies, scored


def flag_margins(guards, half: str, name: str, how: str, discount: float):
    """Per text, the largest log-odds margin over its threshold of any harm policy of any guard (>= 0: flagged)."""
    import numpy as np

    margins = None
    for guard, policies, scored in guards:
        windows, probabilities, count = scored[half, name]
        scores = guard.combine_windows(probabilities, windows, count, how, discount)
        scores = scores.reshape(count, -1)
        for policy_id in policies:
            column = guard.policy_ids.index(policy_id) if scores.shape[1] > 1 else 0
            threshold = np.clip(guard.threshold_for(policy_id), 1e-7, 1 - 1e-7)
            value = np.clip(scores[:, column].astype(np.float64), 1e-7, 1 - 1e-7)
            margin = np.log(value / (1 - value)) - np.log(threshold / (1 - threshold))
            margins = margin if margins is None else np.maximum(margins, margin)
    return margins


def measure(guards, half: str, how: str, discount: float) -> dict:
    import numpy as np
    from sklearn.metrics import roc_auc_score

    long_benign, planted, short_benign = (flag_margins(guards, half, name, how, discount) for name in ("long_benign", "planted", "short_benign"))
    return {
        "long_benign_fpr": float(np.mean(long_benign >= 0)),
        "planted_recall": float(np.mean(planted >= 0)),
        "planted_auroc": float(roc_auc_score(np.r_[np.zeros(len(long_benign)), np.ones(len(planted))], np.r_[long_benign, planted])),
        "short_benign_fpr": float(np.mean(short_benign >= 0)),
    }


def compare(guards, discounts: list[float]) -> dict:
    candidates = [("max", 0.0), ("mean", 0.0)] + [("length_adjusted_max", discount) for discount in discounts]
    rows = []
    for how, discount in candidates:
        rows.append({"aggregation": how, "length_discount": discount, **{half: measure(guards, half, how, discount) for half in ("dev", "test")}})
    eligible = [row for row in rows if row["dev"]["long_benign_fpr"] <= row["dev"]["short_benign_fpr"]]
    chosen = max(eligible, key=lambda row: (row["dev"]["planted_recall"], row["dev"]["planted_auroc"])) if eligible else None
    return {"aggregations": rows, "chosen_on_dev": chosen and {"aggregation": chosen["aggregation"], "length_discount": chosen["length_discount"], "test": chosen["test"]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a `make reproduce` output folder (its uniguard/ and taskguards/)")
    parser.add_argument("--documents", type=int, default=80, help="long benign documents, split into the dev and test halves")
    parser.add_argument("--discounts", default="0.25,0.5,0.75,1", help="length_adjusted_max discounts to compare (log-odds per log window)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    quiet_offline()
    halves = sample_texts(args.documents, args.seed)
    discounts = [float(value) for value in args.discounts.split(",")]
    sets = {"uniguard": [args.run / "uniguard"], "taskguards": sorted(path.parent for path in (args.run / "taskguards").glob("*/guardkit.json"))}
    results = {
        "run": str(args.run),
        "texts": {half: {name: len(texts) for name, texts in texts_of_half.items()} for half, texts_of_half in halves.items()},
        "guards": {},
    }
    for name, folders in sets.items():
        if not folders or not all((folder / "guardkit.json").is_file() for folder in folders):
            continue
        guards = [guard_windows(folder, halves) for folder in folders]
        results["guards"][name] = compare(guards, discounts)
        print(json.dumps({name: results["guards"][name]}, indent=1))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
