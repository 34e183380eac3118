"""`--update-card`: the evaluation's quality results into a guard's model card, as its `model-index`.

The card's metadata is edited through `huggingface_hub.ModelCard` / `EvalResult`; the card text is left
as it is. One EvalResult per (suite, dataset, policy, metric): the dataset slice is `dataset_type`
(plus the policy as `dataset_config`), so the Hub groups metrics by slice. Results from earlier runs on
other slices stay; the same slice and metric are replaced. Efficiency numbers depend on the machine
and stay out of the card.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from guardkit.errors import GuardkitError
from guardkit.evaluate.harness import Measurement

TASK_TYPE = "text-classification"
TASK_NAME = "Guardrail classification (P(unsafe) under a policy)"
EXCLUDED_SUITES = frozenset({"efficiency"})
DECIMALS = 4


def eval_results_for(model: str, measurements: list[Measurement]) -> list:
    from huggingface_hub import EvalResult

    return [
        EvalResult(
            task_type=TASK_TYPE,
            task_name=TASK_NAME,
            dataset_type=measurement.dataset,
            dataset_name=f"{measurement.dataset} ({measurement.suite}, policy {measurement.policy})",
            dataset_config=measurement.policy,
            dataset_split="test",
            metric_type=measurement.metric,
            metric_name=measurement.metric.replace("_", " "),
            metric_value=round(measurement.value, DECIMALS),
            metric_args={"n": measurement.n, "suite": measurement.suite}
            | ({"ci_low": round(measurement.ci[0], DECIMALS), "ci_high": round(measurement.ci[1], DECIMALS)} if measurement.ci else {}),
        )
        for measurement in measurements
        if measurement.model == model and measurement.suite not in EXCLUDED_SUITES and measurement.value is not None
    ]


def _key(result: Any) -> tuple:
    return (*result.unique_identifier, result.metric_type)


def update_model_index(folder: str | Path, model: str, measurements: list[Measurement]) -> Path:
    """Merge `model`'s results into `folder/README.md`'s model-index; returns the card path."""
    from huggingface_hub import ModelCard

    path = Path(folder) / "README.md"
    if not path.is_file():
        raise GuardkitError(f"{path}: no model card to update; guard folders written by `guardkit train` or `guardkit merge` have one")
    new = eval_results_for(model, measurements)
    if not new:
        raise GuardkitError(f"no quality results for {model} to write into its card (efficiency numbers are not written)")
    card = ModelCard.load(path)
    replaced = {_key(result) for result in new}
    kept = [result for result in card.data.eval_results or [] if _key(result) not in replaced]
    card.data.model_name = card.data.model_name or model
    card.data.eval_results = kept + new
    card.save(path)
    return path
