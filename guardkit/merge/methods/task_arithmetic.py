"""Task arithmetic (Ilharco et al., 2023): add the weighted task vectors (fine-tuned − pre-trained) to the base."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from guardkit.merge.methods import merge_method, weight_column


@merge_method("task_arithmetic", uses_base=True, weight_range=(0.0, 1.0))
def task_arithmetic(deltas: torch.Tensor, weights: Sequence[float]) -> torch.Tensor:
    """Σ wᵢ τᵢ (added to the base by the caller)."""
    return (weight_column(weights, deltas) * deltas).sum(dim=0)
