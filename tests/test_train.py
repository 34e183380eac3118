"""Training guards on tiny models built in the test, calibration, model cards; one integration run on MiniLM."""

from __future__ import annotations

import dataclasses
import json
import random

import numpy as np
import pytest
import torch
import yaml
from huggingface_hub import ModelCard
from tiny_models import tiny_bert, write_dataset_folder
from transformers import AutoModelForCausalLM, pipeline

from guardkit import cli
from guardkit.calibration import (
    DEFAULT_EVERYDAY_FPR,
    CalibrationError,
    calibrate_threshold,
    everyday_calibration,
    threshold_metrics,
    threshold_rule,
)
from guardkit.config import parse_config
from guardkit.data.io import SPLITS
from guardkit.guard import MANIFEST_FILE, Guard
from guardkit.policies import get_policy
from guardkit.train.common import EVAL_RESULTS_FILE, TrainingError, checkpoint_dir
from guardkit.train.config import JudgeGuardConfig, MultiTaskGuardConfig, TaskGuardConfig
from guardkit.train.encoder import calibrate_per_policy
from guardkit.train.judge import train_judge_guard
from guardkit.train.multitask import train_multitask_guard
from guardkit.train.task import train_task_guard

FILLER = "the report weather garden coffee river meeting budget train music window paper city morning table".split()
MARKER = "purple elephant protocol"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Tiny models train fastest on one thread, and the shared test machine is busy.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def marker_text(rng: random.Random, unsafe: bool, words: int) -> str:
    tokens = [rng.choice(FILLER) for _ in range(words)]
    if unsafe:
        at = rng.randrange(len(tokens) + 1)
        tokens[at:at] = MARKER.split()
    return " ".join(tokens)


def write_dataset(folder, policy_ids, sizes, max_words, seed=0):
    """A dataset folder in the documented layout: unsafe = the text contains MARKER, for every policy."""
    rng = random.Random(seed)
    rows = {
        (config, split): [
            {
                "text": marker_text(rng, index % 2 == 1, rng.randint(3, max_words)),
                "label": index % 2,
                "policy": policy_ids[(index // 2) % len(policy_ids)],
                "source": "test",
            }
            for index in range(size)
        ]
        for config in ("default", "multitask")
        for split, size in sizes.items()
    }
    return write_dataset_folder(folder, rows, policy_ids)


# ---------------------------------------------------------------- calibration


def test_max_f1_threshold_separates_and_sits_between_scores():
    labels = [0, 0, 0, 1, 1, 1]
    scores = [0.1, 0.2, 0.4, 0.6, 0.7, 0.9]
    calibration = calibrate_threshold(labels, scores)
    assert calibration.objective == "max_f1" and calibration.metrics.f1 == 1.0
    assert calibration.threshold == pytest.approx(0.5)


def test_max_f1_with_overlap_and_ties():
    labels = [0, 1, 0, 1, 1, 0, 1]
    scores = [0.2, 0.3, 0.5, 0.5, 0.8, 0.1, 0.9]
    calibration = calibrate_threshold(labels, scores)
    best = max(threshold_metrics(labels, scores, t).f1 for t in sorted(set(scores)))
    assert calibration.metrics.f1 == pytest.approx(best)
    assert calibration.metrics == threshold_metrics(labels, scores, calibration.threshold)


def test_target_fpr_gives_best_recall_within_the_budget():
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(200, int), np.ones(100, int)]
    scores = np.r_[rng.beta(2, 5, 200), rng.beta(5, 2, 100)]
    for target in (0.0, 0.05, 0.2):
        calibration = calibrate_threshold(labels, scores, target_fpr=target)
        assert calibration.metrics.fpr <= target
        lower = np.nextafter(calibration.threshold, -1)
        looser = threshold_metrics(labels, scores, float(scores[scores < calibration.threshold].max(initial=lower)))
        assert looser.fpr > target or looser.recall == calibration.metrics.recall


def test_calibration_refuses_one_class_and_bad_targets():
    with pytest.raises(CalibrationError, match="no unsafe examples"):
        calibrate_threshold([0, 0], [0.1, 0.2])
    with pytest.raises(CalibrationError, match="target FPR"):
        calibrate_threshold([0, 1], [0.1, 0.2], target_fpr=1.5)
    with pytest.raises(CalibrationError, match="same length"):
        calibrate_threshold([0, 1], [0.1])


def test_threshold_rule_calibrates_on_validation_or_keeps_the_heads_boundary():
    labels, scores = [0, 0, 1, 1], [0.1, 0.7, 0.8, 0.9]
    assert threshold_rule("validation")(labels, scores).threshold == calibrate_threshold(labels, scores).threshold
    uncalibrated = threshold_rule("none", target_fpr=0.0)(labels, scores)
    assert uncalibrated.threshold == 0.5 and uncalibrated.metrics.fpr == 0.5
    with pytest.raises(CalibrationError, match="calibration must be one of validation, none, everyday"):
        threshold_rule("median")


def test_everyday_calibration_raises_the_boundary_until_few_everyday_texts_are_flagged():
    rng = np.random.default_rng(0)
    everyday_scores = rng.uniform(0.0, 0.9, size=200)
    labels = np.r_[np.zeros(200, dtype=int), np.ones(20, dtype=int), np.zeros(20, dtype=int)]
    scores = np.r_[everyday_scores, np.full(20, 0.95), np.full(20, 0.99)]  # the last safe rows are no everyday text
    everyday = np.r_[np.ones(200, dtype=bool), np.zeros(40, dtype=bool)]
    for target in (0.02, 0.1):
        calibration = everyday_calibration(labels, scores, everyday, target)
        assert calibration.objective == "everyday_fpr" and calibration.target_fpr == target
        assert np.mean(everyday_scores >= calibration.threshold) <= target < np.mean(everyday_scores >= calibration.threshold - 0.01)
    assert threshold_rule("everyday")(labels, scores, everyday).threshold == everyday_calibration(labels, scores, everyday, DEFAULT_EVERYDAY_FPR).threshold
    # Never below the heads' own boundary, which already flags fewer than the target here.
    quiet = everyday_calibration(labels, np.r_[everyday_scores / 3, scores[200:]], everyday, 0.02)
    assert quiet.threshold == 0.5
    # Too few everyday rows, or none known (a policy the guard never saw): the boundary as it is.
    assert everyday_calibration(labels[160:], scores[160:], everyday[160:]).objective == "fixed"
    assert threshold_rule("everyday")(labels, scores).threshold == 0.5
    with pytest.raises(CalibrationError, match="every row"):
        everyday_calibration(labels, scores, everyday[1:])


def test_per_policy_calibration_reads_each_policys_everyday_rows():
    labels = np.r_[np.zeros(100, dtype=int), np.ones(5, dtype=int), np.zeros(100, dtype=int), np.ones(5, dtype=int)]
    scores = np.r_[np.linspace(0.0, 0.99, 100), np.full(5, 0.995), np.linspace(0.0, 0.4, 100), np.full(5, 0.9)]
    policies = np.array(["loud"] * 105 + ["quiet"] * 105)
    everyday = labels == 0
    overall, per_policy = calibrate_per_policy(labels, scores, policies, threshold_rule("everyday"), everyday)
    assert per_policy["loud"].threshold > 0.96 and per_policy["quiet"].threshold == 0.5 and overall.threshold == 0.5



# ---------------------------------------------------------------- TaskGuard


@pytest.fixture(scope="module")
def marker_dataset(tmp_path_factory):
    sizes = {"train": 320, "validation": 64, "test": 64}
    return write_dataset(tmp_path_factory.mktemp("marker-data"), ["jailbreak"], sizes, max_words=110)


@pytest.fixture(scope="module")
def task_guard(tmp_path_factory, tiny_bert_dir, marker_dataset):
    output = tmp_path_factory.mktemp("task") / "guard"
    argv = [
        "train", "task", "--dataset", str(marker_dataset), "--policy", "jailbreak", "--output", str(output),
        "--base_model", str(tiny_bert_dir), "--epochs", "6", "--learning_rate", "3e-3", "--batch_size", "16",
        "--repo_id", "acme/jailbreak-guard",
    ]  # fmt: skip
    assert cli.main(argv) == 0
    return output


def test_task_guard_folder_is_complete(task_guard):
    names = {path.name for path in task_guard.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", MANIFEST_FILE, "README.md", "training.yaml", EVAL_RESULTS_FILE} <= names
    assert "checkpoints" not in names and not any(name.endswith(".bin") for name in names)
    manifest = json.loads((task_guard / MANIFEST_FILE).read_text())
    assert manifest["kind"] == "task" and manifest["input_format"] == "text" and manifest["max_length"] == 128
    assert list(manifest["policies"]) == ["jailbreak"] and 0 < manifest["threshold"] < 1
    assert manifest["datasets"][0]["id"].endswith("marker-data0")
    results = json.loads((task_guard / EVAL_RESULTS_FILE).read_text())
    assert results["calibration"]["threshold"] == manifest["threshold"]
    assert results["test"]["all"]["f1"] >= 0.9  # the marker is easy: a guard that did not learn it fails here
    # training.yaml reads back through --config into the same options.
    recorded = parse_config(TaskGuardConfig, ["--config", str(task_guard / "training.yaml")], "x", "y")
    assert recorded.policy == "jailbreak" and recorded.learning_rate == 3e-3 and recorded.output == str(task_guard)


def test_default_task_guard_is_the_prototype_head_at_its_own_boundary(tmp_path, tiny_bert_dir, marker_dataset):
    output = tmp_path / "guard"
    argv = ["train", "task", "--dataset", str(marker_dataset), "--policy", "jailbreak", "--output", str(output), "--base_model", str(tiny_bert_dir)]
    assert cli.main(argv) == 0
    manifest = json.loads((output / MANIFEST_FILE).read_text())
    assert manifest["thresholds"] == {"jailbreak": 0.5}
    results = json.loads((output / EVAL_RESULTS_FILE).read_text())
    assert results["calibration"]["objective"] == "fixed" and results["training"]["steps"] == 0
    assert "No fine-tuning (--epochs 0)" in (output / "README.md").read_text()


def test_task_guard_head_also_fits_the_cross_policy_rows(tmp_path, tiny_bert_dir):
    rng = random.Random(4)
    own = [{"text": marker_text(rng, index % 2 == 1, 8), "label": index % 2, "policy": "jailbreak", "source": "test"} for index in range(24)]
    # Texts written for another policy, labelled under jailbreak: only the multitask config holds them.
    cross = [{"text": f"{MARKER} {marker_text(rng, False, 6)} recipe {index}", "label": 0, "policy": "jailbreak", "source": "test"} for index in range(6)]
    rows = {("default", split): own for split in SPLITS} | {("multitask", split): own + cross for split in SPLITS}
    dataset = write_dataset_folder(tmp_path / "data", rows, ["jailbreak"])
    examples = len(get_policy("jailbreak").all_examples())
    for weight, expected in (("5", len(own) + examples + len(cross)), ("0", len(own) + examples)):
        output = tmp_path / f"guard-{weight}"
        argv = ["train", "task", "--dataset", str(dataset), "--policy", "jailbreak", "--output", str(output), "--base_model", str(tiny_bert_dir)]
        assert cli.main([*argv, "--cross_policy_weight", weight]) == 0
        assert json.loads((output / EVAL_RESULTS_FILE).read_text())["training"]["examples"] == expected


def test_task_guard_card_front_matter(task_guard):
    card = ModelCard.load(task_guard / "README.md")
    data = card.data.to_dict()
    assert data["pipeline_tag"] == "text-classification" and data["library_name"] == "transformers"
    assert data["license"] == "apache-2.0" and "guardrails" in data["tags"]
    assert "base_model" not in data  # a local folder is no Hub id; see the MiniLM test for the real one
    results = data["model-index"][0]["results"][0]
    assert results["dataset"]["split"] == "test"
    f1 = next(metric for metric in results["metrics"] if metric["type"] == "f1")
    assert f1["value"] == pytest.approx(json.loads((task_guard / EVAL_RESULTS_FILE).read_text())["test"]["all"]["f1"], abs=1e-4)
    assert 'pipeline("text-classification", model=\'acme/jailbreak-guard\')' in card.text
    assert "Guard.from_pretrained('acme/jailbreak-guard')" in card.text


def test_task_guard_loads_with_pipeline_and_guard(task_guard):
    rng = random.Random(7)
    texts = [marker_text(rng, unsafe, 12) for unsafe in (False, True, False, True)]
    guard = Guard.from_pretrained(task_guard)
    verdicts = guard.check(texts)
    assert [verdict.label for verdict in verdicts] == ["safe", "unsafe", "safe", "unsafe"]
    pipe = pipeline("text-classification", model=str(task_guard))
    assert [result["label"] for result in pipe(texts)] == ["safe", "unsafe", "safe", "unsafe"]
    unsafe_scores = [next(item["score"] for item in result if item["label"] == "unsafe") for result in pipe(texts, top_k=None)]
    np.testing.assert_allclose(unsafe_scores, [verdict.score for verdict in verdicts], atol=1e-5)


def test_sliding_window_catches_the_marker_beyond_the_model_limit(task_guard):
    guard = Guard.from_pretrained(task_guard)
    # Whether some window reaches the marker, not how windows combine (tests/test_guard.py covers that):
    # this tiny guard scores the marker alone at ~0.54, which length_adjusted_max's discount of six
    # windows takes under its 0.5 threshold.
    guard.manifest.window_aggregation = "max"
    rng = random.Random(3)
    filler = " ".join(rng.choice(FILLER) for _ in range(3 * 128))
    assert len(guard.tokenizer(filler)["input_ids"]) >= 3 * 128
    at_end, clean, at_start = f"{filler} {MARKER}", filler, f"{MARKER} {filler}"
    labels = [verdict.label for verdict in guard.check([at_end, clean, at_start])]
    assert labels == ["unsafe", "safe", "unsafe"]


def test_resuming_with_other_options_is_refused(tmp_path):
    config = TaskGuardConfig(dataset="d", output=str(tmp_path), policy="jailbreak")
    folder, resume_from = checkpoint_dir(config)
    assert resume_from is None
    (folder / "checkpoint-5").mkdir()
    (folder / "checkpoint-5" / "trainer_state.json").write_text("{}")
    assert checkpoint_dir(config)[1] == str(folder / "checkpoint-5")  # same options: resumed
    with pytest.raises(TrainingError, match="learning_rate"):
        checkpoint_dir(dataclasses.replace(config, learning_rate=1.0))


def test_task_guard_errors(tmp_path, marker_dataset, tiny_bert_dir):
    with pytest.raises(TrainingError, match="no training rows for policy 'self_harm'"):
        train_task_guard(TaskGuardConfig(dataset=str(marker_dataset), output=str(tmp_path / "a"), policy="self_harm"))
    with pytest.raises(TrainingError, match="exceeds the 128-token limit"):
        train_task_guard(
            TaskGuardConfig(dataset=str(marker_dataset), output=str(tmp_path / "b"), policy="jailbreak", base_model=str(tiny_bert_dir), max_length=512)
        )


# ---------------------------------------------------------------- MultiTaskGuard


@pytest.fixture(scope="module")
def pair_model_dir(tmp_path_factory, tiny_bert_dir):
    """A tiny BERT with room for the shipped instructions (120-170 tokens) beside a text."""
    folder = tmp_path_factory.mktemp("tiny-bert-512")
    model, tokenizer = tiny_bert(tiny_bert_dir, positions=512)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_multitask_guard_with_holdout(tmp_path, pair_model_dir):
    policies = ["jailbreak", "self_harm", "privacy_pii"]
    dataset = write_dataset(tmp_path / "data", policies, {"train": 192, "validation": 48, "test": 48}, max_words=30)
    output = tmp_path / "guard"
    config = MultiTaskGuardConfig(
        dataset=str(dataset), output=str(output), base_model=str(pair_model_dir), holdout_policies="privacy_pii",
        epochs=4, learning_rate=3e-3, batch_size=16, pair_input="instruction", max_length=256,
    )  # fmt: skip
    train_multitask_guard(config)
    manifest = json.loads((output / MANIFEST_FILE).read_text())
    assert manifest["kind"] == "multitask" and manifest["input_format"] == "instruction_pair"
    assert manifest["policies"] == {policy: get_policy(policy).instruction() for policy in ("jailbreak", "self_harm")}
    results = json.loads((output / EVAL_RESULTS_FILE).read_text())
    assert results["holdout_policies"] == ["privacy_pii"]
    assert {"trained policies", "held-out policies (zero-shot)", "privacy_pii (zero-shot)", "jailbreak"} <= set(results["test"])
    card = ModelCard.load(output / "README.md")
    metric_names = [m["name"] for m in card.data.to_dict()["model-index"][0]["results"][0]["metrics"]]
    assert "F1 (privacy_pii (zero-shot))" in metric_names

    guard = Guard.from_pretrained(output)
    text = f"the river {MARKER} today"
    pipe = pipeline("text-classification", model=str(output))
    for policy in ("jailbreak", get_policy("privacy_pii")):  # trained by id; held out, as a Policy object
        instruction = get_policy(policy).instruction() if isinstance(policy, str) else policy.instruction()
        expected = {item["label"]: item["score"] for item in pipe({"text": instruction, "text_pair": text}, top_k=None)}
        assert guard.score(text, policy=policy)[0] == pytest.approx(expected["unsafe"], abs=1e-5)
    verdicts = guard.check([text, "the river today"])
    assert [(verdict.text_index, verdict.policy) for verdict in verdicts] == [(0, "jailbreak"), (0, "self_harm"), (1, "jailbreak"), (1, "self_harm")]


def test_multitask_errors(tmp_path, tiny_bert_dir, pair_model_dir):
    dataset = write_dataset(tmp_path / "data", ["jailbreak"], {"train": 8, "validation": 4}, max_words=5)
    with pytest.raises(TrainingError, match="without rows"):
        train_multitask_guard(MultiTaskGuardConfig(dataset=str(dataset), output=str(tmp_path / "a"), holdout_policies="self_harm"))
    with pytest.raises(TrainingError, match="leaves too little room for the text within --max_length 64; use --max_length .* or --pair_input rule"):
        train_multitask_guard(
            MultiTaskGuardConfig(dataset=str(dataset), output=str(tmp_path / "b"), base_model=str(pair_model_dir), max_length=64, pair_input="instruction")
        )
    with pytest.raises(TrainingError, match="more than the 128-token limit .* use --pair_input rule"):
        train_multitask_guard(
            MultiTaskGuardConfig(dataset=str(dataset), output=str(tmp_path / "c"), base_model=str(tiny_bert_dir), max_length=128, pair_input="instruction")
        )
    with pytest.raises(TrainingError, match="--pair_input must be one of reader, rule, instruction"):
        train_multitask_guard(MultiTaskGuardConfig(dataset=str(dataset), output=str(tmp_path / "d"), pair_input="sentences"))


def test_rule_pair_multitask_guard_reads_policies_a_rule_at_a_time(tmp_path, tiny_bert_dir):
    policies = ["jailbreak", "self_harm"]
    dataset = write_dataset(tmp_path / "data", policies, {"train": 192, "validation": 48, "test": 48}, max_words=30)
    output = tmp_path / "guard"
    train_multitask_guard(
        MultiTaskGuardConfig(
            dataset=str(dataset), output=str(output), base_model=str(tiny_bert_dir), pair_input="rule", epochs=4, learning_rate=3e-3, batch_size=16,
            max_length=128, calibration="validation",
        )
    )
    manifest = json.loads((output / MANIFEST_FILE).read_text())
    assert manifest["input_format"] == "rule_pair" and set(manifest["thresholds"]) == set(policies)
    results = json.loads((output / EVAL_RESULTS_FILE).read_text())
    assert results["test"]["all"]["f1"] >= 0.9  # the marker is unsafe under every rule
    guard = Guard.from_pretrained(output)
    # A policy far longer than the model's 128 tokens is read rule by rule, not refused.
    long_policy = get_policy("jailbreak").model_copy(update={"id": "house_rules", "disallowed": [f"House rule {n}: no {word}" for n, word in enumerate(FILLER)]})
    scores = guard.score([f"the river {MARKER} today", "the river today"], policy=long_policy)
    assert scores[0] > scores[1]
    card = ModelCard.load(output / "README.md")
    assert "distinct rule instructions" in card.text and "rule_instructions()" in card.text


# ---------------------------------------------------------------- JudgeGuard


def test_judge_guard_trains_for_a_few_steps(tmp_path, tiny_causal_lm_dir):
    dataset = write_dataset(tmp_path / "data", ["jailbreak", "self_harm"], {"train": 16, "validation": 8, "test": 8}, max_words=20)
    output = tmp_path / "judge"
    config = JudgeGuardConfig(dataset=str(dataset), output=str(output), base_model=str(tiny_causal_lm_dir), max_steps=3, batch_size=4, learning_rate=1e-3)
    train_judge_guard(config)
    manifest = json.loads((output / MANIFEST_FILE).read_text())
    assert manifest["kind"] == "judge" and manifest["input_format"] == "judge_prompt"
    assert set(manifest["policies"]) == {"jailbreak", "self_harm"}
    assert AutoModelForCausalLM.from_pretrained(output).config.num_hidden_layers == 2
    assert not (output / "checkpoints").exists()
    recorded = yaml.safe_load((output / "training.yaml").read_text())
    assert recorded["max_steps"] == 3 and recorded["lora_r"] == 0
    card = ModelCard.load(output / "README.md")
    assert card.data.pipeline_tag == "text-generation" and "guardrails" in card.data.tags
    guard = Guard.from_pretrained(output)
    scores = guard.score(["hello there", f"the {MARKER}"], policy="jailbreak")
    assert scores.shape == (2,) and ((scores > 0) & (scores < 1)).all()
    assert guard.check("hello", policies="self_harm")[0].threshold == manifest["threshold"]


def test_judge_guard_with_lora(tmp_path, tiny_causal_lm_dir):
    dataset = write_dataset(tmp_path / "data", ["jailbreak"], {"train": 8, "validation": 4}, max_words=10)
    output = tmp_path / "judge"
    train_judge_guard(
        JudgeGuardConfig(dataset=str(dataset), output=str(output), base_model=str(tiny_causal_lm_dir), max_steps=2, batch_size=4, lora_r=4)
    )
    names = {path.name for path in output.iterdir()}
    assert "model.safetensors" in names and "adapter_config.json" not in names  # LoRA merged into plain weights
    assert AutoModelForCausalLM.from_pretrained(output) is not None


# ---------------------------------------------------------------- integration: the shipped MiniLM


@pytest.mark.integration
def test_minilm_task_guard_few_steps(tmp_path, marker_dataset):
    output = tmp_path / "minilm-guard"
    train_task_guard(
        TaskGuardConfig(dataset=str(marker_dataset), output=str(output), policy="jailbreak", max_steps=4, batch_size=8, max_length=64)
    )
    card = ModelCard.load(output / "README.md")
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert json.loads((output / MANIFEST_FILE).read_text())["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    pipe = pipeline("text-classification", model=str(output))
    guard = Guard.from_pretrained(output)
    result = {item["label"]: item["score"] for item in pipe("the weather report", top_k=None)}
    assert guard.score("the weather report")[0] == pytest.approx(result["unsafe"], abs=1e-5)


def test_policy_examples_join_train_only():
    from datasets import DatasetDict

    from guardkit.data.schema import rows_to_dataset
    from guardkit.policies import get_policy
    from guardkit.train.common import with_policy_examples

    policy = get_policy("self_harm")
    generated = rows_to_dataset([{"text": "generated row", "label": "safe", "policy": "self_harm"}])
    splits = with_policy_examples(DatasetDict(train=generated, validation=generated, test=generated), [policy])
    assert len(splits["validation"]) == len(splits["test"]) == 1
    assert len(splits["train"]) == 1 + len(policy.all_examples())
    added = splits["train"].select(range(1, len(splits["train"])))
    assert set(added["source"]) == {"policy-example"}
    assert sum(added["label"]) == len(policy.examples.unsafe)
    assert splits["train"].features == generated.features
