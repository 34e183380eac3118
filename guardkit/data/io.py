"""Reading guardkit dataset folders (local or on the Hub) together with the policies they were made from.

A guardkit dataset folder holds:
  data/{train,validation,test}-00000-of-00001.parquet       config "default": rows per (policy, text)
  multitask/{train,validation,test}-00000-of-00001.parquet  config "multitask": the instruction-conditioned
                                                            set, cross-policy negatives included
  policies/<id>.yaml                                        the exact policies the rows refer to
  README.md (card with `configs`), generation.yaml
"""

from __future__ import annotations

from pathlib import Path

from datasets import Dataset, DatasetDict, load_dataset

from guardkit.data.schema import FEATURES
from guardkit.errors import GuardkitError
from guardkit.policies import Policy, load_policy_files, shipped_policies

SPLITS = ("train", "validation", "test")
CONFIG_DIRS = {"default": "data", "multitask": "multitask"}


def split_file(folder: str | Path, split: str, config: str = "default") -> Path:
    return Path(folder) / CONFIG_DIRS[config] / f"{split}-00000-of-00001.parquet"


def _local_folder(source: str, revision: str | None) -> Path:
    """A local folder as it is; a Hub id through the Hub cache (which also answers offline once fetched)."""
    local = Path(source)
    if local.is_dir():
        return local
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(source, repo_type="dataset", revision=revision))


def load_guard_dataset(
    source: str | Path, config: str = "default", revision: str | None = None
) -> tuple[DatasetDict, dict[str, Policy]]:
    """The splits of a guardkit dataset (folder or Hub id) and the policies its `policy` column names.

    Policies come from the dataset's own `policies/` folder; ids it lacks fall back to the shipped library.
    """
    if config not in CONFIG_DIRS:
        raise GuardkitError(f"unknown dataset config '{config}'; choose one of {', '.join(CONFIG_DIRS)}")
    folder = _local_folder(str(source), revision)
    if not split_file(folder, "train", config).exists():
        raise GuardkitError(
            f"{source} has no {CONFIG_DIRS[config]}/train-00000-of-00001.parquet; "
            "is it a dataset written by `guardkit generate`?"
        )
    files = {split: str(split_file(folder, split, config)) for split in SPLITS if split_file(folder, split, config).exists()}
    splits = load_dataset("parquet", data_files=files)
    if "rules" not in splits["train"].column_names:
        # Written before rows recorded their rules: the same rows, with no rule known.
        splits = DatasetDict({name: split.add_column("rules", [[] for _ in range(len(split))]).cast(FEATURES) for name, split in splits.items()})
    policies = dict(shipped_policies())
    if (folder / "policies").is_dir():
        policies.update({policy.id: policy for policy in load_policy_files(sorted((folder / "policies").glob("*.yaml")))})
    missing = sorted(set().union(*(set(split["policy"]) for split in splits.values())) - set(policies) - {""})
    if missing:
        raise GuardkitError(f"{source}: rows name policies that are neither in its policies/ folder nor shipped: {', '.join(missing)}")
    return splits, policies


def cross_policy_rows(source: str | Path, revision: str | None, policy_ids: list[str], default_train: Dataset) -> Dataset:
    """The training rows of config "multitask" under `policy_ids` that config "default" lacks for the same policy:
    texts written for other policies, labelled under this one (mostly out of its scope, so safe). A dataset
    without the multitask config raises GuardkitError."""
    multitask, _ = load_guard_dataset(source, "multitask", revision)
    present = set(zip(default_train["policy"], default_train["text"]))
    wanted = set(policy_ids)
    return multitask["train"].filter(
        lambda policy, text: policy in wanted and (policy, text) not in present, input_columns=["policy", "text"], desc="cross-policy rows"
    )
