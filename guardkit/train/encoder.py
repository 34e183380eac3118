"""Fine-tuning an encoder guard (TaskGuard or MultiTaskGuard) with transformers' Trainer.

Trainer makes the same code run on a CPU, one GPU or several under `accelerate launch`. After training,
the best checkpoint (by validation F1) is scored on validation through `Guard` — the exact inference
path, sliding window included — to calibrate the threshold, then on test for the card.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from datasets import Dataset, DatasetDict

from guardkit.assets import hub_id_of, resolve_model
from guardkit.data.schema import ID2LABEL, LABEL2ID
from guardkit.guard import MIN_TEXT_TOKENS, DatasetRef, Guard, GuardManifest, model_length_limit, save_guard
from guardkit.policies import Policy
from guardkit.train.calibration import calibrate_threshold, score_summary, threshold_metrics
from guardkit.train.card import CardResult, render_guard_card
from guardkit.train.common import TrainingError, checkpoint_dir, precision_flags, remove_checkpoints, write_eval_results
from guardkit.train.config import EncoderTrainingConfig

@dataclass(frozen=True)
class EncoderGuardSpec:
    """What differs between the encoder guard kinds."""

    kind: str  # "task" or "multitask"
    policies: Sequence[Policy]  # the policies trained on, stored in the guard
    instructions: dict[str, str] | None  # policy id -> instruction for pair input; None for text input
    dataset_config: str  # the dataset config the rows came from
    holdout_policies: Sequence[str] = ()


class WeightedCrossEntropy:
    """Cross-entropy with per-class weights, normalised by the number of examples in the whole update.

    Given to Trainer as `compute_loss_func`, so gradient accumulation and several devices see the
    same loss as one big batch would.
    """

    def __init__(self, class_weights: Sequence[float]):
        import torch

        self.class_weights = torch.tensor(class_weights, dtype=torch.float32)

    def __call__(self, outputs, labels, num_items_in_batch=None):
        import torch.nn.functional as F

        logits = outputs["logits"].float()
        total = F.cross_entropy(logits, labels, weight=self.class_weights.to(logits.device), reduction="sum")
        return total / (num_items_in_batch if num_items_in_batch is not None else labels.numel())


def _class_weights(labels: Sequence[int]) -> list[float]:
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(ID2LABEL))
    if (counts == 0).any():
        missing = ID2LABEL[int(np.flatnonzero(counts == 0)[0])]
        raise TrainingError(f"the training split has no '{missing}' examples; a guard needs both labels to learn")
    # Inverse frequency, scaled so the average weight per example is 1.
    return (counts.sum() / (len(counts) * counts)).tolist()


def _compute_metrics(eval_prediction) -> dict[str, float]:
    logits, labels = eval_prediction
    logits = np.asarray(logits, dtype=np.float64)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    scores = shifted[:, LABEL2ID["unsafe"]] / shifted.sum(axis=1)
    metrics = threshold_metrics(labels, scores, 0.5)
    return {"f1": metrics.f1, "precision": metrics.precision, "recall": metrics.recall, "fpr": metrics.fpr}


def _load_base(config: EncoderTrainingConfig):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = resolve_model(config.base_model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=len(ID2LABEL), id2label=ID2LABEL, label2id=LABEL2ID, ignore_mismatched_sizes=True
        )
    except OSError as error:
        raise TrainingError(
            f"cannot load base model '{config.base_model}' ({error}); give a shipped name (minilm-l6), a local folder, "
            "or a Hub id that is in the cache when offline"
        ) from None
    if tokenizer.pad_token is None:
        # Decoder-style encoders (some ModernBERT exports) lack one; any token works since padding is masked.
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.sep_token or tokenizer.unk_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def _check_lengths(config: EncoderTrainingConfig, spec: EncoderGuardSpec, model, tokenizer) -> None:
    limit = model_length_limit(model.config, tokenizer)
    if config.max_length > limit:
        raise TrainingError(f"--max_length {config.max_length} exceeds the {limit}-token limit of '{config.base_model}'")
    if spec.instructions is None:
        return
    special = tokenizer.num_special_tokens_to_add(pair=True)
    for policy_id, instruction in spec.instructions.items():
        needed = len(tokenizer(instruction, add_special_tokens=False)["input_ids"]) + special + MIN_TEXT_TOKENS
        if needed > limit:
            raise TrainingError(
                f"the instruction of policy '{policy_id}' needs {needed} tokens with a minimal text, more than the "
                f"{limit}-token limit of '{config.base_model}': shorten the policy or use a base model with more positions"
            )
        if needed > config.max_length:
            raise TrainingError(
                f"the instruction of policy '{policy_id}' leaves too little room for the text within --max_length "
                f"{config.max_length}; use --max_length {min(limit, needed + 64)} or more (limit {limit})"
            )


def _tokenize(split: Dataset, tokenizer, config: EncoderTrainingConfig, spec: EncoderGuardSpec) -> Dataset:
    def encode(batch):
        if spec.instructions is None:
            encoded = tokenizer(batch["text"], truncation=True, max_length=config.max_length)
        else:
            instructions = [spec.instructions[policy_id] for policy_id in batch["policy"]]
            encoded = tokenizer(instructions, batch["text"], truncation="only_second", max_length=config.max_length)
        encoded["labels"] = batch["label"]
        return encoded

    return split.map(encode, batched=True, remove_columns=split.column_names, desc="tokenizing")


def _result(scope: str, labels, scores, threshold: float) -> CardResult:
    return CardResult(scope=scope, metrics=score_summary(labels, scores, threshold))


def _score(guard: Guard, split: Dataset, spec: EncoderGuardSpec, scored_policies: dict[str, Policy], batch_size: int) -> np.ndarray:
    """P(unsafe) of every row, each under its own policy (the text alone for a TaskGuard)."""
    scores = np.zeros(len(split), dtype=np.float32)
    policy_column = np.asarray(split["policy"])
    texts = split["text"]
    for policy_id in dict.fromkeys(policy_column.tolist()):
        rows = np.flatnonzero(policy_column == policy_id)
        policy = None if spec.instructions is None else scored_policies[policy_id]
        scores[rows] = guard.score([texts[row] for row in rows], policy, batch_size=batch_size, progress=True)
    return scores


def train_encoder_guard(
    config: EncoderTrainingConfig,
    spec: EncoderGuardSpec,
    splits: DatasetDict,
    all_policies: dict[str, Policy],
    datasets: Sequence[DatasetRef],
) -> Path:
    """Train, calibrate, evaluate and save an encoder guard; returns the guard folder.

    `splits` holds the rows to train and validate on (holdout policies already removed) and the full test split.
    """
    import torch
    from transformers import DataCollatorWithPadding, EarlyStoppingCallback, Trainer, TrainingArguments, set_seed

    if "validation" not in splits or len(splits["validation"]) == 0:
        raise TrainingError("the dataset has no validation rows for these policies; early stopping and calibration need them")
    set_seed(config.seed)
    model, tokenizer = _load_base(config)
    _check_lengths(config, spec, model, tokenizer)
    class_weights = _class_weights(splits["train"]["label"]) if config.class_weighting else [1.0] * len(ID2LABEL)
    train_set = _tokenize(splits["train"], tokenizer, config, spec)
    validation_set = _tokenize(splits["validation"], tokenizer, config, spec)
    checkpoints, resume_from = checkpoint_dir(config)
    strategy = "steps" if config.eval_steps else "epoch"
    arguments = TrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size * 2,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_ratio,
        eval_strategy=strategy,
        eval_steps=config.eval_steps,
        save_strategy=strategy,
        save_steps=config.eval_steps,
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model="f1",
        greater_is_better=True,
        train_sampling_strategy="group_by_length",
        seed=config.seed,
        data_seed=config.seed,
        logging_steps=10,
        report_to="none",
        dataloader_pin_memory=torch.cuda.is_available(),
        **precision_flags(config.precision),
    )
    callbacks = [EarlyStoppingCallback(config.early_stopping_patience)] if config.early_stopping_patience > 0 else []
    trainer = Trainer(
        model=model,
        args=arguments,
        train_dataset=train_set,
        eval_dataset=validation_set,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=_compute_metrics,
        compute_loss_func=WeightedCrossEntropy(class_weights),
        callbacks=callbacks,
    )
    train_output = trainer.train(resume_from_checkpoint=resume_from)
    output = Path(config.output)
    if not trainer.is_world_process_zero():
        return output

    model = trainer.model.float() if (arguments.bf16 or arguments.fp16) else trainer.model
    manifest = GuardManifest(
        kind=spec.kind,
        input_format="text" if spec.instructions is None else "instruction_pair",
        policies={policy.id: policy.instruction() for policy in spec.policies},
        threshold=0.5,
        max_length=config.max_length,
        base_model=hub_id_of(config.base_model),
        datasets=list(datasets),
    )
    guard = Guard(model, tokenizer, manifest, {policy.id: policy for policy in spec.policies})
    eval_batch = config.batch_size * 2
    validation_scores = _score(guard, splits["validation"], spec, all_policies, eval_batch)
    calibration = calibrate_threshold(splits["validation"]["label"], validation_scores, config.target_fpr)
    results = _evaluate_test(guard, splits.get("test"), spec, all_policies, calibration.threshold, eval_batch)
    card = render_guard_card(
        kind=spec.kind,
        policies=spec.policies,
        base_model=manifest.base_model,
        datasets=datasets,
        license=config.license,
        threshold=calibration.threshold,
        calibration=calibration.describe(),
        max_length=config.max_length,
        results=results,
        repo_id=config.repo_id,
        dataset_config=spec.dataset_config,
        holdout_policies=spec.holdout_policies,
        training_lines=_training_lines(config, len(splits["train"]), train_output.global_step, class_weights, torch),
    )
    save_guard(
        output,
        model,
        tokenizer,
        kind=spec.kind,
        policies=spec.policies,
        threshold=calibration.threshold,
        max_length=config.max_length,
        base_model=manifest.base_model,
        datasets=datasets,
        card=card,
        recipe=config,
    )
    training = {
        "examples": len(splits["train"]),
        "steps": train_output.global_step,
        "runtime_s": train_output.metrics.get("train_runtime"),
        "examples_per_second": train_output.metrics.get("train_samples_per_second"),
    }
    write_eval_results(output, calibration, results, holdout_policies=list(spec.holdout_policies), training=training)
    remove_checkpoints(config)
    return output


def _evaluate_test(
    guard: Guard, test: Dataset | None, spec: EncoderGuardSpec, all_policies: dict[str, Policy], threshold: float, batch_size: int
) -> list[CardResult]:
    if test is None or len(test) == 0:
        return []
    scores = _score(guard, test, spec, all_policies, batch_size)
    labels = np.asarray(test["label"])
    holdout = set(spec.holdout_policies)
    seen = np.asarray([policy_id not in holdout for policy_id in test["policy"]])
    if not holdout:
        results = [_result("all", labels, scores, threshold)]
    else:
        results = [_result("trained policies", labels[seen], scores[seen], threshold)]
        results.append(_result("held-out policies (zero-shot)", labels[~seen], scores[~seen], threshold))
    if spec.instructions is not None:
        policy_column = np.asarray(test["policy"])
        for policy_id in sorted(set(policy_column.tolist())):
            rows = policy_column == policy_id
            scope = f"{policy_id} (zero-shot)" if policy_id in holdout else policy_id
            results.append(_result(scope, labels[rows], scores[rows], threshold))
    return results


def _training_lines(config: EncoderTrainingConfig, examples: int, steps: int, class_weights: list[float], torch) -> list[str]:
    device = "GPU" if torch.cuda.is_available() else "CPU"
    precision = next((name for name, used in precision_flags(config.precision).items() if used), "fp32")
    lines = [
        f"{examples} training examples, {steps} optimiser steps of {config.batch_size} x {config.gradient_accumulation_steps} "
        f"examples, learning rate {config.learning_rate:g}, seed {config.seed}, {precision} on {device}.",
        "Best checkpoint by validation F1" + (f", early stopping after {config.early_stopping_patience} validations without gain." if config.early_stopping_patience else "."),
    ]
    if config.class_weighting:
        lines.append(f"Loss weighted by inverse class frequency (safe {class_weights[0]:.2f}, unsafe {class_weights[1]:.2f}).")
    return lines
