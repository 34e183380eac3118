"""Precision of the unsafe class at the guard's threshold: of the texts it flags, the share truly unsafe."""

from guardkit.evaluate import statistics
from guardkit.evaluate.metrics import GuardMetric


class Precision(GuardMetric):
    metric_name = "precision"
    summary = __doc__

    def statistic(self, references, scores, threshold):
        return statistics.precision(references, scores, threshold)
