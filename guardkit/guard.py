"""Guard folders and the inference API: `save_guard` writes them, `Guard.from_pretrained` reads them.

A guard folder is a transformers `AutoModelForSequenceClassification` folder (safetensors weights,
`id2label {0: safe, 1: unsafe}`, tokenizer) plus `guardkit.json`, `policies/<id>.yaml`, the recipe that
made it (`training.yaml` or `merge.yaml`) and `README.md`. Score = softmax(logits)[1] = P(unsafe); the
verdict is unsafe when score >= the calibrated threshold stored in `guardkit.json`.

A JudgeGuard folder (kind "judge") is an `AutoModelForCausalLM` folder with the same `guardkit.json`;
it is scored by `guardkit.llm_judge.LLMJudge`, which `Guard` uses for it.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from guardkit import __version__
from guardkit.data.schema import ID2LABEL, LABEL2ID
from guardkit.errors import GuardkitError
from guardkit.heads import final_linear
from guardkit.onnx_runtime import OnnxSequenceClassifier, choose_backend
from guardkit.policies import Policy, PolicyError, load_policies, load_policy_files, shipped_policies
from guardkit.policy_reader import EVERYDAY_FILE, PolicyAnchors, PolicyReader, background_of, reader_features, unit_rows
from guardkit.windows import window_starts

MANIFEST_FILE = "guardkit.json"
FORMAT_VERSION = 2
# Version 1 folders had one threshold for every policy; they read as version 2 with that threshold per policy.
READABLE_FORMAT_VERSIONS = (1, 2)
KINDS = ("task", "multitask", "uniguard", "judge")
INPUT_FORMATS = ("text", "instruction_pair", "rule_pair", "policy_reader", "multilabel", "judge_prompt")
DEFAULT_INPUT_FORMAT = {"task": "text", "multitask": "instruction_pair", "uniguard": "instruction_pair", "judge": "judge_prompt"}
# How a long text's windows make one score: the most unsafe window, their mean, or the most unsafe
# window's log-odds lowered by WINDOW_LENGTH_DISCOUNT * log(independent windows). Under max a benign
# text of n windows has n chances to cross a threshold calibrated on short texts: the guards of the last
# `make reproduce` flagged 74% of benign documents of ~30 windows and 21-29% of short requests
# (benchmarks/bench_windows.py, test half; docs/benchmarks.md, "Long texts").
WINDOW_AGGREGATIONS = ("max", "mean", "length_adjusted_max")
# Chosen by that benchmark's rule (the highest planted-request recall whose dev-half long-document FPR is
# at most the short requests'): 0.75 for the guards of the runs at 61387d8 and 746117f alike (0.5 before
# the document passages in the data, when it chose 0.5 for the UniGuard and 0.75 for the TaskGuards).
WINDOW_LENGTH_DISCOUNT = 0.75
# What save_guard writes; folders without the field were written when max was the only aggregation.
DEFAULT_WINDOW_AGGREGATION = "length_adjusted_max"
# Where a one-pass (multilabel) guard keeps the pair guard it hands policies it never saw to.
PAIR_FOLDER = "pair"
# A pair guard needs room for the text beside its instruction; fewer tokens than this per window
# would make the sliding window crawl through long texts a few words at a time.
MIN_TEXT_TOKENS = 16
UNSAFE = LABEL2ID["unsafe"]
# The longest text a guard scores, in characters (about 8,000 tokens of English). Longer texts are
# refused, not cut: a guard that read only a prefix would pass whatever follows it. The sliding window
# makes time grow with length: a text this long took 2.3 s per policy with a MiniLM TaskGuard and 4.5 s
# with a pair guard on one CPU core (docs/reliability.md); one of 1 MB would take minutes.
MAX_TEXT_CHARS = 32_000


class GuardError(GuardkitError):
    """A guard folder that cannot be read or an input a guard cannot score; the message says what to do."""


def text_problem(text: object) -> str | None:
    """Why a guard cannot score `text` ("is empty or only whitespace", ...), or None when it can."""
    if not isinstance(text, str):
        return f"is a {type(text).__name__}, not a string"
    if not text.strip():
        return "is empty or only whitespace"
    if len(text) > MAX_TEXT_CHARS:
        return f"has {len(text):,} characters, more than the {MAX_TEXT_CHARS:,} a guard scores"
    return None


TEXT_RULE = (
    f"a guard scores non-empty strings of at most {MAX_TEXT_CHARS:,} characters (guardkit.guard.MAX_TEXT_CHARS); "
    "split a longer text into parts and score each (the whole is unsafe when any part is)"
)


@dataclass(frozen=True)
class Verdict:
    """The decision for one text under one policy."""

    text_index: int
    policy: str
    label: str  # "safe" or "unsafe"
    score: float  # P(unsafe)
    threshold: float

    @property
    def unsafe(self) -> bool:
        return self.label == "unsafe"


@dataclass(frozen=True)
class DatasetRef:
    """A training dataset as the card and the manifest name it: Hub id (or local folder) and revision."""

    id: str
    revision: str | None = None


@dataclass
class GuardManifest:
    """The content of `guardkit.json`."""

    kind: str
    input_format: str
    policies: dict[str, str]  # id -> the exact instruction the guard reads for it
    threshold: float  # for policies without their own threshold: those a pair guard never saw
    max_length: int
    base_model: str
    datasets: list[DatasetRef] = field(default_factory=list)
    # id -> the threshold calibrated for that policy on validation; policies missing here use `threshold`.
    thresholds: dict[str, float] = field(default_factory=dict)
    window_aggregation: str = "max"
    # A multilabel guard's pair guard for unseen policies: a guard folder inside this one, or None.
    pair_folder: str | None = None
    # A policy_reader guard's reader (`guardkit.policy_reader.PolicyReader.to_dict()`), None for other formats.
    reader: dict | None = None
    format_version: int = FORMAT_VERSION
    guardkit_version: str = __version__

    def threshold_for(self, policy_id: str) -> float:
        """The decision threshold on P(unsafe) under one policy."""
        return self.thresholds.get(policy_id, self.threshold)

    def validate(self, source: str) -> None:
        if self.kind not in KINDS:
            raise GuardError(f"{source}: unknown guard kind '{self.kind}' (expected one of {', '.join(KINDS)})")
        if self.input_format not in INPUT_FORMATS:
            raise GuardError(f"{source}: unknown input_format '{self.input_format}' (expected one of {', '.join(INPUT_FORMATS)})")
        if not self.policies:
            raise GuardError(f"{source}: a guard needs at least one policy")
        if self.input_format == "text" and len(self.policies) != 1:
            raise GuardError(f"{source}: a plain-text guard guards exactly one policy, got {len(self.policies)}")
        if self.window_aggregation not in WINDOW_AGGREGATIONS:
            raise GuardError(f"{source}: unknown window_aggregation '{self.window_aggregation}' (expected one of {', '.join(WINDOW_AGGREGATIONS)})")
        if self.pair_folder is not None and self.input_format != "multilabel":
            raise GuardError(f"{source}: only a multilabel guard has a pair_folder (this one reads {self.input_format})")
        if (self.reader is not None) != (self.input_format == "policy_reader"):
            raise GuardError(f"{source}: a policy_reader guard needs its reader, and only such a guard has one (this one reads {self.input_format})")
        for name, value in [("threshold", self.threshold), *((f"thresholds.{key}", value) for key, value in self.thresholds.items())]:
            if not 0.0 <= value <= 1.0:
                raise GuardError(f"{source}: {name} must lie in [0, 1], got {value}")
        unknown = sorted(set(self.thresholds) - set(self.policies))
        if unknown:
            raise GuardError(f"{source}: thresholds given for policies the guard does not list: {', '.join(unknown)}")
        if self.max_length < 8:
            raise GuardError(f"{source}: max_length {self.max_length} is too small to score any text")

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "guardkit_version": self.guardkit_version,
            "kind": self.kind,
            "input_format": self.input_format,
            "policies": dict(self.policies),
            "threshold": float(self.threshold),
            "thresholds": {policy_id: float(value) for policy_id, value in self.thresholds.items()},
            "window_aggregation": self.window_aggregation,
            "pair_folder": self.pair_folder,
            "max_length": int(self.max_length),
            "base_model": self.base_model,
            "datasets": [dataclasses.asdict(ref) for ref in self.datasets],
            **({"reader": dict(self.reader)} if self.reader is not None else {}),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str) -> "GuardManifest":
        version = raw.get("format_version")
        if version not in READABLE_FORMAT_VERSIONS:
            raise GuardError(
                f"{source}: guardkit.json format_version {version!r} is not one this guardkit reads "
                f"({', '.join(map(str, READABLE_FORMAT_VERSIONS))}); upgrade guardkit or re-save the guard with this version"
            )
        try:
            manifest = cls(
                kind=raw["kind"],
                input_format=raw["input_format"],
                policies=dict(raw["policies"]),
                threshold=float(raw["threshold"]),
                max_length=int(raw["max_length"]),
                base_model=str(raw["base_model"]),
                datasets=[DatasetRef(id=ref["id"], revision=ref.get("revision")) for ref in raw.get("datasets", [])],
                thresholds={str(key): float(value) for key, value in (raw.get("thresholds") or {}).items()},
                window_aggregation=str(raw.get("window_aggregation", "max")),
                pair_folder=raw.get("pair_folder"),
                reader=dict(raw["reader"]) if raw.get("reader") is not None else None,
                guardkit_version=str(raw.get("guardkit_version", "")),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise GuardError(f"{source}: guardkit.json is missing or has a bad field ({error!r})") from None
        manifest.validate(source)
        return manifest


def model_length_limit(model_config, tokenizer) -> int:
    """The longest input (special tokens included) the model accepts."""
    limits = []
    if 0 < (tokenizer.model_max_length or 0) < 1_000_000:
        limits.append(int(tokenizer.model_max_length))
    positions = getattr(model_config, "max_position_embeddings", None)
    if positions:
        # RoBERTa-style models number positions from padding_idx + 1, so two slots are never usable.
        offset = model_config.pad_token_id + 1 if model_config.model_type in ("roberta", "xlm-roberta", "camembert") else 0
        limits.append(int(positions) - offset)
    if not limits:
        raise GuardError(f"cannot tell the input limit of model type '{model_config.model_type}'; set tokenizer.model_max_length")
    return min(limits)


def save_guard(
    output_dir: str | Path,
    model,
    tokenizer,
    *,
    kind: str,
    policies: Sequence[Policy],
    threshold: float,
    max_length: int,
    base_model: str,
    card,
    thresholds: Mapping[str, float] | None = None,
    datasets: Sequence[DatasetRef] = (),
    recipe: Any = None,
    recipe_file: str = "training.yaml",
    input_format: str | None = None,
    window_aggregation: str = DEFAULT_WINDOW_AGGREGATION,
    pair_folder: str | None = None,
    reader: Mapping[str, Any] | None = None,
    everyday: Sequence[str] = (),
) -> Path:
    """Write a complete guard folder; the only writer of guard folders.

    model / tokenizer: a transformers model and its tokenizer (a sequence classifier, or a causal LM
    for kind "judge"). policies: the policies it guards; their `instruction()` is stored as the input
    the guard reads. threshold: the calibrated decision threshold on P(unsafe). max_length: the input
    length the guard was trained at (longer inputs get a sliding window). base_model: Hub id of the
    model it was fine-tuned from. card: a `huggingface_hub.ModelCard` (see `guardkit.guard_card`).
    thresholds: per-policy thresholds calibrated on validation (policies left out use `threshold`).
    recipe: the config dataclass (or mapping) that produced it, saved as `recipe_file`
    ("training.yaml" or "merge.yaml"). input_format: defaults by kind (task: text; multitask and
    uniguard: instruction_pair; judge: judge_prompt); a multilabel model's labels become the policy ids.
    window_aggregation: how a long text's windows make one score. pair_folder: for a multilabel guard, the
    guard folder inside this one (written before this call) that scores policies it never saw. reader: for
    input_format "policy_reader", the fitted `PolicyReader.to_dict()`, and everyday: the reference texts it
    compares with (written to EVERYDAY_FILE).
    """
    import yaml

    output = Path(output_dir)
    manifest = GuardManifest(
        kind=kind,
        input_format=input_format or DEFAULT_INPUT_FORMAT.get(kind, ""),
        policies={policy.id: policy.instruction() for policy in policies},
        threshold=float(threshold),
        thresholds={policy_id: float(value) for policy_id, value in (thresholds or {}).items()},
        max_length=int(max_length),
        base_model=base_model,
        datasets=list(datasets),
        window_aggregation=window_aggregation,
        pair_folder=pair_folder,
        reader=dict(reader) if reader is not None else None,
    )
    manifest.validate(str(output))
    if manifest.input_format == "policy_reader" and not everyday:
        raise GuardError("a policy_reader guard is saved with its everyday reference texts")
    if pair_folder is not None and not (output / pair_folder / MANIFEST_FILE).is_file():
        raise GuardError(f"{output / pair_folder} is not a guard folder; save the pair guard there first")
    if manifest.input_format == "multilabel":
        model.config.id2label = dict(enumerate(manifest.policies))
        model.config.label2id = {policy_id: index for index, policy_id in enumerate(manifest.policies)}
        model.config.problem_type = "multi_label_classification"
    elif kind != "judge":
        model.config.id2label = dict(ID2LABEL)
        model.config.label2id = dict(LABEL2ID)
    output.mkdir(parents=True, exist_ok=True)
    # A stale manifest must not vouch for half-written weights: it goes first and comes back last.
    (output / MANIFEST_FILE).unlink(missing_ok=True)
    model.save_pretrained(output, safe_serialization=True)
    tokenizer.save_pretrained(output)
    policy_dir = output / "policies"
    policy_dir.mkdir(exist_ok=True)
    for stale in policy_dir.glob("*.yaml"):
        stale.unlink()
    for policy in policies:
        (policy_dir / f"{policy.id}.yaml").write_text(policy.to_yaml(), encoding="utf-8")
    if recipe is not None:
        values = dataclasses.asdict(recipe) if dataclasses.is_dataclass(recipe) else dict(recipe)
        (output / recipe_file).write_text(yaml.safe_dump(values, sort_keys=False, allow_unicode=True), encoding="utf-8")
    card.save(output / "README.md")
    if everyday:
        (output / EVERYDAY_FILE).write_text(json.dumps(list(everyday), ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    (output / MANIFEST_FILE).write_text(json.dumps(manifest.to_dict(), indent=2) + "\n", encoding="utf-8")
    return output


def guard_folders(root: str | Path) -> list[Path]:
    """Every guard folder below `root`, in path order; a pair guard carried inside another guard is part of it."""
    root = Path(root)
    folders = sorted(manifest.parent for manifest in root.rglob(MANIFEST_FILE))
    inside = set(folders)
    return [folder for folder in folders if not any(parent in inside for parent in folder.parents)]


def copy_guard_folder(source: str | Path, destination: str | Path) -> Path:
    """Copy a complete guard folder (as a UniGuard carries its pair guard); the manifest is copied last, so a
    copy cut short is never taken for a guard. Resumable-training leftovers (checkpoints/) are not copied."""
    import shutil

    source, destination = Path(source), Path(destination)
    read_manifest(source)
    if destination.exists():
        shutil.rmtree(destination)
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns(MANIFEST_FILE, "checkpoints"))
    shutil.copy2(source / MANIFEST_FILE, destination / MANIFEST_FILE)
    return destination


def load_sequence_classifier(model_dir: str | Path, backend: str, device: str):
    """The classifier of one model folder: a transformers model on `device`, or its exported ONNX model."""
    if choose_backend(model_dir, backend, device) == "onnx":
        return OnnxSequenceClassifier.from_folder(model_dir)
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(model_dir).to(device).eval()


def _local_folder(path_or_hub_id: str | Path, revision: str | None) -> Path:
    local = Path(path_or_hub_id)
    if local.is_dir():
        return local
    if local.exists() or str(path_or_hub_id).startswith((".", "/", "~")):
        raise GuardError(f"{path_or_hub_id}: no such guard folder")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(str(path_or_hub_id), revision=revision))
    except LocalEntryNotFoundError:
        raise GuardError(
            f"{path_or_hub_id}: not a local folder and not in the Hub cache while offline; "
            f"download it first with `guardkit pull {path_or_hub_id}`"
        ) from None
    except HfHubHTTPError as error:
        raise GuardError(f"{path_or_hub_id}: cannot download from the Hub ({error})") from None


def read_manifest(folder: str | Path) -> GuardManifest:
    folder = Path(folder)
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise GuardError(
            f"{folder} has no {MANIFEST_FILE}: it is not a guard folder (or its training did not finish); "
            "train one with `guardkit train task|multitask`"
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise GuardError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(raw, dict):
        raise GuardError(f"{path}: expected a JSON object with format_version, kind, policies, ...; got a {type(raw).__name__}")
    return GuardManifest.from_dict(raw, str(path))


def _load_classifier_folder(folder: Path, manifest: GuardManifest, backend: str, device: str):
    """(tokenizer, classifier) of a classifier guard folder; a damaged or incomplete folder is a GuardError."""
    from safetensors import SafetensorError
    from transformers import AutoTokenizer

    damaged = "copy the folder again (an interrupted copy or download leaves it so), `guardkit pull` it again, or retrain it"
    if not any((folder / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")):
        raise GuardError(
            f"{folder} has no tokenizer (tokenizer.json / tokenizer_config.json); {damaged}, or copy the tokenizer "
            f"files of its base model {manifest.base_model} into it"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = load_sequence_classifier(folder, backend, device)
    except (OSError, ValueError, SafetensorError) as error:
        raise GuardError(f"{folder}: the model cannot be loaded ({error}); {damaged}".replace("\n", " ")) from None
    # transformers builds an empty tokenizer when the vocabulary files are missing: every word would be unknown.
    if len(tokenizer) <= len(set(tokenizer.all_special_ids)):
        raise GuardError(
            f"{folder}: the tokenizer has no vocabulary besides its special tokens (its vocabulary file is missing); "
            f"{damaged}, or copy the tokenizer files of its base model {manifest.base_model} into it"
        )
    return tokenizer, model


def _read_everyday(folder: Path) -> list[str]:
    path = folder / EVERYDAY_FILE
    if not path.is_file():
        raise GuardError(f"{folder} has no {EVERYDAY_FILE}, the everyday reference texts its policy reader compares with; copy the folder again or retrain it")
    try:
        texts = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise GuardError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(texts, list) or not texts or not all(isinstance(text, str) and text.strip() for text in texts):
        raise GuardError(f"{path}: expected a JSON list of non-empty texts")
    return texts


def _validate_texts(texts: str | Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, Sequence):
        raise GuardError(f"texts must be a string or a list of strings, got {type(texts).__name__}")
    texts = list(texts)
    if not texts:
        raise GuardError("no texts given: pass at least one non-empty string")
    for index, text in enumerate(texts):
        problem = text_problem(text)
        if problem:
            raise GuardError(f"text {index} {problem}; {TEXT_RULE}")
    return texts


@dataclass(frozen=True)
class _Resolved:
    """How one policy argument is scored: by this guard (with these first segments) or by its pair guard."""

    policy_id: str
    instructions: list[str] | None  # first segments paired with the text; None: the text alone
    policy: Policy | None  # the Policy, when known
    known: bool  # the guard was trained on exactly this policy (its own threshold applies)
    delegate: bool = False  # a one-pass guard handing a policy it never saw to its pair guard


class Guard:
    """A trained guard: scores texts for P(unsafe) under its policies and decides with their thresholds.

    Input formats (guardkit.json `input_format`):
      text              one policy, the text alone (TaskGuard)
      instruction_pair  (policy instruction, text) pairs: any policy, read from its instruction
      rule_pair         (rule instruction, text) pairs, one per disallowed rule; a text is as unsafe as the
                        rule it breaks most (any policy, of any length, read a rule at a time)
      policy_reader     the text's sentence embedding beside those of the policy's examples, rules and allowed
                        items, read by `guardkit.policy_reader` (any policy, read from its YAML)
      multilabel        one pass scores every policy the guard knows: logit per policy, sigmoid = P(unsafe);
                        policies it never saw go to its pair guard (`pair_folder`), when it has one
      judge_prompt      a causal LM judge (JudgeGuard): `model` is a `guardkit.llm_judge.LLMJudge`

    Usually made by `Guard.from_pretrained`; trainers and the merge search build one around a model in
    memory (`Guard(model, tokenizer, manifest)`) to score it exactly as it will be scored once saved.
    """

    def __init__(
        self,
        model,
        tokenizer,
        manifest: GuardManifest,
        policies: Mapping[str, Policy] | None = None,
        pair: "Guard | None" = None,
        everyday: Sequence[str] = (),
    ):
        manifest.validate("guard")
        self.manifest = manifest
        self.policies = dict(policies or {})
        self.model = model
        self.tokenizer = tokenizer
        self.pair = pair
        self.folder: Path | None = None  # where it was loaded from (None for a guard built in memory)
        if manifest.kind == "judge":
            return
        if tokenizer.pad_token_id is None:
            raise GuardError("the guard's tokenizer has no padding token; set one (tokenizer.pad_token) before saving the guard")
        if manifest.input_format == "multilabel":
            labels = [model.config.id2label[index] for index in range(model.config.num_labels)]
            if labels != list(manifest.policies):
                raise GuardError(
                    f"a multilabel guard's labels must be its policy ids in order; the model has {labels}, "
                    f"guardkit.json lists {list(manifest.policies)}"
                )
        if isinstance(model, OnnxSequenceClassifier):
            self.device = None
        else:
            # Dropout off: a model handed over straight from training is still in train mode.
            model.eval()
            self.device = next(model.parameters()).device
        self.length_limit = model_length_limit(model.config, tokenizer)
        self.max_length = min(manifest.max_length, self.length_limit)
        self._input_names = [name for name in ("input_ids", "token_type_ids", "attention_mask") if name in tokenizer.model_input_names]
        self._layout = SpecialTokenLayout(tokenizer)
        self.reader = None
        if manifest.input_format == "policy_reader":
            if self.device is None:
                raise GuardError("a policy_reader guard reads the encoder's sentence embeddings, which its ONNX export does not give; load it with backend='torch'")
            try:
                self.reader = PolicyReader.from_dict(manifest.reader, "guardkit.json reader")
            except (KeyError, TypeError, ValueError) as error:
                raise GuardError(str(error)) from None
            if not everyday:
                raise GuardError(f"a policy_reader guard needs its everyday reference texts ({EVERYDAY_FILE} in its folder)")
            self.everyday = list(everyday)
            self._everyday_vectors: np.ndarray | None = None
            self._last_read: tuple[tuple[str, ...], Windows, np.ndarray] | None = None
            self._anchors: dict[str, PolicyAnchors] = {}

    @classmethod
    def from_pretrained(
        cls, path_or_hub_id: str | Path, revision: str | None = None, device: str | None = None, backend: str = "auto"
    ) -> "Guard":
        """Load a guard from a folder written by `save_guard` (or `guardkit export`) or from a Hub model repo.

        backend: "torch", "onnx" (the model `guardkit export` wrote, run by ONNX Runtime on the CPU), or
        "auto": ONNX when the folder has it, onnxruntime is installed and the device is the CPU, else torch.
        A policy_reader guard reads the encoder's sentence embeddings, which an ONNX export does not give: it
        runs on torch whatever the backend (`guardkit export` leaves it so inside a UniGuard).
        """
        import torch

        folder = _local_folder(path_or_hub_id, revision)
        manifest = read_manifest(folder)
        policy_dir = folder / "policies"
        files = sorted(policy_dir.glob("*.yaml")) if policy_dir.is_dir() else []
        try:
            policies = {policy.id: policy for policy in load_policy_files(files)}
        except PolicyError as error:
            raise GuardError(f"{folder}: {error}") from None
        library = shipped_policies()
        for policy_id in manifest.policies:
            if policy_id not in policies and policy_id in library:
                policies[policy_id] = library[policy_id]
        device = device or ("cuda" if torch.cuda.is_available() and backend != "onnx" else "cpu")
        if manifest.kind == "judge":
            if backend == "onnx":
                raise GuardError(f"{folder}: a JudgeGuard is a causal LM scored with torch; there is no ONNX backend for it")
            from guardkit.llm_judge import LLMJudge

            guard = cls(LLMJudge(str(folder), few_shot=0, device=device), None, manifest, policies)
            guard.folder = folder
            return guard
        if manifest.input_format == "policy_reader":
            backend = "torch"
        tokenizer, model = _load_classifier_folder(folder, manifest, backend, device)
        pair = cls.from_pretrained(folder / manifest.pair_folder, device=device, backend=backend) if manifest.pair_folder else None
        guard = cls(model, tokenizer, manifest, policies, pair, _read_everyday(folder) if manifest.input_format == "policy_reader" else ())
        guard.folder = folder
        return guard

    @property
    def backend(self) -> str:
        """"onnx" when an exported model runs the forward pass, else "torch"."""
        return "onnx" if isinstance(self.model, OnnxSequenceClassifier) else "torch"

    @property
    def kind(self) -> str:
        return self.manifest.kind

    @property
    def threshold(self) -> float:
        """The threshold of policies without their own (those a pair guard never saw)."""
        return self.manifest.threshold

    @property
    def policy_ids(self) -> list[str]:
        return list(self.manifest.policies)

    def is_known(self, policy: str | Policy) -> bool:
        """Whether the guard was trained on this policy: its id, or a Policy whose instruction is the stored one."""
        policy_id = policy.id if isinstance(policy, Policy) else policy
        stored = self.manifest.policies.get(policy_id)
        if stored is None:
            return False
        return not isinstance(policy, Policy) or self.manifest.input_format == "text" or policy.instruction() == stored

    def threshold_for(self, policy: str | Policy) -> float:
        """The decision threshold under `policy`: its own calibrated one when the guard was trained on it, the
        default for any other (from the pair guard, for a one-pass guard that hands unseen policies to it)."""
        if self.is_known(policy):
            return self.manifest.threshold_for(policy.id if isinstance(policy, Policy) else policy)
        if self.pair is not None:
            return self.pair.threshold_for(policy)
        return self.manifest.threshold

    def _resolve(self, policy: str | Policy | None) -> _Resolved:
        """How to score one policy argument: an id the guard knows reads the policy stored with it, a Policy
        object is read from its own text, an id the guard never saw from the shipped library."""
        if policy is None:
            if len(self.manifest.policies) != 1:
                raise GuardError(
                    f"this {self.kind} guard covers several policies ({', '.join(self.policy_ids)}); name one with policy=..."
                )
            policy = self.policy_ids[0]
        if not isinstance(policy, (str, Policy)):
            raise GuardError(f"policy must be a policy id or a Policy, got {type(policy).__name__}")
        policy_id = policy.id if isinstance(policy, Policy) else policy
        known = self.is_known(policy)
        input_format = self.manifest.input_format
        if input_format == "text":
            if policy_id not in self.manifest.policies:
                raise GuardError(
                    f"this TaskGuard was trained for policy '{self.policy_ids[0]}' only and cannot score '{policy_id}'; "
                    "use a MultiTaskGuard or UniGuard for other policies"
                )
            return _Resolved(policy_id, None, self.policies.get(policy_id), True)
        given = policy if isinstance(policy, Policy) else None
        if input_format == "multilabel":
            if known:
                return _Resolved(policy_id, None, given or self.policies.get(policy_id), True)
            if self.pair is None:
                raise GuardError(
                    f"this one-pass guard scores its own policies only ({', '.join(self.policy_ids)}) and has no pair model "
                    f"for '{policy_id}'; use a MultiTaskGuard or a UniGuard with a pair/ folder for other policies"
                )
            return _Resolved(policy_id, None, given, False, delegate=True)
        resolved_policy = given or (self.policies.get(policy_id) if known else None) or self._policy_from_library(policy_id)
        if input_format in ("judge_prompt", "policy_reader"):
            return _Resolved(policy_id, None, resolved_policy, known)
        if input_format == "rule_pair":
            return _Resolved(policy_id, resolved_policy.rule_instructions(), resolved_policy, known)
        instruction = self.manifest.policies[policy_id] if known else resolved_policy.instruction()
        return _Resolved(policy_id, [instruction], resolved_policy, known)

    def _policy_from_library(self, policy_id: str) -> Policy:
        library = shipped_policies()
        if policy_id not in library:
            raise GuardError(
                f"unknown policy '{policy_id}': not among this guard's policies ({', '.join(self.policy_ids)}) "
                "nor shipped; pass a Policy object (guardkit.policies.Policy.from_yaml(path)) to score a custom policy"
            )
        return library[policy_id]

    def score(
        self, texts: str | Sequence[str], policy: str | Policy | None = None, batch_size: int = 32, progress: bool = False
    ) -> np.ndarray:
        """P(unsafe) for each text under `policy` (an id, a Policy, or None for a single-policy guard).

        progress: show a progress bar over the batches (for long lists).
        """
        texts = _validate_texts(texts)
        if batch_size < 1:
            raise GuardError(f"batch_size must be at least 1, got {batch_size}")
        resolved = self._resolve(policy)
        if resolved.delegate:
            return self.pair.score(texts, policy, batch_size, progress)
        if self.kind == "judge":
            return self.model.score(resolved.policy, texts, progress=progress)
        if self.manifest.input_format == "multilabel":
            return self.score_all(texts, batch_size, progress)[resolved.policy_id]
        if self.reader is not None:
            return self._read_policy(texts, resolved, batch_size, progress)
        windows = self.encode_pairs(texts, resolved.instructions)
        return self.score_windows(windows, len(texts), batch_size, progress=progress, label=resolved.policy_id)

    def score_all(self, texts: str | Sequence[str], batch_size: int = 32, progress: bool = False) -> dict[str, np.ndarray]:
        """P(unsafe) under every policy the guard knows, by policy id: one pass for a multilabel guard."""
        texts = _validate_texts(texts)
        if self.manifest.input_format != "multilabel":
            return {policy_id: self.score(texts, policy_id, batch_size, progress) for policy_id in self.policy_ids}
        windows = self.encode_pairs(texts, None)
        scores = self.score_windows(windows, len(texts), batch_size, progress=progress, label="all policies")
        return {policy_id: scores[:, column] for column, policy_id in enumerate(self.policy_ids)}

    def check(
        self,
        texts: str | Sequence[str],
        policies: str | Policy | Sequence[str | Policy] | None = None,
        batch_size: int = 32,
        progress: bool = False,
    ) -> list[Verdict]:
        """A verdict per text and policy (all of the guard's policies when `policies` is None), text by text."""
        texts = _validate_texts(texts)
        if policies is None:
            policies = self.policy_ids
        elif isinstance(policies, (str, Policy)):
            policies = [policies]
        one_pass = {}
        if self.manifest.input_format == "multilabel" and any(self.is_known(policy) for policy in policies):
            one_pass = self.score_all(texts, batch_size, progress)
        scored = []
        for policy in policies:
            resolved = self._resolve(policy)
            scores = one_pass[resolved.policy_id] if resolved.policy_id in one_pass and resolved.known else self.score(texts, policy, batch_size, progress)
            scored.append((resolved.policy_id, self.threshold_for(policy), scores))
        return [
            Verdict(
                text_index=index,
                policy=policy_id,
                label=ID2LABEL[int(scores[index] >= threshold)],
                score=float(scores[index]),
                threshold=threshold,
            )
            for index in range(len(texts))
            for policy_id, threshold, scores in scored
        ]

    def encode_windows(self, texts: list[str], instruction: str | None) -> Windows:
        """Every text cut into windows of at most `max_length` tokens, special tokens (and instruction) added.

        Consecutive windows overlap by half, so any span up to half a window lies whole inside one window.
        The windows are cut here rather than by the tokenizer's overflow option, which some tokenizers
        releases (0.23.1-0.23.2) return incomplete: a silent truncation is exactly what must not happen.
        """
        tokenizer = self.tokenizer
        text_ids = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
        if instruction is None:
            first: list[int] | None = None
            room = self.max_length - self._layout.special_tokens(pair=False)
        else:
            first = tokenizer(instruction, add_special_tokens=False, verbose=False)["input_ids"]
            room = self.max_length - self._layout.special_tokens(pair=True) - len(first)
            if room < MIN_TEXT_TOKENS:
                # A policy longer than the pairs the guard was trained on: its windows grow up to the encoder's
                # own limit (positions it learnt in pre-training) rather than the policy being refused.
                room = self.length_limit - self._layout.special_tokens(pair=True) - len(first)
            if room < MIN_TEXT_TOKENS:
                raise GuardError(
                    f"the policy instruction takes {len(first)} of the {self.length_limit} tokens this guard's encoder reads, "
                    f"leaving {max(room, 0)} for the text (at least {MIN_TEXT_TOKENS} needed); shorten the policy's description and lists"
                )
        windows = Windows([], [], [])
        for index, ids in enumerate(text_ids):
            for start in window_starts(len(ids), room):
                window = ids[start : start + room]
                input_ids, type_ids = self._layout.build(window) if first is None else self._layout.build(first, window)
                windows.input_ids.append(input_ids)
                windows.token_type_ids.append(type_ids)
                windows.owners.append(index)
        return windows

    def encode_pairs(self, texts: list[str], instructions: Sequence[str] | None) -> Windows:
        """The windows of every text paired with each instruction (the text alone when None).

        With several instructions, window owners number (text, instruction) pairs as
        `text_index * len(instructions) + instruction_index` and `groups` says how many instructions each
        text has, so a text's score is its score under the instruction it matches most.
        """
        if instructions is None:
            return self.encode_windows(texts, None)
        windows = Windows([], [], [], groups=len(instructions))
        for position, instruction in enumerate(instructions):
            encoded = self.encode_windows(texts, instruction)
            windows.input_ids.extend(encoded.input_ids)
            windows.token_type_ids.extend(encoded.token_type_ids)
            windows.owners.extend(owner * len(instructions) + position for owner in encoded.owners)
        return windows

    def _logits(self, batch: dict[str, np.ndarray]):
        """The model's logits for one padded batch of windows (int64 arrays named as the tokenizer names them)."""
        import torch

        if isinstance(self.model, OnnxSequenceClassifier):
            return torch.from_numpy(self.model.logits(batch))
        return self.model(**{name: torch.from_numpy(values).to(self.device) for name, values in batch.items()}).logits

    def _probabilities(self, logits) -> np.ndarray:
        """P(unsafe) per window: softmax over (safe, unsafe), or one sigmoid per policy for a multilabel guard."""
        import torch

        logits = logits.float()
        if self.manifest.input_format == "multilabel":
            return torch.sigmoid(logits).cpu().numpy()
        return torch.softmax(logits, dim=-1)[:, UNSAFE].cpu().numpy()

    def score_windows(self, windows: Windows, count: int, batch_size: int, progress: bool, label: str) -> np.ndarray:
        """P(unsafe) per text from its windows: (count,) or, for a multilabel guard, (count, policies)."""
        window_scores = self.window_probabilities(windows, batch_size, progress, label)
        return self.combine_windows(window_scores, windows, count, self.manifest.window_aggregation)

    def combine_windows(self, window_scores: np.ndarray, windows: Windows, count: int, how: str, length_discount: float = WINDOW_LENGTH_DISCOUNT) -> np.ndarray:
        """`score_windows` from window probabilities already computed, under any aggregation (for measuring them)."""
        columns = window_scores.shape[1]
        owners = np.asarray(windows.owners, dtype=np.int64)
        scores = aggregate_windows(window_scores, owners, count * windows.groups, how, length_discount)
        # Several instructions per text (rule pairs): the text is as unsafe as the instruction it matches most.
        scores = scores.reshape(count, windows.groups, columns).max(axis=1)
        return scores[:, 0] if self.manifest.input_format != "multilabel" else scores

    def _window_batches(self, windows: Windows, batch_size: int, progress: bool, label: str):
        """(window indices, padded model inputs) per batch, longest windows first, under inference mode."""
        import torch
        from tqdm.auto import tqdm

        lengths = np.fromiter((len(ids) for ids in windows.input_ids), dtype=np.int64, count=len(windows.input_ids))
        # Length bucketing: neighbours in this order have similar lengths, so batches carry little padding.
        order = np.argsort(-lengths, kind="stable")
        pad_id = self.tokenizer.pad_token_id
        batches = range(0, len(order), batch_size)
        with torch.inference_mode():
            for start in tqdm(batches, desc=f"scoring {label}", unit="batch", disable=not progress):
                members = order[start : start + batch_size]
                width = int(lengths[members[0]])
                batch = {
                    "input_ids": np.full((len(members), width), pad_id, dtype=np.int64),
                    "token_type_ids": np.zeros((len(members), width), dtype=np.int64),
                    "attention_mask": np.zeros((len(members), width), dtype=np.int64),
                }
                for row, window in enumerate(members):
                    size = lengths[window]
                    batch["input_ids"][row, :size] = windows.input_ids[window]
                    batch["token_type_ids"][row, :size] = windows.token_type_ids[window]
                    batch["attention_mask"][row, :size] = 1
                yield members, {name: batch[name] for name in self._input_names}

    def window_probabilities(self, windows: Windows, batch_size: int, progress: bool, label: str) -> np.ndarray:
        """P(unsafe) of every window, (windows, 1) or, for a multilabel guard, (windows, policies)."""
        columns = len(self.manifest.policies) if self.manifest.input_format == "multilabel" else 1
        window_scores = np.empty((len(windows.input_ids), columns), dtype=np.float32)
        for members, batch in self._window_batches(windows, batch_size, progress, label):
            window_scores[members] = self._probabilities(self._logits(batch)).reshape(len(members), columns)
        return window_scores

    def window_embeddings(self, windows: Windows, batch_size: int, progress: bool, label: str) -> np.ndarray:
        """The unit sentence embedding of every window: what the model's final linear layer reads (torch only)."""
        captured: list[np.ndarray] = []
        hook = final_linear(self.model).register_forward_pre_hook(lambda module, inputs: captured.append(inputs[0].detach().float().cpu().numpy()))
        embeddings = None
        try:
            for members, batch in self._window_batches(windows, batch_size, progress, label):
                self._logits(batch)
                values = captured.pop()
                if embeddings is None:
                    embeddings = np.empty((len(windows.input_ids), values.shape[1]), dtype=np.float32)
                embeddings[members] = values
        finally:
            hook.remove()
        return unit_rows(embeddings) if embeddings is not None else np.zeros((0, 1), dtype=np.float32)

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Unit sentence embeddings of whole texts (a long text: the mean of its windows'), as the policy reader compares them."""
        texts = list(texts)
        windows = self.encode_windows(texts, None)
        vectors = self.window_embeddings(windows, batch_size, False, "embedding")
        sums = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
        np.add.at(sums, np.asarray(windows.owners, dtype=np.int64), vectors)
        return unit_rows(sums)

    def policy_anchors(self, policy: Policy, batch_size: int = 32) -> PolicyAnchors:
        """The embedded parts of `policy`, computed once per policy text."""
        key = policy.model_dump_json()
        if key not in self._anchors:
            self._anchors[key] = PolicyAnchors.embed(policy, lambda texts: self.embed(texts, batch_size))
        return self._anchors[key]

    def _read_policy(self, texts: list[str], resolved: _Resolved, batch_size: int, progress: bool) -> np.ndarray:
        """P(unsafe) under `resolved.policy` from the policy reader, window by window, combined as for any guard."""
        reference = {policy_id: self.policy_anchors(self.policies[policy_id], batch_size) for policy_id in self.manifest.policies if policy_id in self.policies}
        anchors = self.policy_anchors(resolved.policy, batch_size)
        if self._everyday_vectors is None:
            self._everyday_vectors = self.embed(self.everyday, batch_size)
        # The same texts read under several policies (a check against many, an evaluation) are embedded once.
        if self._last_read is None or self._last_read[0] != tuple(texts):
            windows = self.encode_windows(texts, None)
            self._last_read = (tuple(texts), windows, self.window_embeddings(windows, batch_size, progress, resolved.policy_id))
        _, windows, embeddings = self._last_read
        features = reader_features(embeddings, anchors, background_of(reference, resolved.policy_id), self._everyday_vectors)
        window_scores = self.reader.probabilities(features)
        return self.combine_windows(window_scores[:, None], windows, len(texts), self.manifest.window_aggregation)


def aggregate_windows(
    window_scores: np.ndarray, owners: np.ndarray, count: int, how: str, length_discount: float = WINDOW_LENGTH_DISCOUNT
) -> np.ndarray:
    """Per owner, one score from its windows' scores (rows: windows; columns: policies).

    length_discount: for "length_adjusted_max", the log-odds taken off the peak per unit of
    log(independent windows); consecutive windows overlap by half, so n windows count as (n + 1) / 2.
    """
    if how in ("max", "length_adjusted_max"):
        scores = np.zeros((count, window_scores.shape[1]), dtype=np.float32)
        np.maximum.at(scores, owners, window_scores)
        if how == "max":
            return scores
        independent = (np.bincount(owners, minlength=count).reshape(-1, 1) + 1) / 2
        peak = np.clip(scores.astype(np.float64), 1e-7, 1 - 1e-7)
        log_odds = np.log(peak / (1 - peak)) - length_discount * np.log(np.maximum(independent, 1.0))
        return (1 / (1 + np.exp(-log_odds))).astype(np.float32)
    if how == "mean":
        totals = np.zeros((count, window_scores.shape[1]), dtype=np.float64)
        np.add.at(totals, owners, window_scores)
        counts = np.bincount(owners, minlength=count).reshape(-1, 1)
        return (totals / np.maximum(counts, 1)).astype(np.float32)
    raise GuardError(f"unknown window_aggregation '{how}'; expected one of {', '.join(WINDOW_AGGREGATIONS)}")


@dataclass
class Windows:
    """Model inputs of the windows of a batch of texts; `owners[i]` is the text window i belongs to."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]]
    owners: list[int]
    groups: int = 1  # instructions per text (owners then number (text, instruction) pairs, see Guard.encode_pairs)


class SpecialTokenLayout:
    """Where a tokenizer puts its special tokens around one sequence or a pair, read off a probe encoding.

    transformers 5 tokenizers no longer expose `build_inputs_with_special_tokens`; encoding two probe
    words with and without special tokens shows the template ([CLS] A [SEP] B [SEP], <s> A </s></s> B </s>, ...).
    """

    PROBES = ("a", "b")

    def __init__(self, tokenizer):
        first, second = (tokenizer(word, add_special_tokens=False)["input_ids"] for word in self.PROBES)
        self.single = self._read(tokenizer(self.PROBES[0], return_token_type_ids=True), [first])
        self.pair = self._read(tokenizer(*self.PROBES, return_token_type_ids=True), [first, second])

    @staticmethod
    def _read(encoded, parts: list[list[int]]) -> list[tuple[list[int], list[int], int]]:
        """[(special ids before part k, their type ids, type id of part k)] plus the trailing specials."""
        ids = encoded["input_ids"]
        types = encoded.get("token_type_ids") or [0] * len(ids)
        pieces, position = [], 0
        for part in parts:
            found = next((at for at in range(position, len(ids) - len(part) + 1) if ids[at : at + len(part)] == part), None)
            if found is None:
                raise GuardError("cannot tell where this tokenizer puts its special tokens; it is not supported by guardkit")
            pieces.append((ids[position:found], types[position:found], types[found]))
            position = found + len(part)
        pieces.append((ids[position:], types[position:], 0))
        return pieces

    def special_tokens(self, pair: bool) -> int:
        return sum(len(before) for before, _, _ in (self.pair if pair else self.single))

    def build(self, *parts: list[int]) -> tuple[list[int], list[int]]:
        layout = self.single if len(parts) == 1 else self.pair
        input_ids: list[int] = []
        type_ids: list[int] = []
        for (before, before_types, part_type), part in zip(layout, [*parts, []]):
            input_ids += before + part
            type_ids += before_types + [part_type] * len(part)
        return input_ids, type_ids


@dataclass
class CheckConfig:
    model: str = field(metadata={"help": "guard folder (written by `guardkit train` or `guardkit merge`) or Hub model id"})
    texts: list[str] = field(metadata={"positional": True, "help": "one or more texts to check (quote each one)"})
    policy: str | None = field(
        default=None,
        metadata={
            "help": "policies to check against: ids separated by commas, or a policy YAML file (a MultiTaskGuard "
            "or UniGuard scores unseen policies from their instruction); default: all the guard's policies"
        },
    )
    revision: str | None = field(default=None, metadata={"help": "Hub revision (branch, tag or commit) when --model is a Hub id"})
    batch_size: int = field(default=32, metadata={"help": "texts per forward pass"})
    as_json: bool = field(default=False, metadata={"help": "print one JSON object per verdict instead of a table"})


def policies_option(guard: Guard, option: str | None) -> list[str | Policy] | None:
    """What a `--policy` option names: the guard's own policy ids as ids, other ids and YAML files as Policies.

    None (no option) stands for all of the guard's policies.
    """
    if not option:
        return None
    policies: list[str | Policy] = []
    for part in option.split(","):
        part = part.strip()
        if part in guard.manifest.policies:
            policies.append(part)
        elif part:
            policies.extend(load_policies([part]))
    ids = [policy.id if isinstance(policy, Policy) else policy for policy in policies]
    repeated = sorted({policy_id for policy_id in ids if ids.count(policy_id) > 1})
    if repeated:
        raise PolicyError(f"policy id given more than once: {', '.join(repeated)}")
    return policies


def run_check(config: CheckConfig) -> int:
    """`guardkit check`: print a verdict per text and policy."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    guard = Guard.from_pretrained(config.model, revision=config.revision)
    verdicts = guard.check(config.texts, policies_option(guard, config.policy), batch_size=config.batch_size)
    for verdict in verdicts:
        text = config.texts[verdict.text_index]
        if config.as_json:
            print(json.dumps({**dataclasses.asdict(verdict), "text": text}))
        else:
            preview = text if len(text) <= 60 else text[:57] + "..."
            print(f"{verdict.label:<7} {verdict.score:.3f} (threshold {verdict.threshold:.3f})  {verdict.policy:<24} {preview}")
    sys.stdout.flush()
    return 0
