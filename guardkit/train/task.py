"""`guardkit train task`: a TaskGuard, one policy, the text alone as input."""

from __future__ import annotations

from guardkit.data.io import load_guard_dataset
from guardkit.train.common import TrainingError, dataset_ref, with_policy_examples
from guardkit.train.config import TaskGuardConfig
from guardkit.train.encoder import EncoderGuardSpec, train_encoder_guard


def train_task_guard(config: TaskGuardConfig) -> None:
    """Fine-tune a binary classifier on the rows of config "default" that belong to `config.policy`."""
    splits, policies = load_guard_dataset(config.dataset, "default", revision=config.dataset_revision)
    present = sorted(set(splits["train"]["policy"]))
    if config.policy not in present:
        raise TrainingError(f"{config.dataset} has no training rows for policy '{config.policy}'; its policies: {', '.join(present)}")
    splits = splits.filter(lambda policy: policy == config.policy, input_columns="policy", desc=f"selecting {config.policy}")
    if config.policy_examples:
        splits = with_policy_examples(splits, [policies[config.policy]])
    spec = EncoderGuardSpec(kind="task", policies=[policies[config.policy]], input_format="text", dataset_config="default")
    train_encoder_guard(config, spec, splits, policies, [dataset_ref(config.dataset, config.dataset_revision)])
