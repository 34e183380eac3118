"""Stratified train / validation / test assignment per (policy, label).

Splits are assigned to origin texts, not rows: an augmented copy and the cross-policy rows of a text land
in the split of the text itself, so no text leaks from train into test through another row or config.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable

from guardkit.generate.requests import stable_seed

SPLITS = ("train", "validation", "test")


def split_sizes(count: int, validation_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """(train, validation, test) sizes; test gets at least one text from 3 texts on, validation from 4 on."""
    test = max(1, round(count * test_fraction)) if count >= 3 and test_fraction > 0 else 0
    validation = max(1, round(count * validation_fraction)) if count >= 4 and validation_fraction > 0 else 0
    return count - test - validation, validation, test


def assign_splits(
    origins: Iterable[tuple[str, str, str]], validation_fraction: float, test_fraction: float, seed: int
) -> dict[str, str]:
    """Map each origin id to a split, given (origin id, policy, label) triples, stratified by (policy, label)."""
    strata: dict[tuple[str, str], list[str]] = defaultdict(list)
    for origin, policy, label in origins:
        strata[(policy, label)].append(origin)
    assignment: dict[str, str] = {}
    for (policy, label), members in sorted(strata.items()):
        members = sorted(set(members))
        random.Random(stable_seed(seed, "split", policy, label)).shuffle(members)
        train, validation, _ = split_sizes(len(members), validation_fraction, test_fraction)
        for position, origin in enumerate(members):
            assignment[origin] = "train" if position < train else "validation" if position < train + validation else "test"
    _fill_empty_splits(assignment, strata)
    return assignment


def _fill_empty_splits(assignment: dict[str, str], strata: dict[tuple[str, str], list[str]]) -> None:
    """Give test, then validation, one text from the stratum with the most training texts when a small
    dataset left them empty: every split a dataset declares must hold rows."""
    for split in ("test", "validation"):
        if split in assignment.values():
            continue
        train_by_stratum = {key: [origin for origin in sorted(set(members)) if assignment[origin] == "train"] for key, members in strata.items()}
        key = max(sorted(train_by_stratum), key=lambda stratum: len(train_by_stratum[stratum]), default=None)
        if key is None or len(train_by_stratum[key]) < 2:
            return
        assignment[train_by_stratum[key][-1]] = split
