"""`guardkit export`: a guard folder with its models in ONNX format (fp32, or dynamic int8), checked first.

The output is the source guard folder copied whole (weights, tokenizer, `guardkit.json`, policies, card)
plus `onnx/model.onnx` or `onnx/model_int8.onnx` inside every model folder of the guard (the root, and
any model folder below it), an ONNX section in the card and `export.yaml`. Before anything is written
to the output, the torch guard and the exported guard check the same texts at the guard's stored
per-policy thresholds; the export is refused when their verdicts differ on more than `max_disagreement`
of them. The folder appears at `--output` only once complete.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from guardkit.config import save_config
from guardkit.errors import GuardkitError
from guardkit.evaluate.config import DEFAULT_POLICY_BENCH_DIR
from guardkit.guard import MANIFEST_FILE, Guard, GuardError, _local_folder, read_manifest
from guardkit.onnx_runtime import ONNX_DIR, ONNX_FILES
from guardkit.resources import shipped_path

TEMPLATE = shipped_path("model_cards/onnx_export.md")
CARD_START = "<!-- guardkit-export:start -->"
CARD_END = "<!-- guardkit-export:end -->"
RECIPE_FILE = "export.yaml"
PRECISION_TEXT = {"fp32": "fp32 (as trained)", "int8": "dynamic int8 (int8 weights per channel, activations quantized per batch)"}
# In the order the BERT-family forward() takes them; each model gets those its tokenizer makes.
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


class ExportError(GuardkitError):
    """An export that cannot be done or was refused; the message says why and what to do."""


@dataclass
class ExportConfig:
    model: str = field(
        metadata={"positional": True, "help": "guard folder to export (written by `guardkit train` or `guardkit merge`) or Hub id"}
    )
    output: str = field(metadata={"help": "folder to write: a complete guard folder with the ONNX model(s) added"})
    quantize: str | None = field(
        default=None,
        metadata={"choices": ["int8"], "help": "int8: dynamic int8 quantization (onnx/model_int8.onnx) instead of fp32 (onnx/model.onnx)"},
    )
    verify_dir: str = field(
        default=DEFAULT_POLICY_BENCH_DIR,
        metadata={
            "help": "folder of <policy>.jsonl rows (the policy-bench format) the exported model must agree on; a guard "
            "policy without a file there is checked on its own examples"
        },
    )
    max_disagreement: float = field(
        default=0.01, metadata={"help": "refuse the export when torch and ONNX verdicts differ on more than this fraction of rows"}
    )
    opset: int = field(default=18, metadata={"help": "ONNX opset of the exported graph"})
    overwrite: bool = field(default=False, metadata={"help": "replace --output when it already holds files"})
    revision: str | None = field(default=None, metadata={"help": "Hub revision when MODEL is a Hub id"})


@dataclass(frozen=True)
class ExportedModel:
    folder: str  # relative to the guard root; "." for the root model
    file: str  # the ONNX file, relative to the guard root
    precision: str

    @property
    def precision_text(self) -> str:
        return PRECISION_TEXT[self.precision]


@dataclass(frozen=True)
class Agreement:
    """How the exported guard's verdicts compare with the torch guard's on the same texts."""

    rows: int
    disagreements: int
    max_score_difference: float
    policies: tuple[str, ...]
    source: str  # where the texts came from, in words

    @property
    def agreement(self) -> float:
        return 1.0 - self.disagreements / self.rows


def model_folders(root: Path) -> list[Path]:
    """Every transformers model folder of a guard: the root, then any folder below it with weights and a config."""
    found = []
    for config in sorted(root.rglob("config.json")):
        folder = config.parent
        if ONNX_DIR in folder.relative_to(root).parts:
            continue
        if (folder / "model.safetensors").is_file() or (folder / "model.safetensors.index.json").is_file():
            found.append(folder)
    return sorted(found, key=lambda folder: (folder != root, str(folder)))


def _tokenizer_folder(model_dir: Path, root: Path) -> Path:
    return model_dir if (model_dir / "tokenizer_config.json").is_file() else root


def export_model(model_dir: Path, tokenizer_dir: Path, quantize: str | None, opset: int) -> Path:
    """Write `model_dir/onnx/model.onnx` (or `model_int8.onnx`) from the safetensors weights; returns the file."""
    import onnx
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    names = [name for name in INPUT_NAMES if name in tokenizer.model_input_names]
    # Eager attention on purpose: the traced SDPA path masks with Where/IsNaN ops that took a fifth of the
    # int8 model's time; the eager graph ran 1.3x (64 tokens) to 2x (256 tokens) faster in ONNX Runtime.
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, attn_implementation="eager").eval()

    class Logits(torch.nn.Module):
        """The classifier's forward pass with positional inputs, returning logits only."""

        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            return self.model(**dict(zip(names, inputs))).logits

    sample = tokenizer(["a short text", "a somewhat longer text to export with"], padding=True, return_tensors="pt")
    target = model_dir / ONNX_DIR
    target.mkdir(exist_ok=True)
    fp32 = target / ONNX_FILES["fp32"]
    with torch.inference_mode(), warnings.catch_warnings():
        # The tracer's notes on shape checks that are constant for an encoder (no cache, mask always given)
        # and on index ops; the verdict check after the export is what tells whether the graph is right.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Exporting aten::index operator")
        # dynamo=False on purpose: the TorchScript exporter handles these models with dynamic axes as they are.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            Logits(),
            tuple(sample[name] for name in names),
            str(fp32),
            input_names=names,
            output_names=["logits"],
            dynamic_axes={**{name: {0: "batch", 1: "sequence"} for name in names}, "logits": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    onnx.checker.check_model(str(fp32))
    if quantize is None:
        return fp32
    from onnxruntime.quantization import QuantType, quantize_dynamic

    int8 = target / ONNX_FILES[quantize]
    # quantize_dynamic suggests its pre-processing on the root logger at every call; on these graphs the
    # pre-processing changed nothing (measured), so the suggestion is noise here.
    root_level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)
    try:
        # Per-channel weight scales: on a MiniLM TaskGuard they halved the verdicts that differ from fp32
        # (policy-bench, 18 vs 37 of 704) at the same speed.
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        logging.getLogger().setLevel(root_level)
    fp32.unlink()
    onnx.checker.check_model(str(int8))
    return int8


def verification_texts(guard: Guard, verify_dir: str | Path) -> tuple[dict[str, list[str]], str]:
    """({policy id: texts}, description): the rows of `verify_dir/<policy>.jsonl` for every policy the guard scores.

    A guard that scores policies it was not trained on (from their instruction) is also checked on the
    files' other policies; a policy of the guard without a file is checked on the examples in its own
    policy file.
    """
    from guardkit.evaluate.harness import read_policy_bench

    verify_dir = Path(verify_dir)
    files = {path.stem: path for path in sorted(verify_dir.glob("*.jsonl"))} if verify_dir.is_dir() else {}
    policies = list(guard.policy_ids)
    policies += [policy_id for policy_id in files if policy_id not in policies and _can_score(guard, policy_id)]
    texts, sources = {}, []
    for policy_id in policies:
        if policy_id in files:
            rows = [row.text for row in read_policy_bench(files[policy_id]) if row.policy == policy_id]
            source = str(files[policy_id])
        elif policy_id in guard.policies:
            rows = [text for text, _ in guard.policies[policy_id].all_examples()]
            source = f"the examples of policy {policy_id}"
        else:
            rows = []
        if rows:
            texts[policy_id] = rows
            sources.append(source)
    if not texts:
        raise ExportError(
            f"nothing to check the export on: no <policy>.jsonl in {verify_dir} for {', '.join(guard.policy_ids)} and no "
            "examples in the guard's policy files; pass --verify_dir with a file of rows per policy"
        )
    in_files = sum(1 for policy_id in texts if policy_id in files)
    if in_files < len(texts):
        return texts, "; ".join(sources)
    where = "guardkit's hand-written policy-bench" if verify_dir == Path(DEFAULT_POLICY_BENCH_DIR) else str(verify_dir)
    return texts, f"{where}, {in_files} file{'s' if in_files > 1 else ''}"


def _can_score(guard: Guard, policy_id: str) -> bool:
    """Whether the guard scores a policy it was not trained on (a TaskGuard does not; an instruction may not fit)."""
    try:
        guard.score(["probe"], policy_id)
    except GuardError:
        return False
    return True


def compare_guards(reference: Guard, exported: Guard, texts: dict[str, list[str]], source: str) -> Agreement:
    """Check the same texts with both guards (their stored thresholds) and count differing verdicts."""
    rows = disagreements = 0
    max_difference = 0.0
    for policy_id, policy_texts in texts.items():
        expected = reference.check(policy_texts, [policy_id])
        actual = exported.check(policy_texts, [policy_id])
        rows += len(expected)
        disagreements += sum(left.label != right.label for left, right in zip(expected, actual))
        differences = np.abs(np.array([left.score for left in expected]) - np.array([right.score for right in actual]))
        max_difference = max(max_difference, float(differences.max()))
    return Agreement(rows, disagreements, max_difference, tuple(texts), source)


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch

    return {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


def write_card_section(
    folder: Path, exported: Sequence[ExportedModel], agreement: Agreement, config: ExportConfig, input_names: Sequence[str]
) -> None:
    """Add (or replace) the ONNX section of the guard's card and tag the card `onnx`."""
    import jinja2
    from huggingface_hub import ModelCard

    path = folder / "README.md"
    if not path.is_file():
        raise ExportError(f"{path}: the guard has no model card to describe the export in")
    card = ModelCard.load(path)
    section = jinja2.Template(TEMPLATE.read_text(encoding="utf-8"), keep_trailing_newline=True).render(
        start_marker=CARD_START,
        end_marker=CARD_END,
        models=list(exported),
        opset=config.opset,
        quantize=config.quantize,
        versions=_versions(),
        agreement=agreement,
        max_disagreement=config.max_disagreement,
        input_names=list(input_names),
    )
    text = card.text
    if CARD_START in text and CARD_END in text:
        text = text[: text.index(CARD_START)] + text[text.index(CARD_END) + len(CARD_END) :].lstrip("\n")
    card.text = text.rstrip("\n") + "\n\n" + section
    card.data.tags = [*(card.data.tags or []), *([] if "onnx" in (card.data.tags or []) else ["onnx"])]
    card.save(path)


def _copy_guard(source: Path, staging: Path) -> None:
    """Every file of the source guard except earlier ONNX exports, which this export replaces."""
    shutil.copytree(source, staging, dirs_exist_ok=True, ignore=lambda folder, names: [ONNX_DIR] if ONNX_DIR in names else [])


def _place(staging: Path, output: Path) -> None:
    """Move the finished folder to `output`, replacing what was there only once the new one is complete."""
    if output.exists():
        retired = output.with_name(f".{output.name}.replaced")
        shutil.rmtree(retired, ignore_errors=True)
        output.rename(retired)
        staging.rename(output)
        shutil.rmtree(retired)
    else:
        staging.rename(output)


def export_guard(config: ExportConfig) -> None:
    """`guardkit export`: copy the guard, export each model to ONNX, check verdicts, then write `config.output`."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    if not 0.0 <= config.max_disagreement < 1.0:
        raise ExportError(f"--max_disagreement must lie in [0, 1), got {config.max_disagreement}")
    source = _local_folder(config.model, config.revision)
    manifest = read_manifest(source)
    if manifest.kind == "judge":
        raise ExportError(f"{source} is a JudgeGuard (a causal LM judge); only encoder guards are exported to ONNX")
    if manifest.input_format == "policy_reader":
        raise ExportError(
            f"{source} is a policy-reader guard: it reads the encoder's sentence embeddings, which the exported model does not "
            "give, so it runs on torch; export a TaskGuard or a UniGuard (its policy reader stays on torch inside it)"
        )
    output = Path(config.output)
    if output.resolve() == source.resolve() or source.resolve() in output.resolve().parents:
        raise ExportError(f"--output {output} must lie outside the guard folder {source}; the export writes a new guard folder")
    if output.exists() and (not output.is_dir() or any(output.iterdir())) and not config.overwrite:
        raise ExportError(f"{output} already exists and is not empty; choose another --output or pass --overwrite")
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".partial", dir=output.parent))
    try:
        _copy_guard(source, staging)
        # The copied manifest must not vouch for the folder until its ONNX models have been checked.
        manifest_file = staging / MANIFEST_FILE
        manifest_bytes = manifest_file.read_bytes()
        manifest_file.unlink()
        exported = []
        for model_dir in model_folders(staging):
            if model_dir != staging and (model_dir / MANIFEST_FILE).is_file() and read_manifest(model_dir).input_format == "policy_reader":
                continue  # a UniGuard's policy reader runs on torch (Guard.from_pretrained)
            print(f"exporting {model_dir.relative_to(staging) if model_dir != staging else 'the guard model'} to ONNX ...", flush=True)
            path = export_model(model_dir, _tokenizer_folder(model_dir, staging), config.quantize, config.opset)
            exported.append(
                ExportedModel(str(model_dir.relative_to(staging)), str(path.relative_to(staging)), config.quantize or "fp32")
            )
        manifest_file.write_bytes(manifest_bytes)
        reference = Guard.from_pretrained(source, device="cpu", backend="torch")
        candidate = Guard.from_pretrained(staging, device="cpu", backend="onnx")
        texts, description = verification_texts(reference, config.verify_dir)
        agreement = compare_guards(reference, candidate, texts, description)
        report = (
            f"torch and ONNX Runtime ({config.quantize or 'fp32'}) verdicts agree on {agreement.rows - agreement.disagreements} "
            f"of {agreement.rows} texts ({100 * agreement.agreement:.2f}%, from {description}); largest difference in "
            f"P(unsafe) {agreement.max_score_difference:.2g}"
        )
        print(report, flush=True)
        if agreement.disagreements > config.max_disagreement * agreement.rows:
            raise ExportError(
                f"export refused: {report}, more than the {100 * config.max_disagreement:.1f}% allowed; nothing was written. "
                + ("Export without --quantize (fp32), or " if config.quantize else "")
                + "raise --max_disagreement if this difference is acceptable for your use"
            )
        write_card_section(staging, exported, agreement, config, candidate.model.input_names)
        save_config(config, staging / "export.yaml")
        _place(staging, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"wrote {output} ({', '.join(model.file for model in exported)})")
