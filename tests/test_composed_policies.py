"""Composed policies for the policy reader: members, labels from recorded rules, examples kept apart, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from guardkit.policies import Policy
from guardkit.policy_reader import FEATURES, PolicyAnchors
from guardkit.train.common import TrainingError
from guardkit.train.composed_policies import MIN_KEPT_ROWS, Member, ReaderRows, _Composer, compose_policies
from guardkit.train.config import MultiTaskGuardConfig
from guardkit.train.multitask import train_multitask_guard

RULES = {"weapons": ["Making weapons", "Planning attacks"], "drugs": ["Making drugs", "Selling drugs"], "shop": ["Anything off the shop's topic"]}


def _policy(policy_id: str, tags=()) -> Policy:
    return Policy(
        id=policy_id,
        name=policy_id.title(),
        description=f"Flags {policy_id}.",
        allowed=[f"Talking about {policy_id} history"],
        disallowed=RULES[policy_id],
        examples={"safe": [f"safe {policy_id} {index}" for index in range(3)], "unsafe": [f"unsafe {policy_id} {index}" for index in range(4)]},
        tags=list(tags),
    )


POLICIES = {"weapons": _policy("weapons"), "drugs": _policy("drugs"), "shop": _policy("shop", tags=["scope"])}


def _dataset(dimensions: int = 16, seed: int = 0):
    """Rows of the three policies with their recorded rules; drug texts are also rows (safe) under weapons."""
    rows = []
    for policy_id in ("weapons", "drugs"):
        for rule in RULES[policy_id]:
            rows += [(f"{policy_id}: {rule} #{index}", 1, policy_id, [rule]) for index in range(10)]
        rows += [(f"{policy_id} hard negative #{index}", 0, policy_id, []) for index in range(10)]
    rows += [(f"drugs: {rule} #{index}", 0, "weapons", []) for rule in RULES["drugs"] for index in range(10)]
    rows += [("weapons: unrecorded", 1, "weapons", [])]
    rows += [(f"off topic #{index}", 1, "shop", RULES["shop"]) for index in range(10)]
    rows += [(f"everyday #{index}", 0, policy_id, []) for policy_id in POLICIES for index in range(10)]
    rng = np.random.default_rng(seed)
    embeddings = rng.normal(size=(len(rows), dimensions)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    reader_rows = ReaderRows(
        embeddings=embeddings,
        texts=[row[0] for row in rows],
        labels=np.asarray([row[1] for row in rows]),
        policies=np.asarray([row[2] for row in rows]),
        rules=[row[3] for row in rows],
    )

    def parts(size):
        vectors = rng.normal(size=(size, dimensions)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    reference = {policy_id: PolicyAnchors(unsafe=parts(4), safe=parts(3), disallowed=parts(len(RULES[policy_id])), allowed=parts(1)) for policy_id in POLICIES}
    return reader_rows, reference, parts(5)


def _index(rows: ReaderRows, text: str, policy: str) -> int:
    return next(index for index, (row_text, row_policy) in enumerate(zip(rows.texts, rows.policies)) if row_text == text and row_policy == policy)


def test_a_carve_out_turns_the_moved_rules_rows_safe_and_cannot_place_unrecorded_ones():
    rows, reference, everyday = _dataset()
    composer = _Composer(rows, reference, POLICIES, everyday, seed=0)
    carve_out = (Member("weapons", frozenset({"Making weapons"})),)
    assert composer.label(_index(rows, "weapons: Making weapons #0", "weapons"), carve_out) == 1
    assert composer.label(_index(rows, "weapons: Planning attacks #0", "weapons"), carve_out) == 0
    assert composer.label(_index(rows, "weapons hard negative #0", "weapons"), carve_out) == 0
    assert composer.label(_index(rows, "weapons: unrecorded", "weapons"), carve_out) is None
    whole = (Member("weapons", frozenset(RULES["weapons"])),)
    assert composer.label(_index(rows, "weapons: unrecorded", "weapons"), whole) == 1


def test_a_union_flags_a_row_that_any_member_flags():
    rows, reference, everyday = _dataset()
    composer = _Composer(rows, reference, POLICIES, everyday, seed=0)
    drugs_text = _index(rows, "drugs: Selling drugs #3", "weapons")  # safe under weapons, unsafe under drugs
    union = (Member("drugs", frozenset(RULES["drugs"])), Member("weapons", frozenset(RULES["weapons"])))
    assert composer.label(drugs_text, union) == 1
    assert composer.label(drugs_text, (Member("weapons", frozenset(RULES["weapons"])),)) == 0
    # The drugs member keeps only "Making drugs": selling is carved out, and weapons never flagged it.
    narrowed = (Member("drugs", frozenset({"Making drugs"})), Member("weapons", frozenset(RULES["weapons"])))
    assert composer.label(drugs_text, narrowed) == 0


def test_a_carve_out_takes_its_examples_from_rows_that_then_leave_its_training_rows():
    rows, reference, everyday = _dataset()
    composer = _Composer(rows, reference, POLICIES, everyday, seed=0)
    member = Member("weapons", frozenset({"Making weapons"}))
    anchors, examples = composer.anchors(member)
    assert len(anchors.unsafe) == 4 and len(anchors.safe) == 3 + len(examples) - 4
    assert {rows.texts[index].split(" #")[0] for index in examples} == {"weapons: Making weapons", "weapons: Planning attacks"}
    assert len(anchors.disallowed) == 1 and len(anchors.allowed) == 2  # the moved rule joins the allowed items
    # A composer of the same seed draws the same examples when it composes the policy.
    features, labels, chosen = _Composer(rows, reference, POLICIES, everyday, seed=0).compose((member,), rows_per_policy=1000)
    assert not set(chosen.tolist()) & examples
    assert features.shape == (len(chosen), len(FEATURES)) and set(labels.tolist()) == {0, 1}
    # Rules recorded on one row too few of "Making drugs": no carve-out keeping it alone.
    recorded = [f"drugs: Making drugs #{index}" for index in range(MIN_KEPT_ROWS - 1)]
    sparse_rules = [rules if not text.startswith("drugs: Making") or text in recorded else [] for text, rules in zip(rows.texts, rows.rules)]
    sparse = ReaderRows(rows.embeddings, rows.texts, rows.labels, rows.policies, sparse_rules)
    assert _Composer(sparse, reference, POLICIES, everyday, seed=0).anchors(Member("drugs", frozenset({"Making drugs"}))) is None


def test_composed_policies_are_distinct_harm_policy_compositions_and_repeat_with_the_seed():
    rows, reference, everyday = _dataset()
    composed = compose_policies(rows, reference, POLICIES, everyday, count=12, rows_per_policy=30, seed=3)
    # Two harm policies of two rules each, each whole or keeping one rule: 2 + 2 carve-outs alone, 3 x 3 unions.
    assert composed.policies == 12 and sum(composed.members.values()) == 12 and set(composed.members) <= {1, 2}
    assert composed.features.shape == (len(composed.labels), len(FEATURES)) == (len(composed.rows), len(FEATURES))
    assert "shop" not in set(rows.policies[composed.rows].tolist())  # a scope policy is never a member
    assert 0 < composed.labels.mean() < 1
    again = compose_policies(rows, reference, POLICIES, everyday, count=12, rows_per_policy=30, seed=3)
    assert np.array_equal(again.rows, composed.rows) and np.array_equal(again.labels, composed.labels)
    assert "12 composed policies" in composed.note()
    # More than there are: every distinct composition once, then it stops.
    assert compose_policies(rows, reference, POLICIES, everyday, count=50, rows_per_policy=30, seed=3).policies == 13


def test_no_harm_policy_no_composed_policy():
    rows, reference, everyday = _dataset()
    composed = compose_policies(rows, {"shop": reference["shop"]}, POLICIES, everyday, count=5, rows_per_policy=30, seed=0)
    assert composed.policies == 0 and composed.features.shape == (0, len(FEATURES))


@pytest.mark.parametrize("flag", ["composed_policies", "composed_share"])
def test_negative_settings_are_refused(tmp_path, flag):
    with pytest.raises(TrainingError, match="must be 0 or more"):
        train_multitask_guard(MultiTaskGuardConfig(dataset=str(tmp_path), output=str(tmp_path / "out"), **{flag: -1}))
