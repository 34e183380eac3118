"""Cleaning candidates: normalisation, length bounds, exact and near-duplicate removal, decontamination.

Every function keeps the first occurrence and reports what it dropped, so the card can give the counts.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from guardkit.errors import GuardkitError

SPACES = re.compile(r"[ \t\u00a0]+")
BLANK_LINES = re.compile(r"\n{3,}")
WORD = re.compile(r"\w+", re.UNICODE)
# A list-continuation model sometimes echoes a label before the text ("Message: ...", "User: ...").
ECHOED_LABEL = re.compile(r"^(?:message|text|example|prompt)\s*\d*\s*:\s*", re.IGNORECASE)
TEXT_COLUMNS = ("text", "prompt", "question", "goal", "instruction")


def normalise_text(text: str) -> str:
    """Whitespace normalised per line, blank-line runs collapsed, wrapping quotes and echoed labels removed."""
    lines = [SPACES.sub(" ", line).strip() for line in text.replace("\r\n", "\n").split("\n")]
    text = BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
    text = ECHOED_LABEL.sub("", text)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def exact_key(text: str) -> str:
    """Identity of a text for exact dedup: its words, case and punctuation ignored."""
    return " ".join(WORD.findall(text.lower()))


def _shingles(text: str, size: int = 5) -> set[bytes]:
    compact = exact_key(text)
    if len(compact) <= size:
        return {compact.encode()}
    return {compact[index : index + size].encode() for index in range(len(compact) - size + 1)}


class MinHashIndex:
    """Near-duplicate detection with MinHash LSH over character 5-grams; references are matched but never kept twice."""

    def __init__(self, threshold: float, references: Sequence[str] = (), num_perm: int = 64, seed: int = 1):
        from datasketch import MinHashLSH

        self.num_perm = num_perm
        self.seed = seed
        self.index = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self.size = 0
        for position, reference in enumerate(references):
            self.index.insert(f"reference-{position}", self._signature(reference))

    def _signature(self, text: str):
        from datasketch import MinHash

        minhash = MinHash(num_perm=self.num_perm, seed=self.seed)
        minhash.update_batch(list(_shingles(text)))
        return minhash

    def add(self, text: str) -> str | None:
        """None when `text` is new (it is then indexed), else what it duplicates: "reference" or "earlier"."""
        signature = self._signature(text)
        matches = self.index.query(signature)
        if matches:
            return "reference" if any(match.startswith("reference-") for match in matches) else "earlier"
        self.index.insert(f"text-{self.size}", signature)
        self.size += 1
        return None


class EmbeddingIndex:
    """Near-duplicate detection by cosine similarity of L2-normalised embeddings (`guardkit.embeddings.SentenceEncoder`)."""

    def __init__(self, threshold: float, references: np.ndarray | None = None):
        self.threshold = threshold
        self.reference_count = 0 if references is None else len(references)
        self._buffer: np.ndarray | None = None
        self.size = 0
        if references is not None:
            for vector in np.asarray(references, dtype=np.float32):
                self._append(vector)

    def _append(self, vector: np.ndarray) -> None:
        if self._buffer is None:
            self._buffer = np.zeros((64, len(vector)), dtype=np.float32)
        elif self.size == len(self._buffer):
            # Doubling keeps appends amortised O(1) instead of copying the whole index every time.
            self._buffer = np.vstack([self._buffer, np.zeros_like(self._buffer)])
        self._buffer[self.size] = vector
        self.size += 1

    def add(self, vector: np.ndarray) -> str | None:
        """None when no indexed vector reaches the threshold (the vector is then indexed), else "reference"/"earlier"."""
        if self.size:
            similarities = self._buffer[: self.size] @ vector
            best = int(np.argmax(similarities))
            if similarities[best] >= self.threshold:
                return "reference" if best < self.reference_count else "earlier"
        self._append(vector)
        return None


def word_ngrams(text: str, size: int) -> set[tuple[str, ...]]:
    words = WORD.findall(text.lower())
    if len(words) < size:
        return {tuple(words)} if words else set()
    return {tuple(words[index : index + size]) for index in range(len(words) - size + 1)}


class Decontaminator:
    """Flags texts whose words are largely covered by word n-grams of a reference set (a whole text when either is
    shorter than n).

    Two things are not contamination, and counting them kept whole registers out of the data (2026-12-04: every
    SWE-Lancer issue, half the tau2 scenarios and two thirds of the GDM emails of the corpora's training side):
    an n-gram found in `boilerplate_texts` or more distinct reference texts (the template a corpus is written
    in), and a few shared n-grams in a long text (a version string, a sign-off). A text is flagged when the
    n-grams it shares with the references cover at least `coverage` of its words; a copy of a reference text,
    or one of its sentences inside a short text, still is.
    """

    def __init__(self, references: Sequence[str], size: int, boilerplate_texts: int = 3, coverage: float = 0.2):
        self.size = size
        self.coverage = coverage
        counts: Counter[tuple[str, ...]] = Counter()
        for reference in {normalise_text(text) for text in references}:
            counts.update(word_ngrams(reference, size))
        self.grams = {gram for gram, count in counts.items() if count < boilerplate_texts}

    def is_contaminated(self, text: str) -> bool:
        words = WORD.findall(text.lower())
        if len(words) < self.size:
            return tuple(words) in self.grams if words else False
        covered = [False] * len(words)
        for start in range(len(words) - self.size + 1):
            if tuple(words[start : start + self.size]) in self.grams:
                covered[start : start + self.size] = [True] * self.size
        return sum(covered) >= self.coverage * len(words)


def _record_text(record: object) -> str | None:
    if isinstance(record, str):
        return record
    if isinstance(record, dict):
        return next((record[column] for column in TEXT_COLUMNS if isinstance(record.get(column), str)), None)
    return None


def _texts_from_file(path: Path) -> list[str]:
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if suffix in (".jsonl", ".json"):
        content = path.read_text(encoding="utf-8")
        records = json.loads(content) if suffix == ".json" else [json.loads(line) for line in content.splitlines() if line.strip()]
        records = records if isinstance(records, list) else [records]
        texts = [_record_text(record) for record in records]
        return [text for text in texts if text and text.strip()]
    if suffix in (".parquet", ".csv", ".tsv"):
        import pandas as pd

        frame = pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
        column = next((name for name in TEXT_COLUMNS if name in frame.columns), None)
        if column is None:
            raise GuardkitError(f"--decontaminate {path}: no text column (looked for {', '.join(TEXT_COLUMNS)})")
        return [text for text in frame[column].tolist() if isinstance(text, str) and text.strip()]
    raise GuardkitError(f"--decontaminate {path}: unsupported file type; give .parquet, .jsonl, .json, .csv, .tsv or .txt")


def load_reference_texts(spec: str) -> list[str]:
    """Texts of a dataset to keep out of the generated data: a folder, a file, or a registered benchmark.

    `NAME=PATH` loads the benchmark NAME from local copies of its files (nothing is downloaded).
    """
    path = Path(spec)
    if path.is_dir():
        files = sorted(path.rglob("*.parquet")) or sorted(path.rglob("*.jsonl"))
        if not files:
            raise GuardkitError(f"--decontaminate {spec}: the folder has no .parquet or .jsonl files")
        return [text for file in files for text in _texts_from_file(file)]
    if path.is_file():
        return _texts_from_file(path)
    from guardkit.data.benchmarks import load_benchmark

    name, _, data_files = spec.partition("=")
    return [text for text in load_benchmark(name, data_files=data_files or None)["text"] if text]
