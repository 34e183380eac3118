"""Exact and near-duplicate text matching, to keep evaluation texts out of what a model learnt from.

Texts are compared after normalisation (case, punctuation and spacing ignored). Near duplicates are
texts whose character 5-gram sets have a Jaccard similarity of at least `threshold`: MinHash LSH finds
candidates, and the exact Jaccard of the shingle sets confirms them, so no false positive survives.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from datasketch import MinHash, MinHashLSH

SHINGLE = 5
NUM_PERM = 128
NEAR_DUPLICATE_JACCARD = 0.7
# LSH bands tuned for a lower similarity than the one confirmed, so that pairs just above it are not missed.
CANDIDATE_JACCARD = 0.5


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return re.sub(r"[\W_]+", " ", text).strip()


def shingles(text: str) -> set[str]:
    normalised = normalise(text)
    if len(normalised) <= SHINGLE:
        return {normalised}
    return {normalised[start : start + SHINGLE] for start in range(len(normalised) - SHINGLE + 1)}


def _hash32(gram: str) -> int:
    # Python's own string hash: salted per process, which is fine for an index that lives in one process,
    # and an order of magnitude faster than the SHA-1 default on the millions of shingles of a corpus.
    return hash(gram) & 0xFFFFFFFF


def _minhash(grams: set[str]) -> MinHash:
    signature = MinHash(num_perm=NUM_PERM, seed=1, hashfunc=_hash32)
    signature.update_batch(grams)
    return signature


class NearDuplicateIndex:
    """A set of reference texts that answers: is this text one of them, or nearly?"""

    def __init__(self, texts: Iterable[str], threshold: float = NEAR_DUPLICATE_JACCARD):
        self.threshold = threshold
        self._exact: set[str] = set()
        self._grams: list[set[str]] = []
        self._lsh = MinHashLSH(threshold=min(threshold, CANDIDATE_JACCARD), num_perm=NUM_PERM)
        self._sizes = (0, 0)
        with self._lsh.insertion_session() as session:
            for text in texts:
                normalised = normalise(text)
                if not normalised or normalised in self._exact:
                    continue
                self._exact.add(normalised)
                grams = shingles(text)
                session.insert(len(self._grams), _minhash(grams))
                self._grams.append(grams)
        if self._grams:
            self._sizes = (min(map(len, self._grams)), max(map(len, self._grams)))

    def __len__(self) -> int:
        return len(self._grams)

    def match(self, text: str) -> str | None:
        """"exact", "near" or None."""
        if normalise(text) in self._exact:
            return "exact"
        grams = shingles(text)
        # Jaccard(A, B) <= min(|A|, |B|) / max(|A|, |B|): a text much longer or shorter than every reference
        # cannot be a near duplicate, and skips the hashing (long corpus texts against short training texts).
        smallest, largest = self._sizes
        if len(grams) * self.threshold > largest or len(grams) < smallest * self.threshold:
            return None
        for candidate in self._lsh.query(_minhash(grams)):
            reference = self._grams[candidate]
            if len(grams & reference) / len(grams | reference) >= self.threshold:
                return "near"
        return None
