"""TIES merging (Yadav et al., 2023): trim each task vector, elect a sign per entry, average the agreeing ones."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from guardkit.merge.methods import Hyperparameter, merge_method, weight_column


def sorted_magnitudes(deltas: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each source's |τ| in ascending order: the trim cut for any density is then one lookup."""
    return {"magnitudes": deltas.abs().flatten(start_dim=1).sort(dim=1).values}


def trim_to_density(deltas: torch.Tensor, density: float, magnitudes: torch.Tensor) -> torch.Tensor:
    """Keep the `density` fraction of each source's entries with the largest magnitude, zero the rest.

    magnitudes: from `sorted_magnitudes(deltas)`. Entries tied with the cut are kept.
    """
    if not 0.0 <= density <= 1.0:
        raise ValueError(f"density must lie in [0, 1], got {density}")
    count = magnitudes.shape[1]
    keep = round(density * count)
    if keep >= count:
        return deltas
    if keep == 0:
        return torch.zeros_like(deltas)
    cuts = magnitudes[:, count - keep].reshape(-1, *([1] * (deltas.dim() - 1)))
    # In place on |τ|: 1.0 where an entry is kept, then the kept values.
    return deltas.abs().ge_(cuts).mul_(deltas)


def disjoint_mean(deltas: torch.Tensor, weights: Sequence[float]) -> torch.Tensor:
    """Per entry: elect the sign of Σ wᵢ τᵢ, then average wᵢ τᵢ over the sources that agree with it.

    Sources whose weighted value is zero (trimmed, dropped or weight 0) neither vote nor count in the
    mean, so with equal weights λ this is the paper's λ · mean over the agreeing task vectors.
    """
    weighted = weight_column(weights, deltas) * deltas
    agrees = weighted * weighted.sum(dim=0).sign() > 0
    return weighted.mul_(agrees).sum(dim=0) / agrees.sum(dim=0).clamp_(min=1)


@merge_method(
    "ties",
    uses_base=True,
    weight_range=(0.0, 1.5),
    hyperparameters=(
        Hyperparameter("density", low=0.1, high=1.0, default=0.5, help="fraction of each task vector kept (largest magnitudes)"),
    ),
    prepare=sorted_magnitudes,
)
def ties(deltas: torch.Tensor, weights: Sequence[float], *, density: float, magnitudes: torch.Tensor | None = None) -> torch.Tensor:
    """Disjoint mean of the sign-agreeing, trimmed, weighted task vectors (added to the base by the caller)."""
    if magnitudes is None:
        magnitudes = sorted_magnitudes(deltas)["magnitudes"]
    return disjoint_mean(trim_to_density(deltas, density, magnitudes), weights)
