"""Decision thresholds on P(unsafe), chosen on the validation split, and the metrics they give.

Shared by training (TaskGuard, MultiTaskGuard, JudgeGuard) and by the merge search, so that every
guard's threshold means the same thing: the verdict is unsafe when score >= threshold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from guardkit.errors import GuardkitError


class CalibrationError(GuardkitError):
    """Scores and labels from which no threshold can be chosen (e.g. a split with one class only)."""


# validation: max F1 (or the best recall at a target FPR) on the validation split; none: UNCALIBRATED_THRESHOLD;
# everyday: raised above UNCALIBRATED_THRESHOLD until at most a target share of the validation split's everyday
# texts (real benign requests, `guardkit.data.corpora.is_everyday_source`) is flagged.
CALIBRATIONS = ("validation", "none", "everyday")
# A class-balanced head's own boundary: where it was fitted to put equal odds.
UNCALIBRATED_THRESHOLD = 0.5
# A text is flagged when any of a deployment's policies flags it: ten harm policies at 1% of everyday text each
# flag up to a tenth of it. Measured on the dbc9c0b run's validation split and policy-bench dev half (docs/benchmarks.md,
# "Everyday thresholds at 1%"): everyday texts flagged by any policy, TaskGuards 0.160 -> 0.100, MultiTaskGuard
# 0.174 -> 0.124 (2% before), for policy-bench dev F1 -0.017 each.
DEFAULT_EVERYDAY_FPR = 0.01
# Fewer everyday rows than this cannot place a quantile: the policy keeps UNCALIBRATED_THRESHOLD.
MIN_EVERYDAY_ROWS = 50


@dataclass(frozen=True)
class ThresholdMetrics:
    """Binary metrics at one threshold, unsafe (1) being the positive class."""

    threshold: float
    precision: float
    recall: float
    f1: float
    fpr: float
    accuracy: float
    support: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Calibration:
    """A chosen threshold, the rule that chose it and what it gives on the calibration set."""

    objective: str  # "max_f1", "target_fpr", "everyday_fpr" or "fixed"
    target_fpr: float | None
    metrics: ThresholdMetrics

    @property
    def threshold(self) -> float:
        return self.metrics.threshold

    def describe(self) -> str:
        """How the threshold was chosen and what it gave, in words (for cards and logs)."""
        if self.objective == "target_fpr":
            rule = f"best recall at FPR <= {self.target_fpr:g}"
        elif self.objective == "everyday_fpr":
            rule = f"0.5, raised until at most {self.target_fpr:g} of the everyday validation texts is flagged"
        else:
            rule = {"max_f1": "maximum F1", "fixed": "fixed (the class-balanced head's own boundary)"}[self.objective]
        metrics = self.metrics
        return (
            f"{rule}; on validation (F1 {metrics.f1:.3f}, precision {metrics.precision:.3f}, "
            f"recall {metrics.recall:.3f}, FPR {metrics.fpr:.3f})"
        )

    def as_dict(self) -> dict[str, object]:
        return {"objective": self.objective, "target_fpr": self.target_fpr, **self.metrics.as_dict()}


def _as_arrays(labels: Sequence[int], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise CalibrationError(f"labels and scores must be two lists of the same length, got {y.shape} and {s.shape}")
    if len(y) == 0:
        raise CalibrationError("no examples to calibrate on: the validation split is empty")
    if not np.isin(y, (0, 1)).all():
        raise CalibrationError("labels must be 0 (safe) or 1 (unsafe)")
    if np.isnan(s).any():
        raise CalibrationError("scores contain NaN; the model diverged (try a lower learning rate)")
    return y, s


def fixed_calibration(labels: Sequence[int], scores: Sequence[float], threshold: float) -> Calibration:
    """A threshold set without looking at the scores, with what it gives on them."""
    return Calibration("fixed", None, threshold_metrics(labels, scores, threshold))


def everyday_calibration(labels: Sequence[int], scores: Sequence[float], everyday: Sequence[bool], target_fpr: float | None = None) -> Calibration:
    """UNCALIBRATED_THRESHOLD, or higher where more than `target_fpr` (DEFAULT_EVERYDAY_FPR) of the `everyday` rows
    would be flagged; with fewer than MIN_EVERYDAY_ROWS of them, UNCALIBRATED_THRESHOLD as a fixed calibration."""
    y, s = _as_arrays(labels, scores)
    mask = np.asarray(everyday, dtype=bool)
    if mask.shape != y.shape:
        raise CalibrationError(f"the everyday mask must mark every row, got {mask.shape} for {y.shape}")
    fpr = DEFAULT_EVERYDAY_FPR if target_fpr is None else target_fpr
    if not 0.0 <= fpr < 1.0:
        raise CalibrationError(f"target FPR must lie in [0, 1), got {fpr}")
    ordinary = np.sort(s[mask & (y == 0)])[::-1]
    if len(ordinary) < MIN_EVERYDAY_ROWS:
        return fixed_calibration(y, s, UNCALIBRATED_THRESHOLD)
    # Flag at most floor(fpr * n) of them: the threshold sits just above the next one down.
    allowed = int(np.floor(fpr * len(ordinary)))
    threshold = max(UNCALIBRATED_THRESHOLD, min(1.0, float(np.nextafter(ordinary[allowed], np.inf))))
    return Calibration("everyday_fpr", fpr, threshold_metrics(y, s, threshold))


def threshold_rule(calibration: str, target_fpr: float | None = None) -> Callable[..., Calibration]:
    """How a threshold is chosen from (labels, scores, everyday mask) under one of CALIBRATIONS. Only "everyday"
    reads the mask (which rows are real everyday texts); without one it keeps UNCALIBRATED_THRESHOLD, as for a
    policy the guard never saw, whose everyday scores no one has measured."""
    if calibration == "validation":
        return lambda labels, scores, everyday=None: calibrate_threshold(labels, scores, target_fpr)
    if calibration == "none":
        return lambda labels, scores, everyday=None: fixed_calibration(labels, scores, UNCALIBRATED_THRESHOLD)
    if calibration == "everyday":

        def choose(labels, scores, everyday=None):
            if everyday is None:
                return fixed_calibration(labels, scores, UNCALIBRATED_THRESHOLD)
            return everyday_calibration(labels, scores, everyday, target_fpr)

        return choose
    raise CalibrationError(f"calibration must be one of {', '.join(CALIBRATIONS)}, got '{calibration}'")


def threshold_metrics(labels: Sequence[int], scores: Sequence[float], threshold: float) -> ThresholdMetrics:
    """Precision, recall, F1, false-positive rate and accuracy of `score >= threshold`."""
    y, s = _as_arrays(labels, scores)
    flagged = s >= threshold
    tp = int(np.sum(flagged & (y == 1)))
    fp = int(np.sum(flagged & (y == 0)))
    fn = int(np.sum(~flagged & (y == 1)))
    negatives = int(np.sum(y == 0))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return ThresholdMetrics(
        threshold=float(threshold),
        precision=precision,
        recall=recall,
        f1=f1,
        fpr=fp / negatives if negatives else 0.0,
        accuracy=float(np.mean(flagged == (y == 1))),
        support=len(y),
    )


def calibrate_threshold(labels: Sequence[int], scores: Sequence[float], target_fpr: float | None = None) -> Calibration:
    """The threshold that maximises F1, or with `target_fpr` the one with the best recall at FPR <= target.

    The threshold is put halfway between the lowest score it flags and the next lower score, so the
    calibration set is classified as computed while unseen scores near the boundary fall either way fairly.
    """
    y, s = _as_arrays(labels, scores)
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        missing = "unsafe" if positives == 0 else "safe"
        raise CalibrationError(f"the calibration split has no {missing} examples; it needs both labels to choose a threshold")
    if target_fpr is not None and not 0.0 <= target_fpr < 1.0:
        raise CalibrationError(f"target FPR must lie in [0, 1), got {target_fpr}")

    order = np.argsort(-s, kind="stable")
    sorted_scores = s[order]
    true_positives = np.cumsum(y[order])
    false_positives = np.cumsum(1 - y[order])
    # One candidate per distinct score: flag everything scoring at least that much.
    last_of_run = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(s) - 1]
    candidates = sorted_scores[last_of_run]
    tp = true_positives[last_of_run]
    fp = false_positives[last_of_run]

    if target_fpr is None:
        f1 = 2 * tp / (2 * tp + fp + (positives - tp))
        best = int(np.argmax(f1))  # the first maximum is the highest threshold reaching it: fewest false alarms
    else:
        allowed = np.flatnonzero(fp / negatives <= target_fpr)
        best = int(allowed[-1]) if len(allowed) else -1
    if best < 0:
        # Even the top score raises too many false alarms: flag nothing.
        threshold = min(1.0, float(np.nextafter(candidates[0], np.inf)))
    elif best + 1 < len(candidates):
        threshold = float((candidates[best] + candidates[best + 1]) / 2)
    else:
        threshold = float(candidates[best])
    return Calibration(
        objective="max_f1" if target_fpr is None else "target_fpr",
        target_fpr=target_fpr,
        metrics=threshold_metrics(y, s, threshold),
    )


def score_summary(labels: Sequence[int], scores: Sequence[float], threshold: float) -> dict[str, float]:
    """`threshold_metrics` as a dict, plus the threshold-free AUROC when both labels occur."""
    from sklearn.metrics import roc_auc_score

    summary = threshold_metrics(labels, scores, threshold).as_dict()
    y, s = _as_arrays(labels, scores)
    if 0 < y.sum() < len(y):
        summary["auroc"] = float(roc_auc_score(y, s))
    return summary
