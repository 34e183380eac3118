"""`keyword`: a word list derived from each policy, the cheapest guard there is.

The words of a policy's disallowed items and unsafe examples that never occur on its safe side
(allowed items, safe examples, hard negatives), minus stop words, become one regular expression; a
word matches any of its inflections (`bomb` matches `bombs`). Score = 1 - 2^-hits over distinct
keywords, so one hit reaches the threshold 0.5 and more hits rank higher.
"""

from __future__ import annotations

import json
import re

import numpy as np

from guardkit.evaluate.baselines import register_baseline
from guardkit.evaluate.scorers import Scorer, ScorerSpec
from guardkit.policies import Policy, shipped_policies

ONE_HIT_THRESHOLD = 0.5
MIN_KEYWORD_LENGTH = 4
WORD = re.compile(r"[a-z][a-z'-]+")
# Endings cut so that a keyword matches its other inflections; the stem keeps at least 4 letters.
SUFFIXES = ("ing", "ers", "ies", "ied", "es", "ed", "er", "ly", "s")
STOP_WORDS = frozenset(
    """
    about above after again against all also although always among another any anyone anything are around asks
    because been before being below between both can cannot could does doing done down during each either else even
    ever every few from further gets give given goes have having here hers herself himself his how however into its
    itself just keep know like made make makes many might more most much must myself need never next none nor not
    now off once one only onto other others our ours ourselves out over own please really same says should since
    some something still such than that the their theirs them themselves then there these they thing things this
    those though through thus too under until upon very want wants was were what whatever when where whether which
    while who whom whose why will with within without would your yours yourself yourselves tell told using used use
    way ways well went what's i'm it's don't can't you're let's
    """.split()
)


def stem(word: str) -> str:
    for suffix in SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= MIN_KEYWORD_LENGTH:
            return word[: -len(suffix)]
    return word


def _stems(texts: list[str]) -> set[str]:
    return {stem(word) for text in texts for word in WORD.findall(text.lower())}


def derive_keywords(policy: Policy) -> list[str]:
    """The policy's keyword stems: on its unsafe side only, never on its safe side."""
    unsafe_side = _stems([*policy.disallowed, *policy.examples.unsafe])
    safe_side = _stems([*policy.allowed, *policy.examples.safe, *policy.hard_negatives])
    stop = {stem(word) for word in STOP_WORDS}
    return sorted(word for word in unsafe_side - safe_side - stop if len(word) >= MIN_KEYWORD_LENGTH)


@register_baseline("keyword")
class KeywordBaseline(Scorer):
    is_baseline = True

    def __init__(self, name: str):
        super().__init__(name, ScorerSpec("baseline", name), ONE_HIT_THRESHOLD)
        self._patterns: dict[str, tuple[list[str], re.Pattern[str]]] = {}

    @classmethod
    def from_config(cls, config) -> "KeywordBaseline":
        return cls(cls.registry_name)

    @property
    def own_policies(self) -> list[str]:
        return []

    def can_score(self, policy_id: str) -> bool:
        return True

    def keywords(self, policy: Policy) -> list[str]:
        return self._compiled(policy)[0]

    def _compiled(self, policy: Policy) -> tuple[list[str], re.Pattern[str]]:
        if policy.id not in self._patterns:
            words = derive_keywords(policy)
            # Longest first so that an alternation never stops at a shorter keyword inside a longer one.
            alternatives = "|".join(re.escape(word) for word in sorted(words, key=len, reverse=True))
            pattern = re.compile(rf"\b({alternatives})[a-z'-]*" if words else r"(?!x)x")
            self._patterns[policy.id] = (words, pattern)
        return self._patterns[policy.id]

    def _score(self, policy: Policy, texts: list[str]) -> np.ndarray:
        _, pattern = self._compiled(policy)
        hits = np.array([len(set(pattern.findall(text.lower()))) for text in texts], dtype=np.float64)
        return 1.0 - np.power(0.5, hits)

    def size_on_disk(self) -> int:
        """Bytes of the keyword lists of every shipped policy, stored as JSON."""
        lists = {policy.id: self.keywords(policy) for policy in shipped_policies().values()}
        return len(json.dumps(lists).encode("utf-8"))
