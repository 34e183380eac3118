"""Linear: the weighted average of the sources (model soups)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from guardkit.merge.methods import Option, ZeroWeights, merge_method, weight_column


@merge_method(
    "linear",
    uses_base=False,
    weight_range=(0.0, 1.0),
    options=(
        Option(
            "normalize",
            default=True,
            choices=(True, False),
            help="divide by the sum of the weights (a model soup); off: the plain weighted sum",
        ),
    ),
)
def linear(values: torch.Tensor, weights: Sequence[float], *, normalize: bool = True) -> torch.Tensor:
    """Σ wᵢ θᵢ, divided by Σ wᵢ when normalize is on."""
    column = weight_column(weights, values)
    merged = (column * values).sum(dim=0)
    if not normalize:
        return merged
    total = column.sum()
    if total == 0:
        raise ZeroWeights("the weights of a normalised average sum to 0; give at least one source a non-zero weight")
    return merged / total
