"""`guardkit train multitask`: a MultiTaskGuard, all policies: a policy reader, or a pair model of (rule or instruction, text)."""

from __future__ import annotations

from datasets import DatasetDict

from guardkit.data.io import load_guard_dataset
from guardkit.guard_card import dataset_ref
from guardkit.train.common import TrainingError, with_policy_examples
from guardkit.train.config import MultiTaskGuardConfig
from guardkit.train.encoder import EncoderGuardSpec, train_encoder_guard
from guardkit.train.reader_data import background_rows, reader_training_rows
from guardkit.train.rule_pairs import build_rule_pairs

PAIR_INPUTS = {"reader": "policy_reader", "rule": "rule_pair", "instruction": "instruction_pair"}


def train_multitask_guard(config: MultiTaskGuardConfig) -> None:
    """Train one guard for every policy of config "multitask" (a policy reader, or a fine-tuned pair classifier);
    --holdout_policies stay out of train and validation."""
    if config.pair_input not in PAIR_INPUTS:
        raise TrainingError(f"--pair_input must be one of {', '.join(PAIR_INPUTS)}, got '{config.pair_input}'")
    if config.composed_policies < 0 or config.composed_share < 0:
        raise TrainingError(f"--composed_policies and --composed_share must be 0 or more, got {config.composed_policies} and {config.composed_share}")
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
    # The policy reader compares texts with the policies' own examples: trained on them too, it would learn
    # that a text identical to an example is what an unsafe text looks like.
    if config.policy_examples and config.pair_input != "reader":
        splits = with_policy_examples(splits, [policies[policy_id] for policy_id in trained])
    training_rows, notes, everyday = None, (), ()
    everyday_validation = None
    if config.pair_input == "reader" or config.calibration == "everyday":
        default = load_guard_dataset(config.dataset, "default", revision=config.dataset_revision)[0]
        default = default.filter(lambda policy: policy in kept, input_columns="policy", desc="default: trained policies")
        if config.calibration == "everyday":
            everyday_validation = background_rows(splits["validation"], default["validation"])
    if config.pair_input == "reader":
        rows, everyday = reader_training_rows(splits["train"], default["train"], config.everyday_texts, config.everyday_share, config.seed)
        training_rows = DatasetDict({"train": rows, "validation": splits["validation"]})
        notes = (
            f"The policy reader was fitted on {len(rows)} rows ({sum(weight == 1.0 for weight in rows['weight'])} multitask rows, the rest "
            f"everyday background rows weighing {config.everyday_share:g} of them) of {len(trained)} policies; it keeps {len(everyday)} "
            "everyday corpus texts (long ones cut into window-sized passages) as its reference of ordinary traffic.",
        )
    elif config.pair_input == "rule":
        built = {
            name: build_rule_pairs(splits[name], policies, config.negatives_per_rule_pair, config.rule_paraphrases and name == "train", config.seed)
            for name in ("train", "validation")
        }
        training_rows = DatasetDict({name: pairs for name, (pairs, _) in built.items()})
        counts = built["train"][1]
        notes = (
            f"Trained on {counts['positive']} (rule, text) pairs whose text breaks the rule and {counts['negative']} whose text "
            f"does not, with {counts['distinct_instructions']} distinct rule instructions (rules of {len(trained)} policies, "
            "reworded and combined); each pair's label follows from the rules its dataset row records.",
        )
    spec = EncoderGuardSpec(
        kind="multitask",
        policies=[policies[policy_id] for policy_id in trained],
        input_format=PAIR_INPUTS[config.pair_input],
        dataset_config="multitask",
        holdout_policies=holdout,
        training_notes=notes,
        everyday=everyday,
        everyday_validation=everyday_validation,
        composed_policies=config.composed_policies if config.pair_input == "reader" else 0,
        composed_share=config.composed_share,
    )
    train_encoder_guard(config, spec, splits, policies, [dataset_ref(config.dataset, config.dataset_revision)], training_rows=training_rows)
