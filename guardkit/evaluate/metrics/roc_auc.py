"""Area under the ROC curve: the chance that an unsafe text scores above a safe one; threshold-free."""

from guardkit.evaluate import statistics
from guardkit.evaluate.metrics import GuardMetric


class ROCAUC(GuardMetric):
    metric_name = "roc_auc"
    summary = __doc__

    def statistic(self, references, scores, threshold):
        return statistics.roc_auc(references, scores)
