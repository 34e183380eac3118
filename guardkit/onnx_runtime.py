"""The ONNX Runtime backend of `Guard`: a guard's exported model run by an `onnxruntime.InferenceSession`.

`guardkit export` writes `onnx/model.onnx` (fp32) or `onnx/model_int8.onnx` (dynamic int8) beside the
safetensors weights of every model folder of a guard, the layout of ONNX models on the Hugging Face Hub
(text-embeddings-inference's ONNX Runtime backend reads `onnx/model.onnx`). `Guard.from_pretrained(..., backend="auto")` runs the ONNX model when
the folder has one, onnxruntime is installed and the guard runs on the CPU; the tokenizer, windows,
instruction pairs and thresholds are the same code for both backends, only the forward pass differs.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from guardkit.errors import GuardkitError

BACKENDS = ("auto", "torch", "onnx")
ONNX_DIR = "onnx"
# By precision; when a folder holds both, int8 is the one exported for speed and is preferred.
ONNX_FILES = {"int8": "model_int8.onnx", "fp32": "model.onnx"}
THREADS_ENV = "GUARDKIT_ORT_THREADS"
SPIN_ENV = "GUARDKIT_ORT_SPIN"


class BackendError(GuardkitError):
    """A backend that cannot run this guard here; the message says what to install or export."""


def onnx_model_path(model_dir: str | Path) -> Path | None:
    """The ONNX model of a model folder (int8 before fp32), or None when it has not been exported."""
    for name in ONNX_FILES.values():
        path = Path(model_dir) / ONNX_DIR / name
        if path.is_file():
            return path
    return None


def onnxruntime_installed() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def choose_backend(model_dir: str | Path, backend: str, device: str) -> str:
    """"torch" or "onnx" for a model folder: "auto" takes ONNX when it is exported and runnable here."""
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend '{backend}' (expected one of {', '.join(BACKENDS)})")
    exported = onnx_model_path(model_dir) is not None
    if backend == "auto":
        # The exported models are CPU models (dynamic int8 has no GPU kernels); a GPU runs torch faster.
        return "onnx" if exported and onnxruntime_installed() and device == "cpu" else "torch"
    if backend == "onnx":
        if not exported:
            raise BackendError(
                f"{model_dir} has no {ONNX_DIR}/{ONNX_FILES['fp32']} or {ONNX_DIR}/{ONNX_FILES['int8']}; "
                "export the guard first: guardkit export DIR --output DIR_ONNX [--quantize int8]"
            )
        if not onnxruntime_installed():
            raise BackendError("the onnx backend needs onnxruntime: pip install onnxruntime")
        if device != "cpu":
            raise BackendError(f"the onnx backend runs on the CPU only, not on '{device}'; use backend='torch' there")
    return backend


def default_threads() -> int:
    """Threads per session: $GUARDKIT_ORT_THREADS, else torch's thread count (so both backends compare fairly)."""
    value = os.environ.get(THREADS_ENV)
    if value:
        try:
            threads = int(value)
        except ValueError:
            raise BackendError(f"{THREADS_ENV}={value!r} is not a whole number of threads") from None
        if threads < 1:
            raise BackendError(f"{THREADS_ENV} must be at least 1, got {threads}")
        return threads
    import torch

    return torch.get_num_threads()


def default_spinning() -> bool:
    """Whether session threads spin between operators: $GUARDKIT_ORT_SPIN (1 or 0), else yes (ONNX Runtime's default)."""
    value = os.environ.get(SPIN_ENV)
    if value is None:
        return True
    if value not in ("0", "1"):
        raise BackendError(f"{SPIN_ENV}={value!r}: use 1 (threads spin between operators) or 0 (they sleep)")
    return value == "1"


class OnnxSequenceClassifier:
    """A sequence classifier exported by `guardkit export`, run by ONNX Runtime on the CPU.

    `config` is the folder's transformers config (labels, length limit); `logits(batch)` takes the int64
    arrays the tokenizer names (input_ids, attention_mask, token_type_ids) and returns float32 logits.
    """

    def __init__(self, path: str | Path, config, threads: int | None = None):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        # One request at a time per session: parallelism lives inside the operators.
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Threads that spin between operators pick up the next one at once (batch 32 of 16-token texts on 2
        # cores: 1,825 instead of 1,461 texts/s). Left spinning after a run they took the cores from torch and
        # from a server's event loop (served requests/s halved), so they stop when each run ends.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if default_spinning() else "0")
        options.add_session_config_entry("session.force_spinning_stop", "1")
        self.path = Path(path)
        self.config = config
        self.threads = options.intra_op_num_threads
        # ONNX Runtime's fused SkipLayerNormalization ran slower on the CPU than the Add and LayerNormalization
        # it replaces (a MiniLM int8 TaskGuard at 64 tokens: 341 -> 387 texts/s without the fusion).
        self.session = onnxruntime.InferenceSession(
            str(self.path), options, providers=["CPUExecutionProvider"], disabled_optimizers=["SkipLayerNormFusion"]
        )
        self.input_names = [item.name for item in self.session.get_inputs()]

    @classmethod
    def from_folder(cls, model_dir: str | Path, threads: int | None = None) -> "OnnxSequenceClassifier":
        from transformers import AutoConfig

        path = onnx_model_path(model_dir)
        if path is None:
            raise BackendError(f"{model_dir} has no exported ONNX model; run guardkit export on it first")
        return cls(path, AutoConfig.from_pretrained(model_dir), threads)

    @property
    def precision(self) -> str:
        return next(precision for precision, name in ONNX_FILES.items() if name == self.path.name)

    def logits(self, batch: Mapping[str, np.ndarray]) -> np.ndarray:
        missing = [name for name in self.input_names if name not in batch]
        if missing:
            raise BackendError(f"{self.path} needs inputs {', '.join(missing)} that this guard's tokenizer does not make")
        (logits,) = self.session.run(["logits"], {name: batch[name] for name in self.input_names})
        return logits
