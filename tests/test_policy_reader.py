"""The policy reader: its features, its training rows, and a MultiTaskGuard built on it, trained and read back."""

from __future__ import annotations

import json

import numpy as np
import pytest
from datasets import Dataset
from huggingface_hub import ModelCard
from tiny_models import write_dataset_folder

from guardkit.calibration import DEFAULT_EVERYDAY_FPR
from guardkit.export import ExportConfig, ExportError, export_guard
from guardkit.guard import MANIFEST_FILE, Guard, GuardError, GuardManifest
from guardkit.policies import get_policy
from guardkit.embeddings import nearest_mean
from guardkit.policy_reader import EVERYDAY_FILE, FEATURES, PolicyAnchors, PolicyReader, background_of, reader_features
from guardkit.train.common import EVAL_RESULTS_FILE, TrainingError
from guardkit.train.config import MultiTaskGuardConfig
from guardkit.train.multitask import train_multitask_guard
from guardkit.train.reader_data import background_rows, reader_training_rows

# ---------------------------------------------------------------- features


def _unit(*rows):
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_nearest_mean_averages_the_k_largest_and_copes_with_fewer():
    similarities = np.array([[0.1, 0.9, 0.5, 0.7]], dtype=np.float32)
    assert nearest_mean(similarities, 1)[0] == pytest.approx(0.9)
    assert nearest_mean(similarities, 3)[0] == pytest.approx((0.9 + 0.7 + 0.5) / 3)
    assert nearest_mean(similarities, 10)[0] == pytest.approx(similarities.mean())
    assert nearest_mean(np.zeros((2, 0), np.float32), 3).tolist() == [0.0, 0.0]


def test_features_read_the_policy_parts_the_background_and_the_everyday_texts():
    anchors = PolicyAnchors(unsafe=_unit([1, 0, 0]), safe=_unit([0, 1, 0]), disallowed=_unit([1, 1, 0]), allowed=_unit([0, 1, 1]))
    other = {"mine": anchors, "theirs": PolicyAnchors(unsafe=_unit([0, 0, 1]), safe=_unit([0, 1, 0]), disallowed=_unit([0, 0, 1]), allowed=_unit([0, 1, 0]))}
    background = background_of(other, leave_out="mine")
    assert background.tolist() == _unit([0, 0, 1]).tolist()  # the policy's own unsafe examples are no background
    everyday = _unit([0, 1, 0], [0, 1, 1])
    texts = _unit([1, 0, 0], [0, 0, 1])
    features = dict(zip(FEATURES, reader_features(texts, anchors, background, everyday).T))
    assert len(features) == len(FEATURES)
    assert features["unsafe_1"].tolist() == pytest.approx([1.0, 0.0])
    assert features["background_1"].tolist() == pytest.approx([0.0, 1.0])
    # The first text is this policy's kind of unsafe, the second the other policy's.
    assert features["unsafe_1-background_1"][0] > 0 > features["unsafe_1-background_1"][1]
    assert features["everyday_1"].tolist() == pytest.approx([0.0, np.sqrt(0.5)], abs=1e-6)


def test_reader_round_trips_and_refuses_other_features():
    reader = PolicyReader(tuple(float(index) for index in range(len(FEATURES))), -1.5)
    assert PolicyReader.from_dict(json.loads(json.dumps(reader.to_dict())), "test") == reader
    features = np.ones((2, len(FEATURES)), dtype=np.float32)
    expected = 1 / (1 + np.exp(-(sum(range(len(FEATURES))) - 1.5)))
    assert reader.probabilities(features).tolist() == pytest.approx([expected, expected])
    stale = dict(reader.to_dict(), features=list(FEATURES[:-1]), weights=list(reader.weights[:-1]))
    with pytest.raises(ValueError, match="retrain the guard"):
        PolicyReader.from_dict(stale, "guardkit.json")


def test_manifest_pairs_the_reader_with_its_input_format():
    base = dict(kind="multitask", policies={"jailbreak": "x"}, threshold=0.5, max_length=128, base_model="m")
    with pytest.raises(GuardError, match="needs its reader"):
        GuardManifest(input_format="policy_reader", **base).validate("test")
    with pytest.raises(GuardError, match="only such a guard has one"):
        GuardManifest(input_format="rule_pair", reader={"weights": []}, **base).validate("test")


# ---------------------------------------------------------------- training rows


def _rows(entries):
    columns = {name: [entry[index] for entry in entries] for index, name in enumerate(("text", "label", "policy", "source"))}
    return Dataset.from_dict({**columns, "rules": [[] for _ in entries]})


def test_training_rows_keep_everyday_texts_apart_and_weigh_the_background():
    multitask = _rows([("bad one", 1, "p", "generated"), ("fine one", 0, "p", "generated"), ("their bad", 0, "p", "generated")])
    background = [(f"everyday request {index}", 0, "p", "corpus:chat") for index in range(20)]
    default = _rows([("bad one", 1, "p", "generated"), ("fine one", 0, "p", "generated"), *background])
    rows, everyday = reader_training_rows(multitask, default, everyday_texts=8, everyday_share=0.5, seed=0)
    assert len(everyday) == 8 and set(everyday) <= {text for text, *_ in background}
    assert not set(everyday) & set(rows["text"])  # a reference text is never a training row
    weights = dict(zip(rows["text"], rows["weight"]))
    assert [weights[text] for text in ("bad one", "fine one", "their bad")] == [1.0, 1.0, 1.0]
    extra = [weight for text, weight in weights.items() if text.startswith("everyday")]
    assert len(extra) == 12 and sum(extra) == pytest.approx(0.5 * 3)
    again, same = reader_training_rows(multitask, default, everyday_texts=8, everyday_share=0.5, seed=0)
    assert same == everyday and again["text"] == rows["text"]


def test_background_rows_are_the_default_configs_safe_rows_the_multitask_config_lacks():
    multitask = _rows([("bad one", 1, "p", "generated"), ("fine one", 0, "p", "generated")])
    default = _rows([("bad one", 1, "p", "generated"), ("fine one", 0, "p", "generated"), ("fine one", 0, "q", "corpus:chat"), ("weather?", 0, "p", "corpus:chat")])
    found = background_rows(multitask, default)
    assert list(zip(found["text"], found["policy"])) == [("fine one", "q"), ("weather?", "p")]


def test_training_rows_without_background_use_the_safe_corpus_texts_or_say_what_to_do():
    corpus = [(f"question {index}", 0, "p", "corpus:chat") for index in range(10)]
    multitask = _rows([("bad one", 1, "p", "generated"), *corpus])
    rows, everyday = reader_training_rows(multitask, multitask, everyday_texts=4, everyday_share=0.25, seed=0)
    assert len(everyday) == 4 and set(everyday) <= {text for text, *_ in corpus}
    assert set(rows["weight"]) == {1.0}
    with pytest.raises(TrainingError, match="--background-per-policy"):
        reader_training_rows(_rows([("bad one", 1, "p", "generated"), ("ok", 0, "p", "generated")]), _rows([("ok", 0, "p", "generated")]), 4, 0.25, 0)


# ---------------------------------------------------------------- a trained guard

POLICIES = ("violent_crimes", "self_harm")
OPENERS = ("", "Quick question: ", "Please answer: ", "Be honest. ", "I need this today: ")
VALIDATION_EVERYDAY = [
    f"{opener}What is a good {thing} for a {occasion}?"
    for opener in ("", "Hi! ", "Quick one: ")
    for thing in ("gift", "song", "game", "snack", "book")
    for occasion in ("birthday", "picnic", "road trip", "rainy day")
]


def _variants(texts, count):
    return [f"{OPENERS[index % len(OPENERS)]}{texts[index % len(texts)]}" for index in range(count)]


def write_reader_dataset(folder):
    """Rows that read like each policy's own examples: unsafe ones like its unsafe examples, safe ones like its safe
    examples and hard negatives or like the other policy's unsafe examples (out of its scope); everyday
    background rows in config default only."""
    everyday = [f"Can you suggest a {dish} recipe for {count} people?" for dish in ("pasta", "curry", "salad", "soup") for count in (2, 4, 6, 8)]
    # Long benign documents, one kept as an everyday reference and one a training row: both are cut into windows.
    everyday.append(" ".join(f"Minutes of meeting {index}: the budget for the garden project was agreed." for index in range(40)))
    long_row = " ".join(f"Chapter {index} of the travel diary: we walked along the river to the old mill." for index in range(40))
    splits = {}
    for split, per_label in (("train", 30), ("validation", 10), ("test", 10)):
        rows = []
        for policy_id in POLICIES:
            policy = get_policy(policy_id)
            other = get_policy(next(other for other in POLICIES if other != policy_id))
            rows += [{"text": text, "label": 1, "policy": policy_id, "source": "generated"} for text in _variants(policy.examples.unsafe, per_label)]
            safe = _variants([*policy.examples.safe, *policy.hard_negatives], per_label // 2) + _variants(other.examples.unsafe, per_label // 2)
            rows += [{"text": text, "label": 0, "policy": policy_id, "source": "generated"} for text in safe]
        if split == "train":
            rows += [{"text": long_row, "label": 0, "policy": policy_id, "source": "corpus:chat"} for policy_id in POLICIES]
        background = [{"text": text, "label": 0, "policy": policy_id, "source": "corpus:chat"} for policy_id in POLICIES for text in everyday]
        if split == "validation":
            # Enough rows of a registered benign corpus for the everyday thresholds.
            background = [{"text": text, "label": 0, "policy": policy_id, "source": "corpus:chatterbot-en"} for policy_id in POLICIES for text in VALIDATION_EVERYDAY]
        splits[("default", split)] = rows + (background if split != "test" else [])
        splits[("multitask", split)] = rows
    return write_dataset_folder(folder, splits, POLICIES)


@pytest.fixture(scope="module")
def reader_guard(tmp_path_factory, minilm_dir):
    root = tmp_path_factory.mktemp("reader")
    dataset = write_reader_dataset(root / "data")
    output = root / "guard"
    train_multitask_guard(MultiTaskGuardConfig(dataset=str(dataset), output=str(output), base_model=str(minilm_dir), everyday_texts=17))
    return output


def test_reader_guard_folder(reader_guard):
    manifest = json.loads((reader_guard / MANIFEST_FILE).read_text())
    assert manifest["kind"] == "multitask" and manifest["input_format"] == "policy_reader"
    assert manifest["reader"]["features"] == list(FEATURES) and set(manifest["thresholds"]) == set(POLICIES)
    everyday = json.loads((reader_guard / EVERYDAY_FILE).read_text())
    # The 16 requests as written, and the long minutes cut into the windows the guard reads them in.
    assert sum(text.startswith("Can you suggest") for text in everyday) == 16
    minutes = [text for text in everyday if not text.startswith("Can you suggest")]
    assert len(minutes) >= 3 and all(text.startswith("minutes of meeting") or "the budget" in text for text in minutes)
    results = json.loads((reader_guard / EVAL_RESULTS_FILE).read_text())
    assert results["test"]["all"]["f1"] >= 0.8
    # Everyday thresholds (the default): each policy's at least 0.5 and flagging at most 1% of its everyday rows.
    guard = Guard.from_pretrained(reader_guard)
    for policy_id in POLICIES:
        assert results["thresholds"][policy_id]["objective"] == "everyday_fpr"
        threshold = manifest["thresholds"][policy_id]
        assert threshold >= 0.5 and np.mean(guard.score(VALIDATION_EVERYDAY, policy=policy_id) >= threshold) <= DEFAULT_EVERYDAY_FPR
    assert manifest["threshold"] == 0.5  # a policy it never saw
    card = ModelCard.load(reader_guard / "README.md")
    assert "policy reader" in card.text and "17 everyday corpus texts" in card.text and "Score it with guardkit" in card.text
    # Its rows record no rules: the one policy it can compose is the union of both, every row placed by its label.
    assert "of 1 composed policies (1 of 2 members)" in card.text


def test_reader_guard_reads_a_policy_it_never_saw_from_its_examples(reader_guard):
    guard = Guard.from_pretrained(reader_guard, backend="onnx")  # a policy reader runs on torch whatever the backend
    assert guard.backend == "torch"
    policy = get_policy("privacy_pii")  # never trained on: read from its own examples, rules and allowed items
    unsafe, safe = policy.examples.unsafe[0], policy.examples.safe[0]
    scores = guard.score([unsafe, safe, "Can you suggest a pasta recipe for 4 people?"], policy=policy)
    assert scores[0] > scores[1] and scores[0] > scores[2]
    # Scored under several policies, the texts are embedded once and read under each.
    verdicts = guard.check([unsafe, safe], policies=[*POLICIES, policy])
    assert [(verdict.text_index, verdict.policy) for verdict in verdicts][:3] == [(0, "violent_crimes"), (0, "self_harm"), (0, "privacy_pii")]
    assert verdicts[2].score == pytest.approx(scores[0], abs=1e-6)


def test_reader_guard_needs_its_everyday_texts_and_is_not_exported(reader_guard, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(reader_guard, copy)
    (copy / EVERYDAY_FILE).unlink()
    with pytest.raises(GuardError, match=EVERYDAY_FILE):
        Guard.from_pretrained(copy)
    with pytest.raises(ExportError, match="policy-reader guard"):
        export_guard(ExportConfig(model=str(reader_guard), output=str(tmp_path / "onnx")))


def test_reader_takes_no_fine_tuning(tmp_path, minilm_dir):
    dataset = write_reader_dataset(tmp_path / "data")
    with pytest.raises(TrainingError, match="--epochs 0"):
        train_multitask_guard(MultiTaskGuardConfig(dataset=str(dataset), output=str(tmp_path / "guard"), base_model=str(minilm_dir), epochs=1))


def test_the_space_scores_a_policy_typed_in_the_page_with_the_reader(reader_guard, tmp_path):
    from guardkit.demo import DemoService, LoadedGuard

    service = DemoService([LoadedGuard("reader", str(reader_guard), Guard.from_pretrained(reader_guard))], reproduce_dir=tmp_path)
    assert "privacy_pii" in service.policy_ids  # it reads any shipped policy, not only its own two
    policy = get_policy("privacy_pii")
    texts = [policy.examples.unsafe[0], "Can you suggest a pasta recipe for 4 people?"]
    message, _, result, policy_yaml, _ = service.custom_policy(
        "Neighbour privacy", policy.description, "\n".join(policy.disallowed), "\n".join(policy.allowed),
        "\n".join(policy.examples.safe), "\n".join(policy.examples.unsafe), "\n".join(texts),
    )  # fmt: skip
    assert "id: neighbour_privacy" in policy_yaml
    scores = [verdict["score"] for verdict in result["verdicts"]]
    assert len(scores) == 2 and scores[0] > scores[1], message
