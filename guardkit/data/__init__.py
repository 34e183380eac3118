"""Datasets: the shared schema and the registry of public guardrail benchmarks."""

from guardkit.data.schema import COLUMNS, FEATURES, ID2LABEL, LABEL2ID, LABELS, label_id, normalise_row, rows_to_dataset

__all__ = ["COLUMNS", "FEATURES", "ID2LABEL", "LABEL2ID", "LABELS", "label_id", "normalise_row", "rows_to_dataset"]
