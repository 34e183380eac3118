"""Composed policies for the policy reader: new policies made of the trained ones' rules, rows labelled by the rules they break.

Eleven policies teach the reader eleven ways a policy's parts can sit around its texts. A composed policy
is one to three members, each a trained harm policy with all of its disallowed rules or only some of them:

- a union ("violent crimes and self-harm"): its parts are its members' parts put together, and a row is
  unsafe when it is unsafe under any member;
- a carve-out: a member keeps some of its disallowed rules and moves the others to its allowed items, so
  its texts that break only the moved rules turn safe — the case a new policy's "allowed" list makes,
  where a text reads like the policy's harm and is not this policy's business.

Every label follows from the rows' recorded rules (the schema's `rules` column), never from a guess: a row
unsafe under member P is unsafe under (P, kept rules) when it breaks a kept rule and safe when every rule it
breaks was moved; an unsafe row with no recorded rule cannot be placed and is left out. A text that a member's
policy has no row for counts as safe under that member: the data engine labels the pairs where one policy's
text is unsafe under another (the cross-policy rows), so a known overlap is a row.

A carve-out cannot keep its policy's hand-written unsafe examples (which rule each stands for is not recorded),
so its unsafe examples are rows that break its kept rules, and a few rows of the moved rules join its safe
examples; those rows are examples, not training rows, of that composed policy. Scope policies (tagged
`scope`) are never members: under them everything off the topic is unsafe, which no union preserves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from guardkit.data.schema import LABEL2ID
from guardkit.policies import Policy
from guardkit.policies.schema import SCOPE_TAGS
from guardkit.policy_reader import FEATURES, PolicyAnchors, background_of, reader_features
from guardkit.stable_random import stable_seed

UNSAFE, SAFE = LABEL2ID["unsafe"], LABEL2ID["safe"]
# A carve-out needs this many rows of its kept rules (half become its unsafe examples) and of its moved rules.
MIN_KEPT_ROWS = 8
MIN_MOVED_ROWS = 2
MOVED_EXAMPLES = 6
# Rows read under each composed policy: about what a trained policy has of each label.
ROWS_PER_POLICY = 150
# Draws per composed policy asked for before giving up: few rows per rule can make most carve-outs unusable.
ATTEMPTS_PER_POLICY = 20


@dataclass(frozen=True)
class Member:
    policy: str
    kept: frozenset[str]  # the disallowed rules it keeps; all of them for a whole policy

    def whole(self, policies: Mapping[str, Policy]) -> bool:
        return self.kept == frozenset(policies[self.policy].disallowed)


@dataclass(frozen=True)
class ReaderRows:
    """The reader's training rows as arrays: unit embeddings, labels, policy ids and recorded rules."""

    embeddings: np.ndarray
    texts: Sequence[str]
    labels: np.ndarray
    policies: np.ndarray
    rules: Sequence[Sequence[str]]


@dataclass(frozen=True)
class ComposedRows:
    """Feature rows of the composed policies: `rows` indexes the ReaderRows each came from (for its weight)."""

    features: np.ndarray
    labels: np.ndarray
    rows: np.ndarray
    policies: int
    members: dict[int, int]  # composed policies by number of members

    def note(self) -> str:
        shapes = ", ".join(f"{count} of {size} member{'s' if size > 1 else ''}" for size, count in sorted(self.members.items()))
        return (
            f"The reader was also fitted on {len(self.labels)} rows of {self.policies} composed policies ({shapes}): unions of the "
            f"trained policies and carve-outs that move some disallowed rules to the allowed items; {int(self.labels.sum())} of "
            "the rows are unsafe, each row's label following from the rules it records."
        )


def _member_label(member: Member, label: int | None, rules: Sequence[str], whole: bool) -> int | None:
    """The row's label under one member, from its label and rules under the member's policy (None: no row there)."""
    if label is None or label == SAFE:
        return label
    if whole:
        return UNSAFE
    if not rules:
        return None
    return UNSAFE if member.kept.intersection(rules) else SAFE


class _Composer:
    def __init__(self, rows: ReaderRows, reference: Mapping[str, PolicyAnchors], policies: Mapping[str, Policy], everyday: np.ndarray, seed: int):
        self.rows, self.reference, self.policies, self.everyday = rows, reference, policies, everyday
        self.rng = np.random.default_rng(stable_seed(seed, "composed-policies"))
        self.harm = [policy_id for policy_id in reference if not SCOPE_TAGS.intersection(policies[policy_id].tags)]
        self.members_of = {policy_id: np.flatnonzero(rows.policies == policy_id) for policy_id in self.harm}
        # (text, policy) -> (label, rules): the row of that text under that policy, when there is one.
        self.known = {(rows.texts[index], str(rows.policies[index])): (int(rows.labels[index]), tuple(rows.rules[index])) for index in range(len(rows.labels))}

    def draw(self) -> tuple[Member, ...]:
        size = int(self.rng.choice([1, 2, 3], p=[0.4, 0.4, 0.2]))
        chosen = self.rng.choice(self.harm, min(size, len(self.harm)), replace=False)
        members = []
        for policy_id in chosen:
            rules = list(self.policies[policy_id].disallowed)
            # A single member is always a carve-out (else it is the trained policy); in a union, half are.
            if len(rules) > 1 and (len(chosen) == 1 or self.rng.random() < 0.5):
                rules = list(self.rng.choice(rules, int(self.rng.integers(1, len(rules))), replace=False))
            members.append(Member(str(policy_id), frozenset(rules)))
        return tuple(sorted(members, key=lambda member: member.policy))

    def label(self, index: int, members: Sequence[Member]) -> int | None:
        """A row's label under the composed policy; None when its own policy's member cannot place it."""
        text, own = self.rows.texts[index], str(self.rows.policies[index])
        verdicts = {}
        for member in members:
            label, rules = self.known.get((text, member.policy), (None, ()))
            verdicts[member.policy] = _member_label(member, label, rules, member.whole(self.policies))
        if verdicts.get(own) is None:
            return None
        return UNSAFE if UNSAFE in verdicts.values() else SAFE

    def anchors(self, member: Member) -> tuple[PolicyAnchors, set[int]] | None:
        """The member's parts, and the rows that became its examples; None when its rows cannot show the carve-out."""
        reference = self.reference[member.policy]
        if member.whole(self.policies):
            return reference, set()
        rules = list(self.policies[member.policy].disallowed)
        kept_rows, moved_rows = [], []
        for index in self.members_of[member.policy]:
            recorded = set(self.rows.rules[index])
            if self.rows.labels[index] != UNSAFE or not recorded:
                continue
            (kept_rows if member.kept & recorded else moved_rows).append(index)
        if len(kept_rows) < MIN_KEPT_ROWS or len(moved_rows) < MIN_MOVED_ROWS:
            return None
        unsafe = self.rng.choice(kept_rows, min(len(reference.unsafe), len(kept_rows) // 2), replace=False)
        moved = self.rng.choice(moved_rows, min(MOVED_EXAMPLES, len(moved_rows) // 2 or 1), replace=False)
        kept_positions = [position for position, rule in enumerate(rules) if rule in member.kept]
        moved_positions = [position for position, rule in enumerate(rules) if rule not in member.kept]
        embeddings = self.rows.embeddings
        anchors = PolicyAnchors(
            unsafe=embeddings[unsafe],
            safe=np.vstack([reference.safe, embeddings[moved]]),
            disallowed=reference.disallowed[kept_positions],
            allowed=np.vstack([reference.allowed, reference.disallowed[moved_positions]]),
        )
        return anchors, {int(index) for index in unsafe} | {int(index) for index in moved}

    def compose(self, members: Sequence[Member], rows_per_policy: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        parts, examples = [], set()
        for member in members:
            made = self.anchors(member)
            if made is None:
                return None
            parts.append(made[0])
            examples |= made[1]
        anchors = PolicyAnchors(*(np.vstack([getattr(part, name) for part in parts]) for name in ("unsafe", "safe", "disallowed", "allowed")))
        background = background_of(self.reference, [member.policy for member in members])
        candidates = np.concatenate([self.members_of[member.policy] for member in members])
        candidates = [int(index) for index in candidates if int(index) not in examples]
        self.rng.shuffle(candidates)
        chosen, labels = [], []
        for index in candidates:
            label = self.label(index, members)
            if label is not None:
                chosen.append(index)
                labels.append(label)
            if len(chosen) == rows_per_policy:
                break
        if not chosen or len(set(labels)) < 2:
            return None
        chosen = np.asarray(chosen)
        return reader_features(self.rows.embeddings[chosen], anchors, background, self.everyday), np.asarray(labels), chosen


def compose_policies(
    rows: ReaderRows,
    reference: Mapping[str, PolicyAnchors],
    policies: Mapping[str, Policy],
    everyday: np.ndarray,
    count: int,
    rows_per_policy: int,
    seed: int,
) -> ComposedRows:
    """Up to `count` distinct composed policies of the `reference` policies (their member rule sets all differ) and
    the feature rows of up to `rows_per_policy` of their rows each."""
    composer = _Composer(rows, reference, policies, everyday, seed)
    features, labels, sources, seen = [], [], [], set()
    members_count: dict[int, int] = {}
    if composer.harm:
        for _ in range(count * ATTEMPTS_PER_POLICY):
            if len(seen) == count:
                break
            members = composer.draw()
            if members in seen:
                continue
            made = composer.compose(members, rows_per_policy)
            if made is None:
                continue
            seen.add(members)
            members_count[len(members)] = members_count.get(len(members), 0) + 1
            features.append(made[0])
            labels.append(made[1])
            sources.append(made[2])
    return ComposedRows(
        features=np.vstack(features) if features else np.zeros((0, len(FEATURES)), np.float32),
        labels=np.concatenate(labels) if labels else np.zeros(0, np.int64),
        rows=np.concatenate(sources) if sources else np.zeros(0, np.int64),
        policies=len(seen),
        members=members_count,
    )
