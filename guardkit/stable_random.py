"""Randomness that depends only on what it is about: the same seed and names give the same draw in every
process (Python's hash() of a str is salted per process), so resumed and repeated runs agree."""

from __future__ import annotations

import hashlib


def stable_seed(*parts: object) -> int:
    """A 64-bit seed determined by `parts`."""
    digest = hashlib.sha256("\x1f".join(str(part) for part in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def stable_fraction(*parts: object) -> float:
    """A number in [0, 1) determined by `parts`."""
    return stable_seed(*parts) / 2**64
