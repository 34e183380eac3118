"""The generator backend interface and its registry (one file per backend, registered by a decorator)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import ClassVar

from guardkit.errors import GuardkitError
from guardkit.generate.prompting import Prompt, Response


class BackendError(GuardkitError):
    """A generator backend that cannot serve requests (endpoint down, bad model, missing key)."""


class GeneratorBackend(ABC):
    """Sends prompts to a model and hands each response to a callback as soon as it is complete.

    Delivering responses one by one (rather than returning them all) is what lets the pipeline append every
    candidate to candidates.jsonl as it arrives, so an interrupted run loses at most the requests in flight.
    """

    name: ClassVar[str]

    def __init__(self, model: str, *, temperature: float, top_p: float, seed: int, **options):
        self.model_name = model
        self.temperature = temperature
        self.top_p = top_p
        self.seed = seed

    @abstractmethod
    def run(self, prompts: Sequence[Prompt], on_response: Callable[[Response], None]) -> None:
        """Generate for every prompt, calling `on_response` once per finished prompt, in any order."""

    def default_prompt_style(self) -> str:
        """The prompt style `--prompt-style auto` resolves to for this backend and model."""
        return "chat"

    def describe(self) -> dict[str, object]:
        """What the dataset card records about the generator (never secrets)."""
        return {"backend": self.name, "model": self.model_name, "temperature": self.temperature, "top_p": self.top_p}

    def close(self) -> None:
        """Free what the backend holds (models, connections)."""


BACKENDS: dict[str, type[GeneratorBackend]] = {}


def register_backend(name: str) -> Callable[[type[GeneratorBackend]], type[GeneratorBackend]]:
    def decorate(cls: type[GeneratorBackend]) -> type[GeneratorBackend]:
        cls.name = name
        BACKENDS[name] = cls
        return cls

    return decorate


def get_backend(name: str) -> type[GeneratorBackend]:
    if name not in BACKENDS:
        raise BackendError(f"unknown generator backend '{name}'; choose one of {', '.join(sorted(BACKENDS))}")
    return BACKENDS[name]
