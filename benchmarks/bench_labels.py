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
- the two scope settings, each swept with the rest at its default: the scope gate (a text the policy's scope
  regression gives less than the gate is out of scope: safe) and the rival share (a text another content
  policy claims, with a scope rating that, times the share, exceeds this one's and a disallowed rule at least as
  close, is out of scope too; 0 turns rivals off). Both are chosen on the dev halves: policy-bench balanced accuracy,
  cross-policy confusion and the audit's precision below;
- scope evidence: the corpus texts filed under a category one policy covers (pyrit's harm categories,
  Do-Not-Answer's risk areas; the corpora's category_policies), which join the scope regressions as in
  `guardkit generate`, less any near a policy-bench or audit text; measured with and without on the dev halves;
- cross-policy confusion: each policy's unsafe rows labelled under every other policy where policy-bench's
  annotations say they are out of its scope, by the default labeller with and without its scope judgement
  (share labelled unsafe, lower is better). The in-policy numbers above say what the judgement costs;
- the corpus audit (`benchmarks/label_audit/`): real corpus texts a labeller once called unsafe under a narrow
  policy, labelled by hand under that policy: the default labeller's precision when it says unsafe, its recall
  of the hand-unsafe rows and its balanced accuracy there, on the audit's dev and test halves (a stable draw
  per text), over all rows and over those from corpora that give no scope evidence (no sibling text of theirs
  was fitted on; the sweeps read these). Policy-bench's rows are written to sit near one policy; these are broad
  red-team requests, most of them out of the narrow policy's scope, which is where the labeller errs.

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

from guardkit.data.corpora import CORPORA
from guardkit.embeddings import SentenceEncoder
from guardkit.evaluate.decontamination import NearDuplicateIndex
from guardkit.evaluate.harness import read_policy_bench
from guardkit.generate.candidates import CORPUS_SOURCE_PREFIX, corpus_candidates, scope_evidence
from guardkit.generate.labeller import COMPONENTS, Labeller, LabellerSettings
from guardkit.generate.reflection import CachedJudge, LogitJudge
from guardkit.generate.store import CandidateStore
from guardkit.policies import shipped_policies
from guardkit.stable_random import stable_fraction

POLICY_BENCH = Path(__file__).resolve().parent / "policy_bench"
LABEL_AUDIT = Path(__file__).resolve().parent / "label_audit" / "corpus_rows.jsonl"


def balanced_accuracy(labels: np.ndarray, flagged: np.ndarray) -> float:
    positives, negatives = labels == 1, labels == 0
    if not positives.any() or not negatives.any():
        return float("nan")
    return float((flagged[positives].mean() + (~flagged[negatives]).mean()) / 2)


def audit_rows() -> list[dict]:
    """The label audit's rows, each with its half: "dev" or "test" by a stable draw on its text."""
    rows = [json.loads(line) for line in LABEL_AUDIT.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [{**row, "half": "dev" if stable_fraction("label-audit", row["text"]) < 0.5 else "test"} for row in rows]


def shipped_scope_evidence(references: list[str]) -> tuple[dict[str, list[str]], list[str], int]:
    """What `guardkit generate` gives the labeller as scope evidence (its default sample of each corpus), less the
    texts that are (nearly) a reference text: {policy id: texts}, the corpora they come from, and how many were
    left out as references."""
    evidence_corpora = [name for name, corpus in CORPORA.items() if corpus.category_policies and not corpus.eval_only]
    index = NearDuplicateIndex(references)
    categorised = [candidate for candidate in corpus_candidates(evidence_corpora, max_per_corpus=1200, seed=0) if candidate.scope_policy]
    kept = [candidate for candidate in categorised if index.match(candidate.text) is None]
    return scope_evidence(kept, shipped_policies()), evidence_corpora, len(categorised) - len(kept)


def corpus_audit(labeller: Labeller, encoder: SentenceEncoder, policies: dict, rows: list[dict], evidence_corpora: list[str]) -> dict[str, dict[str, float]]:
    """The labeller on hand-labelled corpus rows, per policy, over all of them ("all") and over those from corpora
    that give no scope evidence ("no-evidence corpora": the labeller was fitted on no sibling of theirs): its unsafe
    calls' precision, the share of the hand-unsafe rows it calls unsafe (recall), balanced accuracy on the rows it
    does not abstain on, and its abstention (as in the data engine, a harmful corpus shifts no logit)."""
    fitted_on = {f"{CORPUS_SOURCE_PREFIX}{name}" for name in evidence_corpora}
    labels, unsafe, kept, policy_of, unseen = [], [], [], [], []
    for policy_id in sorted({row["policy"] for row in rows}):
        chosen = [row for row in rows if row["policy"] == policy_id]
        texts = [row["text"] for row in chosen]
        decisions = labeller.label(policies[policy_id], texts, encoder.encode(texts))
        labels += [row["label"] == "unsafe" for row in chosen]
        unsafe += [decision.label == "unsafe" for decision in decisions]
        kept += [decision.label is not None for decision in decisions]
        policy_of += [policy_id] * len(chosen)
        unseen += [row["source"] not in fitted_on for row in chosen]
    labels, unsafe, kept, policy_of, unseen = map(np.array, (labels, unsafe, kept, policy_of, unseen))
    subsets = {policy_id: policy_of == policy_id for policy_id in sorted(set(policy_of))}
    subsets.update({"all": np.ones(len(labels), dtype=bool), "no-evidence corpora": unseen})
    result = {}
    for policy_id, rows_of in subsets.items():
        y, flagged, decided = labels[rows_of], unsafe[rows_of], kept[rows_of]
        result[policy_id] = {
            "rows": int(rows_of.sum()),
            "hand_unsafe": int(y.sum()),
            "unsafe_precision": float(y[flagged].mean()) if flagged.any() else float("nan"),
            "unsafe_recall": float(flagged[y].mean()) if y.any() else float("nan"),
            "balanced_accuracy": balanced_accuracy(y[decided].astype(int), flagged[decided]) if decided.any() else float("nan"),
            "abstention": float(1 - decided.mean()),
        }
    return result


def labeller_ba(labeller: Labeller, rows: dict, vectors: dict, policies: dict, half: str) -> float:
    """Mean over policies of the labeller's balanced accuracy on `half` of policy-bench (abstentions left out)."""
    accuracies = []
    for policy_id, bench in rows.items():
        chosen = [index for index, row in enumerate(bench) if row.half == half]
        decisions = labeller.label(policies[policy_id], [bench[index].text for index in chosen], vectors[policy_id][chosen])
        kept = np.array([decision.label is not None for decision in decisions])
        flagged = np.array([decision.label == "unsafe" for decision in decisions])
        labels = np.array([bench[index].label for index in chosen])
        accuracies.append(balanced_accuracy(labels[kept], flagged[kept]))
    return float(np.nanmean(accuracies))


def ensemble_logits(logits: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    return sum(weights.get(name, 0.0) * np.nan_to_num(values, nan=0.0) for name, values in logits.items())


def summarise(per_policy: dict[str, dict], weights: dict[str, float], margin: float, half: str, scope: bool = False) -> dict[str, object]:
    """Balanced accuracy and abstention of weighted components on `half`; with `scope`, a text the default labeller
    finds out of the policy's scope (its gate, or a rival policy's claim) is safe where the ensemble says unsafe."""
    accuracies, abstentions = {}, {}
    for policy_id, data in per_policy.items():
        rows = data["half"] == half
        total = ensemble_logits({name: values[rows] for name, values in data["logits"].items()}, weights)
        out_of_scope = (total > margin) & data["out_of_scope"][rows] if scope else np.zeros(rows.sum(), dtype=bool)
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


def tune(per_policy: dict[str, dict], components: list[str], max_abstention: float) -> tuple[dict[str, float], float]:
    """Weights and abstention margin with the best dev-half balanced accuracy at <= max_abstention abstaining
    (the first component's weight fixed at 1: only the ratios matter once the margin is searched too)."""
    grid = [0.0, 0.25, 0.5, 1.0, 2.0]
    best = (-1.0, None, None)
    for values in itertools.product(grid, repeat=len(components) - 1):
        weights = dict(zip(components, (1.0, *values)))
        for margin in (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0):
            result = summarise(per_policy, weights, margin, "dev", scope=True)
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
    rows = {policy_id: read_policy_bench(POLICY_BENCH / f"{policy_id}.jsonl") for policy_id in policies}
    audit = audit_rows()
    evidence, evidence_corpora, evidence_removed = shipped_scope_evidence([row.text for bench in rows.values() for row in bench] + [row["text"] for row in audit])
    labeller = Labeller(encoder, LabellerSettings(), llm, library, evidence)
    default_labeller = Labeller(encoder, LabellerSettings(), library=library, scope_evidence=evidence)
    unscoped_labeller = Labeller(encoder, LabellerSettings(scope_gate=0.0, scope_share=0.0), library=library)
    bench_vectors = {policy_id: encoder.encode([row.text for row in bench]) for policy_id, bench in rows.items()}
    per_policy: dict[str, dict] = {}
    for policy_id, bench in rows.items():
        texts = [row.text for row in bench]
        vectors = bench_vectors[policy_id]
        logits = labeller.component_logits(policies[policy_id], texts, vectors)
        per_policy[policy_id] = {
            "logits": logits,
            "out_of_scope": default_labeller.out_of_scope(policies[policy_id], vectors),
            "labels": np.array([row.label for row in bench]),
            "half": np.array([row.half for row in bench]),
        }
        print(f"labelled {policy_id}", file=sys.stderr, flush=True)
    components = [name for name in COMPONENTS if name in next(iter(per_policy.values()))["logits"]]
    embedding_components = [name for name in components if name != "llm"]

    report: dict[str, object] = {
        "components": {},
        "rows": {half: int(sum((data["half"] == half).sum() for data in per_policy.values())) for half in ("dev", "test")},
        "scope_evidence": {
            "corpora": evidence_corpora,
            "texts": {policy_id: len(texts) for policy_id, texts in sorted(evidence.items())},
            "left_out_as_policy_bench_or_audit": evidence_removed,
        },
    }
    for name in components:
        report["components"][name] = {half: summarise(per_policy, {name: 1.0}, 0.0, half) for half in ("dev", "test")}
    defaults = LabellerSettings()

    def ensemble(weights: dict[str, float], margin: float) -> dict:
        halves = {half: summarise(per_policy, weights, margin, half, scope=True) for half in ("dev", "test")}
        return {"weights": weights, "abstain_margin": margin, "scope_gate": defaults.scope_gate, "scope_share": defaults.scope_share, **halves}

    default_weights = {name: defaults.weights.get(name, 0.0) for name in embedding_components}
    report["ensemble_defaults"] = ensemble(default_weights, defaults.abstain_margin)
    report["ensemble_tuned_on_dev"] = ensemble(*tune(per_policy, embedding_components, args.max_abstention))
    if "llm" in components:
        report["ensemble_with_llm_defaults"] = ensemble({name: defaults.weights.get(name, 0.0) for name in components}, defaults.abstain_margin)
        report["ensemble_with_llm_tuned_on_dev"] = ensemble(*tune(per_policy, components, args.max_abstention))
    # The scope settings, each swept on the dev halves with everything else at its default.
    dev_audit = [row for row in audit if row["half"] == "dev"]

    def on_dev(settings: LabellerSettings, with_evidence: bool = True) -> dict[str, object]:
        chosen = Labeller(encoder, settings, library=library, scope_evidence=evidence if with_evidence else None)
        return {
            "balanced_accuracy": labeller_ba(chosen, rows, bench_vectors, policies, "dev"),
            "cross_policy_unsafe_rate": cross_policy_rate(rows, policies, encoder, chosen, "dev"),
            "corpus_audit": corpus_audit(chosen, encoder, policies, dev_audit, evidence_corpora)["no-evidence corpora"],
        }

    report["scope_gate_on_dev"] = {str(gate): on_dev(LabellerSettings(scope_gate=gate)) for gate in (0.0, 0.1, 0.2, 0.3, 0.4)}
    report["scope_share_on_dev"] = {str(share): on_dev(LabellerSettings(scope_share=share)) for share in (0.0, 0.5, 0.8, 1.0, 1.5, 2.0)}
    report["scope_evidence_on_dev"] = {"none": on_dev(LabellerSettings(), with_evidence=False), "corpora": on_dev(LabellerSettings())}
    # Cross-policy confusion: policy q's unsafe rows labelled under every other policy p where the annotations
    # say they are out of p's scope, by the default labeller with and without its scope judgement (gate and rivals).
    confusion: dict[str, dict[str, dict[str, float]]] = {"scope judged": {}, "scope not judged": {}}
    for source_id, bench in rows.items():
        unsafe_rows = [row for row in bench if row.label == 1]
        texts = [row.text for row in unsafe_rows]
        vectors = encoder.encode(texts)
        for target_id, target in policies.items():
            out_of_scope = [index for index, row in enumerate(unsafe_rows) if target_id not in (*row.also_unsafe_under, *row.ambiguous_under)]
            if target_id == source_id or not out_of_scope:
                continue
            for mode, chosen in (("scope judged", default_labeller), ("scope not judged", unscoped_labeller)):
                decisions = chosen.label(target, [texts[index] for index in out_of_scope], vectors[out_of_scope])
                confusion[mode].setdefault(target_id, {})[source_id] = float(np.mean([decision.label == "unsafe" for decision in decisions]))
    report["cross_policy_unsafe_rate"] = {
        mode: {"mean": float(np.mean([value for row in matrix.values() for value in row.values()])), "matrix": matrix} for mode, matrix in confusion.items()
    }
    report["corpus_audit"] = {
        half: corpus_audit(default_labeller, encoder, policies, [row for row in audit if half in ("all", row["half"])], evidence_corpora)
        for half in ("dev", "test", "all")
    }
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
    print(f"scope evidence: {report['scope_evidence']['texts']} from {', '.join(evidence_corpora)} ({evidence_removed} left out)")
    for setting in ("scope_gate", "scope_share", "scope_evidence"):
        print(f"{setting} on the dev halves (BA / cross-policy / audit precision, recall on the no-evidence corpora's rows):")
        for value, entry in report[f"{setting}_on_dev"].items():
            audit_dev = entry["corpus_audit"]
            print(
                f"  {value:5s} BA {entry['balanced_accuracy']:.3f}  cross-policy {entry['cross_policy_unsafe_rate']:.3f}  "
                f"audit {audit_dev['unsafe_precision']:.3f}, {audit_dev['unsafe_recall']:.3f}"
            )
    for mode, entry in report["cross_policy_unsafe_rate"].items():
        print(f"cross-policy ({mode}): share of other policies' out-of-scope unsafe rows labelled unsafe (mean) {entry['mean']:.3f}")
    for half, per_audit_policy in report["corpus_audit"].items():
        for policy_id, entry in per_audit_policy.items():
            print(
                f"corpus audit ({half}) {policy_id:26s} rows {entry['rows']} (hand unsafe {entry['hand_unsafe']}): precision of unsafe "
                f"{entry['unsafe_precision']:.3f}, recall {entry['unsafe_recall']:.3f}, BA {entry['balanced_accuracy']:.3f}, abstention {entry['abstention']:.3f}"
            )
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
