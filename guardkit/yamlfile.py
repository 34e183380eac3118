"""Reading the YAML files users write (policies, merge recipes, stage configs) with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from guardkit.errors import GuardkitError


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML would keep the last one silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears more than once in this mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path, error: type[GuardkitError], label: str, what: str) -> object:
    """The parsed file; a missing or unreadable file, broken YAML or a repeated key raises `error` starting with `label`."""
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except FileNotFoundError:
        raise error(f"{label}: no such {what}") from None
    except IsADirectoryError:
        raise error(f"{label}: is a folder, not a {what}") from None
    except UnicodeDecodeError as problem:
        raise error(f"{label}: not UTF-8 text ({problem}); save the {what} as UTF-8") from None
    except yaml.YAMLError as problem:
        raise error(f"{label}: not valid YAML ({problem})".replace("\n", " ")) from None


def first_validation_problem(source: str, problem: ValidationError) -> str:
    """'<source>: field 'a.b': <message>' for the first field pydantic refused."""
    first = problem.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "<root>"
    return f"{source}: field '{field}': {first['msg']}"
