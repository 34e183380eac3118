"""The registry of baselines: reference guards scored by the same harness as the trained ones.

A baseline is one module here with a `Scorer` subclass decorated by `@register_baseline(name)`; the
class builds itself from the evaluation config with `from_config(config, name)`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from guardkit.errors import GuardkitError

if TYPE_CHECKING:
    from guardkit.evaluate.config import EvaluateConfig
    from guardkit.evaluate.scorers import Scorer

BASELINE_MODULES = ("llm_judge", "api_judge", "keyword", "embedding_knn")
BASELINES: dict[str, type] = {}


def register_baseline(name: str) -> Callable[[type], type]:
    def register(cls: type) -> type:
        if name in BASELINES:
            raise ValueError(f"baseline '{name}' is already registered")
        cls.registry_name = name
        BASELINES[name] = cls
        return cls

    return register


def _import_all() -> None:
    for module in BASELINE_MODULES:
        importlib.import_module(f"{__name__}.{module}")


def baseline_names() -> list[str]:
    _import_all()
    return list(BASELINES)


def build_baseline(name: str, config: "EvaluateConfig") -> "Scorer":
    _import_all()
    if name not in BASELINES:
        raise GuardkitError(f"unknown baseline '{name}'; choose from {', '.join(BASELINES)}")
    return BASELINES[name].from_config(config)
