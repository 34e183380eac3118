"""`guardkit train encoder`: the contrastive stage, on the tiny BERT and a keyword task."""

from __future__ import annotations

import json
import random
import shutil

import pytest
import torch
from tiny_models import write_dataset_folder
from transformers import AutoModel, AutoTokenizer

from guardkit import cli
from guardkit.config import parse_config
from guardkit.data.io import SPLITS
from guardkit.guard import MANIFEST_FILE, Guard
from guardkit.policies import get_policy
from guardkit.train.config import EncoderTuningConfig
from guardkit.train.contrastive import RESULTS_FILE, LabelledTexts, draw_pairs
from guardkit.train.common import TrainingError

WORDS = "the report weather garden coffee river meeting budget train music window paper city morning table".split()
MARKERS = {"jailbreak": "purple elephant protocol", "self_harm": "silver harbour signal"}


def _text(rng: random.Random, marker: str | None) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(4, 10))]
    if marker:
        words[rng.randrange(len(words)):0] = marker.split()
    return " ".join(words)


def _rows(policy_id: str, count: int, rng: random.Random) -> list[dict]:
    # Unsafe under a policy: its own marker. The other policy's marker is out of its scope, so safe.
    other = next(marker for key, marker in MARKERS.items() if key != policy_id)
    return [
        {"text": _text(rng, MARKERS[policy_id] if index % 2 else (other if index % 4 == 0 else None)), "label": index % 2, "policy": policy_id, "source": "test"}
        for index in range(count)
    ]


@pytest.fixture(scope="module")
def marker_dataset(tmp_path_factory):
    rng = random.Random(0)
    rows = {(config, split): [row for policy_id in MARKERS for row in _rows(policy_id, 48, rng)] for config in ("default", "multitask") for split in SPLITS}
    return write_dataset_folder(tmp_path_factory.mktemp("pairs-data"), rows, list(MARKERS))


@pytest.fixture(scope="module")
def mean_pooled_bert(tmp_path_factory, tiny_bert_dir):
    """The tiny BERT as a sentence-transformers folder trained for mean pooling (as all-MiniLM-L6-v2 is)."""
    folder = tmp_path_factory.mktemp("mean-bert")
    shutil.copytree(tiny_bert_dir, folder, dirs_exist_ok=True)
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True}))
    return folder


def _mean_pooled(folder, texts: list[str]) -> torch.Tensor:
    """The model's normalised mean-pooled embeddings of the texts (tokenised as the folder's tokenizer does)."""
    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    mask = batch["attention_mask"].unsqueeze(-1).float()
    with torch.inference_mode():
        return torch.nn.functional.normalize((model(**batch).last_hidden_state * mask).sum(1) / mask.sum(1), dim=-1)


def _margin(folder, texts_by_label: dict[int, list[str]]) -> float:
    """Mean cosine within a label minus across labels, on the model's mean-pooled embedding."""
    embedded = {label: _mean_pooled(folder, texts) for label, texts in texts_by_label.items()}
    within = sum(float((embedded[label] @ embedded[label].T).mean()) for label in (0, 1)) / 2
    return within - float((embedded[0] @ embedded[1].T).mean())


def test_pairs_stay_within_one_policy_and_balance_their_kinds():
    rng = random.Random(1)
    labelled = []
    for policy_id, marker in MARKERS.items():
        rows = [(row["text"], row["label"]) for row in _rows(policy_id, 20, rng)]
        # Cross-policy rows: the other policy's unsafe texts, safe under this one.
        other = next(value for key, value in MARKERS.items() if key != policy_id)
        cross = [(f"{other} cross {index} {marker[::-1]}", 0) for index in range(5)]
        labelled.append(LabelledTexts(get_policy(policy_id), rows, cross))
    pairs = draw_pairs(labelled, 200, 0.5, 0.3, seed=3)
    assert len(pairs) == 400 and sum(target for *_, target in pairs) == 200
    texts_of = {item.policy.id: {text for label in (0, 1) for text in item.rows[label] + item.examples[label] + item.cross[label]} for item in labelled}
    assert all(any({first, second} <= texts for texts in texts_of.values()) for first, second, _ in pairs)
    label_of = {text: label for item in labelled for label in (0, 1) for text in item.rows[label] + item.examples[label] + item.cross[label]}
    assert all((label_of[first] == label_of[second]) == (target == 1.0) for first, second, target in pairs)
    # Safe members are cross-policy rows about 30% of the time; of the rest, about half are hand-written examples.
    safe = [text for first, second, _ in pairs for text in (first, second) if label_of[text] == 0]
    cross_texts = {text for item in labelled for text in item.cross[0]}
    assert 0.2 < sum(text in cross_texts for text in safe) / len(safe) < 0.4
    examples = {text for item in labelled for label in (0, 1) for text in item.examples[label]}
    unsafe = [text for first, second, _ in pairs for text in (first, second) if label_of[text] == 1]
    assert 0.35 < sum(text in examples for text in unsafe) / len(unsafe) < 0.65
    assert draw_pairs(labelled, 200, 0.5, 0.3, seed=3) == pairs


def test_encoder_stage_separates_the_labels_and_feeds_a_task_guard(tmp_path, mean_pooled_bert, marker_dataset):
    output = tmp_path / "encoder"
    argv = [
        "train", "encoder", "--dataset", str(marker_dataset), "--output", str(output), "--base_model", str(mean_pooled_bert),
        "--pairs_per_policy", "256", "--batch_size", "16", "--learning_rate", "1e-3", "--max_length", "32",
        "--base_weight", "0",  # the pairs alone; the next test measures the term that holds the encoder near its base
    ]  # fmt: skip
    assert cli.main(argv) == 0
    assert {"model.safetensors", "config.json", "tokenizer.json", "modules.json", "README.md", "training.yaml", RESULTS_FILE} <= {path.name for path in output.iterdir()}
    pooling = json.loads((output / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_mean_tokens"] and not pooling["pooling_mode_cls_token"]  # the base's own pooling
    assert json.loads((output / "sentence_bert_config.json").read_text())["max_seq_length"] == 128  # the tiny BERT's positions
    record = json.loads((output / RESULTS_FILE).read_text())
    assert record["pairs"] == 512 and record["loss_last_20_steps"] < record["loss_first_20_steps"]
    assert "library_name: sentence-transformers" in (output / "README.md").read_text()
    recorded = parse_config(EncoderTuningConfig, ["--config", str(output / "training.yaml")], "x", "y")
    assert recorded.pairs_per_policy == 256 and recorded.dataset == str(marker_dataset)

    rng = random.Random(9)
    held_out = {label: [_text(rng, MARKERS["jailbreak"] if label else None) for _ in range(16)] for label in (0, 1)}
    assert _margin(output, held_out) > _margin(mean_pooled_bert, held_out) + 0.1

    guard_folder = tmp_path / "guard"
    task = ["train", "task", "--dataset", str(marker_dataset), "--policy", "jailbreak", "--output", str(guard_folder), "--base_model", str(output)]
    assert cli.main(task) == 0
    assert json.loads((guard_folder / MANIFEST_FILE).read_text())["base_model"] == str(output)
    guard = Guard.from_pretrained(guard_folder)
    scores = {label: guard.score(texts) for label, texts in held_out.items()}
    assert scores[1].mean() > scores[0].mean() + 0.1


def _closeness_to_base(tuned, base, texts: list[str]) -> float:
    """Mean cosine between a text's mean-pooled embedding under the tuned encoder and under its base."""
    return float((_mean_pooled(tuned, texts) * _mean_pooled(base, texts)).sum(-1).mean())


def test_the_base_term_keeps_the_tuned_embedding_near_the_base(tmp_path, mean_pooled_bert, marker_dataset):
    common = ["train", "encoder", "--dataset", str(marker_dataset), "--base_model", str(mean_pooled_bert), "--pairs_per_policy", "128", "--batch_size", "16", "--learning_rate", "1e-3", "--max_length", "32"]
    for weight in ("0", "1"):
        assert cli.main([*common, "--base_weight", weight, "--output", str(tmp_path / weight)]) == 0
    rng = random.Random(11)
    held_out = {label: [_text(rng, MARKERS["jailbreak"] if label else None) for _ in range(16)] for label in (0, 1)}
    texts = held_out[0] + held_out[1]
    assert _closeness_to_base(tmp_path / "1", mean_pooled_bert, texts) > _closeness_to_base(tmp_path / "0", mean_pooled_bert, texts) + 0.05
    # Kept near the base, the pairs still separate the labels, less than they would alone.
    assert _margin(mean_pooled_bert, held_out) < _margin(tmp_path / "1", held_out) < _margin(tmp_path / "0", held_out)
    assert "1 - cosine between each text's tuned and base embeddings" in (tmp_path / "1" / "README.md").read_text()
    assert "tuned and base embeddings" not in (tmp_path / "0" / "README.md").read_text()
    with pytest.raises(TrainingError, match="--base_weight must be 0"):
        from guardkit.train.contrastive import tune_encoder

        tune_encoder(EncoderTuningConfig(dataset=str(marker_dataset), output=str(tmp_path / "bad"), base_model=str(mean_pooled_bert), base_weight=-1))


def test_encoder_stage_refuses_a_policy_with_one_label(tmp_path, tiny_bert_dir):
    rows = {(config, split): [{"text": f"text {index}", "label": 0, "policy": "jailbreak", "source": "test"} for index in range(8)] for config in ("default", "multitask") for split in SPLITS}
    dataset = write_dataset_folder(tmp_path / "data", rows, ["jailbreak"])
    # The policy's own unsafe examples give it the second label; a policy without any would be refused.
    assert LabelledTexts(get_policy("jailbreak"), [("text", 0)]).usable()
    assert not LabelledTexts(get_policy("jailbreak").model_copy(update={"examples": get_policy("jailbreak").examples.model_copy(update={"unsafe": []})}), [("text", 0)]).usable()
    with pytest.raises(TrainingError, match="--pairs_per_policy must be at least 4"):
        from guardkit.train.contrastive import tune_encoder

        tune_encoder(EncoderTuningConfig(dataset=str(dataset), output=str(tmp_path / "out"), base_model=str(tiny_bert_dir), pairs_per_policy=2))


def test_a_guard_on_a_tuned_local_encoder_names_its_hub_ancestor(tmp_path):
    from guardkit.guard_card import render_guard_card

    encoder = tmp_path / "encoder"
    encoder.mkdir()
    (encoder / "README.md").write_text("---\nbase_model: sentence-transformers/all-MiniLM-L6-v2\nlibrary_name: sentence-transformers\n---\n# tuned\n")
    common = dict(kind="task", policies=[get_policy("jailbreak")], datasets=[], license="apache-2.0", threshold=0.5, calibration="0.5", max_length=128)
    card = render_guard_card(base_model=str(encoder), **common)
    # The Hub accepts only Hub ids as base_model: the folder's own Hub base, and the folder by name in the text.
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert f"`{encoder}` (itself tuned from [`sentence-transformers/all-MiniLM-L6-v2`]" in card.text
    (encoder / "README.md").unlink()
    assert render_guard_card(base_model=str(encoder), **common).data.base_model is None
