"""What the encoder and judge trainers share: precision, resumable checkpoints, time budgets."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

import yaml
from datasets import DatasetDict, concatenate_datasets
from transformers import TrainerCallback

from guardkit.calibration import Calibration
from guardkit.data.schema import rows_to_dataset
from guardkit.errors import GuardkitError
from guardkit.policies import Policy
from guardkit.train.config import PRECISIONS, TrainingConfig

CHECKPOINT_DIR = "checkpoints"
RUN_RECORD = "run.yaml"
EVAL_RESULTS_FILE = "eval_results.json"


class TrainingError(GuardkitError):
    """A training run that cannot start or go on; the message says what to change."""


def precision_flags(choice: str) -> dict[str, bool]:
    """`bf16` / `fp16` TrainingArguments for `choice`, refusing a precision the device cannot run fast."""
    import torch

    if choice not in PRECISIONS:
        raise TrainingError(f"--precision must be one of {', '.join(PRECISIONS)}, got '{choice}'")
    cuda = torch.cuda.is_available()
    bf16_ok = cuda and torch.cuda.is_bf16_supported()
    if choice == "auto":
        return {"bf16": bf16_ok, "fp16": cuda and not bf16_ok}
    if choice == "bf16" and not bf16_ok:
        raise TrainingError("--precision bf16 needs a GPU with bf16 support (on CPU it runs ~10x slower); use --precision fp32")
    if choice == "fp16" and not cuda:
        raise TrainingError("--precision fp16 needs a CUDA GPU; use --precision fp32")
    return {"bf16": choice == "bf16", "fp16": choice == "fp16"}


def checkpoint_dir(config: TrainingConfig) -> tuple[Path, str | None]:
    """The checkpoint folder inside the output and the checkpoint to resume from, if any.

    A run resumes only with the options it started with; anything else would mix two trainings.
    """
    from transformers.trainer_utils import get_last_checkpoint

    folder = Path(config.output) / CHECKPOINT_DIR
    record = folder / RUN_RECORD
    options = dataclasses.asdict(config)
    remove_incomplete_checkpoints(folder)
    last = get_last_checkpoint(str(folder)) if folder.is_dir() else None
    if last is not None and record.is_file():
        previous = yaml.safe_load(record.read_text(encoding="utf-8"))
        if previous != options:
            changed = sorted(key for key in set(options) | set(previous) if options.get(key) != previous.get(key))
            raise TrainingError(
                f"{folder} holds checkpoints of a run with other options ({', '.join(changed)}); rerun with the same "
                f"options to resume it, or delete {folder} to start over"
            )
    folder.mkdir(parents=True, exist_ok=True)
    record.write_text(yaml.safe_dump(options, sort_keys=False), encoding="utf-8")
    if last is not None:
        print(f"resuming the interrupted training from {last}", file=sys.stderr)
    return folder, last


def remove_incomplete_checkpoints(folder: Path) -> None:
    """Delete the checkpoints an interrupted save left behind, so a rerun never resumes from one.

    Trainer writes trainer_state.json last: a checkpoint without it may hold truncated weights.
    """
    from transformers.trainer import TRAINER_STATE_NAME
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    if not folder.is_dir():
        return
    for checkpoint in sorted(folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*")):
        if checkpoint.is_dir() and not (checkpoint / TRAINER_STATE_NAME).is_file():
            print(f"removing {checkpoint}: its save was interrupted (no {TRAINER_STATE_NAME})", file=sys.stderr)
            shutil.rmtree(checkpoint)


def remove_checkpoints(config: TrainingConfig) -> None:
    """Checkpoints are for resuming only; the finished folder must be the guard alone."""
    shutil.rmtree(Path(config.output) / CHECKPOINT_DIR, ignore_errors=True)


class TimeBudgetCallback(TrainerCallback):
    """Stops training before the next step would overrun the budget (used on CPU, where steps are slow)."""

    def __init__(self, budget_seconds: float):
        self.budget_seconds = budget_seconds
        self.started = 0.0
        self.steps = 0
        self.stopped_early = False

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.monotonic()
        self.steps = 0

    def on_step_end(self, args, state, control, **kwargs):
        self.steps += 1
        elapsed = time.monotonic() - self.started
        if elapsed + elapsed / self.steps > self.budget_seconds and state.global_step < state.max_steps:
            self.stopped_early = True
            control.should_training_stop = True
            control.should_save = True
        return control


def write_eval_results(output: str | Path, calibration: Calibration, results, **extra) -> None:
    """`eval_results.json` beside the guard: the calibration and the test metrics the card shows, as data."""
    record = {
        "calibration": calibration.as_dict(),
        "test": {result.scope: dict(result.metrics) for result in results},
        **extra,
    }
    (Path(output) / EVAL_RESULTS_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


POLICY_EXAMPLE_SOURCE = "policy-example"


def with_policy_examples(splits: DatasetDict, policies: list[Policy]) -> DatasetDict:
    """`splits` with every example written in `policies` appended to train (never to validation or test).

    A policy's own examples are the most reliable labelled texts there are: hand-written for the policy,
    where the generated rows carry a weak generator's and judge's mistakes. Generation dedups against
    them, so they cannot repeat a validation or test row.
    """
    rows = [
        {"text": text, "label": label, "policy": policy.id, "source": POLICY_EXAMPLE_SOURCE}
        for policy in policies
        for text, label in policy.all_examples()
    ]
    train = concatenate_datasets([splits["train"], rows_to_dataset(rows).cast(splits["train"].features)])
    return DatasetDict({**splits, "train": train})
