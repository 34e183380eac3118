"""`guardkit policies list | show ID | validate PATH...`."""

from __future__ import annotations

from dataclasses import dataclass, field

from guardkit.policies import get_policy, load_policy_files, shipped_policies


@dataclass
class ListConfig:
    pass


@dataclass
class ShowConfig:
    policy: str = field(metadata={"positional": True, "help": "id of a shipped policy"})


@dataclass
class ValidateConfig:
    paths: list[str] = field(metadata={"positional": True, "help": "policy YAML files to check"})


def list_policies(config: ListConfig) -> None:
    policies = shipped_policies()
    width = max(len(policy_id) for policy_id in policies)
    for policy in policies.values():
        counts = f"{len(policy.examples.safe)} safe, {len(policy.hard_negatives)} hard negatives, {len(policy.examples.unsafe)} unsafe"
        print(f"{policy.id:<{width}}  {policy.name}  ({counts})")


def show_policy(config: ShowConfig) -> None:
    print(get_policy(config.policy).to_yaml(), end="")


def validate_policies(config: ValidateConfig) -> None:
    for policy in load_policy_files(config.paths):
        print(f"ok  {policy.id}")
