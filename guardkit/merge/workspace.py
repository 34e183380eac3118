"""Everything a merge works on, loaded once: the sources, their base, the dataset and a scoring model.

The scoring model is a UniGuard-shaped `Guard` (instruction-pair input) whose weights are overwritten
in place by every merge, so trials cost no disk writes and no model reloads.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import torch
from datasets import DatasetDict

from guardkit.assets import hub_id_of
from guardkit.data.io import load_guard_dataset
from guardkit.errors import GuardkitError
from guardkit.guard import DatasetRef, Guard, GuardManifest
from guardkit.merge.merging import LayerGroups, MergePlan
from guardkit.merge.methods import get_method
from guardkit.merge.recipe import MergeRecipe
from guardkit.merge.scoring import EncodedSplit, aggregate
from guardkit.merge.sources import BaseEncoder, MergeSource, base_model_name, head_parameters, load_base_encoder, load_sources
from guardkit.policies import Policy
from guardkit.train.calibration import ThresholdMetrics
from guardkit.train.common import dataset_ref


@dataclass(frozen=True)
class Evaluation:
    """How one set of weights does on the validation rows."""

    value: float
    threshold: float
    metrics: dict[str, ThresholdMetrics]


class MergeWorkspace:
    def __init__(
        self,
        sources: list[MergeSource],
        base_model: str,
        dataset: DatasetRef,
        splits: DatasetDict,
        policies: dict[str, Policy],
        scorer: Guard,
    ):
        self.sources = sources
        self.base_model = base_model
        self.dataset = dataset
        self.splits = splits
        self.policies = policies
        self.scorer = scorer

    @classmethod
    def open(
        cls, models: Sequence[str], dataset: str, dataset_revision: str | None = None, base_model: str | None = None
    ) -> "MergeWorkspace":
        sources = load_sources(models)
        splits, known_policies = load_guard_dataset(dataset, config="multitask", revision=dataset_revision)
        if "validation" not in splits:
            raise GuardkitError(f"{dataset} has no multitask validation split; the merge search scores merges on it")
        policy_ids = sorted({policy_id for policy_id in splits["validation"]["policy"] if policy_id})
        policies = {policy_id: known_policies[policy_id] for policy_id in policy_ids}
        base = base_model_name(sources, base_model)
        # The UniGuard reads pairs: its config and tokenizer come from a pair source when there is one.
        pair_sources = [source for source in sources if source.guard.manifest.input_format == "instruction_pair"]
        template = (pair_sources or sources)[0]
        manifest = GuardManifest(
            kind="uniguard",
            input_format="instruction_pair",
            policies={policy_id: policy.instruction() for policy_id, policy in policies.items()},
            threshold=0.5,
            max_length=max(source.guard.manifest.max_length for source in sources),
            base_model=hub_id_of(base),
        )
        # A copy of the template's model: trials overwrite its weights, never the sources'.
        device = "cuda" if torch.cuda.is_available() else "cpu"
        scorer = Guard(copy.deepcopy(template.guard.model).to(device), template.guard.tokenizer, manifest, policies)
        return cls(sources, base, dataset_ref(dataset, dataset_revision), splits, policies, scorer)

    @cached_property
    def base_encoder(self) -> BaseEncoder:
        return load_base_encoder(self.base_model, self.sources[0])

    def plan(
        self, method: str, options: Mapping[str, object], granularity: str, block_group_size: int, seed: int, reuse_inputs: bool = False
    ) -> MergePlan:
        merge_method = get_method(method)
        model = self.scorer.model
        groups = LayerGroups.build(list(model.state_dict()), granularity, block_group_size)
        base = self.base_encoder if merge_method.uses_base else None
        averaged = head_parameters(model) | (base.lacking if base else frozenset())
        return MergePlan(
            merge_method,
            options,
            groups,
            averaged,
            sources=[source.state for source in self.sources],
            base=base.state if base else None,
            seed=seed,
            reuse_inputs=reuse_inputs,
        )

    def recipe_plan(self, recipe: MergeRecipe) -> MergePlan:
        return self.plan(recipe.merge_method, recipe.options, recipe.granularity, recipe.block_group_size, recipe.seed)

    def apply(self, plan: MergePlan, weights: Mapping[str, Sequence[float]], hyperparameters: Mapping[str, float]) -> None:
        """Overwrite the scoring model's weights with the merge of the sources."""
        target = self.scorer.model.state_dict()
        with torch.no_grad():
            for name, tensor in plan.merged_tensors(weights, hyperparameters):
                target[name].copy_(tensor)

    def load_source(self, index: int) -> None:
        """Overwrite the scoring model's weights with one source's, to score it as a UniGuard would be."""
        target = self.scorer.model.state_dict()
        with torch.no_grad():
            for name, tensor in self.sources[index].state.items():
                target[name].copy_(tensor)

    def encoded_split(self, split: str = "validation", max_rows: int = 0, seed: int = 0) -> EncodedSplit:
        """`split` of the multitask config, tokenised for the scoring model (rows of policies it does not cover left out)."""
        return EncodedSplit.build(self.splits[split], self.policies, self.scorer, max_rows, seed)

    def evaluate(
        self,
        validation: EncodedSplit,
        objective: str,
        fpr_penalty: float = 0.0,
        threshold: float | None = None,
        target_fpr: float | None = None,
        batch_size: int = 32,
    ) -> Evaluation:
        """Score the current weights: at `threshold`, or at the threshold calibrated as the saved guard's would be."""
        scores = validation.score(self.scorer, batch_size)
        if threshold is None:
            threshold = validation.calibrate(scores, target_fpr)
        metrics = validation.metrics(scores, threshold)
        return Evaluation(aggregate(metrics, objective, fpr_penalty), threshold, metrics)
