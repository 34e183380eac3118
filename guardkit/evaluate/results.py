"""results.json: every measurement of a run in one versioned, flat schema.

`{"schema_version", "guardkit_version", "created", "config", "scorers", "policies", "suites", "results"}`
where each result is `{"model", "suite", "dataset", "policy", "metric", "value", "ci": [low, high] | null, "n"}`
and `suites` holds each suite's status, notes and what data it read.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from guardkit import __version__
from guardkit.errors import GuardkitError
from guardkit.evaluate.harness import Measurement, SuiteOutcome

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"
# Metrics where lower is better; every other metric is better higher.
LOWER_IS_BETTER = frozenset(
    {
        "false_positive_rate",
        "mean_cross_policy_fpr",
        "recall_drop",
        "latency_p50_ms",
        "latency_p95_ms",
        "all_policies_latency_ms",
        "peak_rss_mb",
        "size_on_disk_mb",
        "load_s",
    }
)


def measurement_to_dict(measurement: Measurement) -> dict[str, Any]:
    row = dataclasses.asdict(measurement)
    row["ci"] = list(measurement.ci) if measurement.ci is not None else None
    return row


def measurement_from_dict(row: dict[str, Any]) -> Measurement:
    ci = tuple(row["ci"]) if row.get("ci") is not None else None
    return Measurement(row["model"], row["suite"], row["dataset"], row["policy"], row["metric"], row["value"], ci, row["n"])


def build_results(config, scorers: list[dict[str, Any]], policies: list[str], outcomes: list[SuiteOutcome]) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "guardkit_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": dataclasses.asdict(config),
        "scorers": scorers,
        "policies": policies,
        "suites": {outcome.suite: {"status": outcome.status, "notes": outcome.notes, "data": outcome.data} for outcome in outcomes},
        "results": [measurement_to_dict(measurement) for outcome in outcomes for measurement in outcome.measurements],
    }


def write_results(results: dict[str, Any], folder: Path) -> Path:
    path = folder / RESULTS_FILE
    staging = path.with_suffix(".json.tmp")
    staging.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    # Replaced whole, so an interrupted run never leaves half a file behind.
    staging.replace(path)
    return path


def read_results(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise GuardkitError(f"{path}: cannot read evaluation results ({error})") from None
    version = results.get("schema_version")
    if version != SCHEMA_VERSION:
        raise GuardkitError(f"{path}: results schema_version {version!r}, this guardkit reads {SCHEMA_VERSION}; rerun `guardkit evaluate`")
    return results
