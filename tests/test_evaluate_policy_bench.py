"""policy-bench: a hand-written test set per shipped policy, kept apart from everything a guard learns from.

Each `benchmarks/policy_bench/<policy>.jsonl` has at least 60 rows (30 unsafe; 30 safe, 15 of them hard
negatives) and shares no text, exactly or nearly, with any policy file's examples, which are the
generation seeds and the few-shot material.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from guardkit.data.schema import LABEL2ID
from guardkit.evaluate.config import DEFAULT_POLICY_BENCH_DIR
from guardkit.evaluate.decontamination import NearDuplicateIndex, normalise
from guardkit.evaluate.harness import read_policy_bench
from guardkit.policies import shipped_policies

POLICIES = shipped_policies()
BENCH_DIR = Path(DEFAULT_POLICY_BENCH_DIR)
PACKAGE_DIR = Path(__file__).resolve().parents[1] / "guardkit"


@pytest.fixture(scope="module")
def policy_examples() -> NearDuplicateIndex:
    """Every example and hard negative of every shipped policy."""
    return NearDuplicateIndex(text for policy in POLICIES.values() for text, _ in policy.all_examples())


def bench(policy_id: str):
    path = BENCH_DIR / f"{policy_id}.jsonl"
    assert path.is_file(), f"{path} is missing: every shipped policy needs its policy-bench file"
    return read_policy_bench(path)


@pytest.mark.parametrize("policy_id", list(POLICIES))
def test_policy_bench_has_enough_rows_of_each_kind(policy_id):
    rows = bench(policy_id)
    unsafe = [row for row in rows if row.label == LABEL2ID["unsafe"]]
    safe = [row for row in rows if row.label == LABEL2ID["safe"]]
    assert len(rows) >= 60 and len(unsafe) >= 30 and len(safe) >= 30
    assert sum(row.hard_negative for row in safe) >= 15
    assert not any(row.hard_negative for row in unsafe), "a hard negative is a safe text that looks unsafe"
    assert {row.policy for row in rows} == {policy_id}
    assert all(row.text.strip() for row in rows)


@pytest.mark.parametrize("policy_id", list(POLICIES))
def test_policy_bench_shares_no_text_with_any_policy_file(policy_id, policy_examples):
    overlaps = [(row.text, kind) for row in bench(policy_id) if (kind := policy_examples.match(row.text))]
    assert not overlaps, f"{policy_id} policy-bench rows duplicate policy examples: {overlaps}"


def test_policy_bench_rows_are_unique_across_all_files():
    texts = [normalise(row.text) for policy_id in POLICIES for row in bench(policy_id)]
    duplicates = sorted({text for text in texts if texts.count(text) > 1})
    assert not duplicates, f"texts repeated in policy-bench: {duplicates}"


# Modules outside guardkit/evaluate that may open policy-bench, and why; none trains, calibrates or prompts
# with it. `guardkit export` scores it with a guard and with its ONNX export to compare the two; the
# evaluation-sets module reads its texts (and the reader the evaluation uses lives there) so that the data
# engine drops every candidate that overlaps it (tests/test_generate_*: decontamination); the data engine
# reports the labeller's accuracy on its test half in stats.json, which the dataset card shows.
POLICY_BENCH_READERS = {"export.py", "data/evaluation_sets.py", "generate/pipeline.py", "generate/card.py"}


def test_only_the_evaluation_reads_policy_bench():
    """policy-bench is never generation seeds or few-shot material: no other package module opens it."""
    readers = [
        str(path.relative_to(PACKAGE_DIR))
        for path in PACKAGE_DIR.rglob("*.py")
        if "evaluate" not in path.relative_to(PACKAGE_DIR).parts and "policy_bench" in path.read_text(encoding="utf-8")
    ]
    assert sorted(set(readers) - POLICY_BENCH_READERS) == [], f"modules outside guardkit/evaluate read policy-bench: {readers}"
