"""The `guardkit` command: one subcommand per stage. It only parses arguments and calls the stage."""

from __future__ import annotations

import errno
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from guardkit.errors import GuardkitError


@dataclass(frozen=True)
class Stage:
    """A subcommand backed by a config dataclass and the function that runs it (both imported lazily)."""

    config: str  # "module:ConfigClass"
    runner: str  # "module:function" taking the config, returning an exit code or None
    help: str


STAGES: dict[str, Stage] = {
    "generate": Stage(
        "guardkit.generate.config:GenerateConfig",
        "guardkit.generate.pipeline:generate",
        "generate a synthetic, self-reflected dataset from policies",
    ),
    "train encoder": Stage(
        "guardkit.train.config:EncoderTuningConfig",
        "guardkit.train.contrastive:tune_encoder",
        "tune the sentence encoder the guards share on the dataset's text pairs (contrastive, SetFit-style)",
    ),
    "train task": Stage(
        "guardkit.train.config:TaskGuardConfig",
        "guardkit.train.task:train_task_guard",
        "fine-tune a TaskGuard (one policy, plain text input)",
    ),
    "train multitask": Stage(
        "guardkit.train.config:MultiTaskGuardConfig",
        "guardkit.train.multitask:train_multitask_guard",
        "train a MultiTaskGuard (all policies, also unseen ones: a policy reader, or an instruction + text pair model)",
    ),
    "train judge": Stage(
        "guardkit.train.config:JudgeGuardConfig",
        "guardkit.train.judge:train_judge_guard",
        "fine-tune a JudgeGuard, a small causal LM judge, with trl (the fair LLM baseline)",
    ),
    "check": Stage("guardkit.guard:CheckConfig", "guardkit.guard:run_check", "score texts with a trained guard"),
    "score": Stage(
        "guardkit.score:ScoreConfig",
        "guardkit.score:score",
        "score every row of a JSONL, CSV or Parquet file or a Hub dataset (resumable)",
    ),
    "export": Stage(
        "guardkit.export:ExportConfig",
        "guardkit.export:export_guard",
        "export a guard to ONNX (fp32 or dynamic int8), checked against the torch model",
    ),
    "serve": Stage(
        "guardkit.serve:ServeConfig",
        "guardkit.serve:serve",
        "serve a guard over HTTP: OpenAI-compatible /v1/moderations, /v1/check, /health, /metrics",
    ),
    "merge": Stage(
        "guardkit.merge.config:MergeConfig",
        "guardkit.merge.search:run_merge",
        "merge TaskGuards and a MultiTaskGuard into a UniGuard by coefficient search",
    ),
    "evaluate": Stage(
        "guardkit.evaluate.config:EvaluateConfig",
        "guardkit.evaluate.runner:run_evaluation",
        "evaluate guards and LLM-judge baselines on test suites",
    ),
    "publish": Stage("guardkit.hub:PublishConfig", "guardkit.hub:publish", "publish a dataset, model or Space folder to the Hub"),
    "pull": Stage("guardkit.hub:PullConfig", "guardkit.hub:pull", "download a guardkit model or dataset for offline use"),
    "demo": Stage("guardkit.demo:DemoConfig", "guardkit.demo:launch", "run the Gradio app locally"),
    "policies list": Stage("guardkit.policies.commands:ListConfig", "guardkit.policies.commands:list_policies", "list the shipped policies"),
    "policies show": Stage("guardkit.policies.commands:ShowConfig", "guardkit.policies.commands:show_policy", "print one policy as YAML"),
    "policies validate": Stage(
        "guardkit.policies.commands:ValidateConfig",
        "guardkit.policies.commands:validate_policies",
        "validate policy YAML files",
    ),
    "benchmarks list": Stage(
        "guardkit.data.commands:ListConfig",
        "guardkit.data.commands:list_benchmarks",
        "list the registry of public guardrail benchmarks",
    ),
}


def _load(target: str) -> Callable | type:
    module_name, attribute = target.split(":")
    return getattr(importlib.import_module(module_name), attribute)


def _usage(prefix: str = "") -> str:
    lines = ["usage: guardkit <command> [options]   (guardkit <command> --help for its options)", "", "commands:"]
    for name, stage in STAGES.items():
        if name.startswith(prefix):
            lines.append(f"  {name:<20} {stage.help}")
    return "\n".join(lines)


def _find_stage(argv: list[str]) -> tuple[str, list[str]] | None:
    for words in (2, 1):
        name = " ".join(argv[:words])
        if len(argv) >= words and name in STAGES:
            return name, argv[words:]
    return None


def _describe(error: OSError) -> str:
    where = f": {error.filename}" if error.filename else ""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on the device{where}; free some space and rerun the same command (finished work is kept)"
    return f"{error.strerror or error}{where}"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from guardkit import __version__

        print(f"guardkit {__version__}")
        return 0
    found = _find_stage(argv)
    if found is None:
        group = [name for name in STAGES if name.split()[0] == argv[0]]
        print(_usage(argv[0] if group else ""), file=sys.stderr)
        return 2
    name, rest = found
    stage = STAGES[name]
    from guardkit.config import parse_config

    try:
        config_type = _load(stage.config)
        config = parse_config(config_type, rest, prog=f"guardkit {name}", description=stage.help)
        status = _load(stage.runner)(config)
    except GuardkitError as error:
        print(f"guardkit {name}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        # The machine's side of a run (a full disk, a permission, a file named in an option): the user can fix it.
        print(f"guardkit {name}: error: {_describe(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"guardkit {name}: interrupted; rerun the same command to resume where it stopped", file=sys.stderr)
        return 130
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
