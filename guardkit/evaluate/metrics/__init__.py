"""guardkit's metrics as `evaluate` metric scripts, one file each, loaded by path so they work offline.

Every script reads the same inputs, `predictions` = P(unsafe) and `references` = 0 safe / 1 unsafe,
plus the guard's `threshold` and the bootstrap settings, so they combine with `evaluate.combine`.
Each returns its value and the bounds of its percentile-bootstrap confidence interval.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from pathlib import Path

import datasets
import evaluate
import numpy as np

from guardkit.evaluate import statistics

METRIC_NAMES = (
    "precision",
    "recall",
    "f1",
    "accuracy",
    "auprc",
    "roc_auc",
    "false_positive_rate",
    "recall_at_1pct_fpr",
)
METRICS_DIR = Path(__file__).parent

INPUTS_DESCRIPTION = """
Args:
    predictions (`list` of `float`): P(unsafe) for each text, as the guard scored it.
    references (`list` of `int`): the true label of each text, 0 safe or 1 unsafe.
    threshold (`float`, default 0.5): the guard's decision threshold; a text is flagged when its score >= threshold.
    n_resamples (`int`, default 1000): bootstrap resamples for the confidence interval; 0 skips the interval.
    confidence_level (`float`, default 0.95): coverage of the interval.
    seed (`int`, default 0): seed of the bootstrap resampling.
Returns:
    `{name}`, `{name}_ci_low`, `{name}_ci_high` (the bounds are None without resamples).
"""


class GuardMetric(evaluate.Metric, metaclass=ABCMeta):
    """An `evaluate.Metric` over guard scores; a subclass names itself and gives its vectorised statistic."""

    metric_name: str
    summary: str

    @abstractmethod
    def statistic(self, references: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
        """The metric per row of (resamples, n) arrays."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=self.summary,
            citation="",
            inputs_description=INPUTS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("float64"), "references": datasets.Value("int32")}),
        )

    def _compute(self, predictions, references, threshold=0.5, n_resamples=1000, confidence_level=0.95, seed=0):
        def bound(references: np.ndarray, scores: np.ndarray) -> np.ndarray:
            return self.statistic(references, scores, threshold)

        return statistics.metric_result(self.metric_name, bound, references, predictions, n_resamples, confidence_level, seed)


def metric_script(name: str) -> Path:
    if name not in METRIC_NAMES:
        raise ValueError(f"unknown metric '{name}'; guardkit ships {', '.join(METRIC_NAMES)}")
    return METRICS_DIR / f"{name}.py"


def load_metrics(names: tuple[str, ...] = METRIC_NAMES) -> evaluate.CombinedEvaluations:
    """The named metrics loaded from their scripts by path (no network) and combined into one call."""
    return evaluate.combine([evaluate.load(str(metric_script(name))) for name in names])
