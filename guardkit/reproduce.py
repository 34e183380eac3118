"""Plumbing for `make reproduce`: split the one run config into per-stage configs, time each step, write REPORT.md.

The Makefile owns the order and the file dependencies of the steps; this module only does what make
cannot do well: read YAML, measure time and render the report from results.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import yaml

from guardkit.errors import GuardkitError
from guardkit.policies import load_policies, shipped_policies

# Sections of configs/reproduce.yaml; each becomes OUT/configs/<section>.yaml, read by `guardkit <stage> --config`.
STAGE_SECTIONS = ("generate", "train_task", "train_multitask", "train_judge", "merge", "evaluate")
# Keys of the run config that steer the Makefile rather than a stage.
RUN_KEYS = ("policies", "judge_guard")


def read_run_config(path: str | Path) -> dict:
    config = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    unknown = sorted(set(config) - set(STAGE_SECTIONS) - set(RUN_KEYS))
    if unknown:
        raise GuardkitError(f"{path}: unknown section(s) {', '.join(unknown)}; known: {', '.join(STAGE_SECTIONS + RUN_KEYS)}")
    return config


def policy_ids(config: dict) -> list[str]:
    policies = config.get("policies", "all")
    if policies == "all":
        return list(shipped_policies())
    return [policy.id for policy in load_policies(policies)]


def _write_if_changed(path: Path, text: str) -> None:
    # An unchanged stage config keeps its time stamp, so make reruns only the steps whose section changed.
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def split_config(config_path: str, out: str) -> None:
    config = read_run_config(config_path)
    folder = Path(out) / "configs"
    folder.mkdir(parents=True, exist_ok=True)
    for section in STAGE_SECTIONS:
        values = dict(config.get(section) or {})
        if section == "generate":
            values.setdefault("policies", policy_ids(config))
        _write_if_changed(folder / f"{section}.yaml", yaml.safe_dump(values, sort_keys=False))
    _write_if_changed(folder / "run.yaml", Path(config_path).read_text(encoding="utf-8"))


def run_step(name: str, out: str, command: list[str]) -> int:
    """Run one step's command and record its wall time in OUT/timings.json (the report's step table)."""
    started = time.perf_counter()
    status = subprocess.call(command)
    elapsed = time.perf_counter() - started
    if status == 0:
        path = Path(out) / "timings.json"
        timings = json.loads(path.read_text()) if path.exists() else {}
        timings[name] = round(elapsed, 1)
        path.write_text(json.dumps(timings, indent=2) + "\n")
    print(f"[reproduce] {name}: {'done' if status == 0 else f'failed (exit {status})'} in {elapsed / 60:.1f} min", flush=True)
    return status


def machine_description() -> str:
    import os

    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, {device}, Python {platform.python_version()}, torch {torch.__version__}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m guardkit.reproduce", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    split = commands.add_parser("split", help="write OUT/configs/<stage>.yaml from the run config")
    split.add_argument("config")
    split.add_argument("out")
    policies = commands.add_parser("policies", help="print the run's policy ids, space-separated")
    policies.add_argument("config")
    option = commands.add_parser("option", help="print one top-level option of the run config")
    option.add_argument("config")
    option.add_argument("key", choices=RUN_KEYS)
    step = commands.add_parser("step", help="run a step's command and record its time")
    step.add_argument("name")
    step.add_argument("out")
    step.add_argument("cmd", nargs=argparse.REMAINDER)
    report = commands.add_parser("report", help="write OUT/REPORT.md from OUT/eval/results.json")
    report.add_argument("out")
    report.add_argument("--config", required=True)
    docs = commands.add_parser("publish-docs", help="copy OUT/REPORT.md and its plots to docs/results.md, its headline table to the README")
    docs.add_argument("out")
    docs.add_argument("--docs", default="docs")
    docs.add_argument("--readme", default="README.md", help="README whose marked block gets the headline table")
    args = parser.parse_args(argv)
    try:
        if args.command == "split":
            split_config(args.config, args.out)
        elif args.command == "policies":
            print(" ".join(policy_ids(read_run_config(args.config))))
        elif args.command == "option":
            print(str(read_run_config(args.config).get(args.key, "")).lower())
        elif args.command == "step":
            command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
            return run_step(args.name, args.out, command)
        elif args.command == "report":
            from guardkit.report import write_report

            write_report(Path(args.out), Path(args.config), machine_description())
        elif args.command == "publish-docs":
            from guardkit.report import publish_to_docs

            publish_to_docs(Path(args.out), Path(args.docs), Path(args.readme))
    except GuardkitError as error:
        print(f"reproduce: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
