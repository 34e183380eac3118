"""Score a merged model on the validation split: tokenised once, cached, and scored in batches per trial.

Rows are paired with their policy's instruction exactly as a UniGuard reads them (the instruction-pair
input of `guardkit.guard.Guard`, sliding windows included), so the search optimises what the saved
guard will compute.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from datasets import Dataset

from guardkit.errors import GuardkitError
from guardkit.guard import Guard, Windows
from guardkit.policies import Policy
from guardkit.train.calibration import ThresholdMetrics, calibrate_threshold, threshold_metrics


def aggregate(metrics: Mapping[str, ThresholdMetrics], objective: str, fpr_penalty: float) -> float:
    """The search objective from per-policy metrics: mean or worst F1, minus fpr_penalty × mean FPR."""
    f1s = [value.f1 for value in metrics.values()]
    if objective == "mean_f1":
        value = float(np.mean(f1s))
    elif objective == "min_f1":
        value = float(np.min(f1s))
    else:
        raise GuardkitError(f"unknown objective '{objective}'; choose mean_f1 or min_f1")
    return value - fpr_penalty * float(np.mean([metric.fpr for metric in metrics.values()]))


@dataclass
class EncodedSplit:
    """The rows of a split, their instruction-pair windows tokenised once, and what each row is labelled."""

    policy_ids: list[str]
    labels: np.ndarray  # per row
    policy_of_row: np.ndarray  # per row, index into policy_ids
    windows: Windows  # tokenised windows of every row, owners numbered across policies

    @classmethod
    def build(cls, split: Dataset, policies: Mapping[str, Policy], guard: Guard, max_rows: int = 0, seed: int = 0) -> "EncodedSplit":
        """Tokenise the rows of `split` (a multitask split) whose policy is in `policies`, as `guard` reads them.

        Each row is paired with its policy's instruction. max_rows > 0 keeps a seeded random sample of at
        most that many rows, the same number per policy (faster trials).
        """
        rng = np.random.default_rng(seed)
        column_policies = np.asarray(split["policy"], dtype=object)
        texts, labels = list(split["text"]), np.asarray(split["label"], dtype=np.int64)
        policy_ids = sorted(policy_id for policy_id in set(column_policies) if policy_id in policies)
        if not policy_ids:
            raise GuardkitError(
                f"the split has no rows of the policies {', '.join(sorted(policies))}; is it the 'multitask' config of their dataset?"
            )
        per_policy = max(1, max_rows // len(policy_ids)) if max_rows > 0 else 0
        windows = Windows([], [], [])
        row_labels, row_policies = [], []
        for index, policy_id in enumerate(policy_ids):
            rows = np.flatnonzero(column_policies == policy_id)
            if 0 < per_policy < len(rows):
                rows = np.sort(rng.choice(rows, size=per_policy, replace=False))
            encoded = guard.encode_windows([texts[row] for row in rows], policies[policy_id].instruction())
            offset = len(row_labels)
            windows.input_ids.extend(encoded.input_ids)
            windows.token_type_ids.extend(encoded.token_type_ids)
            windows.owners.extend(owner + offset for owner in encoded.owners)
            row_labels.extend(labels[rows])
            row_policies.extend([index] * len(rows))
        return cls(policy_ids, np.asarray(row_labels, dtype=np.int64), np.asarray(row_policies, dtype=np.int64), windows)

    def __len__(self) -> int:
        return len(self.labels)

    def score(self, guard: Guard, batch_size: int) -> np.ndarray:
        """P(unsafe) per row from `guard`'s current weights (max over a row's windows)."""
        return guard.score_windows(self.windows, len(self.labels), batch_size, progress=False, label="merge")

    def calibrate(self, scores: np.ndarray, target_fpr: float | None) -> float:
        """The guard's decision threshold: one for all policies, chosen on every row (max F1, or best recall at target_fpr)."""
        return calibrate_threshold(self.labels, scores, target_fpr).threshold

    def metrics(self, scores: np.ndarray, threshold: float) -> dict[str, ThresholdMetrics]:
        return {
            policy_id: threshold_metrics(self.labels[self.policy_of_row == index], scores[self.policy_of_row == index], threshold)
            for index, policy_id in enumerate(self.policy_ids)
        }
