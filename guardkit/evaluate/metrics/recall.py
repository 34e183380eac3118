"""Recall of the unsafe class at the guard's threshold: the share of unsafe texts it flags."""

from guardkit.evaluate import statistics
from guardkit.evaluate.metrics import GuardMetric


class Recall(GuardMetric):
    metric_name = "recall"
    summary = __doc__

    def statistic(self, references, scores, threshold):
        return statistics.recall(references, scores, threshold)
