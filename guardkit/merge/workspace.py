"""Everything a merge works on, loaded once: the sources, their base, the dataset and a one-pass scoring model.

A UniGuard is one encoder with a head per policy: the text is read once and every policy it knows gets its
P(unsafe) from that one pass. The merge search chooses the encoder (a merge of the sources' encoders); the
heads are logistic regressions refitted on each candidate encoder's features of the training rows, since
heads trained on one encoder mean nothing on another. Policies the UniGuard never saw go to the sources'
pair guard (MultiTaskGuard), which the UniGuard folder carries in `pair/`.

The scoring model's weights are overwritten in place by every trial: no disk writes, no reloads.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from datasets import Dataset, DatasetDict

from guardkit.assets import hub_id_of
from guardkit.calibration import ThresholdMetrics
from guardkit.data.schema import LABEL2ID
from guardkit.data.io import cross_policy_rows, load_guard_dataset
from guardkit.errors import GuardkitError
from guardkit.guard import DatasetRef, Guard, GuardManifest
from guardkit.guard_card import dataset_ref
from guardkit.heads import final_linear, fit_logistic, head_features, set_multilabel_head
from guardkit.merge.merging import LayerGroups, MergePlan
from guardkit.merge.methods import get_method
from guardkit.merge.recipe import HeadSettings, MergeRecipe
from guardkit.merge.scoring import EncodedSplit, aggregate
from guardkit.merge.sources import BaseEncoder, MergeSource, base_model_name, load_base_encoder, load_sources
from guardkit.policies import Policy
from guardkit.stable_random import stable_fraction
from guardkit.windows import later_windows

PAIR_FORMATS = ("policy_reader", "rule_pair", "instruction_pair")
SAFE = LABEL2ID["safe"]


@dataclass(frozen=True)
class Evaluation:
    """How one set of weights does on the validation rows."""

    value: float
    thresholds: dict[str, float]
    metrics: dict[str, ThresholdMetrics]


@dataclass
class HeadRows:
    """The training rows the per-policy heads are fitted on: distinct texts, and per policy its rows' labels and weights."""

    texts: list[str]
    rows: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]  # policy id -> (text indices, labels, sample weights)

    @classmethod
    def sample(
        cls, train: Dataset, policies: Mapping[str, Policy], settings: HeadSettings, tokenizer, max_length: int, cross: Dataset | None = None
    ) -> "HeadRows":
        """Up to settings.rows_per_label training rows per policy and label (a seeded sample; 0: all), the later windows of the
        safe ones (settings.safe_windows), the `cross` rows weighted settings.cross_policy_weight, plus the policy's own
        examples weighted settings.example_weight."""
        index: dict[str, int] = {}
        rows: dict[str, tuple[list[int], list[int], list[float]]] = {policy_id: ([], [], []) for policy_id in policies}

        def add(policy_id: str, text: str, label: int, weight: float) -> None:
            rows[policy_id][0].append(index.setdefault(text, len(index)))
            rows[policy_id][1].append(label)
            rows[policy_id][2].append(weight)

        by_policy_label: dict[tuple[str, int], list[str]] = {}
        for text, label, policy_id in zip(train["text"], train["label"], train["policy"]):
            if policy_id in policies:
                by_policy_label.setdefault((policy_id, int(label)), []).append(text)
        for (policy_id, label), texts in sorted(by_policy_label.items()):
            chosen = sorted(texts, key=lambda text: stable_fraction(settings.seed, "head-rows", policy_id, text))[: settings.rows_per_label or None]
            if settings.safe_windows and label == SAFE:
                chosen += later_windows(tokenizer, chosen, max_length)
            for text in chosen:
                add(policy_id, text, label, 1.0)
        if cross is not None:
            for text, label, policy_id in zip(cross["text"], cross["label"], cross["policy"]):
                if policy_id in policies:
                    add(policy_id, text, int(label), settings.cross_policy_weight)
        for policy_id, policy in policies.items():
            for text, label in policy.all_examples():
                add(policy_id, text, int(label == "unsafe"), settings.example_weight)
        return cls(list(index), {policy_id: tuple(np.asarray(column) for column in columns) for policy_id, columns in rows.items()})


class MergeWorkspace:
    def __init__(
        self,
        sources: list[MergeSource],
        base_model: str,
        dataset: DatasetRef,
        splits: DatasetDict,
        policies: dict[str, Policy],
        scorer: Guard,
        head_settings: HeadSettings,
        cross: Dataset | None = None,
    ):
        self.sources = sources
        self.base_model = base_model
        self.dataset = dataset
        self.splits = splits
        self.policies = policies
        self.scorer = scorer
        self.head_settings = head_settings
        self.head_rows = HeadRows.sample(splits["train"], policies, head_settings, scorer.tokenizer, scorer.max_length, cross)
        self._fitted_heads: tuple[tuple[float, ...], np.ndarray, np.ndarray, dict[str, float]] | None = None

    @classmethod
    def open(
        cls,
        models: Sequence[str],
        dataset: str,
        dataset_revision: str | None = None,
        base_model: str | None = None,
        head_settings: HeadSettings | None = None,
    ) -> "MergeWorkspace":
        sources = load_sources(models)
        splits, known_policies = load_guard_dataset(dataset, config="default", revision=dataset_revision)
        for split in ("train", "validation"):
            if split not in splits:
                raise GuardkitError(f"{dataset} has no {split} split; the merge fits the UniGuard's heads on train and searches on validation")
        covered = {policy_id for source in sources for policy_id in source.guard.policy_ids}
        policy_ids = [policy_id for policy_id in dict.fromkeys(splits["train"]["policy"]) if policy_id in covered]
        if not policy_ids:
            raise GuardkitError(f"{dataset} has no rows of the sources' policies ({', '.join(sorted(covered))})")
        policies = {policy_id: known_policies[policy_id] for policy_id in policy_ids}
        base = base_model_name(sources, base_model)
        template = sources[0].guard
        model = copy.deepcopy(template.model)
        head = final_linear(model)
        replacement = torch.nn.Linear(head.in_features, len(policies))
        if head is model.classifier:
            model.classifier = replacement
        else:
            model.classifier.out_proj = replacement
        model.config.num_labels = len(policies)
        model.config.id2label = dict(enumerate(policies))
        model.config.label2id = {policy_id: index for index, policy_id in enumerate(policies)}
        model.config.problem_type = "multi_label_classification"
        manifest = GuardManifest(
            kind="uniguard",
            input_format="multilabel",
            policies={policy_id: policy.instruction() for policy_id, policy in policies.items()},
            threshold=0.5,
            max_length=max(source.guard.manifest.max_length for source in sources if source.guard.manifest.input_format == "text") if any(
                source.guard.manifest.input_format == "text" for source in sources
            ) else template.manifest.max_length,
            base_model=hub_id_of(base),
        )
        device = "cuda" if torch.cuda.is_available() else "cpu"
        scorer = Guard(model.to(device), template.tokenizer, manifest, policies)
        head_settings = head_settings or HeadSettings()
        cross = None
        if head_settings.cross_policy_weight > 0:
            try:
                cross = cross_policy_rows(dataset, dataset_revision, policy_ids, splits["train"])
            except GuardkitError as error:
                print(f"merge: no cross-policy rows ({error}); the heads are fitted without them", file=sys.stderr)
        return cls(sources, base, dataset_ref(dataset, dataset_revision), splits, policies, scorer, head_settings, cross)

    @cached_property
    def base_encoder(self) -> BaseEncoder:
        return load_base_encoder(self.base_model, self.sources[0])

    @property
    def pair_source(self) -> MergeSource | None:
        """The pair guard (MultiTaskGuard) among the sources: it scores the policies the UniGuard never saw."""
        return next((source for source in self.sources if source.guard.manifest.input_format in PAIR_FORMATS), None)

    def plan(
        self, method: str, options: Mapping[str, object], granularity: str, block_group_size: int, seed: int, reuse_inputs: bool = False
    ) -> MergePlan:
        merge_method = get_method(method)
        encoder_names = list(self.sources[0].encoder)
        groups = LayerGroups.build(encoder_names, granularity, block_group_size)
        base = self.base_encoder if merge_method.uses_base else None
        return MergePlan(
            merge_method,
            options,
            groups,
            frozenset(),
            sources=[source.encoder for source in self.sources],
            base=base.state if base else None,
            seed=seed,
            reuse_inputs=reuse_inputs,
        )

    def recipe_plan(self, recipe: MergeRecipe) -> MergePlan:
        return self.plan(recipe.merge_method, recipe.options, recipe.granularity, recipe.block_group_size, recipe.seed)

    def apply(self, plan: MergePlan, weights: Mapping[str, Sequence[float]], hyperparameters: Mapping[str, float]) -> None:
        """Overwrite the scoring model's encoder with the merge of the sources' encoders, then refit the heads."""
        target = self.scorer.model.state_dict()
        with torch.no_grad():
            for name, tensor in plan.merged_tensors(weights, hyperparameters):
                target[name].copy_(tensor)
        self.fit_heads()

    def load_source(self, index: int) -> None:
        """Overwrite the scoring model's encoder with one source's, then refit the heads (the source as a one-pass guard)."""
        target = self.scorer.model.state_dict()
        with torch.no_grad():
            for name, tensor in self.sources[index].encoder.items():
                target[name].copy_(tensor)
        self.fit_heads()

    def fit_heads(self) -> dict[str, float]:
        """Fit each policy's head on the current encoder's features of the head rows; returns training accuracies.
        Heads already fitted on these very encoder weights are set again, not refitted (the fit is deterministic,
        and sources that share one encoder are scored alone and then saved on it)."""
        state = self.scorer.model.state_dict()
        fingerprint = encoder_fingerprint({name: state[name] for name in self.sources[0].encoder})
        if self._fitted_heads is not None and self._fitted_heads[0] == fingerprint:
            _, weights, biases, accuracies = self._fitted_heads
            set_multilabel_head(self.scorer.model, weights, biases)
            return dict(accuracies)
        settings = self.head_settings
        features = head_features(self.scorer.model, self.scorer.tokenizer, self.head_rows.texts, self.scorer.max_length, 64)
        weights = np.zeros((len(self.policies), features.shape[1]), dtype=np.float32)
        biases = np.zeros(len(self.policies), dtype=np.float32)
        accuracies = {}
        for position, policy_id in enumerate(self.policies):
            ids, labels, sample_weight = self.head_rows.rows[policy_id]
            if len(set(labels.tolist())) < 2:
                raise GuardkitError(f"policy '{policy_id}' has rows of one label only in the training split: its head cannot be fitted")
            weights[position], biases[position], accuracies[policy_id] = fit_logistic(features[ids], labels, settings.c, True, sample_weight)
        set_multilabel_head(self.scorer.model, weights, biases)
        self._fitted_heads = (fingerprint, weights, biases, dict(accuracies))
        return accuracies

    def encoded_split(self, split: str = "validation", max_rows: int = 0, seed: int = 0) -> EncodedSplit:
        """`split` of the default config, tokenised for the one-pass scoring model."""
        return EncodedSplit.build(self.splits[split], list(self.policies), self.scorer, max_rows, seed)

    def evaluate(
        self,
        validation: EncodedSplit,
        objective: str,
        calibration: str,
        *,
        fpr_penalty: float = 0.0,
        target_fpr: float | None = None,
        batch_size: int = 32,
    ) -> Evaluation:
        """Score the current weights at the per-policy thresholds the saved guard's would be calibrated to."""
        scores = validation.score(self.scorer, batch_size)
        thresholds = validation.calibrate(scores, calibration, target_fpr)
        metrics = validation.metrics(scores, thresholds)
        return Evaluation(aggregate(metrics, objective, fpr_penalty), thresholds, metrics)


def encoder_fingerprint(state: Mapping[str, torch.Tensor]) -> tuple[float, ...]:
    """A cheap identity of an encoder's weights: sources that share their encoder are scored alone once."""
    return tuple(float(tensor.double().sum()) for name, tensor in sorted(state.items()) if tensor.is_floating_point())

