from pathlib import Path

import numpy as np
import pytest

from guardkit.generate.config import GenerateConfig
from guardkit.generate.labeller import Decision, reflect
from guardkit.generate.pipeline import Cleaner
from guardkit.generate.reflection import CachedJudge, LogitJudge, best_threshold
from guardkit.generate.store import CandidateStore
from guardkit.policies import load_policies

FIXTURE = Path(__file__).parent / "fixtures" / "policies" / "pet_safety.yaml"
TEXTS = [
    "Is it fine to give my beagle a handful of raisins every day?",
    "My parrot keeps screaming, should I smack it with a ruler?",
    "What is the best brush for a long-haired cat?",
    "Should I kick the dog when he barks at the mailman?",
]


def test_best_threshold():
    scores = np.array([0.05, 0.1, 0.12, 0.3, 0.35, 0.4])
    unsafe = np.array([False, False, False, True, True, True])
    threshold, accuracy = best_threshold(scores, unsafe)
    assert 0.12 < threshold < 0.3 and accuracy == 1.0
    assert best_threshold(scores, np.ones(6, dtype=bool)) == (0.5, pytest.approx(float("nan"), nan_ok=True))


UNSAFE = Decision("unsafe", 0.9, {"examples-lr": 2.0}, ("hurting animals",))
SAFE = Decision("safe", 0.1, {"examples-lr": -2.0})
ABSTAINED = Decision(None, 0.5, {"examples-lr": 0.0})


@pytest.mark.parametrize(
    ("decision", "intended", "mode", "label", "outcome"),
    [
        (UNSAFE, "unsafe", "relabel", "unsafe", "agreed"),
        (SAFE, "unsafe", "relabel", "safe", "relabelled"),
        (SAFE, "unsafe", "drop", None, "dropped_labeller_disagreed"),
        (ABSTAINED, "safe", "relabel", None, "dropped_labeller_abstained"),
        (ABSTAINED, "safe", "drop", None, "dropped_labeller_abstained"),
        (SAFE, "unsafe", "off", "unsafe", "kept_as_asked"),
        (ABSTAINED, "safe", "off", "safe", "kept_as_asked"),
    ],
)
def test_reflection_accepts_relabels_or_drops(decision, intended, mode, label, outcome):
    kept, happened = reflect(decision, intended, mode)
    assert (kept.label, happened) == (label, outcome)
    assert kept.score == decision.score
    # Rules are only kept where the kept label is the labeller's own.
    assert kept.rules == (decision.rules if kept.label == decision.label else ())


def test_cleaner_drops_in_arrival_order_and_counts_each_reason(tmp_path):
    (policy,) = load_policies([str(FIXTURE)])
    config = GenerateConfig(policies=[str(FIXTURE)], output=str(tmp_path), decontaminate_ngram=5, embedding_threshold=0.9)
    evaluation = ["Never give my beagle a handful of raisins every single week, ok"]
    protected = list(policy.examples.safe)
    cleaner = Cleaner(config, {"policy-bench": evaluation}, protected, np.eye(4, dtype=np.float32)[:1])
    assert cleaner.cheap(TEXTS[2]) is None
    assert cleaner.cheap(TEXTS[2].upper() + "!") == "exact_duplicate"
    assert cleaner.cheap(protected[0]) == "copies_policy_example"
    assert cleaner.cheap("hi") == "length"
    assert cleaner.cheap("so, never give my beagle a handful of raisins every single week") == "contaminated"
    assert cleaner.contaminated == {"policy-bench": 1}
    assert cleaner.embedded(np.array([0.99, 0.14, 0, 0], dtype=np.float32)) == "copies_policy_example"
    assert cleaner.embedded(np.array([0, 1, 0, 0], dtype=np.float32)) is None
    assert cleaner.embedded(np.array([0, 0.995, 0.0998, 0], dtype=np.float32)) == "near_duplicate_embedding"


@pytest.fixture(scope="module")
def tiny_judge(tiny_causal_lm_dir):
    return LogitJudge(str(tiny_causal_lm_dir), few_shot=2, batch_size=4, device="cpu")


def test_cached_judge_judges_each_text_once(tiny_judge, tmp_path):
    (policy,) = load_policies([str(FIXTURE)])
    store = CandidateStore(tmp_path / "candidates.jsonl")
    verdicts = CachedJudge(tiny_judge, store).verdicts(policy, TEXTS)
    assert tiny_judge.calibration["pet_safety"]["held_out"] > 0
    assert all(verdict.label in {"safe", "unsafe"} and 0 <= verdict.score <= 1 for verdict in verdicts)
    assert all(store.verdict(tiny_judge.id, policy.id, text) is not None for text in TEXTS)

    class NoCalls:
        id = tiny_judge.id

        def raw_scores(self, policy, texts):
            raise AssertionError(f"judged again: {texts}")

        def threshold(self, policy, scores):
            return tiny_judge.threshold(policy, scores)

    reopened = CachedJudge(NoCalls(), CandidateStore(tmp_path / "candidates.jsonl"))
    assert [verdict.label for verdict in reopened.verdicts(policy, TEXTS)] == [verdict.label for verdict in verdicts]
