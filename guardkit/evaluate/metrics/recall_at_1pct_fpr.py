"""Recall at 1% false-positive rate: the best recall of any threshold that flags at most 1% of safe texts."""

from guardkit.evaluate import statistics
from guardkit.evaluate.metrics import GuardMetric

MAX_FALSE_POSITIVE_RATE = 0.01


class RecallAt1PctFPR(GuardMetric):
    metric_name = "recall_at_1pct_fpr"
    summary = __doc__

    def statistic(self, references, scores, threshold):
        return statistics.recall_at_fpr(references, scores, MAX_FALSE_POSITIVE_RATE)
