from pathlib import Path

import numpy as np
import pytest

from guardkit.generate.config import GenerateConfig
from guardkit.generate.filtering import Embedder
from guardkit.generate.pipeline import Selector
from guardkit.generate.reflection import CachedJudge, LogitJudge, best_threshold
from guardkit.generate.store import CandidateStore
from guardkit.policies import load_policies

FIXTURE = Path(__file__).parent / "fixtures" / "policies" / "pet_safety.yaml"
TEXTS = [
    "Is it fine to give my beagle a handful of raisins every day?",
    "My parrot keeps screaming, should I smack it with a ruler?",
    "What is the best brush for a long-haired cat?",
    "How warm should the water be when I bathe my puppy?",
    "Can hamsters eat carrots and apples safely?",
    "Should I kick the dog when he barks at the mailman?",
    "What vaccines does a kitten need in its first year?",
    "Pour a little beer in the cat's bowl so she sleeps, how much?",
]


def test_best_threshold():
    scores = np.array([0.05, 0.1, 0.12, 0.3, 0.35, 0.4])
    unsafe = np.array([False, False, False, True, True, True])
    threshold, accuracy = best_threshold(scores, unsafe)
    assert 0.12 < threshold < 0.3 and accuracy == 1.0
    assert best_threshold(scores, np.ones(6, dtype=bool)) == (0.5, pytest.approx(float("nan"), nan_ok=True))


@pytest.fixture(scope="module")
def tiny_judge(tiny_causal_lm_dir):
    return LogitJudge(str(tiny_causal_lm_dir), few_shot=2, batch_size=4, device="cpu")


def _candidates():
    return [
        {"id": f"r0/pet_safety/x/{index:04d}#0", "request_id": f"r0/pet_safety/x/{index:04d}", "policy": "pet_safety",
         "kind": "unsafe" if index % 2 else "safe", "label": "unsafe" if index % 2 else "safe", "behaviour": "b", "text": text, "rationale": ""}
        for index, text in enumerate(TEXTS)
    ]


@pytest.mark.parametrize("mode", ["drop", "relabel", "off"])
def test_reflection_drops_or_relabels_disagreements(mode, tiny_judge, tiny_bert_dir, tmp_path):
    (policy,) = load_policies([str(FIXTURE)])
    store = CandidateStore(tmp_path / "candidates.jsonl")
    judge = CachedJudge(tiny_judge, store)
    # The tiny random judge's verdicts are arbitrary but deterministic; the selector must follow them exactly.
    verdicts = judge.verdicts(policy, TEXTS)
    assert tiny_judge.calibration["pet_safety"]["held_out"] > 0
    config = GenerateConfig(policies=[str(FIXTURE)], output=str(tmp_path), num_per_label=100, reflection=mode, embedding_threshold=1.01, encoder=str(tiny_bert_dir))
    selector = Selector({policy.id: policy}, config, Embedder(str(tiny_bert_dir)), judge, references=[])
    selector.add(_candidates())
    intended = [candidate["label"] for candidate in _candidates()]
    agree = [verdict.label == label for verdict, label in zip(verdicts, intended)]
    accepted = {row["text"]: row for row in selector.accepted}
    if mode == "drop":
        assert set(accepted) == {text for text, ok in zip(TEXTS, agree) if ok}
        assert selector.dropped["judge_disagreed"] == agree.count(False)
    elif mode == "relabel":
        assert set(accepted) == set(TEXTS)
        assert [accepted[text]["label"] for text in TEXTS] == [verdict.label for verdict in verdicts]
        assert selector.relabelled == agree.count(False)
        assert all(accepted[text]["source"] == "generated:relabelled" for text, ok in zip(TEXTS, agree) if not ok)
    else:
        assert [accepted[text]["label"] for text in TEXTS] == intended
    if mode != "off":
        assert sum(selector.judged.values()) == len(TEXTS) and sum(selector.agreed.values()) == agree.count(True)
    # Verdicts were cached: a second judge over the same store judges nothing new.
    assert all(store.verdict(tiny_judge.id, policy.id, text) is not None for text in TEXTS)


def test_quota_and_duplicates_are_enforced_before_judging(tiny_judge, tiny_bert_dir, tmp_path):
    (policy,) = load_policies([str(FIXTURE)])
    store = CandidateStore(tmp_path / "candidates.jsonl")
    config = GenerateConfig(policies=[str(FIXTURE)], output=str(tmp_path), num_per_label=1, reflection="off", embedding_threshold=1.01, encoder=str(tiny_bert_dir))
    selector = Selector({policy.id: policy}, config, Embedder(str(tiny_bert_dir)), CachedJudge(tiny_judge, store), references=["Never give my beagle a handful of raisins every week"])
    candidates = _candidates()
    candidates.append({**candidates[2], "id": "dup#0", "text": TEXTS[2].upper()})
    candidates.append({**candidates[2], "id": "copy#0", "text": policy.examples.safe[0]})
    candidates.append({**candidates[2], "id": "short#0", "text": "hi"})
    selector.add(candidates)
    assert selector.counts == {("pet_safety", "safe"): 1, ("pet_safety", "unsafe"): 1}
    assert selector.dropped["exact_duplicate"] == 1
    assert selector.dropped["copies_policy_example"] == 1
    assert selector.dropped["length"] == 1
    assert selector.dropped["contaminated"] == 1
    assert selector.dropped["over_quota"] == len(TEXTS) - 3
    assert not store.verdicts  # reflection off: nothing was judged
