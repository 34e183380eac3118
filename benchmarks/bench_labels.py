"""How well the data engine's labeller labels texts it never saw: policy-bench, tuned on one half, reported on the other.

The labeller (guardkit.generate.labeller) accepts, fixes or drops generated rows and labels every real corpus
text under every policy. Here it labels the hand-written policy-bench rows, which no component was fitted
on (the components read only the policies' own examples and rule texts), under their own policy:

- per component (examples-lr, examples-knn, policy-rules, llm) and for the ensemble: balanced accuracy per policy, and
  the ensemble's abstention rate;
- two ensembles: the embedding components alone (what `guardkit generate` uses by default) and with the LLM
  (--labeller-llm); for each, the weights and abstention margin are chosen on the "dev" half (highest mean
  balanced accuracy with at most --max-abstention abstaining) and reported on the "test" half, beside the
  shipped defaults (both ensembles' shipped weights);
- the scope gate (a text the policy's scope regression gives less than the gate is out of scope: safe) is
  tuned on the dev half with the weights;
- cross-policy confusion: each policy's unsafe rows labelled under every other policy where policy-bench's
  annotations say they are out of its scope, by the default labeller with and without its scope gate
  (share labelled unsafe, lower is better). The in-policy numbers above say what the gate costs;
- the corpus audit (`benchmarks/label_audit/`): real corpus texts a labeller once called unsafe under a narrow
  policy, labelled by hand under that policy: the default labeller's precision when it says unsafe and its
  balanced accuracy there. Policy-bench's rows are written to sit near one policy; these are broad red-team
  requests, most of them out of the narrow policy's scope, which is where the labeller errs.

Target (issue 14): mean balanced accuracy >= 0.90 at <= 20% abstention on the test half.

    python benchmarks/bench_labels.py --output runs/bench/labels.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from guardkit.embeddings import SentenceEncoder
from guardkit.evaluate.harness import read_policy_bench
from guardkit.generate.labeller import COMPONENTS, Labeller, LabellerSettings
from guardkit.generate.reflection import CachedJudge, LogitJudge
from guardkit.generate.store import CandidateStore
from guardkit.policies import shipped_policies

POLICY_BENCH = Path(__file__).resolve().parent / "policy_bench"
LABEL_AUDIT = Path(__file__).resolve().parent / "label_audit" / "corpus_rows.jsonl"


def balanced_accuracy(labels: np.ndarray, flagged: np.ndarray) -> float:
    positives, negatives = labels == 1, labels == 0
    if not positives.any() or not negatives.any():
        return float("nan")
    return float((flagged[positives].mean() + (~flagged[negatives]).mean()) / 2)


def corpus_audit(labeller: Labeller, encoder: SentenceEncoder, policies: dict) -> dict[str, dict[str, float]]:
    """The labeller on the hand-labelled corpus rows, per policy: its unsafe calls' precision, balanced accuracy
    on the rows it does not abstain on, and its abstention (as in the data engine, a harmful corpus shifts no logit)."""
    rows = [json.loads(line) for line in LABEL_AUDIT.read_text(encoding="utf-8").splitlines() if line.strip()]
    result = {}
    for policy_id in sorted({row["policy"] for row in rows}):
        chosen = [row for row in rows if row["policy"] == policy_id]
        texts = [row["text"] for row in chosen]
        decisions = labeller.label(policies[policy_id], texts, encoder.encode(texts))
        labels = np.array([row["label"] == "unsafe" for row in chosen])
        kept = np.array([decision.label is not None for decision in decisions])
        unsafe = np.array([decision.label == "unsafe" for decision in decisions])
        result[policy_id] = {
            "rows": len(chosen),
            "hand_unsafe": int(labels.sum()),
            "unsafe_precision": float(labels[unsafe].mean()) if unsafe.any() else float("nan"),
            "balanced_accuracy": balanced_accuracy(labels[kept].astype(int), unsafe[kept]) if kept.any() else float("nan"),
            "abstention": float(1 - kept.mean()),
        }
    return result


def ensemble_logits(logits: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    return sum(weights.get(name, 0.0) * np.nan_to_num(values, nan=0.0) for name, values in logits.items())


def summarise(per_policy: dict[str, dict], weights: dict[str, float], margin: float, half: str, gate: float = 0.0) -> dict[str, object]:
    accuracies, abstentions = {}, {}
    for policy_id, data in per_policy.items():
        rows = data["half"] == half
        total = ensemble_logits({name: values[rows] for name, values in data["logits"].items()}, weights)
        out_of_scope = (total > margin) & (data["in_scope"][rows] < gate)
        kept = (np.abs(total) > margin) | out_of_scope
        labels = data["labels"][rows]
        flagged = (total > 0) & ~out_of_scope
        accuracies[policy_id] = balanced_accuracy(labels[kept], flagged[kept]) if kept.any() else float("nan")
        abstentions[policy_id] = float(1 - kept.mean())
    return {
        "balanced_accuracy": float(np.nanmean(list(accuracies.values()))),
        "abstention": float(np.mean(list(abstentions.values()))),
        "per_policy": {policy_id: {"balanced_accuracy": accuracies[policy_id], "abstention": abstentions[policy_id]} for policy_id in per_policy},
    }


def tune(per_policy: dict[str, dict], components: list[str], max_abstention: float, gate: float) -> tuple[dict[str, float], float]:
    """Weights and abstention margin with the best dev-half balanced accuracy at <= max_abstention abstaining
    (the first component's weight fixed at 1: only the ratios matter once the margin is searched too)."""
    grid = [0.0, 0.25, 0.5, 1.0, 2.0]
    best = (-1.0, None, None)
    for values in itertools.product(grid, repeat=len(components) - 1):
        weights = dict(zip(components, (1.0, *values)))
        for margin in (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0):
            result = summarise(per_policy, weights, margin, "dev", gate)
            if result["abstention"] <= max_abstention and result["balanced_accuracy"] > best[0]:
                best = (result["balanced_accuracy"], weights, margin)
    return best[1], best[2]


def cross_policy_rate(rows: dict, policies: dict, encoder, labeller: Labeller, half: str) -> float:
    """Mean over (policy p, other policy q) of the share of q's unsafe rows of `half`, out of p's scope, labelled unsafe under p."""
    rates = []
    for source_id, bench in rows.items():
        unsafe_rows = [row for row in bench if row.label == 1 and row.half == half]
        vectors = encoder.encode([row.text for row in unsafe_rows])
        for target_id, target in policies.items():
            out_of_scope = [index for index, row in enumerate(unsafe_rows) if target_id not in (*row.also_unsafe_under, *row.ambiguous_under)]
            if target_id != source_id and out_of_scope:
                decisions = labeller.label(target, [unsafe_rows[index].text for index in out_of_scope], vectors[out_of_scope])
                rates.append(np.mean([decision.label == "unsafe" for decision in decisions]))
    return float(np.mean(rates))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", help="write the results as JSON here")
    parser.add_argument("--encoder", default="minilm-l6")
    parser.add_argument("--judge", default="smollm2-135m", help="LLM component ('none' to leave it out)")
    parser.add_argument("--max-abstention", type=float, default=0.2)
    args = parser.parse_args()

    started = time.perf_counter()
    policies = shipped_policies()
    encoder = SentenceEncoder(args.encoder)
    llm = None
    if args.judge != "none":
        store = CandidateStore(Path(tempfile.mkdtemp()) / "verdicts.jsonl")
        llm = CachedJudge(LogitJudge(args.judge, few_shot=None, batch_size=16, device=None), store)
    library = list(policies.values())
    labeller = Labeller(encoder, LabellerSettings(), llm, library)
    default_labeller = Labeller(encoder, LabellerSettings(), library=library)
    ungated_labeller = Labeller(encoder, LabellerSettings(scope_gate=0.0), library=library)
    rows = {policy_id: read_policy_bench(POLICY_BENCH / f"{policy_id}.jsonl") for policy_id in policies}
    per_policy: dict[str, dict] = {}
    for policy_id, bench in rows.items():
        texts = [row.text for row in bench]
        vectors = encoder.encode(texts)
        logits = labeller.component_logits(policies[policy_id], texts, vectors)
        per_policy[policy_id] = {
            "logits": logits,
            "in_scope": labeller.model(policies[policy_id]).in_scope(vectors),
            "labels": np.array([row.label for row in bench]),
            "half": np.array([row.half for row in bench]),
        }
        print(f"labelled {policy_id}", file=sys.stderr, flush=True)
    components = [name for name in COMPONENTS if name in next(iter(per_policy.values()))["logits"]]
    embedding_components = [name for name in components if name != "llm"]

    report: dict[str, object] = {"components": {}, "rows": {half: int(sum((data["half"] == half).sum() for data in per_policy.values())) for half in ("dev", "test")}}
    for name in components:
        report["components"][name] = {half: summarise(per_policy, {name: 1.0}, 0.0, half) for half in ("dev", "test")}
    defaults = LabellerSettings()

    def ensemble(weights: dict[str, float], margin: float) -> dict:
        halves = {half: summarise(per_policy, weights, margin, half, defaults.scope_gate) for half in ("dev", "test")}
        return {"weights": weights, "abstain_margin": margin, "scope_gate": defaults.scope_gate, **halves}

    default_weights = {name: defaults.weights.get(name, 0.0) for name in embedding_components}
    report["ensemble_defaults"] = ensemble(default_weights, defaults.abstain_margin)
    report["ensemble_tuned_on_dev"] = ensemble(*tune(per_policy, embedding_components, args.max_abstention, defaults.scope_gate))
    if "llm" in components:
        report["ensemble_with_llm_defaults"] = ensemble({name: defaults.weights.get(name, 0.0) for name in components}, defaults.abstain_margin)
        report["ensemble_with_llm_tuned_on_dev"] = ensemble(*tune(per_policy, components, args.max_abstention, defaults.scope_gate))
    report["scope_gate_on_dev"] = {
        str(gate): {
            "balanced_accuracy": summarise(per_policy, default_weights, defaults.abstain_margin, "dev", gate)["balanced_accuracy"],
            "cross_policy_unsafe_rate": cross_policy_rate(rows, policies, encoder, Labeller(encoder, LabellerSettings(scope_gate=gate), library=library), "dev"),
        }
        for gate in (0.0, 0.1, 0.2, 0.3, 0.4)
    }
    # Cross-policy confusion: policy q's unsafe rows labelled under every other policy p where the annotations
    # say they are out of p's scope, by the default labeller with and without its scope gate.
    confusion: dict[str, dict[str, dict[str, float]]] = {"scope gate": {}, "no scope gate": {}}
    for source_id, bench in rows.items():
        unsafe_rows = [row for row in bench if row.label == 1]
        texts = [row.text for row in unsafe_rows]
        vectors = encoder.encode(texts)
        for target_id, target in policies.items():
            out_of_scope = [index for index, row in enumerate(unsafe_rows) if target_id not in (*row.also_unsafe_under, *row.ambiguous_under)]
            if target_id == source_id or not out_of_scope:
                continue
            for mode, chosen in (("scope gate", default_labeller), ("no scope gate", ungated_labeller)):
                decisions = chosen.label(target, [texts[index] for index in out_of_scope], vectors[out_of_scope])
                confusion[mode].setdefault(target_id, {})[source_id] = float(np.mean([decision.label == "unsafe" for decision in decisions]))
    report["cross_policy_unsafe_rate"] = {
        mode: {"mean": float(np.mean([value for row in matrix.values() for value in row.values()])), "matrix": matrix} for mode, matrix in confusion.items()
    }
    report["corpus_audit"] = corpus_audit(default_labeller, encoder, policies)
    report["llm_judgements"] = labeller.llm_calls
    report["seconds"] = round(time.perf_counter() - started, 1)

    print(f"rows: dev {report['rows']['dev']}, test {report['rows']['test']}")
    print(f"{'component':28s} {'BA dev':>8s} {'BA test':>8s}")
    for name in components:
        print(f"{name:28s} {report['components'][name]['dev']['balanced_accuracy']:8.3f} {report['components'][name]['test']['balanced_accuracy']:8.3f}")
    for key in ("ensemble_defaults", "ensemble_tuned_on_dev", "ensemble_with_llm_defaults", "ensemble_with_llm_tuned_on_dev"):
        if key not in report:
            continue
        entry = report[key]
        print(
            f"{key:28s} {entry['dev']['balanced_accuracy']:8.3f} {entry['test']['balanced_accuracy']:8.3f}  abstention test "
            f"{entry['test']['abstention']:.3f}  weights {entry['weights']} margin {entry['abstain_margin']}"
        )
    test = report["ensemble_tuned_on_dev"]["test"]
    for policy_id, values in test["per_policy"].items():
        print(f"  {policy_id:26s} BA {values['balanced_accuracy']:.3f} abstention {values['abstention']:.3f}")
    print("scope gate on the dev half: " + ", ".join(
        f"{gate}: BA {entry['balanced_accuracy']:.3f} / cross-policy {entry['cross_policy_unsafe_rate']:.3f}" for gate, entry in report["scope_gate_on_dev"].items()
    ))
    for mode, entry in report["cross_policy_unsafe_rate"].items():
        print(f"cross-policy ({mode}): share of other policies' out-of-scope unsafe rows labelled unsafe (mean) {entry['mean']:.3f}")
    for policy_id, entry in report["corpus_audit"].items():
        print(
            f"corpus audit {policy_id:26s} rows {entry['rows']} (hand unsafe {entry['hand_unsafe']}): precision of unsafe "
            f"{entry['unsafe_precision']:.3f}, BA {entry['balanced_accuracy']:.3f}, abstention {entry['abstention']:.3f}"
        )
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
