"""Apply a merge method to whole state dicts, with one set of source weights per layer group.

Layer groups come from parameter names, so any BERT-like encoder works: `embeddings` (names with
"embed" outside the blocks), `blocks.<i>` or `blocks.<i>-<j>` (the transformer blocks, found as
`.layer.<i>.` / `.layers.<i>.` / `.h.<i>.` / `.block.<i>.`) and `head` (everything else: pooler,
encoder-level norms, the classifier). With global granularity there is a single group, `all`.

The classification head has no pre-trained counterpart, so task vectors are undefined for it: the
head, and any other parameter the base checkpoint lacks, is always the weighted average of the
sources (weights of its group, normalised to sum to 1), whatever the method. That needs the sources'
label spaces to match, which `sources.check_compatible` enforces.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from guardkit.errors import GuardkitError
from guardkit.merge.methods import MergeMethod
from guardkit.merge.methods.linear import linear

GRANULARITIES = ("global", "block")
GLOBAL_GROUP = "all"
_BLOCK_INDEX = re.compile(r"\.(?:layer|layers|h|block|blocks)\.(\d+)\.")


class GroupingError(GuardkitError):
    """Parameter names that cannot be split into layer groups."""


@dataclass(frozen=True)
class LayerGroups:
    """Which layer group each parameter belongs to, and the groups in model order."""

    names: tuple[str, ...]
    of_parameter: Mapping[str, str]

    @classmethod
    def build(cls, parameter_names: Sequence[str], granularity: str, block_group_size: int = 1) -> "LayerGroups":
        if granularity not in GRANULARITIES:
            raise GroupingError(f"granularity must be one of {', '.join(GRANULARITIES)}, got '{granularity}'")
        if granularity == "global":
            return cls((GLOBAL_GROUP,), {name: GLOBAL_GROUP for name in parameter_names})
        if block_group_size < 1:
            raise GroupingError(f"block_group_size must be at least 1, got {block_group_size}")
        blocks = {name: int(match.group(1)) for name in parameter_names if (match := _BLOCK_INDEX.search("." + name))}
        if not blocks:
            raise GroupingError(
                "cannot find transformer blocks in the parameter names (expected '.layer.<i>.' or similar); "
                "use --granularity global for this architecture"
            )
        block_count = max(blocks.values()) + 1

        def block_group(index: int) -> str:
            first = index - index % block_group_size
            last = min(first + block_group_size, block_count) - 1
            return f"blocks.{first}" if first == last else f"blocks.{first}-{last}"

        of_parameter: dict[str, str] = {}
        for name in parameter_names:
            if name in blocks:
                of_parameter[name] = block_group(blocks[name])
            elif "embed" in name.lower():
                of_parameter[name] = "embeddings"
            else:
                of_parameter[name] = "head"
        ordered = ["embeddings"] if "embeddings" in of_parameter.values() else []
        ordered += list(dict.fromkeys(block_group(index) for index in range(block_count)))
        ordered += ["head"] if "head" in of_parameter.values() else []
        return cls(tuple(ordered), of_parameter)


def parameter_seed(seed: int, name: str) -> int:
    """A seed per (merge seed, parameter name): random draws do not depend on the order of work."""
    return (seed * 1_000_003 + zlib.crc32(name.encode("utf-8"))) % (2**63)


@dataclass
class MergePlan:
    """One merge setup: method, options, layer groups, the sources and their base; merges for any weights.

    With `reuse_inputs` (a search, which merges the same sources in every trial) the stacked float32
    inputs of every parameter and the method's prepared statistics are computed once and kept; a
    single merge computes them parameter by parameter and lets them go. Both run the same arithmetic,
    so their results are identical bit for bit.
    """

    method: MergeMethod
    options: Mapping[str, object]
    groups: LayerGroups
    averaged: frozenset[str]  # parameters without a pre-trained counterpart: always the normalised average
    sources: Sequence[Mapping[str, torch.Tensor]]
    base: Mapping[str, torch.Tensor] | None = None
    seed: int = 0
    reuse_inputs: bool = False
    _inputs: dict[str, tuple[torch.Tensor, dict[str, torch.Tensor]]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.method.uses_base and self.base is None:
            raise GroupingError(f"merge method {self.method.name} needs the base model's tensors")

    def _task_input(self, name: str) -> bool:
        return self.method.uses_base and name not in self.averaged

    def _stacked(self, name: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The sources' float32 values of one parameter stacked (task vectors for base methods), and prepared statistics."""
        if name in self._inputs:
            return self._inputs[name]
        values = torch.stack([source[name].to(torch.float32) for source in self.sources])
        prepared: dict[str, torch.Tensor] = {}
        if self._task_input(name):
            values = values - self.base[name].to(torch.float32)
            if self.method.prepare is not None:
                prepared = self.method.prepare(values)
        if self.reuse_inputs:
            self._inputs[name] = (values, prepared)
        return values, prepared

    def merged_tensors(
        self, weights: Mapping[str, Sequence[float]], hyperparameters: Mapping[str, float]
    ) -> Iterator[tuple[str, torch.Tensor]]:
        """Yield (name, merged tensor) for every tensor of the sources, one at a time (so the caller can copy it away).

        weights: layer group -> one weight per source. Float tensors are merged in float32 and cast
        back to the sources' dtype; other tensors (integer buffers) are taken from the first source.
        """
        missing = [group for group in self.groups.names if group not in weights]
        if missing:
            raise GroupingError(f"no weights for layer group(s) {', '.join(missing)}")
        for name, first in self.sources[0].items():
            if not first.is_floating_point():
                yield name, first
                continue
            group_weights = list(weights[self.groups.of_parameter[name]])
            values, prepared = self._stacked(name)
            if name in self.averaged:
                merged = linear(values, group_weights, normalize=True)
            else:
                arguments = {**self.options, **hyperparameters, **prepared}
                if self.method.stochastic:
                    arguments["generator"] = torch.Generator().manual_seed(parameter_seed(self.seed, name))
                merged = self.method(values, group_weights, **arguments)
                if self._task_input(name):
                    merged = self.base[name].to(torch.float32) + merged
            yield name, merged.to(first.dtype)
