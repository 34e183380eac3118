"""guardkit merge end to end on 2-layer models trained in the test, plus the checks that refuse bad merges."""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig, BertForSequenceClassification

from guardkit.cli import main
from guardkit.data.io import split_file
from guardkit.data.schema import ID2LABEL, LABEL2ID, rows_to_dataset
from guardkit.guard import Guard, GuardManifest, save_guard
from guardkit.guard_card import render_guard_card
from guardkit.merge.config import MergeConfig
from guardkit.merge.recipe import MergeRecipe, RecipeError
from guardkit.merge.scoring import EncodedSplit
from guardkit.merge.search import MergeConfigError, run_merge
from guardkit.merge.workspace import MergeWorkspace
from guardkit.merge.sources import (
    MergeSource,
    MergeSourceError,
    check_compatible,
    check_same_parameters,
    check_same_tokenizer,
    load_base_encoder,
    load_sources,
)
from guardkit.policies import Policy

NEUTRAL = "the weather is nice today we met at noon my friend likes music books and a long walk in the garden".split()
KEYWORDS = {"fruit_talk": ["banana", "apple", "mango", "cherry"], "vehicle_talk": ["truck", "bus", "car", "train"]}


def _policy(policy_id: str, thing: str) -> Policy:
    return Policy(
        id=policy_id,
        name=f"{thing.title()} talk",
        description=f"Flags texts that mention a {thing}.",
        allowed=["Texts about anything else"],
        disallowed=[f"Any mention of a {thing}"],
        examples={"safe": ["we met at noon"], "unsafe": [f"look at that {KEYWORDS[policy_id][0]}"]},
    )


POLICIES = {"fruit_talk": _policy("fruit_talk", "fruit"), "vehicle_talk": _policy("vehicle_talk", "vehicle")}


def _rows(policy_id: str, count: int, rng: random.Random) -> list[dict]:
    """Four-word texts; unsafe ones hold one of the policy's keywords, safe ones a fourth neutral word (same length)."""
    rows = []
    for index in range(count):
        words = rng.sample(NEUTRAL, 3)
        unsafe = index % 2 == 1
        words.insert(rng.randrange(4), rng.choice(KEYWORDS[policy_id]) if unsafe else rng.choice(NEUTRAL))
        rows.append({"text": " ".join(words), "label": int(unsafe), "policy": policy_id, "source": "test"})
    return rows


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from a second thread, and lose much when other processes hold the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def toy_dataset(tmp_path_factory):
    """A two-policy guardkit dataset folder (both configs) and its policies."""
    folder = tmp_path_factory.mktemp("toy-dataset")
    rng = random.Random(0)
    for split, count in (("train", 48), ("validation", 32), ("test", 32)):
        rows = [row for policy_id in POLICIES for row in _rows(policy_id, count, rng)]
        for config in ("default", "multitask"):
            path = split_file(folder, split, config)
            path.parent.mkdir(parents=True, exist_ok=True)
            rows_to_dataset(rows).to_parquet(str(path))
    (folder / "policies").mkdir()
    for policy in POLICIES.values():
        (folder / "policies" / f"{policy.id}.yaml").write_text(policy.to_yaml(), encoding="utf-8")
    return folder


def _save(folder, model, tokenizer, kind: str, policy: Policy, base_model: str) -> None:
    card = render_guard_card(
        kind=kind,
        policies=[policy],
        base_model=base_model,
        datasets=[],
        license="apache-2.0",
        threshold=0.5,
        calibration="fixed at 0.5 by the test",
        max_length=128,
    )
    save_guard(folder, model, tokenizer, kind=kind, policies=[policy], threshold=0.5, max_length=128, base_model=base_model, card=card)


def _train(base_dir, policy: Policy, pair_input: bool, seed: int):
    """Fine-tune the tiny base on one policy's keyword task: a TaskGuard (text) or a one-policy pair guard."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForSequenceClassification.from_pretrained(base_dir)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    rows = _rows(policy.id, 128, rng)
    model.train()
    for _ in range(80):
        batch = rng.sample(rows, 16)
        texts = [row["text"] for row in batch]
        encoded = (
            tokenizer([policy.instruction()] * 16, texts, padding=True, return_tensors="pt")
            if pair_input
            else tokenizer(texts, padding=True, return_tensors="pt")
        )
        loss = model(**encoded, labels=torch.tensor([row["label"] for row in batch])).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval(), tokenizer


@pytest.fixture(scope="module")
def toy_sources(tmp_path_factory, tiny_bert_dir):
    """A fruit TaskGuard (plain text) and a vehicle pair guard, both fine-tuned from the same tiny BERT."""
    root = tmp_path_factory.mktemp("toy-sources")
    fruit, vehicle = root / "fruit-taskguard", root / "vehicle-multitaskguard"
    _save(
        fruit, *_train(tiny_bert_dir, POLICIES["fruit_talk"], pair_input=False, seed=0), "task", POLICIES["fruit_talk"], str(tiny_bert_dir)
    )
    _save(
        vehicle,
        *_train(tiny_bert_dir, POLICIES["vehicle_talk"], pair_input=True, seed=0),
        "multitask",
        POLICIES["vehicle_talk"],
        str(tiny_bert_dir),
    )
    return [str(fruit), str(vehicle)]


def _weights(folder) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def test_search_beats_every_source_alone_and_writes_a_complete_uniguard(toy_sources, toy_dataset, tmp_path):
    output = tmp_path / "uniguard"
    config = MergeConfig(output=str(output), models=toy_sources, dataset=str(toy_dataset), method="task_arithmetic", trials=8)
    assert run_merge(config) == 0

    recipe = MergeRecipe.load(output / "merge.yaml")
    # Each source knows one policy's keywords; their merge knows both.
    assert recipe.search.fell_back_to is None and recipe.search.value > max(recipe.search.source_values.values())
    manifest = yaml.safe_load((output / "guardkit.json").read_text())
    assert (manifest["kind"], manifest["input_format"], manifest["pair_folder"]) == ("uniguard", "multilabel", "pair")
    assert set(manifest["policies"]) == set(POLICIES) == set(manifest["thresholds"])
    # By default a head's own boundary is raised only over enough everyday texts, which the toy data has none of.
    assert (recipe.calibration, recipe.target_fpr) == ("everyday", 0.01) and set(manifest["thresholds"].values()) == {0.5}
    assert "0.5, raised per policy until at most 0.01 of the everyday validation texts is flagged" in (output / "README.md").read_text()
    assert recipe.pair_source == toy_sources[1] and (output / "pair" / "guardkit.json").is_file()
    card = (output / "README.md").read_text()
    assert "fruit-taskguard" in card and "vehicle-multitaskguard" in card and "merge.yaml" in card
    assert "One head per policy" in card and "function_to_apply=\"sigmoid\"" in card
    table = (output / "search.csv").read_text().splitlines()
    assert len(table) == 1 + 8 and "f1.fruit_talk" in table[0] and "weight.0.all" in table[0] and "threshold.fruit_talk" in table[0]
    assert (output / "search.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The saved guard reads back through the Guard API and separates both policies on the test split.
    comparison = (output / "comparison.md").read_text()
    assert "UniGuard" in comparison and "TaskGuards" in comparison and "UniGuard beats every source here" in comparison
    guard = Guard.from_pretrained(output)
    unsafe, safe = "my friend likes banana", "my friend likes music"
    every = guard.score_all([unsafe, safe])
    assert every["fruit_talk"][0] > every["fruit_talk"][1]
    # A policy it never saw goes to the pair guard it carries.
    unseen = _policy("vehicle_talk", "vehicle").model_copy(update={"id": "transport_talk"})
    pair = Guard.from_pretrained(output / "pair")
    assert guard.score([unsafe], unseen)[0] == pytest.approx(pair.score([unsafe], unseen)[0], abs=1e-6)


def test_heads_are_refitted_only_when_the_encoder_changed(toy_sources, toy_dataset, monkeypatch):
    import guardkit.merge.workspace as workspace_module

    workspace = MergeWorkspace.open(toy_sources, str(toy_dataset))
    calls = []
    real = workspace_module.head_features
    monkeypatch.setattr(workspace_module, "head_features", lambda *args, **kwargs: calls.append(1) or real(*args, **kwargs))
    workspace.load_source(0)
    head = workspace.scorer.model.classifier.weight.detach().clone()
    first = workspace.fit_heads()
    assert workspace.fit_heads() == first and len(calls) == 1
    workspace.load_source(1)
    assert len(calls) == 2 and not torch.equal(workspace.scorer.model.classifier.weight, head)
    workspace.load_source(0)
    assert len(calls) == 3 and torch.equal(workspace.scorer.model.classifier.weight, head)


def test_sources_sharing_one_encoder_skip_the_search(toy_dataset, tiny_bert_dir, tmp_path):
    # Head-only guards (TaskGuards and a policy reader at --epochs 0) keep the base encoder: a merge cannot change it.
    sources = []
    for policy_id in POLICIES:
        folder = tmp_path / f"{policy_id}-taskguard"
        model, tokenizer = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir), AutoTokenizer.from_pretrained(tiny_bert_dir)
        _save(folder, model, tokenizer, "task", POLICIES[policy_id], str(tiny_bert_dir))
        sources.append(str(folder))
    output = tmp_path / "uniguard"
    assert run_merge(MergeConfig(output=str(output), models=sources, dataset=str(toy_dataset), trials=6, compare_split="")) == 0
    recipe = MergeRecipe.load(output / "merge.yaml")
    assert recipe.search.best_trial is None and recipe.search.trials == 0 and recipe.search.fell_back_to in sources
    assert not (output / "search.csv").exists()
    assert "no search ran" in (output / "README.md").read_text()
    assert set(Guard.from_pretrained(output).policy_ids) == set(POLICIES)


def test_recipe_replay_reproduces_a_stochastic_block_merge_bit_for_bit(toy_sources, toy_dataset, tmp_path):
    searched, replayed = tmp_path / "searched", tmp_path / "replayed"
    config = MergeConfig(
        output=str(searched),
        models=toy_sources,
        dataset=str(toy_dataset),
        method="dare",
        granularity="block",
        sampler="cmaes",
        trials=3,
        seed=5,
        calibration="validation",
        compare_split="",
    )
    run_merge(config)
    recipe = MergeRecipe.load(searched / "merge.yaml")
    assert recipe.calibration == "validation"
    assert list(recipe.sources[0].weights) == ["embeddings", "blocks.0", "blocks.1", "head"]
    assert set(recipe.parameters) == {"drop_rate"} and recipe.options == {"combine": "ties"}

    assert main(["merge", "--recipe", str(searched / "merge.yaml"), "--output", str(replayed), "--compare_split", ""]) == 0
    first, second = _weights(searched), _weights(replayed)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)
    assert yaml.safe_load((searched / "guardkit.json").read_text()) == yaml.safe_load((replayed / "guardkit.json").read_text())
    assert first["classifier.weight"].shape[0] == len(POLICIES)  # one head row per policy

    # The saved weights are those the best trial scored: the search's in-memory path (inputs stacked
    # once, reused by every trial, heads refitted each time) gives the same bits and the same objective.
    workspace = MergeWorkspace.open(toy_sources, str(toy_dataset), head_settings=recipe.heads)
    plan = workspace.plan("dare", recipe.options, "block", 1, recipe.seed, reuse_inputs=True)
    for _ in range(2):
        workspace.apply(plan, recipe.weights_by_group(), recipe.parameters)
    state = workspace.scorer.model.state_dict()
    assert all(torch.equal(state[name], first[name]) for name in first)
    if recipe.search.fell_back_to is None:
        validation = workspace.encoded_split("validation", config.max_validation_rows, config.seed)
        assert workspace.evaluate(validation, "mean_f1", recipe.calibration).value == recipe.search.value


def test_study_resumes_from_its_storage_and_refuses_other_settings(toy_sources, toy_dataset, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    common = dict(models=toy_sources, dataset=str(toy_dataset), method="linear", storage=storage, compare_split="")
    run_merge(MergeConfig(output=str(tmp_path / "first"), trials=2, **common))
    run_merge(MergeConfig(output=str(tmp_path / "second"), trials=4, **common))
    assert len((tmp_path / "second" / "search.csv").read_text().splitlines()) == 1 + 4
    with pytest.raises(MergeConfigError, match="started with other settings \\(method"):
        run_merge(MergeConfig(output=str(tmp_path / "third"), trials=5, **{**common, "method": "task_arithmetic"}))


def _memory_source(name: str, config: BertConfig, tokenizer) -> MergeSource:
    torch.manual_seed(0)
    manifest = GuardManifest(
        kind="multitask", input_format="instruction_pair", policies={"fruit_talk": "x"}, threshold=0.5, max_length=64, base_model="b"
    )
    return MergeSource(name, Guard(BertForSequenceClassification(config), tokenizer, manifest))


@pytest.fixture(scope="module")
def tiny_config(tiny_bert_dir) -> BertConfig:
    return BertConfig.from_pretrained(tiny_bert_dir)


def test_mismatched_architectures_name_what_differs(tiny_bert_dir, tiny_config):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    reference = _memory_source("a", tiny_config, tokenizer)
    heads = copy.deepcopy(tiny_config)
    heads.num_attention_heads = 4
    with pytest.raises(MergeSourceError, match="config field 'num_attention_heads': 2 in a, 4 in b"):
        check_compatible([reference, _memory_source("b", heads, tokenizer)])
    relabelled = copy.deepcopy(tiny_config)
    relabelled.id2label, relabelled.label2id = {0: "ok", 1: "bad"}, {"ok": 0, "bad": 1}
    with pytest.raises(MergeSourceError, match="label spaces differ"):
        check_compatible([reference, _memory_source("b", relabelled, tokenizer)])
    state = dict(reference.state)
    wider = {**state, "classifier.weight": torch.zeros(2, 64)}
    with pytest.raises(MergeSourceError, match=r"parameter 'classifier.weight' has shape \[2, 32\] in a but \[2, 64\] in b"):
        check_same_parameters("a", state, "b", wider)
    with pytest.raises(MergeSourceError, match="parameter 'classifier.bias' is in a but not in b"):
        check_same_parameters("a", state, "b", {name: value for name, value in state.items() if name != "classifier.bias"})


def test_mismatched_tokenizers_name_what_differs(tiny_bert_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    cased = AutoTokenizer.from_pretrained(tiny_bert_dir, do_lower_case=False)
    with pytest.raises(MergeSourceError, match="tokenizers differ in their normalizer"):
        check_same_tokenizer("a", tokenizer, "b", cased)
    grown = AutoTokenizer.from_pretrained(tiny_bert_dir)
    grown.add_tokens(["zzzguardkit"])
    with pytest.raises(MergeSourceError, match=f"a has {len(tokenizer)} tokens, b {len(tokenizer) + 1}"):
        check_same_tokenizer("a", tokenizer, "b", grown)


def test_base_model_must_match_the_sources(toy_sources, tiny_config, tmp_path):
    sources = load_sources(toy_sources)
    other = copy.deepcopy(tiny_config)
    other.intermediate_size = 48
    BertForSequenceClassification(other).save_pretrained(tmp_path / "other-base")
    with pytest.raises(MergeSourceError, match="config field 'intermediate_size': 64 in .*fruit-taskguard, 48 in base model"):
        load_base_encoder(str(tmp_path / "other-base"), sources[0])
    with pytest.raises(MergeSourceError, match="at least two source guards"):
        load_sources(toy_sources[:1])


def test_everyday_calibration_raises_a_threshold_only_over_enough_everyday_rows(toy_sources):
    # "fruit": 100 everyday safe rows (a benign corpus as source), ten of them scored 0.60-0.69, and 10 unsafe rows; at
    # most 2% of the everyday rows may be flagged, so its threshold rises until two of them are. "vehicle": 10 unsafe
    # rows and 20 everyday ones, too few to place a 2% quantile on: it keeps 0.5 although they all score 0.7.
    everyday = "corpus:chatterbot-en"
    rows = [{"text": f"fruit everyday {n}", "label": 0, "policy": "fruit", "source": everyday} for n in range(100)]
    rows += [{"text": f"fruit unsafe {n}", "label": 1, "policy": "fruit", "source": "test"} for n in range(10)]
    rows += [{"text": f"vehicle unsafe {n}", "label": 1, "policy": "vehicle", "source": "test"} for n in range(10)]
    rows += [{"text": f"vehicle everyday {n}", "label": 0, "policy": "vehicle", "source": everyday} for n in range(20)]
    encoded = EncodedSplit.build(rows_to_dataset(rows), ["fruit", "vehicle"], Guard.from_pretrained(toy_sources[0]))
    assert encoded.everyday.tolist() == [row["source"] == everyday for row in rows]
    scores = np.array([0.6 + n / 100 if n < 10 else 0.1 for n in range(100)] + [0.9] * 20 + [0.7] * 20)
    thresholds = encoded.calibrate(scores, "everyday", 0.02)
    assert (scores[:100] >= thresholds["fruit"]).sum() == 2 and thresholds["fruit"] > 0.6
    assert thresholds["vehicle"] == 0.5
    assert encoded.calibrate(scores, "none", None) == {"fruit": 0.5, "vehicle": 0.5}


def test_recipe_errors_name_the_field(tmp_path):
    recipe = {
        "merge_method": "ties",
        "base_model": "b",
        "granularity": "global",
        "parameters": {"density": 0.5},
        "sources": [{"model": "x", "weights": {"all": 1.0}}, {"model": "y", "weights": {"all": 0.5}}],
        "dataset": {"id": "d"},
    }
    path = tmp_path / "merge.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert MergeRecipe.load(path).weights_by_group() == {"all": [1.0, 0.5]}
    # A recipe from before the calibration field was written calibrated on validation, and replays so.
    assert MergeRecipe.load(path).calibration == "validation"
    path.write_text(yaml.safe_dump({**recipe, "calibration": "median"}))
    with pytest.raises(RecipeError, match="calibration must be one of validation, none, everyday"):
        MergeRecipe.load(path)
    path.write_text(yaml.safe_dump({**recipe, "parameters": {}}))
    with pytest.raises(RecipeError, match="takes parameters \\['density'\\]"):
        MergeRecipe.load(path)
    path.write_text(yaml.safe_dump({**recipe, "merge_method": "slerp"}))
    with pytest.raises(RecipeError, match="unknown merge method 'slerp'"):
        MergeRecipe.load(path)


def test_cli_explains_and_refuses_incomplete_options(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["merge", "--help"])
    assert exit_info.value.code == 0
    assert "--recipe" in capsys.readouterr().out
    assert main(["merge", "--output", str(tmp_path / "x")]) == 2
    assert "needs --models" in capsys.readouterr().err
    assert main(["merge", "--output", str(tmp_path / "x"), "--recipe", str(tmp_path / "none.yaml")]) == 2
    assert "no such recipe file" in capsys.readouterr().err


@pytest.mark.integration
def test_shipped_hub_id_resolves_to_the_offline_minilm_whose_head_is_lacking(tmp_path, minilm_dir):
    from guardkit.assets import hub_id_of

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    model = AutoModelForSequenceClassification.from_pretrained(minilm_dir, num_labels=2, id2label=ID2LABEL, label2id=LABEL2ID)
    manifest = GuardManifest(
        kind="multitask",
        input_format="instruction_pair",
        policies={"fruit_talk": "x"},
        threshold=0.5,
        max_length=64,
        base_model=hub_id_of("minilm-l6"),
    )
    source = MergeSource("minilm-guard", Guard(model, tokenizer, manifest))
    base = load_base_encoder(manifest.base_model, source)
    assert base.lacking == {"classifier.weight", "classifier.bias"}
    assert torch.equal(base.state["bert.embeddings.word_embeddings.weight"], model.state_dict()["bert.embeddings.word_embeddings.weight"])


@pytest.mark.parametrize("safe_windows", [True, False])
def test_head_rows_weigh_policy_examples_and_cut_long_safe_rows(tiny_bert_dir, safe_windows):
    from guardkit.merge.recipe import HeadSettings
    from guardkit.merge.workspace import HeadRows
    from guardkit.windows import later_windows

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    long_safe, long_unsafe = " ".join(NEUTRAL * 3), "look at that banana " + " ".join(NEUTRAL * 3)
    train = rows_to_dataset([
        {"text": long_safe, "label": 0, "policy": "fruit_talk", "source": "test"},
        {"text": long_unsafe, "label": 1, "policy": "fruit_talk", "source": "test"},
    ])  # fmt: skip
    settings = HeadSettings(example_weight=20.0, safe_windows=safe_windows)
    head_rows = HeadRows.sample(train, {"fruit_talk": POLICIES["fruit_talk"]}, settings, tokenizer, 32)
    ids, labels, weights = head_rows.rows["fruit_talk"]
    fitted = {head_rows.texts[index]: (int(label), float(weight)) for index, label, weight in zip(ids, labels, weights)}
    later = later_windows(tokenizer, [long_safe], 32) if safe_windows else []
    # The unsafe row is never cut: a later window of an unsafe text may hold nothing unsafe.
    assert fitted == {
        long_safe: (0, 1.0), long_unsafe: (1, 1.0), **{window: (0, 1.0) for window in later},
        "we met at noon": (0, 20.0), "look at that banana": (1, 20.0),
    }  # fmt: skip
    assert len(later) >= 2 or not safe_windows


def test_head_rows_take_the_cross_policy_rows_at_their_weight(tiny_bert_dir):
    from guardkit.merge.recipe import HeadSettings
    from guardkit.merge.workspace import HeadRows

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    train = rows_to_dataset([
        {"text": "we met at noon", "label": 0, "policy": "fruit_talk", "source": "test"},
        {"text": "look at that banana", "label": 1, "policy": "fruit_talk", "source": "test"},
    ])  # fmt: skip
    cross = rows_to_dataset([
        {"text": "my car is red", "label": 0, "policy": "fruit_talk", "source": "test"},
        {"text": "my bus is late", "label": 0, "policy": "no_such_policy", "source": "test"},
    ])  # fmt: skip
    head_rows = HeadRows.sample(train, {"fruit_talk": POLICIES["fruit_talk"]}, HeadSettings(cross_policy_weight=5.0), tokenizer, 32, cross)
    ids, labels, weights = head_rows.rows["fruit_talk"]
    fitted = {head_rows.texts[index]: float(weight) for index, weight in zip(ids, weights)}
    assert fitted["my car is red"] == 5.0 and "my bus is late" not in head_rows.texts


@pytest.mark.parametrize("rows_per_label, expected_safe", [(0, 5), (2, 2)])
def test_head_rows_take_every_row_unless_capped(tiny_bert_dir, rows_per_label, expected_safe):
    from guardkit.merge.recipe import HeadSettings
    from guardkit.merge.workspace import HeadRows

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    safe = [f"we met at noon on day {day}" for day in range(5)]
    train = rows_to_dataset(
        [{"text": text, "label": 0, "policy": "fruit_talk", "source": "test"} for text in safe]
        + [{"text": "look at that banana", "label": 1, "policy": "fruit_talk", "source": "test"}]
    )
    settings = HeadSettings(rows_per_label=rows_per_label, example_weight=20.0)
    head_rows = HeadRows.sample(train, {"fruit_talk": POLICIES["fruit_talk"]}, settings, tokenizer, 32)
    ids, _, weights = head_rows.rows["fruit_talk"]
    fitted_safe = [head_rows.texts[index] for index, weight in zip(ids, weights) if head_rows.texts[index] in safe and weight == 1.0]
    assert len(fitted_safe) == expected_safe
