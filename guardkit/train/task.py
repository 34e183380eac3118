"""`guardkit train task`: a TaskGuard, one policy, the text alone as input."""

from __future__ import annotations

import sys

from datasets import DatasetDict, concatenate_datasets

from guardkit.data.io import cross_policy_rows, load_guard_dataset
from guardkit.errors import GuardkitError
from guardkit.guard_card import dataset_ref
from guardkit.train.common import TrainingError, with_policy_examples
from guardkit.train.config import TaskGuardConfig
from guardkit.train.encoder import EncoderGuardSpec, train_encoder_guard


def train_task_guard(config: TaskGuardConfig) -> None:
    """Fine-tune a binary classifier on the rows of config "default" that belong to `config.policy` (and, weighted
    --cross_policy_weight in the prototype head, its cross-policy rows of config "multitask")."""
    splits, policies = load_guard_dataset(config.dataset, "default", revision=config.dataset_revision)
    present = sorted(set(splits["train"]["policy"]))
    if config.policy not in present:
        raise TrainingError(f"{config.dataset} has no training rows for policy '{config.policy}'; its policies: {', '.join(present)}")
    splits = splits.filter(lambda policy: policy == config.policy, input_columns="policy", desc=f"selecting {config.policy}")
    cross = None
    if config.cross_policy_weight > 0:
        try:
            cross = cross_policy_rows(config.dataset, config.dataset_revision, [config.policy], splits["train"])
        except GuardkitError as error:
            print(f"train task: no cross-policy rows ({error}); the head is fitted without them", file=sys.stderr)
    if config.policy_examples:
        splits = with_policy_examples(splits, [policies[config.policy]])
    if cross is not None and len(cross):
        own = splits["train"].add_column("weight", [1.0] * len(splits["train"]))
        cross = cross.cast(splits["train"].features).add_column("weight", [config.cross_policy_weight] * len(cross))
        splits = DatasetDict({**splits, "train": concatenate_datasets([own, cross])})
    spec = EncoderGuardSpec(kind="task", policies=[policies[config.policy]], input_format="text", dataset_config="default")
    train_encoder_guard(config, spec, splits, policies, [dataset_ref(config.dataset, config.dataset_revision)])
