"""Rendering the Jinja prompt templates in `guardkit/generate/prompts/` into backend-neutral prompts."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import jinja2

from guardkit.generate.requests import GenerationRequest
from guardkit.policies import Policy


@dataclass(frozen=True)
class Prompt:
    """One thing to send to a backend: raw `text` to continue, or chat `messages`."""

    id: str
    max_new_tokens: int
    text: str | None = None
    messages: tuple[dict[str, str], ...] | None = None
    stop: tuple[str, ...] = ()  # generation may end as soon as one of these appears

    @property
    def is_chat(self) -> bool:
        return self.messages is not None


@dataclass(frozen=True)
class Response:
    prompt_id: str
    text: str
    truncated: bool  # generation stopped at max_new_tokens, so the last item may be cut off


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    folder = resources.files("guardkit.generate") / "prompts"
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        autoescape=False,
    )
    environment.filters["oneline"] = _one_line
    environment.filters["lowerfirst"] = _lower_first
    return environment


def render(template: str, **values) -> str:
    return _environment().get_template(template).render(**values).strip()


def generation_prompt(request: GenerationRequest, policy: Policy, style: str, max_new_tokens: int) -> Prompt:
    values = dict(
        policy=policy,
        kind=request.kind,
        label=request.label,
        behaviour=request.behaviour,
        axes=request.axes,
        examples=request.examples,
        count=request.count,
        total=len(request.examples) + request.count,
    )
    if style == "list":
        # The model picks up after "N."; it may stop once the item after the last wanted one begins.
        stop = (f"\n{len(request.examples) + request.count + 1}.",)
        return Prompt(id=request.id, max_new_tokens=max_new_tokens, text=render("list_continuation.jinja", **values), stop=stop)
    messages = (
        {"role": "system", "content": render("generate_system.jinja", **values)},
        {"role": "user", "content": render("generate_user.jinja", **values)},
    )
    return Prompt(id=request.id, max_new_tokens=max_new_tokens, messages=messages)


def judge_chat_prompt(prompt_id: str, policy: Policy, text: str, max_new_tokens: int = 96) -> Prompt:
    messages = (
        {"role": "system", "content": render("judge_system.jinja")},
        {"role": "user", "content": render("judge_user.jinja", policy=policy, text=text)},
    )
    return Prompt(id=prompt_id, max_new_tokens=max_new_tokens, messages=messages)
