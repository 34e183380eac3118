"""`guardkit benchmarks list`."""

from __future__ import annotations

from dataclasses import dataclass

from guardkit.data.benchmarks import format_registry_table


@dataclass
class ListConfig:
    pass


def list_benchmarks(config: ListConfig) -> None:
    print(format_registry_table())
