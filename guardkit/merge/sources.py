"""The guards to merge and their pre-trained base: loading, and the checks that make a merge meaningful.

Sources must share the architecture (model class, config, every parameter name and shape), the
tokenizer (vocabulary and normalisation) and the label space; each error names what differs.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import torch

from guardkit.assets import SHIPPED_MODELS, resolve_model
from guardkit.errors import GuardkitError
from guardkit.guard import Guard
from guardkit.pooling import add_mean_pooling, has_mean_pooling

MERGEABLE_KINDS = ("task", "multitask", "uniguard")
# Config fields that do not change what the weights compute at inference, so sources may differ in them.
_IRRELEVANT_CONFIG_FIELDS = {
    "_name_or_path",
    "transformers_version",
    "architectures",
    "id2label",
    "label2id",
    "problem_type",
    "torch_dtype",
    "dtype",
    "finetuning_task",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "classifier_dropout",
    "dropout",
    "attention_dropout",
    "use_cache",
    "output_attentions",
    "output_hidden_states",
    "return_dict",
    "gradient_checkpointing",
}
_TOKENIZER_PIPELINE = ("normalizer", "pre_tokenizer", "post_processor")


class MergeSourceError(GuardkitError):
    """Sources (or a base model) that cannot be merged; the message names the difference."""


@dataclass
class MergeSource:
    """One guard to merge: the name it was given by (folder or Hub id) and the loaded guard."""

    name: str
    guard: Guard

    @cached_property
    def state(self) -> dict[str, torch.Tensor]:
        return {name: tensor.detach() for name, tensor in self.guard.model.state_dict().items()}

    @cached_property
    def encoder(self) -> dict[str, torch.Tensor]:
        """The encoder's tensors (the head left out: a UniGuard fits its own heads)."""
        heads = head_parameters(self.guard.model)
        return {name: tensor for name, tensor in self.state.items() if name not in heads}


def load_sources(names: Sequence[str]) -> list[MergeSource]:
    """Load every source guard on the CPU and check that they can be merged."""
    if len(names) < 2:
        raise MergeSourceError(f"a merge needs at least two source guards, got {len(names)}; pass them with --models DIR DIR ...")
    if len(set(names)) != len(names):
        raise MergeSourceError("the same source guard is given twice in --models")
    sources = [MergeSource(name, Guard.from_pretrained(name, device="cpu")) for name in names]
    for source in sources:
        if source.guard.kind not in MERGEABLE_KINDS:
            raise MergeSourceError(
                f"{source.name} is a {source.guard.kind} guard; only {', '.join(MERGEABLE_KINDS)} guards (encoder classifiers) can be merged"
            )
    check_compatible(sources)
    return sources


def _architecture_fields(config) -> dict[str, object]:
    return {key: value for key, value in config.to_dict().items() if key not in _IRRELEVANT_CONFIG_FIELDS}


def check_same_architecture(reference_name: str, reference_model, other_name: str, other_model) -> None:
    """Same model class, same architecture config, same parameter names and shapes (in that order of checks)."""
    if type(reference_model).__name__ != type(other_model).__name__:
        raise MergeSourceError(
            f"architectures differ: {reference_name} is a {type(reference_model).__name__}, {other_name} a {type(other_model).__name__}"
        )
    reference_config, other_config = _architecture_fields(reference_model.config), _architecture_fields(other_model.config)
    for key in sorted(set(reference_config) | set(other_config)):
        if reference_config.get(key) != other_config.get(key):
            raise MergeSourceError(
                f"architectures differ in config field '{key}': {reference_config.get(key)!r} in {reference_name}, "
                f"{other_config.get(key)!r} in {other_name}"
            )
    check_same_parameters(reference_name, reference_model.state_dict(), other_name, other_model.state_dict())


def check_same_parameters(
    reference_name: str, reference: Mapping[str, torch.Tensor], other_name: str, other: Mapping[str, torch.Tensor]
) -> None:
    for name in reference:
        if name not in other:
            raise MergeSourceError(f"parameter '{name}' is in {reference_name} but not in {other_name}")
    for name in other:
        if name not in reference:
            raise MergeSourceError(f"parameter '{name}' is in {other_name} but not in {reference_name}")
    for name, tensor in reference.items():
        if tuple(tensor.shape) != tuple(other[name].shape):
            raise MergeSourceError(
                f"parameter '{name}' has shape {list(tensor.shape)} in {reference_name} but {list(other[name].shape)} in {other_name}"
            )
        if not tensor.is_floating_point() and not torch.equal(tensor, other[name]):
            raise MergeSourceError(f"buffer '{name}' differs between {reference_name} and {other_name}; it cannot be averaged")


def check_same_tokenizer(reference_name: str, reference, other_name: str, other) -> None:
    reference_vocab, other_vocab = reference.get_vocab(), other.get_vocab()
    if len(reference_vocab) != len(other_vocab):
        raise MergeSourceError(f"tokenizers differ: {reference_name} has {len(reference_vocab)} tokens, {other_name} {len(other_vocab)}")
    for token, index in reference_vocab.items():
        if other_vocab.get(token) != index:
            raise MergeSourceError(
                f"tokenizers differ: token {token!r} has id {index} in {reference_name} but {other_vocab.get(token)} in {other_name}"
            )
    if reference.is_fast and other.is_fast:
        reference_pipeline = json.loads(reference.backend_tokenizer.to_str())
        other_pipeline = json.loads(other.backend_tokenizer.to_str())
        for step in _TOKENIZER_PIPELINE:
            if reference_pipeline.get(step) != other_pipeline.get(step):
                raise MergeSourceError(f"tokenizers differ in their {step.replace('_', '-')} between {reference_name} and {other_name}")


def _label_space(model) -> dict[int, str]:
    return {int(index): label for index, label in model.config.id2label.items()}


def check_compatible(sources: Sequence[MergeSource]) -> None:
    reference = sources[0]
    for other in sources[1:]:
        check_same_architecture(reference.name, reference.guard.model, other.name, other.guard.model)
        check_same_tokenizer(reference.name, reference.guard.tokenizer, other.name, other.guard.tokenizer)
        if _label_space(reference.guard.model) != _label_space(other.guard.model):
            raise MergeSourceError(
                f"label spaces differ ({_label_space(reference.guard.model)} in {reference.name}, "
                f"{_label_space(other.guard.model)} in {other.name}): their classification heads cannot be merged"
            )


def base_model_name(sources: Sequence[MergeSource], override: str | None) -> str:
    """The encoder the sources were fine-tuned from: `override`, else the one their guardkit.json files agree on."""
    if override:
        return override
    names = {source.name: source.guard.manifest.base_model for source in sources}
    if len(set(names.values())) > 1:
        listing = ", ".join(f"{source} from {base}" for source, base in names.items())
        raise MergeSourceError(f"the sources were fine-tuned from different encoders ({listing}); name the common one with --base_model")
    return next(iter(names.values()))


def _loadable_name(name: str) -> str:
    """guardkit.json stores Hub ids; map a shipped model's Hub id back to its offline copy."""
    for short_name, shipped in SHIPPED_MODELS.items():
        if name == shipped.hub_id:
            return short_name
    return name


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence the load report: a base encoder lacks the classification head by design."""
    from transformers.utils import logging

    previous = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(previous)


@dataclass
class BaseEncoder:
    """The pre-trained encoder's tensors, named as in the sources, and the source parameters it lacks."""

    name: str
    state: dict[str, torch.Tensor]
    lacking: frozenset[str]


def load_base_encoder(name: str, like: MergeSource) -> BaseEncoder:
    """Load `name` as the sources' classifier class: its encoder tensors line up by name with the sources'.

    The classification head is not in a pre-trained checkpoint; transformers initialises it at random,
    so those parameters are reported as lacking (and merged without task vectors).
    """
    from transformers import AutoModelForSequenceClassification

    labels = _label_space(like.guard.model)
    try:
        with _quiet_transformers():
            model, info = AutoModelForSequenceClassification.from_pretrained(
                resolve_model(_loadable_name(name)), num_labels=len(labels), output_loading_info=True
            )
    except (OSError, ValueError) as error:
        raise MergeSourceError(
            f"cannot load the base model '{name}' ({error}); pass a local copy of the pre-trained encoder with --base_model"
        ) from None
    if has_mean_pooling(like.guard.model) and not has_mean_pooling(model):
        # The sources read the token mean through a frozen layer training appended; the base gets the same one.
        add_mean_pooling(model)
    check_same_architecture(like.name, like.guard.model, f"base model {name}", model)
    lacking = frozenset(info["missing_keys"])
    state = {key: tensor.detach() for key, tensor in model.state_dict().items() if key not in lacking}
    return BaseEncoder(name, state, lacking)


def head_parameters(model) -> frozenset[str]:
    """Parameters outside the encoder (the classification head): named without the model's base prefix."""
    prefix = model.base_model_prefix + "."
    return frozenset(name for name in model.state_dict() if not name.startswith(prefix))
