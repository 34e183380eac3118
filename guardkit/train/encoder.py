"""Fine-tuning an encoder guard (TaskGuard or MultiTaskGuard) with transformers' Trainer.

The head reads the sentence embedding the base was trained for (mean pooling for sentence-transformers
encoders, `guardkit.train.pooling`) and starts as a logistic regression fitted on the frozen encoder's
features (a prototype head), which is the guard itself with --epochs 0. Fine-tuning then runs through
Trainer, so the same code runs on a CPU, one GPU or several under `accelerate launch`. The best checkpoint
(by validation F1) is scored on validation through `Guard` — the exact inference path, sliding window and
rule pairs included — to calibrate a threshold per policy, then on test for the card.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from datasets import Dataset, DatasetDict, concatenate_datasets

from guardkit.assets import hub_id_of, resolve_model
from guardkit.calibration import Calibration, score_summary, threshold_metrics, threshold_rule
from guardkit.data.corpora import is_everyday_source
from guardkit.data.schema import ID2LABEL, LABEL2ID
from guardkit.feature_cache import FeatureCache
from guardkit.guard import MIN_TEXT_TOKENS, DatasetRef, Guard, GuardManifest, model_length_limit, save_guard
from guardkit.guard_card import CardResult, render_guard_card
from guardkit.heads import final_linear, fit_logistic, head_features, set_binary_head
from guardkit.policies import Policy
from guardkit.policy_reader import FEATURES, PolicyAnchors, PolicyReader, background_of, fit_policy_reader, reader_features, unit_rows
from guardkit.train.composed_policies import ROWS_PER_POLICY as COMPOSED_ROWS_PER_POLICY, ReaderRows, compose_policies
from guardkit.train.common import POLICY_EXAMPLE_SOURCE, TrainingError, checkpoint_dir, precision_flags, remove_checkpoints, write_eval_results
from guardkit.train.config import EncoderTrainingConfig
from guardkit.pooling import add_mean_pooling, resolve_pooling, supports_mean_pooling
from guardkit.windows import later_windows, window_texts

SAFE = LABEL2ID["safe"]


@dataclass(frozen=True)
class EncoderGuardSpec:
    """What differs between the encoder guard kinds.

    input_format: "text" (rows' text alone), "instruction_pair" (the row's policy instruction beside the
    text), "rule_pair" (the training rows carry their own `instruction` column: rule instructions) or
    "policy_reader" (the frozen encoder's embeddings read against each policy's parts, `guardkit.policy_reader`).
    train / validation rows name their policy; validation and test are scored per policy through Guard.
    """

    kind: str  # "task" or "multitask"
    policies: Sequence[Policy]  # the policies trained on, stored in the guard
    input_format: str
    dataset_config: str  # the dataset config the rows came from
    holdout_policies: Sequence[str] = ()
    training_notes: tuple[str, ...] = ()  # extra lines for the card (what the pairs were made of)
    everyday: tuple[str, ...] = ()  # policy_reader: the everyday reference texts the guard keeps
    # Calibration "everyday": real everyday validation rows the validation split lacks (a multitask dataset's
    # background rows live in config "default").
    everyday_validation: Dataset | None = None
    # policy_reader: policies composed from the trained ones' rules (`guardkit.train.composed_policies`) the reader
    # is also fitted on, and the weight of their rows as a share of the plain rows'.
    composed_policies: int = 0
    composed_share: float = 0.0

    @property
    def reads_pairs(self) -> bool:
        return self.input_format != "text"


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
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    path = resolve_model(config.base_model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model_type = AutoConfig.from_pretrained(path).model_type
        pooling = resolve_pooling(config.pooling, path, model_type)
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=len(ID2LABEL), id2label=ID2LABEL, label2id=LABEL2ID, ignore_mismatched_sizes=True
        )
    except OSError as error:
        raise TrainingError(
            f"cannot load base model '{config.base_model}' ({error}); give a shipped name (minilm-l6), a local folder, "
            "or a Hub id that is in the cache when offline"
        ) from None
    except ValueError as error:
        raise TrainingError(f"--pooling: {error}") from None
    if pooling == "mean":
        if not supports_mean_pooling(model.config.model_type):
            raise TrainingError(f"--pooling mean is not available for model type '{model.config.model_type}'; use --pooling cls")
        add_mean_pooling(model)
    if tokenizer.pad_token is None:
        # Decoder-style encoders (some ModernBERT exports) lack one; any token works since padding is masked.
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.sep_token or tokenizer.unk_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer, pooling


def _check_lengths(config: EncoderTrainingConfig, spec: EncoderGuardSpec, model, tokenizer) -> None:
    limit = model_length_limit(model.config, tokenizer)
    if config.max_length > limit:
        raise TrainingError(f"--max_length {config.max_length} exceeds the {limit}-token limit of '{config.base_model}'")
    if spec.input_format != "instruction_pair":
        return
    special = tokenizer.num_special_tokens_to_add(pair=True)
    for policy in spec.policies:
        needed = len(tokenizer(policy.instruction(), add_special_tokens=False)["input_ids"]) + special + MIN_TEXT_TOKENS
        if needed > limit:
            raise TrainingError(
                f"the instruction of policy '{policy.id}' needs {needed} tokens with a minimal text, more than the "
                f"{limit}-token limit of '{config.base_model}': use --pair_input rule, which reads a policy a rule at a time"
            )
        if needed > config.max_length:
            raise TrainingError(
                f"the instruction of policy '{policy.id}' leaves too little room for the text within --max_length "
                f"{config.max_length}; use --max_length {min(limit, needed + 64)} or more (limit {limit}), or --pair_input rule"
            )


def _tokenize(rows: Dataset, tokenizer, config: EncoderTrainingConfig, spec: EncoderGuardSpec, policies: dict[str, Policy]) -> Dataset:
    """Model inputs with labels: the text alone, or (instruction, text) with the instruction kept whole."""

    def encode(batch):
        if spec.input_format == "text":
            encoded = tokenizer(batch["text"], truncation=True, max_length=config.max_length)
        else:
            if "instruction" in batch:
                instructions = batch["instruction"]
            else:
                instructions = [policies[policy_id].instruction() for policy_id in batch["policy"]]
            encoded = tokenizer(instructions, batch["text"], truncation="only_second", max_length=config.max_length)
        encoded["labels"] = batch["label"]
        return encoded

    return rows.map(encode, batched=True, remove_columns=rows.column_names, desc="tokenizing")


def _result(scope: str, labels, scores, threshold: float) -> CardResult:
    return CardResult(scope=scope, metrics=score_summary(labels, scores, threshold))


def _score(guard: Guard, split: Dataset, spec: EncoderGuardSpec, scored_policies: dict[str, Policy], batch_size: int) -> np.ndarray:
    """P(unsafe) of every row, each under its own policy (the text alone for a TaskGuard)."""
    scores = np.zeros(len(split), dtype=np.float32)
    policy_column = np.asarray(split["policy"])
    texts = split["text"]
    for policy_id in dict.fromkeys(policy_column.tolist()):
        rows = np.flatnonzero(policy_column == policy_id)
        policy = scored_policies[policy_id] if spec.reads_pairs else None
        scores[rows] = guard.score([texts[row] for row in rows], policy, batch_size=batch_size, progress=True)
    return scores


def _feature_reader(model, tokenizer, config: EncoderTrainingConfig):
    """`head_features` of the model as it is now, through --feature_cache when one is given."""
    if config.feature_cache:
        return FeatureCache(config.feature_cache, model, tokenizer, config.max_length).features
    return lambda texts, batch_size, progress=False, pairs=None: head_features(model, tokenizer, texts, config.max_length, batch_size, progress, pairs)


def fit_prototype_head(model, rows: Dataset, tokenizer, config: EncoderTrainingConfig, spec: EncoderGuardSpec, policies: dict[str, Policy], batch_size: int) -> float:
    """Set the head to a logistic regression fitted on the frozen encoder's features of `rows` (a `weight` column,
    when present, weighs them; policy examples weigh --policy_example_weight); returns its training accuracy."""
    if spec.input_format == "text":
        pairs = None
    elif "instruction" in rows.column_names:
        pairs = rows["instruction"]
    else:
        pairs = [policies[policy_id].instruction() for policy_id in rows["policy"]]
    texts, labels = list(rows["text"]), list(rows["label"])
    sources = list(rows["source"]) if "source" in rows.column_names else [""] * len(rows)
    row_weights = list(rows["weight"]) if "weight" in rows.column_names else [1.0] * len(rows)
    if pairs is None and config.safe_windows:
        safe = [text for text, label in zip(texts, labels) if label == SAFE]
        later = later_windows(tokenizer, safe, config.max_length)
        texts, labels, sources, row_weights = texts + later, labels + [SAFE] * len(later), sources + [""] * len(later), row_weights + [1.0] * len(later)
    features = _feature_reader(model, tokenizer, config)(texts, batch_size, progress=True, pairs=pairs)
    sample_weight = np.array([config.policy_example_weight if source == POLICY_EXAMPLE_SOURCE else weight for source, weight in zip(sources, row_weights)])
    weights, bias, accuracy = fit_logistic(features, np.asarray(labels), config.head_c, config.class_weighting, sample_weight)
    set_binary_head(model, weights, bias)
    return accuracy


def fit_reader(
    model, rows: Dataset, tokenizer, config: EncoderTrainingConfig, spec: EncoderGuardSpec, batch_size: int
) -> tuple[PolicyReader, float, tuple[str, ...]]:
    """Fit the policy reader on the frozen encoder's embeddings of `rows` (a `weight` column, when present, weighs
    them), each read under its own policy against the other trained policies' unsafe examples and the everyday
    texts, and on the rows of `spec.composed_policies` policies composed from the trained ones (rows' `rules`);
    returns it, its training accuracy and card lines. The classifier head is zeroed: the reader makes the scores."""

    features_of = _feature_reader(model, tokenizer, config)

    def embed(texts: list[str]):
        return unit_rows(features_of(texts, batch_size))

    reference = {policy.id: PolicyAnchors.embed(policy, embed) for policy in spec.policies}
    everyday = embed(list(spec.everyday))
    texts, labels, policies = list(rows["text"]), list(rows["label"]), list(rows["policy"])
    weights = list(rows["weight"]) if "weight" in rows.column_names else [1.0] * len(texts)
    rules = [list(value) for value in rows["rules"]] if "rules" in rows.column_names else [[] for _ in texts]
    if config.safe_windows:
        cut = {text: later_windows(tokenizer, [text], config.max_length) for text, label in zip(rows["text"], rows["label"]) if label == SAFE}
        for text, label, policy_id, weight in list(zip(texts, labels, policies, weights)):
            later = cut.get(text, []) if label == SAFE else []
            texts += later
            labels += [SAFE] * len(later)
            policies += [policy_id] * len(later)
            weights += [weight] * len(later)
            rules += [[] for _ in later]
    # The background rows repeat one text under many policies: each distinct text is embedded once.
    distinct = list(dict.fromkeys(texts))
    position = {text: index for index, text in enumerate(distinct)}
    embeddings = unit_rows(features_of(distinct, batch_size, progress=True))
    embeddings = embeddings[[position[text] for text in texts]]
    policy_column = np.asarray(policies)
    features = np.zeros((len(texts), len(FEATURES)), dtype=np.float32)
    for policy_id in dict.fromkeys(policy_column.tolist()):
        members = np.flatnonzero(policy_column == policy_id)
        features[members] = reader_features(embeddings[members], reference[policy_id], background_of(reference, policy_id), everyday)
    labels, weights = np.asarray(labels), np.asarray(weights, dtype=np.float64)
    notes: tuple[str, ...] = ()
    if spec.composed_policies > 0:
        composed = compose_policies(
            ReaderRows(embeddings, texts, labels, policy_column, rules),
            reference,
            {policy.id: policy for policy in spec.policies},
            everyday,
            spec.composed_policies,
            COMPOSED_ROWS_PER_POLICY,
            config.seed,
        )
        if len(composed.labels):
            # Each composed row keeps its source row's weight; together they weigh `composed_share` of the plain rows.
            composed_weights = weights[composed.rows]
            composed_weights *= spec.composed_share * weights.sum() / composed_weights.sum()
            features = np.vstack([features, composed.features])
            labels, weights = np.concatenate([labels, composed.labels]), np.concatenate([weights, composed_weights])
        notes = (composed.note(),)
    reader, accuracy = fit_policy_reader(features, labels, config.head_c, weights)
    set_binary_head(model, np.zeros(final_linear(model).in_features, dtype=np.float32), 0.0)
    return reader, accuracy, notes


def calibrate_per_policy(
    labels: np.ndarray, scores: np.ndarray, policy_column: np.ndarray, choose: Callable[..., Calibration], everyday: np.ndarray | None = None
) -> tuple[Calibration, dict[str, Calibration]]:
    """One threshold over every row (for policies the guard never saw) and one per policy whose rows hold both
    labels, each `choose(labels, scores)`; the per-policy ones also get the policy's rows of the `everyday` mask."""
    overall = choose(labels, scores)
    per_policy = {}
    for policy_id in dict.fromkeys(policy_column.tolist()):
        rows = policy_column == policy_id
        if len(set(labels[rows].tolist())) == 2:
            per_policy[policy_id] = choose(labels[rows], scores[rows], None if everyday is None else everyday[rows])
    return overall, per_policy


def _calibration_rows(guard: Guard, splits: DatasetDict, spec: EncoderGuardSpec, all_policies: dict[str, Policy], calibration: str, batch_size: int):
    """(labels, scores, policy column, everyday mask or None) of the rows the thresholds are chosen on: the
    validation split, and for calibration "everyday" the spec's extra everyday validation rows."""
    rows = splits["validation"]
    if calibration == "everyday" and spec.everyday_validation is not None and len(spec.everyday_validation):
        columns = ["text", "label", "policy", "source"]
        rows = concatenate_datasets([rows.select_columns(columns), spec.everyday_validation.select_columns(columns)])
    # The calibration itself keeps the safe ones among these rows.
    everyday = np.asarray([is_everyday_source(source) for source in rows["source"]], dtype=bool) if calibration == "everyday" else None
    return np.asarray(rows["label"]), _score(guard, rows, spec, all_policies, batch_size), np.asarray(rows["policy"]), everyday


def train_encoder_guard(
    config: EncoderTrainingConfig,
    spec: EncoderGuardSpec,
    splits: DatasetDict,
    all_policies: dict[str, Policy],
    datasets: Sequence[DatasetRef],
    training_rows: DatasetDict | None = None,
) -> Path:
    """Train, calibrate, evaluate and save an encoder guard; returns the guard folder.

    `splits` holds the rows (text, label, policy) to validate on per policy (holdout policies removed) and the
    full test split; the model fits `training_rows["train"]` and early-stops on `training_rows["validation"]`
    (default: the splits themselves; rule-pair guards pass their (instruction, text, label) pairs).
    """
    import torch
    from transformers import DataCollatorWithPadding, EarlyStoppingCallback, Trainer, TrainingArguments, set_seed

    if "validation" not in splits or len(splits["validation"]) == 0:
        raise TrainingError("the dataset has no validation rows for these policies; early stopping and calibration need them")
    training_rows = training_rows or splits
    set_seed(config.seed)
    model, tokenizer, pooling = _load_base(config)
    _check_lengths(config, spec, model, tokenizer)
    class_weights = _class_weights(training_rows["train"]["label"]) if config.class_weighting else [1.0] * len(ID2LABEL)
    eval_batch = config.batch_size * 2
    choose_threshold = threshold_rule(config.calibration, config.target_fpr)  # a wrong --calibration fails before training
    fine_tune = config.epochs > 0 or config.max_steps > 0
    head_accuracy, reader = None, None
    if spec.input_format == "policy_reader":
        if fine_tune:
            raise TrainingError("the policy reader reads the base encoder's sentence embeddings as they are; train it with --epochs 0")
        # Kept as window-sized passages, each everyday text is one window at inference as it is here.
        spec = dataclasses.replace(spec, everyday=tuple(window_texts(tokenizer, list(spec.everyday), config.max_length)))
        reader, head_accuracy, notes = fit_reader(model, training_rows["train"], tokenizer, config, spec, eval_batch)
        spec = dataclasses.replace(spec, training_notes=spec.training_notes + notes)
    elif config.head_init == "prototype":
        head_accuracy = fit_prototype_head(model, training_rows["train"], tokenizer, config, spec, all_policies, eval_batch)
    elif config.head_init != "random":
        raise TrainingError(f"--head_init must be prototype or random, got '{config.head_init}'")
    steps = 0
    train_metrics: dict[str, float] = {}
    if fine_tune:
        train_set = _tokenize(training_rows["train"], tokenizer, config, spec, all_policies)
        validation_set = _tokenize(training_rows["validation"], tokenizer, config, spec, all_policies)
        checkpoints, resume_from = checkpoint_dir(config)
        strategy = "steps" if config.eval_steps else "epoch"
        arguments = TrainingArguments(
            output_dir=str(checkpoints),
            num_train_epochs=config.epochs,
            max_steps=config.max_steps,
            per_device_train_batch_size=config.batch_size,
            per_device_eval_batch_size=eval_batch,
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
        if not trainer.is_world_process_zero():
            return Path(config.output)
        model = trainer.model.float() if (arguments.bf16 or arguments.fp16) else trainer.model
        steps, train_metrics = train_output.global_step, train_output.metrics
    output = Path(config.output)
    manifest = GuardManifest(
        kind=spec.kind,
        input_format=spec.input_format,
        policies={policy.id: policy.instruction() for policy in spec.policies},
        threshold=0.5,
        max_length=config.max_length,
        base_model=hub_id_of(config.base_model),
        datasets=list(datasets),
        reader=reader.to_dict() if reader else None,
    )
    guard = Guard(model, tokenizer, manifest, {policy.id: policy for policy in spec.policies}, everyday=spec.everyday)
    labels, scores, policy_column, everyday = _calibration_rows(guard, splits, spec, all_policies, config.calibration, eval_batch)
    calibration, per_policy = calibrate_per_policy(labels, scores, policy_column, choose_threshold, everyday)
    thresholds = {policy_id: value.threshold for policy_id, value in per_policy.items() if policy_id in manifest.policies}
    manifest.thresholds = thresholds
    results = _evaluate_test(guard, splits.get("test"), spec, all_policies, manifest, eval_batch)
    training = {
        "examples": len(training_rows["train"]),
        "steps": steps,
        "runtime_s": train_metrics.get("train_runtime"),
        "examples_per_second": train_metrics.get("train_samples_per_second"),
        "pooling": pooling,
        "head_init": "policy_reader" if reader else config.head_init,
        "prototype_head_training_accuracy": head_accuracy,
    }
    card = render_guard_card(
        kind=spec.kind,
        policies=spec.policies,
        base_model=manifest.base_model,
        datasets=datasets,
        license=config.license,
        threshold=calibration.threshold,
        thresholds=thresholds,
        calibration=calibration.describe(),
        max_length=config.max_length,
        results=results,
        repo_id=config.repo_id,
        dataset_config=spec.dataset_config,
        holdout_policies=spec.holdout_policies,
        input_format=spec.input_format,
        training_lines=_training_lines(config, training, class_weights, torch) + list(spec.training_notes),
    )
    save_guard(
        output,
        model,
        tokenizer,
        kind=spec.kind,
        policies=spec.policies,
        threshold=calibration.threshold,
        thresholds=thresholds,
        max_length=config.max_length,
        base_model=manifest.base_model,
        datasets=datasets,
        card=card,
        recipe=config,
        input_format=spec.input_format,
        reader=manifest.reader,
        everyday=spec.everyday,
    )
    write_eval_results(
        output,
        calibration,
        results,
        holdout_policies=list(spec.holdout_policies),
        training=training,
        thresholds={policy_id: value.as_dict() for policy_id, value in per_policy.items()},
    )
    if fine_tune:
        remove_checkpoints(config)
    return output


def _evaluate_test(
    guard: Guard, test: Dataset | None, spec: EncoderGuardSpec, all_policies: dict[str, Policy], manifest: GuardManifest, batch_size: int
) -> list[CardResult]:
    """Test metrics at each policy's own threshold (held-out policies at the default one)."""
    if test is None or len(test) == 0:
        return []
    scores = _score(guard, test, spec, all_policies, batch_size)
    labels = np.asarray(test["label"])
    policy_column = np.asarray(test["policy"])
    thresholds = np.asarray([manifest.threshold_for(policy_id) for policy_id in policy_column.tolist()])
    # One threshold per row makes the pooled metrics exact: score - threshold + 0.5 decides at 0.5.
    shifted = np.clip(scores - thresholds + 0.5, 0.0, 1.0)
    holdout = set(spec.holdout_policies)
    seen = np.asarray([policy_id not in holdout for policy_id in policy_column.tolist()])
    if not holdout:
        results = [_result("all", labels, shifted, 0.5)]
    else:
        results = [_result("trained policies", labels[seen], shifted[seen], 0.5)]
        results.append(_result("held-out policies (zero-shot)", labels[~seen], shifted[~seen], 0.5))
    if spec.reads_pairs:
        for policy_id in sorted(set(policy_column.tolist())):
            rows = policy_column == policy_id
            scope = f"{policy_id} (zero-shot)" if policy_id in holdout else policy_id
            results.append(_result(scope, labels[rows], scores[rows], manifest.threshold_for(policy_id)))
    return results


def _training_lines(config: EncoderTrainingConfig, training: dict, class_weights: list[float], torch) -> list[str]:
    device = "GPU" if torch.cuda.is_available() else "CPU"
    precision = next((name for name, used in precision_flags(config.precision).items() if used), "fp32")
    reads = "the mean of the token states (a frozen mean-pooling layer before the head)" if training["pooling"] == "mean" else "the [CLS] token"
    lines = [f"The head reads {reads}."]
    if training["head_init"] == "policy_reader":
        lines.append(
            f"A policy reader (logistic regression, C={config.head_c:g}, over {len(FEATURES)} similarities of the text's "
            "sentence embedding to the policy's examples, rules and allowed items, to other policies' unsafe examples and to everyday texts) "
            f"makes the scores (training accuracy {training['prototype_head_training_accuracy']:.3f}); the classifier head is zero."
        )
    elif training["head_init"] == "prototype":
        lines.append(
            f"The head started as a logistic regression (C={config.head_c:g}) fitted on the frozen encoder's features "
            f"(training accuracy {training['prototype_head_training_accuracy']:.3f})."
        )
    if training["steps"]:
        lines += [
            f"{training['examples']} training examples, {training['steps']} optimiser steps of {config.batch_size} x "
            f"{config.gradient_accumulation_steps} examples, learning rate {config.learning_rate:g}, seed {config.seed}, {precision} on {device}.",
            "Best checkpoint by validation F1"
            + (f", early stopping after {config.early_stopping_patience} validations without gain." if config.early_stopping_patience else "."),
        ]
        if config.class_weighting:
            lines.append(f"Loss weighted by inverse class frequency (safe {class_weights[0]:.2f}, unsafe {class_weights[1]:.2f}).")
    else:
        lines.append(f"No fine-tuning (--epochs 0): the encoder is the base model's, {training['examples']} training examples fitted the head.")
    return lines
