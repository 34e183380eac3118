import pytest

from guardkit.data.io import cross_policy_rows, load_guard_dataset, split_file
from guardkit.data.schema import FEATURES, rows_to_dataset
from guardkit.errors import GuardkitError
from guardkit.policies import get_policy


def write_folder(root, rows, config="default"):
    for split in ("train", "validation", "test"):
        path = split_file(root, split, config)
        path.parent.mkdir(parents=True, exist_ok=True)
        rows_to_dataset(rows).to_parquet(str(path))


def test_folder_loads_with_schema_and_its_own_policies(tmp_path):
    custom = get_policy("jailbreak").model_copy(update={"id": "house_rules", "name": "House rules"})
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "house_rules.yaml").write_text(custom.to_yaml())
    write_folder(tmp_path, [{"text": "hi", "label": "safe", "policy": "house_rules"}, {"text": "x", "label": 1, "policy": "self_harm"}])
    splits, policies = load_guard_dataset(tmp_path)
    assert set(splits) == {"train", "validation", "test"}
    assert splits["train"].features == FEATURES
    assert splits["test"]["label"] == [0, 1]
    assert policies["house_rules"].name == "House rules"
    assert policies["self_harm"] == get_policy("self_harm")


def test_unknown_policy_and_missing_config_are_explained(tmp_path):
    write_folder(tmp_path, [{"text": "hi", "label": "safe", "policy": "nowhere"}])
    with pytest.raises(GuardkitError, match="nowhere"):
        load_guard_dataset(tmp_path)
    with pytest.raises(GuardkitError, match="multitask/train-00000-of-00001.parquet"):
        load_guard_dataset(tmp_path, config="multitask")
    with pytest.raises(GuardkitError, match="unknown dataset config"):
        load_guard_dataset(tmp_path, config="other")


def test_rules_round_trip_and_folders_written_before_rules_still_load(tmp_path):
    rule = get_policy("self_harm").disallowed[0]
    write_folder(tmp_path / "new", [{"text": "x", "label": 1, "policy": "self_harm", "rules": [rule]}])
    splits, _ = load_guard_dataset(tmp_path / "new")
    assert splits["train"]["rules"] == [[rule]]
    old = rows_to_dataset([{"text": "hi", "label": 0, "policy": "self_harm"}]).remove_columns("rules")
    for split in ("train", "validation", "test"):
        path = split_file(tmp_path / "old", split)
        path.parent.mkdir(parents=True, exist_ok=True)
        old.to_parquet(str(path))
    splits, _ = load_guard_dataset(tmp_path / "old")
    assert splits["train"].features == FEATURES and splits["train"]["rules"] == [[]]
    with pytest.raises(ValueError, match="list of rule texts"):
        rows_to_dataset([{"text": "x", "label": 1, "rules": "one rule"}])


def test_cross_policy_rows_are_the_multitask_rows_the_default_config_lacks(tmp_path):
    default = [{"text": "own", "label": 0, "policy": "self_harm"}, {"text": "shared", "label": 1, "policy": "self_harm"}]
    multitask = [
        *default,
        {"text": "other policy's text", "label": 0, "policy": "self_harm"},
        {"text": "own", "label": 0, "policy": "jailbreak"},
    ]
    write_folder(tmp_path, default)
    write_folder(tmp_path, multitask, config="multitask")
    train = load_guard_dataset(tmp_path)[0]["train"]
    rows = cross_policy_rows(tmp_path, None, ["self_harm"], train)
    assert list(zip(rows["text"], rows["policy"])) == [("other policy's text", "self_harm")]
    # Under another policy, a text of the default config is still a cross-policy row there.
    assert cross_policy_rows(tmp_path, None, ["jailbreak"], train)["text"] == ["own"]
    write_folder(tmp_path / "default-only", default)
    with pytest.raises(GuardkitError, match="multitask/train"):
        cross_policy_rows(tmp_path / "default-only", None, ["self_harm"], train)
