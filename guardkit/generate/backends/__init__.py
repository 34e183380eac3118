"""Generator backends: `transformers` (local causal LM, batched) and `openai` (any OpenAI-compatible endpoint)."""

from guardkit.generate.backends import openai, transformers  # noqa: F401  (each module registers its backend)
from guardkit.generate.backends.base import BACKENDS, BackendError, GeneratorBackend, get_backend, register_backend

__all__ = ["BACKENDS", "BackendError", "GeneratorBackend", "get_backend", "register_backend"]
