"""Config parsing shared by every stage: a dataclass per stage, `--config file.yaml`, flags override."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from transformers import HfArgumentParser

from guardkit.errors import GuardkitError
from guardkit.yamlfile import read_yaml

ConfigT = TypeVar("ConfigT")


class ConfigError(GuardkitError):
    """A config file or flag that cannot be used; the message says which and why."""


class GuardkitParser(HfArgumentParser):
    """`HfArgumentParser` that reads defaults from `--config file.yaml`, like trl's `TrlParser`.

    Flags given on the command line win over the file; the file wins over the dataclass defaults.
    """

    def __init__(self, dataclass_types, **kwargs):
        super().__init__(dataclass_types, **kwargs)
        self.add_argument(
            "--config",
            type=str,
            default=None,
            help="YAML file with values for any of the options below; flags given here override it.",
        )
        for dtype in self.dataclass_types:
            for field in dataclasses.fields(dtype):
                if field.metadata.get("positional"):
                    self._make_positional(field.name)

    @staticmethod
    def _parse_dataclass_field(parser, field):
        # HfArgumentParser hands every metadata key to add_argument, which knows nothing of "positional".
        if "positional" in field.metadata:
            field = copy.copy(field)
            field.metadata = types.MappingProxyType({k: v for k, v in field.metadata.items() if k != "positional"})
        HfArgumentParser._parse_dataclass_field(parser, field)

    def _make_positional(self, dest: str) -> None:
        """Turn the `--dest` option HfArgumentParser made into a positional argument (`guardkit check TEXT`)."""
        action = next(action for action in self._actions if action.dest == dest)
        self._remove_action(action)
        for group in self._action_groups:
            if action in group._group_actions:
                group._group_actions.remove(action)
        for option in action.option_strings:
            self._option_string_actions.pop(option, None)
        many = action.nargs in ("+", "*")
        optional = not action.required
        nargs = ("*" if optional else "+") if many else ("?" if optional else None)
        self.add_argument(dest, nargs=nargs, type=action.type, default=action.default, help=action.help, metavar=dest.upper())

    def parse_with_config(self, argv: Sequence[str] | None = None) -> tuple[Any, ...]:
        pre = argparse.ArgumentParser(add_help=False)
        pre.add_argument("--config", default=None)
        known, _ = pre.parse_known_args(argv)
        if known.config:
            self._apply_config_file(Path(known.config))
        *configs, _ = self.parse_args_into_dataclasses(args=argv)
        return tuple(configs)

    def _apply_config_file(self, path: Path) -> None:
        values = read_yaml(path, ConfigError, f"--config {path}", "file") or {}
        if not isinstance(values, dict):
            raise ConfigError(f"--config {path}: expected a mapping of option names to values")
        known = {field.name for dtype in self.dataclass_types for field in dataclasses.fields(dtype)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"--config {path}: unknown option(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
        self.set_defaults(**values)
        for action in self._actions:
            if action.dest in values:
                action.required = False


def parse_config(config_type: type[ConfigT], argv: Sequence[str] | None, prog: str, description: str) -> ConfigT:
    parser = GuardkitParser(
        config_type, prog=prog, description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    (config,) = parser.parse_with_config(argv)
    return config


def save_config(config: Any, path: str | Path) -> None:
    """Write a stage config as YAML that `--config` reads back (the record of how an artifact was made)."""
    Path(path).write_text(yaml.safe_dump(dataclasses.asdict(config), sort_keys=False), encoding="utf-8")
