"""The policy library: shipped YAML policies and loading of user policy files."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from guardkit.policies.schema import Policy, PolicyError, PolicyExamples

__all__ = [
    "Policy",
    "PolicyError",
    "PolicyExamples",
    "get_policy",
    "load_policies",
    "load_policy_files",
    "shipped_policies",
    "shipped_policy_dir",
]


def shipped_policy_dir() -> Path:
    return Path(str(resources.files("guardkit.policies")))


def load_policy_files(paths: Iterable[str | Path]) -> list[Policy]:
    """Load policy files, refusing the whole set when two files share an id."""
    policies: list[Policy] = []
    seen: dict[str, Path] = {}
    for path in paths:
        path = Path(path)
        policy = Policy.from_yaml(path)
        if policy.id in seen:
            raise PolicyError(f"{path}: field 'id': duplicate policy id '{policy.id}' (also in {seen[policy.id]})")
        seen[policy.id] = path
        policies.append(policy)
    return policies


@functools.cache
def _shipped_library() -> tuple[Policy, ...]:
    # Read once per process: every guard load and dataset load consults the library.
    return tuple(load_policy_files(sorted(shipped_policy_dir().glob("*.yaml"))))


def shipped_policies() -> dict[str, Policy]:
    """Every policy shipped with guardkit, by id, in file-name order (a fresh dict the caller may change)."""
    return {policy.id: policy for policy in _shipped_library()}


def get_policy(policy_id: str) -> Policy:
    library = shipped_policies()
    if policy_id not in library:
        raise PolicyError(
            f"unknown policy '{policy_id}'; shipped policies are: {', '.join(library)} "
            "(or pass the path of a policy YAML file)"
        )
    return library[policy_id]


def load_policies(specs: Iterable[str | Path]) -> list[Policy]:
    """Resolve each spec, a shipped policy id or a path to a YAML file, into a Policy.

    A spec may also be a comma-separated list of ids ("prompt_injection,jailbreak").
    """
    policies: list[Policy] = []
    for spec in specs:
        for part in str(spec).split(","):
            part = part.strip()
            if not part:
                continue
            if part.endswith((".yaml", ".yml")) or Path(part).is_file():
                policies.extend(load_policy_files([part]))
            else:
                policies.append(get_policy(part))
    ids = [policy.id for policy in policies]
    duplicates = sorted({policy_id for policy_id in ids if ids.count(policy_id) > 1})
    if duplicates:
        raise PolicyError(f"policy id given more than once: {', '.join(duplicates)}")
    return policies
