"""Vectorised statistics behind guardkit's metric scripts, and the percentile bootstrap they share.

Every statistic takes `references` (0 safe / 1 unsafe) and `scores` (P(unsafe)) as arrays of shape
(resamples, n) and returns one value per row, so that a bootstrap of 1000 resamples is a handful of
array operations instead of 1000 metric calls. A statistic that is undefined on a row (ROC-AUC with a
single class, FPR without safe texts) is NaN there; the bootstrap interval ignores those rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Statistic = Callable[..., np.ndarray]
# Rows of resampled indices built at once; bounds the memory of a bootstrap over large datasets.
RESAMPLE_CHUNK_CELLS = 2_000_000


def as_arrays(references: Sequence[int], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Validated 1-D arrays of labels (0/1) and scores in [0, 1]."""
    references = np.asarray(references, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    if references.shape != scores.shape or references.ndim != 1:
        raise ValueError(f"references and predictions must be 1-D and equally long, got {references.shape} and {scores.shape}")
    if not np.isin(references, (0, 1)).all():
        raise ValueError("references must be 0 (safe) or 1 (unsafe)")
    if np.isnan(scores).any():
        raise ValueError("predictions contain NaN; every text needs a score")
    return references, scores


def _ratio(numerator: np.ndarray, denominator: np.ndarray, empty: float) -> np.ndarray:
    """numerator / denominator, with `empty` where the denominator is 0."""
    numerator = numerator.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.maximum(denominator, 1), empty)


def confusion(references: np.ndarray, scores: np.ndarray, threshold: float) -> tuple[np.ndarray, ...]:
    """(tp, fp, fn, tn) per row for the verdict `score >= threshold` (the guard's own decision rule)."""
    flagged = scores >= threshold
    unsafe = references == 1
    tp = np.sum(flagged & unsafe, axis=-1)
    fp = np.sum(flagged & ~unsafe, axis=-1)
    fn = np.sum(~flagged & unsafe, axis=-1)
    tn = np.sum(~flagged & ~unsafe, axis=-1)
    return tp, fp, fn, tn


def accuracy(references: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    tp, fp, fn, tn = confusion(references, scores, threshold)
    return _ratio(tp + tn, tp + fp + fn + tn, np.nan)


def precision(references: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    # Nothing flagged: precision 0, as scikit-learn reports it (zero_division default).
    tp, fp, _, _ = confusion(references, scores, threshold)
    return _ratio(tp, tp + fp, 0.0)


def recall(references: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    # No unsafe text: recall is undefined (scikit-learn reports 0 with a warning; NaN says more).
    tp, _, fn, _ = confusion(references, scores, threshold)
    return _ratio(tp, tp + fn, np.nan)


def f1(references: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    tp, fp, fn, _ = confusion(references, scores, threshold)
    return _ratio(2 * tp, 2 * tp + fp + fn, 0.0)


def false_positive_rate(references: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    _, fp, _, tn = confusion(references, scores, threshold)
    return _ratio(fp, fp + tn, np.nan)


def _ranked(references: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative true and false positives down the ranking by score, and where each tie group ends.

    Returns (tps, fps, group_end, is_group_end), all of shape (rows, n). A threshold can only fall
    between different scores, so curves are read at the last position of each group of equal scores;
    `group_end[i]` is that position for the group position i belongs to.
    """
    order = np.argsort(-scores, axis=-1, kind="stable")
    ranked_scores = np.take_along_axis(scores, order, axis=-1)
    ranked_references = np.take_along_axis(references, order, axis=-1)
    tps = np.cumsum(ranked_references, axis=-1)
    fps = np.cumsum(1 - ranked_references, axis=-1)
    rows, n = scores.shape
    is_group_end = np.ones((rows, n), dtype=bool)
    is_group_end[:, :-1] = ranked_scores[:, :-1] != ranked_scores[:, 1:]
    positions = np.where(is_group_end, np.arange(n), n)
    group_end = np.minimum.accumulate(positions[:, ::-1], axis=-1)[:, ::-1]
    return tps, fps, group_end, is_group_end


def average_precision(references: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Area under the precision-recall curve as a step sum (scikit-learn's average_precision_score)."""
    tps, fps, group_end, _ = _ranked(references, scores)
    positives = tps[:, -1]
    precision_at = tps / (tps + fps)
    # Each unsafe text adds 1/positives of recall at the precision of the threshold that first includes it.
    unsafe_at = np.diff(tps, axis=-1, prepend=0)
    gained = np.sum(unsafe_at * np.take_along_axis(precision_at, group_end, axis=-1), axis=-1)
    return _ratio(gained, positives, np.nan)


def roc_auc(references: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Area under the ROC curve: the Mann-Whitney probability that an unsafe text outscores a safe one."""
    from scipy.stats import rankdata

    ranks = rankdata(scores, axis=-1, method="average")
    positives = np.sum(references, axis=-1)
    negatives = references.shape[-1] - positives
    rank_sum = np.sum(np.where(references == 1, ranks, 0.0), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)
    return np.where((positives > 0) & (negatives > 0), auc, np.nan)


def recall_at_fpr(references: np.ndarray, scores: np.ndarray, max_fpr: float) -> np.ndarray:
    """The highest recall of any threshold whose false-positive rate is at most `max_fpr`."""
    tps, fps, _, is_group_end = _ranked(references, scores)
    positives = tps[:, -1:]
    negatives = fps[:, -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        allowed = is_group_end & (fps <= max_fpr * negatives)
        best = np.max(np.where(allowed, tps, 0), axis=-1)
    defined = (positives[:, 0] > 0) & (negatives[:, 0] > 0)
    return np.where(defined, best / np.maximum(positives[:, 0], 1), np.nan)


def point_and_interval(
    statistic: Statistic,
    arrays: Sequence[np.ndarray],
    n_resamples: int,
    confidence_level: float,
    seed: int,
) -> tuple[float, float | None, float | None]:
    """The statistic on the data and its percentile-bootstrap interval (None, None when n_resamples is 0).

    `arrays` are 1-D and paired: every resample draws the same indices from each, so statistics over
    (references, scores) or (references, scores_before, scores_after) keep their rows together.
    """
    if not 0 < confidence_level < 1:
        raise ValueError(f"confidence_level must lie in (0, 1), got {confidence_level}")
    n = len(arrays[0])
    if n == 0:
        return float("nan"), None, None
    value = float(statistic(*(array[np.newaxis, :] for array in arrays))[0])
    if n_resamples <= 0:
        return value, None, None
    generator = np.random.default_rng(seed)
    chunk = max(1, RESAMPLE_CHUNK_CELLS // n)
    values = []
    for start in range(0, n_resamples, chunk):
        indices = generator.integers(0, n, size=(min(chunk, n_resamples - start), n))
        values.append(statistic(*(array[indices] for array in arrays)))
    resampled = np.concatenate(values)
    resampled = resampled[~np.isnan(resampled)]
    if resampled.size == 0:
        return value, None, None
    tail = (1 - confidence_level) / 2 * 100
    low, high = np.percentile(resampled, [tail, 100 - tail])
    return value, float(low), float(high)


def metric_result(
    name: str,
    statistic: Statistic,
    references: Sequence[int],
    scores: Sequence[float],
    n_resamples: int,
    confidence_level: float,
    seed: int,
) -> dict[str, float | None]:
    """What a guardkit metric script returns: `{name, name_ci_low, name_ci_high}`."""
    value, low, high = point_and_interval(statistic, as_arrays(references, scores), n_resamples, confidence_level, seed)
    return {name: value, f"{name}_ci_low": low, f"{name}_ci_high": high}
