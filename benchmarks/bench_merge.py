"""Seconds per merge-search trial for MiniLM sources on this machine.

    python -m benchmarks.bench_merge [--task-guards 3] [--rows-per-policy 24] [--trials 4] [--method ties] [--threads 2] [--output results.json]

Builds, from the shipped MiniLM, one TaskGuard per shipped policy it uses and one MultiTaskGuard (their
weights are MiniLM plus seeded noise: a trial's cost does not depend on the values), and a validation
split of real texts (the policies' own examples) paired with the policies' instructions. Then it
runs `guardkit merge` with the given number of trials and reports, from `search.csv`, the seconds per
trial, split into merging (every method, in memory) and scoring (validation rows per second), and
the projected time of a 40-trial search. Target: 40 trials in at most 10 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import tempfile
import time
from pathlib import Path


def build_sources(root: Path, task_guards: int, seed: int) -> tuple[list[str], list]:
    """TaskGuards (one policy each) and a MultiTaskGuard over all of them, MiniLM plus noise."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from guardkit.assets import DEFAULT_ENCODER, hub_id_of, resolve_model
    from guardkit.data.schema import ID2LABEL, LABEL2ID
    from guardkit.guard import save_guard
    from guardkit.policies import shipped_policies
    from guardkit.guard_card import render_guard_card

    policies = list(shipped_policies().values())[:task_guards]
    path = resolve_model(DEFAULT_ENCODER)
    tokenizer = AutoTokenizer.from_pretrained(path)
    base = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2, id2label=ID2LABEL, label2id=LABEL2ID)
    generator = torch.Generator().manual_seed(seed)
    folders = []
    for index, (kind, guarded) in enumerate([("task", [policy]) for policy in policies] + [("multitask", policies)]):
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2, id2label=ID2LABEL, label2id=LABEL2ID)
        with torch.no_grad():
            for parameter, original in zip(model.parameters(), base.parameters(), strict=True):
                parameter.copy_(original + 1e-3 * torch.randn(original.shape, generator=generator))
        max_length = 128 if kind == "task" else 256
        card = render_guard_card(
            kind=kind,
            policies=guarded,
            base_model=hub_id_of(DEFAULT_ENCODER),
            datasets=[],
            license="apache-2.0",
            threshold=0.5,
            calibration="not calibrated (benchmark)",
            max_length=max_length,
        )
        folder = root / f"source-{index}-{kind}"
        save_guard(
            folder,
            model,
            tokenizer,
            kind=kind,
            policies=guarded,
            threshold=0.5,
            max_length=max_length,
            base_model=hub_id_of(DEFAULT_ENCODER),
            card=card,
        )
        folders.append(str(folder))
    return folders, policies


def build_dataset(root: Path, policies: list, rows_per_policy: int, seed: int) -> Path:
    """A multitask validation split of the policies' own example texts (real lengths), labels as in the policies."""
    import random

    from guardkit.data.io import split_file
    from guardkit.data.schema import rows_to_dataset

    rng = random.Random(seed)
    folder = root / "dataset"
    for split in ("train", "validation"):
        rows = []
        for policy in policies:
            examples = policy.all_examples()
            for index in range(rows_per_policy):
                text, label = (
                    examples[rng.randrange(len(examples))] if index >= 2 else (policy.all_examples()[-1] if index else examples[0])
                )
                rows.append({"text": text, "label": label, "policy": policy.id, "source": "benchmark"})
        path = split_file(folder, split, "multitask")
        path.parent.mkdir(parents=True, exist_ok=True)
        rows_to_dataset(rows).to_parquet(str(path))
    (folder / "policies").mkdir(exist_ok=True)
    for policy in policies:
        (folder / "policies" / f"{policy.id}.yaml").write_text(policy.to_yaml(), encoding="utf-8")
    return folder


def time_merges(sources: list[str], dataset: Path, repeats: int) -> dict[str, dict[str, float]]:
    """Per method (global weights), as in a search: the first merge (stacking the inputs, preparing the
    method's statistics) and the median of the next ones (what every later trial pays), both including the
    copy into the scoring model; and the seconds to score the validation split once."""
    from guardkit.merge.methods import METHODS
    from guardkit.merge.workspace import MergeWorkspace

    workspace = MergeWorkspace.open(sources, str(dataset))
    timings = {}
    for name, method in METHODS.items():
        options = {option.name: option.default for option in method.options}
        plan = workspace.plan(name, options, "global", 1, seed=0, reuse_inputs=True)
        weights = {group: [0.5] * len(sources) for group in plan.groups.names}
        hyperparameters = {spec.name: spec.default for spec in method.hyperparameters}
        runs = []
        for _ in range(1 + repeats):
            started = time.perf_counter()
            workspace.apply(plan, weights, hyperparameters)
            runs.append(time.perf_counter() - started)
        timings[name] = {"first_merge": runs[0], "merge": statistics.median(runs[1:])}
    validation = workspace.encoded_split("validation")
    started = time.perf_counter()
    validation.score(workspace.scorer, batch_size=32)
    timings["scoring"] = {"seconds": time.perf_counter() - started, "rows": len(validation)}
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task-guards", type=int, default=3, help="TaskGuards (one shipped policy each); one MultiTaskGuard is added")
    parser.add_argument("--rows-per-policy", type=int, default=24, help="validation rows per policy scored in every trial")
    parser.add_argument("--trials", type=int, default=4, help="search trials to time")
    parser.add_argument("--method", default="ties", help="merge method of the timed search")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None, help="write the results as JSON here too")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from guardkit.merge.config import MergeConfig
    from guardkit.merge.search import SEARCH_CSV, run_merge

    with tempfile.TemporaryDirectory(prefix="bench-merge-") as scratch:
        root = Path(scratch)
        started = time.perf_counter()
        sources, policies = build_sources(root, args.task_guards, args.seed)
        dataset = build_dataset(root, policies, args.rows_per_policy, args.seed)
        setup_seconds = time.perf_counter() - started

        timings = time_merges(sources, dataset, repeats=2)
        output = root / "uniguard"
        config = MergeConfig(
            output=str(output), models=sources, dataset=str(dataset), method=args.method, trials=args.trials, compare_split=""
        )
        started = time.perf_counter()
        run_merge(config)
        run_seconds = time.perf_counter() - started
        with (output / SEARCH_CSV).open(encoding="utf-8") as handle:
            trial_seconds = [float(row["duration"]) for row in csv.DictReader(handle)]

    per_trial = statistics.median(trial_seconds[1:] or trial_seconds)
    scoring = timings.pop("scoring")
    rows_per_second = scoring["rows"] / scoring["seconds"]
    merge = timings[args.method]["merge"]
    results = {
        "sources": len(sources),
        "policies": len(policies),
        "validation_rows": scoring["rows"],
        "method": args.method,
        "trials": args.trials,
        "seconds_per_trial_median_after_first": round(per_trial, 2),
        "seconds_per_trial_all": [round(value, 2) for value in trial_seconds],
        "merge_seconds_by_method": {name: round(value["merge"], 2) for name, value in timings.items()},
        "first_merge_seconds_by_method": {name: round(value["first_merge"], 2) for name, value in timings.items()},
        "scoring_rows_per_second": round(rows_per_second, 1),
        "projected_40_trials_minutes": round((trial_seconds[0] + 39 * per_trial) / 60, 1),
        "validation_rows_that_fit_40_trials_in_10_minutes": int(max(0.0, 600 / 40 - merge) * rows_per_second),
        "whole_merge_run_seconds": round(run_seconds, 1),
        "setup_seconds": round(setup_seconds, 1),
        "threads": args.threads or "default",
        "load_average_1min": round(os.getloadavg()[0], 1),
    }
    print(json.dumps(results, indent=2))
    if args.output:
        args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
