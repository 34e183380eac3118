"""DARE (Yu et al., 2024): drop task-vector entries at random and rescale the rest, then combine."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from guardkit.merge.methods import Hyperparameter, Option, merge_method, weight_column
from guardkit.merge.methods.ties import disjoint_mean


def drop_and_rescale(deltas: torch.Tensor, drop_rate: float, generator: torch.Generator) -> torch.Tensor:
    """Zero each entry with probability `drop_rate` and divide the survivors by 1 − drop_rate (same expectation)."""
    if not 0.0 <= drop_rate < 1.0:
        raise ValueError(f"drop_rate must lie in [0, 1), got {drop_rate}")
    # In place on the random draws: 1.0 where an entry survives, then the survivors' rescaled values.
    kept = torch.rand(deltas.shape, generator=generator, dtype=deltas.dtype).ge_(drop_rate)
    return kept.mul_(deltas).div_(1.0 - drop_rate)


@merge_method(
    "dare",
    uses_base=True,
    weight_range=(0.0, 1.0),
    hyperparameters=(Hyperparameter("drop_rate", low=0.0, high=0.9, default=0.3, help="probability of dropping each task-vector entry"),),
    options=(
        Option(
            "combine",
            default="ties",
            choices=("ties", "linear"),
            help="how the sparsified task vectors are combined: ties (sign election, disjoint mean) or linear (weighted sum)",
        ),
    ),
    stochastic=True,
)
def dare(
    deltas: torch.Tensor, weights: Sequence[float], *, drop_rate: float, generator: torch.Generator, combine: str = "ties"
) -> torch.Tensor:
    """The weighted sum (linear) or disjoint mean (ties) of randomly sparsified, rescaled task vectors."""
    sparse = drop_and_rescale(deltas, drop_rate, generator)
    if combine == "linear":
        return (weight_column(weights, sparse) * sparse).sum(dim=0)
    if combine == "ties":
        return disjoint_mean(sparse, weights)
    raise ValueError(f"dare combine must be 'ties' or 'linear', got {combine!r}")
