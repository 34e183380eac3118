"""The policy model: a guardrail policy written in plain language, loaded from YAML."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from guardkit.errors import GuardkitError
from guardkit.yamlfile import first_validation_problem, read_yaml


class PolicyError(GuardkitError):
    """A policy file that cannot be used; the message names the file and the field."""


def rule_instruction(policy_name: str, rule: str) -> str:
    """How a rule-pair guard reads one disallowed rule: the policy's name for context, then the rule."""
    return f"{policy_name.strip()}: {rule.strip().rstrip('.')}."


def _non_empty_texts(values: list[str]) -> list[str]:
    cleaned = [value.strip() if isinstance(value, str) else value for value in values]
    if any(not value for value in cleaned):
        raise ValueError("contains an empty entry")
    return cleaned


class PolicyExamples(BaseModel):
    model_config = ConfigDict(extra="forbid")

    safe: list[str] = Field(min_length=1)
    unsafe: list[str] = Field(min_length=1)

    @field_validator("safe", "unsafe")
    @classmethod
    def _strip(cls, values: list[str]) -> list[str]:
        return _non_empty_texts(values)


# Tags of policies whose scope is a topic: everything off it, other policies' texts included, is unsafe there.
SCOPE_TAGS = frozenset({"scope", "product-scope"})


class Policy(BaseModel):
    """One guardrail policy: what a guard must flag (disallowed) and what it must let through (allowed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str = Field(min_length=1)
    description: str = Field(min_length=1)
    allowed: list[str] = Field(min_length=1)
    disallowed: list[str] = Field(min_length=1)
    examples: PolicyExamples
    hard_negatives: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    version: str = "1"

    @field_validator("allowed", "disallowed", "hard_negatives")
    @classmethod
    def _strip(cls, values: list[str]) -> list[str]:
        return _non_empty_texts(values)

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, (int, float)) else value

    @property
    def restricts_scope(self) -> bool:
        """Whether the policy keeps an assistant on its topic (tag "scope" or "product-scope"): off-topic requests,
        however harmless, are what it flags, so harm-detection measures leave it out."""
        return bool(SCOPE_TAGS & set(self.tags))

    def instruction(self) -> str:
        """The canonical instruction that instruction-conditioned guards read beside the text.

        Name, description and the disallowed list only: pair models pay for every instruction token on
        every check, and the allowed behaviours are taught by the safe and hard-negative training rows.
        """
        unsafe = "; ".join(item.rstrip(".") for item in self.disallowed)
        return f"{self.name}: {self.description.strip()} Unsafe: {unsafe}."

    def rule_instructions(self) -> list[str]:
        """One short instruction per disallowed rule, what rule-pair guards read beside the text.

        A text is unsafe under the policy when it breaks any rule, so such a guard scores each rule and
        keeps the highest: a policy of any length is read whole, a rule at a time.
        """
        return [rule_instruction(self.name, rule) for rule in self.disallowed]

    def all_examples(self) -> list[tuple[str, str]]:
        """(text, label) pairs of every example in the policy, hard negatives labelled safe."""
        pairs = [(text, "safe") for text in self.examples.safe]
        pairs += [(text, "safe") for text in self.hard_negatives]
        pairs += [(text, "unsafe") for text in self.examples.unsafe]
        return pairs

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(), sort_keys=False, allow_unicode=True, width=100)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Policy":
        path = Path(path)
        return cls.from_dict(read_yaml(path, PolicyError, str(path), "policy file"), source=str(path))

    @classmethod
    def from_dict(cls, raw: object, source: str = "<policy>") -> "Policy":
        if not isinstance(raw, dict):
            raise PolicyError(f"{source}: a policy file must be a YAML mapping with id, name, description, ...")
        try:
            return cls.model_validate(raw)
        except ValidationError as error:
            raise PolicyError(first_validation_problem(source, error)) from None
