"""The registry of evaluation suites: one module per suite, a function registered with `@register_suite`.

A suite takes the `EvaluationContext` and returns a `SuiteOutcome`; it raises `SuiteSkipped` when it
cannot run here (missing data or packages), which the runner reports and moves on from.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from guardkit.errors import GuardkitError

if TYPE_CHECKING:
    from guardkit.evaluate.harness import EvaluationContext, SuiteOutcome

SUITE_MODULES = (
    "synthetic",
    "public",
    "over_refusal",
    "robustness",
    "efficiency",
    "policy_bench",
    "offline_corpora",
    "policy_following",
)


@dataclass(frozen=True)
class Suite:
    name: str
    summary: str
    run: Callable[["EvaluationContext"], "SuiteOutcome"]


SUITES: dict[str, Suite] = {}


def register_suite(name: str, summary: str) -> Callable:
    def register(run: Callable[["EvaluationContext"], "SuiteOutcome"]) -> Callable:
        if name in SUITES:
            raise ValueError(f"suite '{name}' is already registered")
        SUITES[name] = Suite(name, summary, run)
        return run

    return register


def _import_all() -> None:
    for module in SUITE_MODULES:
        importlib.import_module(f"{__name__}.{module}")


def get_suites(names: list[str]) -> list[Suite]:
    _import_all()
    unknown = [name for name in names if name not in SUITES]
    if unknown:
        raise GuardkitError(f"unknown suite(s) {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    return [SUITES[name] for name in names]
