import json
from collections import Counter
from pathlib import Path

from guardkit.generate.requests import example_pool, plan_requests
from guardkit.generate.splits import assign_splits, split_sizes
from guardkit.generate.store import CandidateStore
from guardkit.policies import load_policies

FIXTURE = Path(__file__).parent / "fixtures" / "policies" / "pet_safety.yaml"


def test_plans_are_deterministic_and_cover_every_behaviour():
    (policy,) = load_policies([str(FIXTURE)])
    first = plan_requests(policy, 0, {"unsafe": 4, "safe": 10}, seed=7, texts_per_request=5, hard_negative_fraction=0.3)
    again = plan_requests(policy, 0, {"unsafe": 4, "safe": 10}, seed=7, texts_per_request=5, hard_negative_fraction=0.3)
    assert first == again
    assert len({request.id for request in first}) == 14
    kinds = Counter(request.kind for request in first)
    assert kinds == {"unsafe": 4, "safe": 7, "hard_negative": 3}
    assert {request.behaviour for request in first if request.kind == "unsafe"} == set(policy.disallowed)
    assert {request.behaviour for request in first if request.kind == "safe"} == set(policy.allowed)
    hard = [request for request in first if request.kind == "hard_negative"]
    assert all(request.label == "safe" and set(request.examples) <= set(policy.hard_negatives) for request in hard)
    assert all(len(request.examples) == 3 and request.count == 5 for request in first)
    other_seed = plan_requests(policy, 0, {"unsafe": 4}, seed=8, texts_per_request=5, hard_negative_fraction=0.3)
    assert [request.axes for request in other_seed] != [request.axes for request in first[:4]]


def test_long_examples_stay_out_of_the_prompt_when_short_ones_exist():
    (policy,) = load_policies([str(FIXTURE)])
    plan = plan_requests(policy, 0, {"unsafe": 4, "safe": 4}, seed=0, texts_per_request=5, hard_negative_fraction=0.5, max_example_words=12)
    for request in plan:
        pool = example_pool(policy, request.kind, 12)
        assert set(request.examples) <= set(pool)
        assert all(len(text.split()) <= 12 for text in request.examples) or len(pool) == len(example_pool(policy, request.kind))


def test_splits_are_stratified_and_follow_the_origin():
    origins = [(f"{policy}-{label}-{i}", policy, label) for policy in "ab" for label in ("safe", "unsafe") for i in range(20)]
    assignment = assign_splits(origins, 0.1, 0.2, seed=0)
    assert assignment == assign_splits(list(reversed(origins)), 0.1, 0.2, seed=0)
    for policy in "ab":
        for label in ("safe", "unsafe"):
            counts = Counter(split for origin, split in assignment.items() if origin.startswith(f"{policy}-{label}-"))
            assert counts == {"train": 14, "validation": 2, "test": 4}
    assert split_sizes(2, 0.1, 0.2) == (2, 0, 0)
    assert split_sizes(3, 0.1, 0.2) == (2, 0, 1)
    assert split_sizes(8, 0.1, 0.2) == (5, 1, 2)
    # A tiny dataset still gets rows in every split it declares.
    tiny = assign_splits([(f"{label}{i}", "a", label) for label in ("safe", "unsafe") for i in range(2)], 0.1, 0.2, seed=0)
    assert sorted(tiny.values()) == ["test", "train", "train", "validation"]


def test_store_resumes_without_duplicates_or_losses(tmp_path):
    path = tmp_path / "candidates.jsonl"
    store = CandidateStore(path)
    store.record_done("r0/p/unsafe/0000", [{"id": "r0/p/unsafe/0000#0", "text": "one"}, {"id": "r0/p/unsafe/0000#1", "text": "two"}])
    store.record_unparseable("r0/p/safe/0000", "garbage", give_up=False)
    store.record_unparseable("r0/p/safe/0001", "garbage", give_up=True)
    store.record_verdicts("judge-a", "p", [("one", 0.9, "looks unsafe")])
    store.close()
    # A crash mid-append: candidates of an unfinished request and a cut-off line.
    with path.open("a") as handle:
        handle.write(json.dumps({"type": "candidate", "request_id": "r0/p/unsafe/0001", "id": "r0/p/unsafe/0001#0", "text": "orphan"}) + "\n")
        handle.write('{"type": "candidate", "request_id": "r0/p/unsa')
    resumed = CandidateStore(path)
    assert [candidate["text"] for candidate in resumed.candidates] == ["one", "two"]
    assert resumed.finished == {"r0/p/unsafe/0000": "done", "r0/p/safe/0001": "failed"}
    assert resumed.unparseable_attempts["r0/p/safe/0000"] == 1
    assert resumed.verdict("judge-a", "p", "one")["score"] == 0.9
    assert resumed.verdict("judge-b", "p", "one") is None
    resumed.record_done("r0/p/unsafe/0001", [{"id": "r0/p/unsafe/0001#0", "text": "redone"}])
    resumed.close()
    final = CandidateStore(path)
    assert [candidate["text"] for candidate in final.candidates] == ["one", "two", "redone"]
