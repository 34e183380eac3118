"""Accuracy at the guard's threshold: the share of texts whose verdict matches the label."""

from guardkit.evaluate import statistics
from guardkit.evaluate.metrics import GuardMetric


class Accuracy(GuardMetric):
    metric_name = "accuracy"
    summary = __doc__

    def statistic(self, references, scores, threshold):
        return statistics.accuracy(references, scores, threshold)
