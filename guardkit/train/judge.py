"""`guardkit train judge`: a JudgeGuard, a small causal LM fine-tuned with trl's SFTTrainer.

The fair LLM baseline: it learns from exactly the data the encoder guards learn from, in the Llama
Guard style — the prompt holds the policy and the text (`guardkit.llm_judge.build_judge_prompt`, zero-shot),
the completion is the verdict word " safe" or " unsafe". The evaluation's `llm-judge` baseline scores
the saved folder as P(unsafe) from the verdict token, with the very same prompt.
"""

from __future__ import annotations

import random
import time

import numpy as np
from datasets import Dataset

from guardkit.assets import hub_id_of, resolve_model
from guardkit.calibration import calibrate_threshold, score_summary
from guardkit.data.io import load_guard_dataset
from guardkit.guard import save_guard
from guardkit.guard_card import CardResult, dataset_ref, render_guard_card
from guardkit.llm_judge import VERDICT_TOKENS, build_judge_prompt
from guardkit.policies import Policy
from guardkit.train.common import (
    TimeBudgetCallback,
    TrainingError,
    checkpoint_dir,
    precision_flags,
    remove_checkpoints,
    write_eval_results,
)
from guardkit.train.config import JudgeGuardConfig

# Room kept after the prompt for the verdict token and the end-of-sequence token.
COMPLETION_TOKENS = 2
MIN_TEXT_TOKENS = 16


def _load_base(config: JudgeGuardConfig):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model(config.base_model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path)
    except OSError as error:
        raise TrainingError(
            f"cannot load base model '{config.base_model}' ({error}); give a shipped name (smollm2-135m), a local folder, "
            "or a Hub id that is in the cache when offline"
        ) from None
    for word in VERDICT_TOKENS:
        if len(tokenizer(word, add_special_tokens=False)["input_ids"]) != 1:
            raise TrainingError(
                f"'{config.base_model}' splits the verdict {word!r} into several tokens; a JudgeGuard needs a tokenizer "
                "where ' safe' and ' unsafe' are single tokens (e.g. smollm2-135m)"
            )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


class PromptBuilder:
    """Judge prompts with the text cut so that prompt and verdict fit in `max_length` tokens."""

    def __init__(self, tokenizer, policies: dict[str, Policy], max_length: int):
        self.tokenizer = tokenizer
        self.policies = policies
        self.max_length = max_length
        self._text_room: dict[str, int] = {}

    def text_room(self, policy_id: str) -> int:
        if policy_id not in self._text_room:
            prefix, suffix = build_judge_prompt(self.policies[policy_id], "x")
            frame = len(self.tokenizer(prefix + suffix)["input_ids"]) - 1
            room = self.max_length - frame - COMPLETION_TOKENS
            if room < MIN_TEXT_TOKENS:
                raise TrainingError(
                    f"the judge prompt of policy '{policy_id}' takes {frame} of --max_length {self.max_length} tokens; "
                    f"raise --max_length to at least {frame + COMPLETION_TOKENS + 64}"
                )
            self._text_room[policy_id] = room
        return self._text_room[policy_id]

    def __call__(self, policy_id: str, text: str) -> str:
        room = self.text_room(policy_id)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) > room:
            text = self.tokenizer.decode(ids[:room])
        prefix, suffix = build_judge_prompt(self.policies[policy_id], text)
        return prefix + suffix


def _sft_rows(split: Dataset, prompts: PromptBuilder) -> Dataset:
    return Dataset.from_dict(
        {
            "prompt": [prompts(policy_id, text) for policy_id, text in zip(split["policy"], split["text"])],
            "completion": [VERDICT_TOKENS[label] for label in split["label"]],
        }
    )


def _seconds_per_example(model, tokenizer, rows: Dataset, batch_size: int) -> float:
    """Time of a forward and backward pass per example, from two probe batches (the first warms up)."""
    sample = rows.select(range(min(batch_size, len(rows))))
    texts = [prompt + completion for prompt, completion in zip(sample["prompt"], sample["completion"])]
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    model.train()
    elapsed = 0.0
    for _ in range(2):
        started = time.perf_counter()
        loss = model(**batch, labels=batch["input_ids"]).loss
        loss.backward()
        elapsed = time.perf_counter() - started
    model.zero_grad(set_to_none=True)
    # The optimiser step and data loading add to the probe; 1.3 keeps the estimate on the safe side.
    return 1.3 * elapsed / len(texts)


def _within_budget(rows: Dataset, config: JudgeGuardConfig, model, tokenizer) -> tuple[Dataset, str | None]:
    """On CPU, the training rows that fit in the time budget (a shuffled, label-balanced subset)."""
    import torch

    if torch.cuda.is_available() or config.cpu_time_budget_minutes <= 0:
        return rows, None
    per_example = _seconds_per_example(model, tokenizer, rows, config.batch_size)
    affordable = int(config.cpu_time_budget_minutes * 60 / per_example / max(config.epochs, 1e-9))
    if affordable >= len(rows):
        return rows, None
    if affordable < config.batch_size:
        raise TrainingError(
            f"--cpu_time_budget_minutes {config.cpu_time_budget_minutes:g} fits fewer than one batch "
            f"(~{per_example:.1f} s per example on this CPU); raise the budget or train on a GPU"
        )
    rng = random.Random(config.seed)
    by_label = {completion: [i for i, c in enumerate(rows["completion"]) if c == completion] for completion in VERDICT_TOKENS}
    for indices in by_label.values():
        rng.shuffle(indices)
    chosen: list[int] = []
    while len(chosen) < affordable and any(by_label.values()):
        for indices in by_label.values():
            if indices and len(chosen) < affordable:
                chosen.append(indices.pop())
    rng.shuffle(chosen)
    note = (
        f"CPU time budget of {config.cpu_time_budget_minutes:g} min: trained on {len(chosen)} of {len(rows)} examples "
        f"(label-balanced sample, ~{per_example:.2f} s per example measured)."
    )
    return rows.select(chosen), note


def _score(judge, split: Dataset, policies: dict[str, Policy]) -> np.ndarray:
    scores = np.zeros(len(split), dtype=np.float32)
    policy_column = np.asarray(split["policy"])
    texts = split["text"]
    for policy_id in dict.fromkeys(policy_column.tolist()):
        rows = np.flatnonzero(policy_column == policy_id)
        scores[rows] = judge.score(policies[policy_id], [texts[row] for row in rows], progress=True)
    return scores


def train_judge_guard(config: JudgeGuardConfig) -> None:
    """Fine-tune a causal LM judge on config "multitask", calibrate its threshold and save it as kind "judge"."""
    import torch
    from peft import LoraConfig
    from transformers import set_seed
    from trl import SFTConfig, SFTTrainer

    from guardkit.llm_judge import LLMJudge

    splits, policies = load_guard_dataset(config.dataset, "multitask", revision=config.dataset_revision)
    if "validation" not in splits or len(splits["validation"]) == 0:
        raise TrainingError(f"{config.dataset} has no validation rows; calibrating the judge's threshold needs them")
    set_seed(config.seed)
    model, tokenizer = _load_base(config)
    prompts = PromptBuilder(tokenizer, policies, config.max_length)
    train_rows = _sft_rows(splits["train"].shuffle(seed=config.seed), prompts)
    train_rows, budget_note = _within_budget(train_rows, config, model, tokenizer)
    checkpoints, resume_from = checkpoint_dir(config)
    arguments = SFTConfig(
        output_dir=str(checkpoints),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_ratio,
        max_length=config.max_length,
        completion_only_loss=True,
        # SFTConfig turns these on by default; on CPU bf16 is ~10x slower and checkpointing only costs time.
        activation_checkpointing=False,
        save_strategy="steps",
        save_steps=config.eval_steps or 100,
        save_total_limit=1,
        seed=config.seed,
        data_seed=config.seed,
        logging_steps=10,
        report_to="none",
        dataloader_pin_memory=torch.cuda.is_available(),
        **precision_flags(config.precision),
    )
    callbacks = []
    if not torch.cuda.is_available() and config.cpu_time_budget_minutes > 0:
        callbacks.append(TimeBudgetCallback(config.cpu_time_budget_minutes * 60))
    trainer = SFTTrainer(
        model=model,
        args=arguments,
        train_dataset=train_rows,
        processing_class=tokenizer,
        peft_config=LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, target_modules="all-linear", task_type="CAUSAL_LM")
        if config.lora_r > 0
        else None,
        callbacks=callbacks,
    )
    train_output = trainer.train(resume_from_checkpoint=resume_from)
    if not trainer.is_world_process_zero():
        return
    model = trainer.model
    if config.lora_r > 0:
        model = model.merge_and_unload()
    model = model.float()
    # LLMJudge loads from a folder; score the trained weights from a staging copy inside the checkpoints.
    staging = checkpoints / "final"
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    judge = LLMJudge(str(staging), few_shot=0, batch_size=config.batch_size * 2)
    calibration = calibrate_threshold(splits["validation"]["label"], _score(judge, splits["validation"], policies), config.target_fpr)
    results: list[CardResult] = []
    test = splits.get("test")
    if test is not None and len(test):
        results.append(CardResult("all", score_summary(test["label"], _score(judge, test, policies), calibration.threshold)))
    trained = [policies[policy_id] for policy_id in dict.fromkeys(splits["train"]["policy"])]
    datasets = [dataset_ref(config.dataset, config.dataset_revision)]
    lines = [
        f"trl SFTTrainer, {len(train_rows)} prompt/completion examples, {train_output.global_step} steps of "
        f"{config.batch_size} x {config.gradient_accumulation_steps}, learning rate {config.learning_rate:g}, seed {config.seed}.",
        f"LoRA rank {config.lora_r} (merged into the weights)." if config.lora_r > 0 else "All weights fine-tuned.",
    ]
    if budget_note:
        lines.append(budget_note)
    if any(isinstance(callback, TimeBudgetCallback) and callback.stopped_early for callback in callbacks):
        lines.append("Training stopped early at the CPU time budget.")
    card = render_guard_card(
        kind="judge",
        policies=trained,
        base_model=hub_id_of(config.base_model),
        datasets=datasets,
        license=config.license,
        threshold=calibration.threshold,
        calibration=calibration.describe(),
        max_length=config.max_length,
        results=results,
        repo_id=config.repo_id,
        dataset_config="multitask",
        training_lines=lines,
    )
    save_guard(
        config.output,
        model,
        tokenizer,
        kind="judge",
        policies=trained,
        threshold=calibration.threshold,
        max_length=config.max_length,
        base_model=hub_id_of(config.base_model),
        datasets=datasets,
        card=card,
        recipe=config,
    )
    write_eval_results(config.output, calibration, results)
    remove_checkpoints(config)
