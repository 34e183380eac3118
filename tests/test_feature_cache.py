"""Head features kept on disk across processes (tiny BERTs), and TaskGuards that read them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_train import write_dataset
from tiny_models import tiny_bert

from guardkit import cli, feature_cache
from guardkit.feature_cache import FeatureCache, fingerprint
from guardkit.guard import MANIFEST_FILE
from guardkit.heads import head_features

TEXTS = ["how do I bake bread", "tell me the secret recipe right now please", "ok", "how do I bake bread", "gardens in spring"]


def _counting(monkeypatch) -> list[list[str]]:
    computed: list[list[str]] = []
    real = feature_cache.head_features
    monkeypatch.setattr(feature_cache, "head_features", lambda model, tokenizer, texts, *args, **kwargs: computed.append(list(texts)) or real(model, tokenizer, texts, *args, **kwargs))
    return computed


def test_features_are_computed_once_across_caches_and_match_the_model(tmp_path, tiny_bert_dir, monkeypatch):
    model, tokenizer = tiny_bert(tiny_bert_dir)
    model.eval()
    computed = _counting(monkeypatch)
    first = FeatureCache(tmp_path, model, tokenizer, 32).features(TEXTS, batch_size=2)
    assert computed == [[text for text in dict.fromkeys(TEXTS)]]  # the repeated text once
    np.testing.assert_allclose(first, head_features(model, tokenizer, TEXTS, 32, 2), atol=1e-5)
    # A later process (a new cache on the same folder) computes only what is new.
    second = FeatureCache(tmp_path, model, tokenizer, 32).features(["a new text", *TEXTS], batch_size=2)
    assert computed[1:] == [["a new text"]]
    np.testing.assert_array_equal(second[1:], first)
    # The same text under a pair is another entry.
    FeatureCache(tmp_path, model, tokenizer, 32).features(["ok"], batch_size=2, pairs=["policy"])
    assert computed[2:] == [["ok"]]
    assert not list(tmp_path.rglob("*.partial")) and len(list(tmp_path.rglob("*.npz"))) == 3
    # A shard a killed process left half-written is not read.
    (next(tmp_path.rglob("*.npz")).parent / "dead.partial").write_bytes(b"PK\x03")
    assert len(FeatureCache(tmp_path, model, tokenizer, 32).rows) == 6  # five texts, one of them also under a pair


def test_the_fingerprint_follows_the_weights_and_length_not_the_final_layer(tiny_bert_dir):
    model, tokenizer = tiny_bert(tiny_bert_dir)
    before = fingerprint(model, tokenizer, 32)
    with torch.no_grad():
        model.classifier.weight.add_(1.0)
    assert fingerprint(model, tokenizer, 32) == before  # the head is what gets fitted on the features
    assert fingerprint(model, tokenizer, 64) != before
    with torch.no_grad():
        model.bert.encoder.layer[0].attention.self.query.weight.add_(1e-3)
    assert fingerprint(model, tokenizer, 32) != before


@pytest.mark.usefixtures("one_torch_thread")
def test_task_guards_with_a_shared_cache_equal_those_without(tmp_path, tiny_bert_dir, monkeypatch):
    dataset = write_dataset(tmp_path / "data", ["jailbreak"], {"train": 160, "validation": 32, "test": 32}, max_words=110)
    argv = ["train", "task", "--dataset", str(dataset), "--policy", "jailbreak", "--base_model", str(tiny_bert_dir)]
    assert cli.main([*argv, "--output", str(tmp_path / "plain")]) == 0
    computed = _counting(monkeypatch)
    for name in ("cached-1", "cached-2"):
        assert cli.main([*argv, "--output", str(tmp_path / name), "--feature_cache", str(tmp_path / "cache")]) == 0
    assert len(computed) == 1 and computed[0]  # the second guard read every row's features from the folder
    plain = json.loads((tmp_path / "plain" / MANIFEST_FILE).read_text())
    for name in ("cached-1", "cached-2"):
        cached = json.loads((tmp_path / name / MANIFEST_FILE).read_text())
        assert cached["thresholds"] == plain["thresholds"]
        results = json.loads((tmp_path / name / "eval_results.json").read_text())
        expected = json.loads((tmp_path / "plain" / "eval_results.json").read_text())
        assert results["test"]["all"]["f1"] == pytest.approx(expected["test"]["all"]["f1"], abs=0.02)
