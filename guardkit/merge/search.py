"""`guardkit merge`: search merge coefficients with Optuna and write the UniGuard, or replay a recipe.

Every trial merges the sources' encoders in memory into one scoring model, refits a head per policy on
its features, and scores the cached validation set at per-policy thresholds (the mean F1 over policies);
the study lives in SQLite storage, so an interrupted search resumes where it stopped. Each source alone
is scored the same way: when no merge beats the best of them, the UniGuard is that source's encoder
(and the recipe says so). The chosen weights become `merge.yaml`, and the UniGuard is built from that
recipe by the same code a replay runs, so `guardkit merge --recipe merge.yaml` reproduces it.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import optuna
from tqdm.auto import tqdm

from guardkit.calibration import DEFAULT_EVERYDAY_FPR
from guardkit.errors import GuardkitError
from guardkit.merge.config import OBJECTIVES, SAMPLERS, MergeConfig
from guardkit.merge.merging import MergePlan
from guardkit.merge.methods import MergeMethod, ZeroWeights, get_method
from guardkit.merge.recipe import HeadSettings, MergeRecipe, RecipeDataset, RecipeSource, SearchRecord
from guardkit.merge.report import compare_guards, save_uniguard, write_comparison
from guardkit.merge.scoring import EncodedSplit
from guardkit.merge.workspace import MergeWorkspace, encoder_fingerprint

SEARCH_DB = "search.db"
SEARCH_CSV = "search.csv"
SEARCH_PLOT = "search.png"


def _no_interrupt_tracebacks(record: logging.LogRecord) -> bool:
    """Optuna logs a trial cut off by Ctrl-C as a failure, with a traceback; the CLI already says it was
    interrupted and that a rerun resumes (the trial is recorded as failed and run again)."""
    return not (record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt))


class MergeConfigError(GuardkitError):
    """Merge options that do not fit together."""


def run_merge(config: MergeConfig) -> int:
    """Search (or replay) a merge, write the UniGuard to `config.output`, and compare it with its sources."""
    if config.recipe:
        recipe = _replay_recipe(config)
        workspace = MergeWorkspace.open(
            [source.model for source in recipe.sources], recipe.dataset.id, recipe.dataset.revision, recipe.base_model, recipe.heads
        )
    else:
        _check_search_config(config)
        heads = HeadSettings(
            rows_per_label=config.head_rows_per_label,
            c=config.head_c,
            example_weight=config.head_example_weight,
            safe_windows=config.head_safe_windows,
            cross_policy_weight=config.head_cross_policy_weight,
            seed=config.seed,
        )
        workspace = MergeWorkspace.open(config.models, config.dataset, config.dataset_revision, config.base_model, heads)
        recipe = search(workspace, config)
    output = Path(config.output)
    uniguard = save_uniguard(workspace, recipe, output, license=config.license, repo_id=config.repo_id, batch_size=config.batch_size)
    fallback = recipe.search.fell_back_to if recipe.search else None
    if fallback and recipe.search.best_trial is None:
        note = "; its sources share one encoder, which it keeps"
    else:
        note = f"; no merge beat {fallback} on validation, so the UniGuard keeps its encoder" if fallback else ""
    print(f"UniGuard written to {output} ({len(uniguard.policy_ids)} policies in one pass{note})", file=sys.stderr)
    if config.compare_split:
        if config.compare_split not in workspace.splits:
            raise MergeConfigError(f"the dataset has no '{config.compare_split}' split to compare on; pass --compare_split ''")
        rows = compare_guards(workspace, uniguard, config.compare_split, config.batch_size)
        table = write_comparison(rows, output)
        print(table, file=sys.stderr)
    return 0


def _replay_recipe(config: MergeConfig) -> MergeRecipe:
    if config.models:
        raise MergeConfigError("--recipe replays a merge from the sources it names; drop --models (or drop --recipe to search)")
    recipe = MergeRecipe.load(config.recipe)
    if config.dataset:
        recipe = recipe.model_copy(update={"dataset": RecipeDataset(id=config.dataset, revision=config.dataset_revision)})
    return recipe


def _check_search_config(config: MergeConfig) -> None:
    if not config.models or not config.dataset:
        raise MergeConfigError("a merge search needs --models (two or more guards) and --dataset; or replay one with --recipe merge.yaml")
    if config.sampler not in SAMPLERS:
        raise MergeConfigError(f"--sampler must be one of {', '.join(SAMPLERS)}, got '{config.sampler}'")
    if config.objective not in OBJECTIVES:
        raise MergeConfigError(f"--objective must be one of {', '.join(OBJECTIVES)}, got '{config.objective}'")
    if config.trials < 1:
        raise MergeConfigError(f"--trials must be at least 1, got {config.trials}")
    if config.weight_range and (len(config.weight_range) != 2 or config.weight_range[0] >= config.weight_range[1]):
        raise MergeConfigError(f"--weight_range takes two numbers LOW HIGH with LOW < HIGH, got {config.weight_range}")
    if config.head_rows_per_label < 0 or config.head_c <= 0 or config.head_example_weight <= 0 or config.head_cross_policy_weight < 0:
        raise MergeConfigError(
            "--head_rows_per_label must be 0 (every row) or more, --head_c and --head_example_weight above 0, --head_cross_policy_weight 0 or more"
        )
    get_method(config.method)


def method_options(config: MergeConfig, method: MergeMethod) -> dict[str, bool | str]:
    """The method's fixed options, each read from the config field `<method>_<option>`."""
    options = {}
    for option in method.options:
        value = getattr(config, option.config_field(method.name))
        if value not in option.choices:
            raise MergeConfigError(f"--{option.config_field(method.name)} must be one of {option.choices}, got {value!r}")
        options[option.name] = value
    return options


def _weight_name(source_index: int, group: str) -> str:
    return f"weight.{source_index}.{group}"


def _open_study(config: MergeConfig, setup: dict) -> optuna.Study:
    """Create the study, or load it to resume; refuse to resume a study started with other settings."""
    storage = config.storage or f"sqlite:///{Path(config.output).resolve() / SEARCH_DB}"
    if storage.startswith("sqlite:///"):
        Path(storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    sampler = optuna.samplers.TPESampler(seed=config.seed) if config.sampler == "tpe" else optuna.samplers.CmaEsSampler(seed=config.seed)
    study = optuna.create_study(study_name=config.study_name, storage=storage, sampler=sampler, direction="maximize", load_if_exists=True)
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        # Left running by an interrupted search (this command runs one trial at a time): it never finished.
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    previous = study.user_attrs.get("setup")
    if previous is None:
        study.set_user_attr("setup", setup)
    elif previous != setup:
        changed = sorted(key for key in set(previous) | set(setup) if previous.get(key) != setup.get(key))
        raise MergeConfigError(
            f"study '{config.study_name}' in {storage} was started with other settings ({', '.join(changed)}); "
            "rerun with the same options to resume it, or give a new --storage or --study_name"
        )
    return study


def _source_values(workspace: MergeWorkspace, validation: EncodedSplit, config: MergeConfig, study: optuna.Study) -> dict[str, float]:
    """The objective of each source's encoder alone, with heads fitted as a UniGuard's; computed once per study
    (sources that share their encoder, such as TaskGuards trained with --epochs 0, once for all of them)."""
    if "source_values" in study.user_attrs:
        return study.user_attrs["source_values"]
    values, seen = {}, {}
    for index, source in enumerate(tqdm(workspace.sources, desc="scoring sources alone", unit="source")):
        fingerprint = encoder_fingerprint(source.encoder)
        if fingerprint not in seen:
            workspace.load_source(index)
            seen[fingerprint] = _evaluate(workspace, validation, config).value
        values[source.name] = seen[fingerprint]
    study.set_user_attr("source_values", values)
    return values


def _evaluate(workspace: MergeWorkspace, validation: EncodedSplit, config: MergeConfig):
    return workspace.evaluate(
        validation, config.objective, config.calibration, fpr_penalty=config.fpr_penalty, target_fpr=config.target_fpr, batch_size=config.batch_size
    )


def search(workspace: MergeWorkspace, config: MergeConfig) -> MergeRecipe:
    """Run (or resume) the Optuna study over merge weights and return the best trial as a recipe."""
    method = get_method(config.method)
    options = method_options(config, method)
    plan = workspace.plan(method.name, options, config.granularity, config.block_group_size, config.seed, reuse_inputs=True)
    low, high = config.weight_range or method.weight_range
    source_count = len(workspace.sources)
    validation = workspace.encoded_split("validation", config.max_validation_rows, config.seed)
    setup = {
        "method": method.name,
        "options": options,
        "granularity": config.granularity,
        "groups": list(plan.groups.names),
        "sources": [source.name for source in workspace.sources],
        "base_model": workspace.base_model,
        "dataset": {"id": workspace.dataset.id, "revision": workspace.dataset.revision},
        "weight_range": [low, high],
        "objective": config.objective,
        "fpr_penalty": config.fpr_penalty,
        "calibration": config.calibration,
        "target_fpr": config.target_fpr,
        "heads": workspace.head_settings.model_dump(),
        "max_validation_rows": config.max_validation_rows,
        "seed": config.seed,
    }
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("optuna.study._optimize").addFilter(_no_interrupt_tracebacks)
    study = _open_study(config, setup)
    source_values = _source_values(workspace, validation, config, study)
    if len({encoder_fingerprint(source.encoder) for source in workspace.sources}) == 1:
        # TaskGuards and a policy reader trained with --epochs 0 all keep the base encoder: any merge of them is it.
        print("merge: every source has the same encoder, so every merge of them is that encoder; the search is skipped", file=sys.stderr)
        return _recipe_from_trial(workspace, plan, method, config, None, study, validation, source_values)

    def objective(trial: optuna.Trial) -> float:
        weights = {
            group: [trial.suggest_float(_weight_name(index, group), low, high) for index in range(source_count)]
            for group in plan.groups.names
        }
        hyperparameters = {spec.name: trial.suggest_float(spec.name, spec.low, spec.high) for spec in method.hyperparameters}
        try:
            workspace.apply(plan, weights, hyperparameters)
        except ZeroWeights:
            raise optuna.TrialPruned("the weights of an averaged layer group sum to zero") from None
        result = _evaluate(workspace, validation, config)
        for policy_id, metrics in result.metrics.items():
            trial.set_user_attr(f"threshold.{policy_id}", result.thresholds.get(policy_id))
            trial.set_user_attr(f"f1.{policy_id}", metrics.f1)
            trial.set_user_attr(f"fpr.{policy_id}", metrics.fpr)
        return result.value

    finished = [trial for trial in study.trials if trial.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    remaining = max(0, config.trials - len(finished))
    if not study.trials:
        # The first trial is the plain, equal-weight merge at the method's default settings.
        middle = (low + high) / 2
        study.enqueue_trial(
            {
                **{_weight_name(index, group): middle for group in plan.groups.names for index in range(source_count)},
                **{spec.name: spec.default for spec in method.hyperparameters},
            }
        )
    if remaining:
        with tqdm(total=remaining, desc=f"merge search ({method.name})", unit="trial") as progress:

            def advance(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
                progress.update(1)
                if trial.state == optuna.trial.TrialState.COMPLETE:
                    progress.set_postfix(best=f"{study.best_value:.4f}")

            study.optimize(objective, n_trials=remaining, callbacks=[advance], catch=())
    best = _best_trial(study)
    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    write_search_table(study, output / SEARCH_CSV)
    plot_search(study, source_values, config.objective, output / SEARCH_PLOT)
    return _recipe_from_trial(workspace, plan, method, config, best, study, validation, source_values)


def _best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    try:
        return study.best_trial
    except ValueError:
        raise MergeConfigError("no trial of the search finished; check the weight range (all weights zero?) and rerun") from None


def _recipe_from_trial(
    workspace: MergeWorkspace,
    plan: MergePlan,
    method: MergeMethod,
    config: MergeConfig,
    trial: optuna.trial.FrozenTrial | None,
    study: optuna.Study,
    validation: EncodedSplit,
    source_values: dict[str, float],
) -> MergeRecipe:
    """The recipe of the best trial, or, when a source alone scored at least as well (or there was no trial), of that
    source kept as it is (a linear merge weighting it 1 and the others 0)."""
    best_source = max(source_values, key=source_values.get)
    fell_back = trial is None or source_values[best_source] >= trial.value
    if fell_back:
        method, options, parameters = get_method("linear"), {"normalize": True}, {}
        weights = {source.name: {group: float(source.name == best_source) for group in plan.groups.names} for source in workspace.sources}
    else:
        options, parameters = dict(plan.options), {spec.name: trial.params[spec.name] for spec in method.hyperparameters}
        weights = {
            source.name: {group: trial.params[_weight_name(index, group)] for group in plan.groups.names}
            for index, source in enumerate(workspace.sources)
        }
    finished = [item for item in study.trials if item.state == optuna.trial.TrialState.COMPLETE]
    pair = workspace.pair_source
    return MergeRecipe(
        merge_method=method.name,
        base_model=workspace.base_model,
        granularity=config.granularity,
        block_group_size=config.block_group_size,
        parameters=parameters,
        options=options,
        seed=config.seed,
        calibration=config.calibration,
        # The share the default stands for today, so that the recipe replays the same thresholds if the default moves.
        target_fpr=DEFAULT_EVERYDAY_FPR if config.calibration == "everyday" and config.target_fpr is None else config.target_fpr,
        sources=[RecipeSource(model=source.name, weights=weights[source.name]) for source in workspace.sources],
        dataset=RecipeDataset(id=workspace.dataset.id, revision=workspace.dataset.revision),
        heads=workspace.head_settings,
        pair_source=pair.name if pair else None,
        search=SearchRecord(
            objective=config.objective,
            value=float(source_values[best_source] if fell_back else trial.value),
            best_trial=trial.number if trial is not None else None,
            trials=len(finished),
            sampler=config.sampler,
            fpr_penalty=config.fpr_penalty,
            validation_rows=len(validation),
            source_values=source_values,
            fell_back_to=best_source if fell_back else None,
        ),
    )


def write_search_table(study: optuna.Study, path: Path) -> None:
    """Every trial: number, state, objective, weights and hyperparameters, threshold and per-policy F1 / FPR."""
    frame = study.trials_dataframe(attrs=("number", "state", "value", "duration", "params", "user_attrs"))
    frame.columns = [column.removeprefix("params_").removeprefix("user_attrs_") for column in frame.columns]
    if "duration" in frame:
        frame["duration"] = frame["duration"].dt.total_seconds()
    frame.to_csv(path, index=False)


def plot_search(study: optuna.Study, source_values: dict[str, float], objective: str, path: Path) -> None:
    """Objective per trial, the best so far, and each source alone as a dashed line."""
    from matplotlib.figure import Figure

    complete = [trial for trial in study.trials if trial.state == optuna.trial.TrialState.COMPLETE]
    numbers = [trial.number for trial in complete]
    values = [trial.value for trial in complete]
    best_so_far = [max(values[: index + 1]) for index in range(len(values))]
    figure = Figure(figsize=(8, 4.5), layout="constrained")
    axes = figure.subplots()
    axes.scatter(numbers, values, s=16, color="tab:blue", label="trial")
    axes.step(numbers, best_so_far, where="post", color="black", label="best so far")
    for index, (name, value) in enumerate(source_values.items()):
        axes.axhline(value, linestyle="--", linewidth=0.9, color=f"C{(index + 2) % 10}", label=f"{Path(name).name or name} alone")
    axes.set_xlabel("trial")
    axes.set_ylabel(f"{objective} (validation)")
    axes.set_title("UniGuard merge search")
    axes.legend(fontsize=7, loc="lower right")
    figure.savefig(path, dpi=120)
