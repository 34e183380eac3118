"""The registry of merge methods: one small module per method, registered by `@merge_method`.

A method combines what several fine-tuned models hold for one parameter, pure torch, mergekit-style:
`function(values, weights, **hyperparameters) -> tensor`. `values` stacks the sources along the first
dimension (float32); `weights` has one coefficient per source. A method that `uses_base` receives task
vectors (source − pre-trained base) and returns the merged task vector, which the caller adds to the
base; the others receive the sources' values and return the merged value.

A method may declare `prepare(values) -> dict`: statistics of the values alone (not of the weights or
hyperparameters), passed to `function` as keyword arguments. A search computes them once per parameter
and reuses them in every trial; a single merge computes them on the way. Stochastic methods also get a
`generator` seeded per parameter, so a merge is reproducible bit for bit whatever the order of work.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from guardkit.errors import GuardkitError

MergeFunction = Callable[..., torch.Tensor]
PrepareFunction = Callable[[torch.Tensor], dict[str, torch.Tensor]]


class UnknownMethod(GuardkitError):
    """A merge method name that is not registered."""


class ZeroWeights(GuardkitError):
    """A weighted average whose weights sum to zero, so it has no value."""


def weight_column(weights: Sequence[float], values: torch.Tensor) -> torch.Tensor:
    """The weights as a tensor that broadcasts over `values` (sources along the first dimension)."""
    if len(weights) != values.shape[0]:
        raise ValueError(f"{len(weights)} weights for {values.shape[0]} sources")
    column = torch.tensor([float(weight) for weight in weights], dtype=values.dtype)
    return column.reshape(-1, *([1] * (values.dim() - 1)))


@dataclass(frozen=True)
class Hyperparameter:
    """A number the method needs besides the weights; the search samples it from [low, high]."""

    name: str
    low: float
    high: float
    default: float
    help: str


@dataclass(frozen=True)
class Option:
    """A fixed choice of the method, set by the config field `<method>_<name>` and never searched."""

    name: str
    default: bool | str
    choices: tuple[bool | str, ...]
    help: str

    def config_field(self, method: str) -> str:
        return f"{method}_{self.name}"


@dataclass(frozen=True)
class MergeMethod:
    name: str
    function: MergeFunction
    uses_base: bool
    weight_range: tuple[float, float]
    hyperparameters: tuple[Hyperparameter, ...] = ()
    options: tuple[Option, ...] = ()
    stochastic: bool = False
    prepare: PrepareFunction | None = None
    summary: str = ""

    def __call__(self, values: torch.Tensor, weights: Sequence[float], **arguments) -> torch.Tensor:
        return self.function(values, weights, **arguments)


METHODS: dict[str, MergeMethod] = {}


def merge_method(
    name: str,
    *,
    uses_base: bool,
    weight_range: tuple[float, float],
    hyperparameters: Sequence[Hyperparameter] = (),
    options: Sequence[Option] = (),
    stochastic: bool = False,
    prepare: PrepareFunction | None = None,
) -> Callable[[MergeFunction], MergeFunction]:
    """Register `function` as merge method `name`; its docstring's first line becomes the summary."""

    def register(function: MergeFunction) -> MergeFunction:
        if name in METHODS:
            raise ValueError(f"merge method '{name}' is registered twice")
        METHODS[name] = MergeMethod(
            name=name,
            function=function,
            uses_base=uses_base,
            weight_range=weight_range,
            hyperparameters=tuple(hyperparameters),
            options=tuple(options),
            stochastic=stochastic,
            prepare=prepare,
            summary=(function.__doc__ or "").strip().splitlines()[0],
        )
        return function

    return register


def get_method(name: str) -> MergeMethod:
    if name not in METHODS:
        raise UnknownMethod(f"unknown merge method '{name}'; choose one of {', '.join(sorted(METHODS))}")
    return METHODS[name]


def _import_members() -> None:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


_import_members()
