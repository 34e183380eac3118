"""Scoring a merged encoder as a one-pass UniGuard: rows tokenised once, every policy scored in one pass.

A split's rows are (text, policy, label). Each distinct text is cut into windows once (the text alone, as
the UniGuard reads it); a trial runs the merged model over those windows once and reads each row's score
from its policy's column, so the search optimises what the saved guard will compute.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from datasets import Dataset

from guardkit.calibration import ThresholdMetrics, threshold_metrics, threshold_rule
from guardkit.data.corpora import is_everyday_source
from guardkit.errors import GuardkitError
from guardkit.guard import Guard, Windows


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
    """The rows of a split, their distinct texts' windows tokenised once, and what each row is labelled."""

    policy_ids: list[str]
    texts: list[str]
    labels: np.ndarray  # per row
    text_of_row: np.ndarray  # per row, index into texts
    policy_of_row: np.ndarray  # per row, index into policy_ids
    everyday: np.ndarray  # per row, whether it is a real everyday text (a benign corpus row), for calibration "everyday"
    windows: Windows

    @classmethod
    def build(cls, split: Dataset, policy_ids: Sequence[str], guard: Guard, max_rows: int = 0, seed: int = 0) -> "EncodedSplit":
        """The rows of `split` whose policy is one of `policy_ids`; max_rows > 0 keeps a seeded random sample of
        at most that many rows, the same number per policy (faster trials)."""
        rng = np.random.default_rng(seed)
        column_policies = np.asarray(split["policy"], dtype=object)
        present = [policy_id for policy_id in policy_ids if (column_policies == policy_id).any()]
        if not present:
            raise GuardkitError(f"the split has no rows of the policies {', '.join(policy_ids)}; is it the dataset the guards were trained on?")
        per_policy = max(1, max_rows // len(present)) if max_rows > 0 else 0
        all_texts, all_labels = list(split["text"]), np.asarray(split["label"], dtype=np.int64)
        all_sources = list(split["source"]) if "source" in split.column_names else [""] * len(all_texts)
        text_index: dict[str, int] = {}
        rows_text, rows_policy, rows_label, rows_everyday = [], [], [], []
        for policy_id in present:
            rows = np.flatnonzero(column_policies == policy_id)
            if 0 < per_policy < len(rows):
                rows = np.sort(rng.choice(rows, size=per_policy, replace=False))
            for row in rows:
                rows_text.append(text_index.setdefault(all_texts[row], len(text_index)))
                rows_policy.append(policy_ids.index(policy_id))
                rows_label.append(all_labels[row])
                rows_everyday.append(is_everyday_source(all_sources[row]))
        texts = list(text_index)
        return cls(
            list(policy_ids),
            texts,
            np.asarray(rows_label, dtype=np.int64),
            np.asarray(rows_text, dtype=np.int64),
            np.asarray(rows_policy, dtype=np.int64),
            np.asarray(rows_everyday, dtype=bool),
            guard.encode_windows(texts, None),
        )

    def __len__(self) -> int:
        return len(self.labels)

    def score(self, guard: Guard, batch_size: int) -> np.ndarray:
        """P(unsafe) per row from the one-pass guard's current weights."""
        matrix = guard.score_windows(self.windows, len(self.texts), batch_size, progress=False, label="merge")
        return matrix[self.text_of_row, self.policy_of_row]

    def calibrate(self, scores: np.ndarray, calibration: str, target_fpr: float | None) -> dict[str, float]:
        """A threshold per policy, chosen on its rows by `calibration` (calibration.CALIBRATIONS) as the saved guard's are."""
        choose = threshold_rule(calibration, target_fpr)
        thresholds = {}
        for index, policy_id in enumerate(self.policy_ids):
            rows = self.policy_of_row == index
            if rows.any() and len(set(self.labels[rows].tolist())) == 2:
                thresholds[policy_id] = choose(self.labels[rows], scores[rows], self.everyday[rows]).threshold
        return thresholds

    def metrics(self, scores: np.ndarray, thresholds: Mapping[str, float]) -> dict[str, ThresholdMetrics]:
        return {
            policy_id: threshold_metrics(self.labels[self.policy_of_row == index], scores[self.policy_of_row == index], thresholds.get(policy_id, 0.5))
            for index, policy_id in enumerate(self.policy_ids)
            if (self.policy_of_row == index).any()
        }
