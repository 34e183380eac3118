"""`guardkit train multitask`: a MultiTaskGuard, all policies, input = (policy instruction, text)."""

from __future__ import annotations

from datasets import DatasetDict

from guardkit.data.io import load_guard_dataset
from guardkit.train.common import TrainingError, dataset_ref, with_policy_examples
from guardkit.train.config import MultiTaskGuardConfig
from guardkit.train.encoder import EncoderGuardSpec, train_encoder_guard


def train_multitask_guard(config: MultiTaskGuardConfig) -> None:
    """Fine-tune one pair classifier on config "multitask"; --holdout_policies stay out of train and validation."""
    splits, policies = load_guard_dataset(config.dataset, "multitask", revision=config.dataset_revision)
    present = list(dict.fromkeys(splits["train"]["policy"]))
    holdout = [part.strip() for part in (config.holdout_policies or "").split(",") if part.strip()]
    unknown = sorted(set(holdout) - set(present))
    if unknown:
        raise TrainingError(f"--holdout_policies names policies without rows in {config.dataset}: {', '.join(unknown)}")
    trained = [policy_id for policy_id in present if policy_id not in holdout]
    if not trained:
        raise TrainingError("--holdout_policies leaves no policy to train on")
    kept = set(trained)
    splits = DatasetDict(
        {
            name: split if name == "test" else split.filter(lambda policy: policy in kept, input_columns="policy", desc=f"{name}: trained policies")
            for name, split in splits.items()
        }
    )
    if config.policy_examples:
        splits = with_policy_examples(splits, [policies[policy_id] for policy_id in trained])
    spec = EncoderGuardSpec(
        kind="multitask",
        policies=[policies[policy_id] for policy_id in trained],
        instructions={policy_id: policy.instruction() for policy_id, policy in policies.items() if policy_id in kept},
        dataset_config="multitask",
        holdout_policies=holdout,
    )
    train_encoder_guard(config, spec, splits, policies, [dataset_ref(config.dataset, config.dataset_revision)])
