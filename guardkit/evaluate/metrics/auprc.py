"""Area under the precision-recall curve of the unsafe class (average precision); threshold-free."""

from guardkit.evaluate import statistics
from guardkit.evaluate.metrics import GuardMetric


class AUPRC(GuardMetric):
    metric_name = "auprc"
    summary = __doc__

    def statistic(self, references, scores, threshold):
        return statistics.average_precision(references, scores)
