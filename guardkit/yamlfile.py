"""Reading the YAML files users write (policies, merge recipes, stage configs) with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from guardkit.errors import GuardkitError


def read_yaml(path: Path, error: type[GuardkitError], label: str, what: str) -> object:
    """The parsed file; a missing file or broken YAML raises `error` starting with `label`."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{label}: no such {what}") from None
    except yaml.YAMLError as problem:
        raise error(f"{label}: not valid YAML ({problem})".replace("\n", " ")) from None


def first_validation_problem(source: str, problem: ValidationError) -> str:
    """'<source>: field 'a.b': <message>' for the first field pydantic refused."""
    first = problem.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "<root>"
    return f"{source}: field '{field}': {first['msg']}"
