"""The mean-pooling layer inside a standard classifier, and heads fitted on frozen features (tiny BERTs)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_models import tiny_bert
from transformers import AutoModelForSequenceClassification, pipeline

from guardkit.heads import fit_logistic, head_features, set_binary_head, set_multilabel_head
from guardkit.pooling import MEAN_SCALE, add_mean_pooling, base_pooling, has_mean_pooling, resolve_pooling

TEXTS = ["how do I bake bread", "tell me the secret recipe right now please", "ok", "a much longer text about gardens and rivers in spring"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _token_mean(model, tokenizer, texts):
    """The layer-normalised mean of the last encoder layer's token states over unmasked tokens."""
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model.bert(**batch, output_hidden_states=True).hidden_states[-2]
    mask = batch["attention_mask"].unsqueeze(-1).float()
    mean = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.layer_norm(mean, (mean.shape[-1],), eps=model.config.layer_norm_eps), batch


def test_the_pooling_layer_turns_cls_into_the_token_mean_with_padding(tiny_bert_dir):
    model, tokenizer = tiny_bert(tiny_bert_dir)
    add_mean_pooling(model)
    model.eval()
    assert model.config.num_hidden_layers == 3 and has_mean_pooling(model)
    expected, batch = _token_mean(model, tokenizer, TEXTS)
    with torch.no_grad():
        cls_state = model.bert(**batch).last_hidden_state[:, 0]
    # The residual [CLS] state enters LayerNorm divided by MEAN_SCALE: a few 1e-3 at most.
    assert torch.allclose(cls_state, expected, atol=50 / MEAN_SCALE)
    assert not any(parameter.requires_grad for parameter in model.bert.encoder.layer[-1].parameters())


def test_a_saved_mean_pooling_guard_loads_in_a_bare_pipeline(tiny_bert_dir, tmp_path):
    model, tokenizer = tiny_bert(tiny_bert_dir)
    add_mean_pooling(model)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert has_mean_pooling(reloaded)
    expected, _ = _token_mean(reloaded, tokenizer, TEXTS[:1])
    pipe = pipeline("text-classification", model=str(tmp_path))
    assert {item["label"] for item in pipe(TEXTS[0], top_k=None)} == {"safe", "unsafe"}
    with torch.no_grad():
        state = reloaded.bert(**tokenizer(TEXTS[:1], return_tensors="pt")).last_hidden_state[:, 0]
    assert torch.allclose(state, expected, atol=50 / MEAN_SCALE)


def test_pooling_choice_follows_the_sentence_transformers_config(tmp_path, minilm_dir):
    assert base_pooling(minilm_dir) == "mean" and resolve_pooling("auto", minilm_dir, "bert") == "mean"
    assert base_pooling(tmp_path) == "cls" and resolve_pooling("auto", tmp_path, "bert") == "cls"
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    assert resolve_pooling("auto", tmp_path, "bert") == "cls" and resolve_pooling("mean", tmp_path, "deberta-v2") == "mean"
    assert resolve_pooling("auto", minilm_dir, "deberta-v2") == "cls"
    with pytest.raises(ValueError, match="pooling must be one of"):
        resolve_pooling("max", minilm_dir, "bert")


def test_fitted_binary_head_is_what_the_model_computes(tiny_bert_dir):
    model, tokenizer = tiny_bert(tiny_bert_dir)
    add_mean_pooling(model)
    features = head_features(model, tokenizer, TEXTS, 64, 2)
    labels = np.array([0, 1, 0, 1])
    weights, bias, accuracy = fit_logistic(features, labels, c=100.0, balanced=True)
    set_binary_head(model, weights, bias)
    with torch.no_grad():
        logits = model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits
    p_unsafe = torch.softmax(logits, dim=-1)[:, 1].numpy()
    np.testing.assert_allclose(p_unsafe, 1 / (1 + np.exp(-(features @ weights + bias))), atol=1e-5)
    assert accuracy == 1.0 and ((p_unsafe > 0.5) == labels.astype(bool)).all()


def test_multilabel_head_gives_one_sigmoid_per_label(tiny_bert_dir):
    model, tokenizer = tiny_bert(tiny_bert_dir)
    model.classifier = torch.nn.Linear(model.config.hidden_size, 3)
    model.config.num_labels = 3
    features = head_features(model, tokenizer, TEXTS, 64, 4)
    weights = np.random.default_rng(0).normal(size=(3, features.shape[1])).astype(np.float32)
    biases = np.array([0.1, -0.2, 0.3], dtype=np.float32)
    set_multilabel_head(model, weights, biases)
    with torch.no_grad():
        logits = model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits.numpy()
    np.testing.assert_allclose(logits, features @ weights.T + biases, atol=1e-4)


def test_a_heavier_row_moves_the_logistic_boundary_its_way():
    # Two rows at the same point with opposite labels: the weighted one decides which side the point is on.
    features = np.array([[0.0], [0.0], [1.0], [-1.0]])
    labels = np.array([1, 0, 1, 0])
    for weight_of_unsafe, expected in [(20.0, 1), (1 / 20, 0)]:
        weights, bias, _ = fit_logistic(features, labels, c=1.0, balanced=True, sample_weight=np.array([weight_of_unsafe, 1.0, 1.0, 1.0]))
        assert int(bias > 0) == expected  # the decision at x = 0 is the sign of the bias
