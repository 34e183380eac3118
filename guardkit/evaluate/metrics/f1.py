"""F1 of the unsafe class at the guard's threshold: the harmonic mean of its precision and recall."""

from guardkit.evaluate import statistics
from guardkit.evaluate.metrics import GuardMetric


class F1(GuardMetric):
    metric_name = "f1"
    summary = __doc__

    def statistic(self, references, scores, threshold):
        return statistics.f1(references, scores, threshold)
