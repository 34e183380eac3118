"""guardkit: turn a guardrail policy written in plain language into a small, fast classifier on the Hub.

    from guardkit import Guard, Policy

The public API is imported on first use, so `import guardkit` (and `guardkit --version`) stays cheap.
"""

from __future__ import annotations

import importlib

# Not typing.TYPE_CHECKING: importing typing would double the cost of `import guardkit`; type checkers
# read a module-level TYPE_CHECKING = False the same way.
TYPE_CHECKING = False

__version__ = "0.1.0"

# Public name -> the module that defines it.
_PUBLIC = {
    "Guard": "guardkit.guard",
    "Verdict": "guardkit.guard",
    "Policy": "guardkit.policies",
    "load_policies": "guardkit.policies",
    "shipped_policies": "guardkit.policies",
    "GuardkitError": "guardkit.errors",
}

__all__ = ["__version__", *_PUBLIC]

if TYPE_CHECKING:
    from guardkit.errors import GuardkitError
    from guardkit.guard import Guard, Verdict
    from guardkit.policies import Policy, load_policies, shipped_policies


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'guardkit' has no attribute '{name}'")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
