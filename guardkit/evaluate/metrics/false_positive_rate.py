"""False-positive rate at the guard's threshold: the share of safe texts it flags (over-refusal)."""

from guardkit.evaluate import statistics
from guardkit.evaluate.metrics import GuardMetric


class FalsePositiveRate(GuardMetric):
    metric_name = "false_positive_rate"
    summary = __doc__

    def statistic(self, references, scores, threshold):
        return statistics.false_positive_rate(references, scores, threshold)
