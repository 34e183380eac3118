"""`guardkit evaluate`: guards and baselines through the chosen suites, then results.json, report.md, plots."""

from __future__ import annotations

import sys
from pathlib import Path

from guardkit.errors import GuardkitError
from guardkit.evaluate.baselines import baseline_names
from guardkit.evaluate.config import EvaluateConfig
from guardkit.evaluate.harness import EvaluationContext, SuiteOutcome, SuiteSkipped
from guardkit.evaluate.results import build_results, write_results
from guardkit.evaluate.scorers import GuardScorer, GuardSetScorer, Scorer, ScorerSpec, build_scorer
from guardkit.evaluate.suites import get_suites
from guardkit.policies import Policy, load_policies, shipped_policies


def _display_name(model: str) -> str:
    path = Path(model)
    return path.resolve().name if path.is_dir() else model


def _unique(name: str, taken: set[str]) -> str:
    candidate, number = name, 2
    while candidate in taken:
        candidate, number = f"{name} ({number})", number + 1
    taken.add(candidate)
    return candidate


def load_scorers(config: EvaluateConfig) -> list[Scorer]:
    known = baseline_names()
    unknown = [name for name in config.baseline if name not in known]
    if unknown:
        raise GuardkitError(f"unknown baseline(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    taken: set[str] = set()
    specs = [(ScorerSpec("model", model), _display_name(model)) for model in config.model]
    specs += [(ScorerSpec("baseline", name), name) for name in config.baseline]
    scorers = []
    for spec, name in specs:
        print(f"guardkit evaluate: loading {spec.kind} {spec.name}", file=sys.stderr)
        scorers.append(build_scorer(spec, _unique(name, taken), config))
    return scorers


def resolve_policies(config: EvaluateConfig, scorers: list[Scorer]) -> dict[str, Policy]:
    """--policies, else the models' own policies (as stored with them), else every shipped policy."""
    if config.policies:
        return {policy.id: policy for policy in load_policies([config.policies])}
    policies: dict[str, Policy] = {}
    library = shipped_policies()
    for scorer in scorers:
        for policy_id in scorer.own_policies:
            known = scorer.stored_policy(policy_id) or library.get(policy_id)
            if known is None:
                raise GuardkitError(f"{scorer.name}: policy '{policy_id}' has no policy file with the model and is not shipped")
            policies.setdefault(policy_id, known)
    return policies or dict(library)


def _card_target(config: EvaluateConfig, scorers: list[Scorer]) -> Scorer | None:
    if config.update_card is None:
        return None
    target = Path(config.update_card).resolve()
    for scorer in scorers:
        if scorer.spec.kind == "model" and Path(scorer.spec.name).resolve() == target:
            return scorer
    raise GuardkitError(f"--update_card {config.update_card}: not one of the evaluated --model folders ({', '.join(config.model) or 'none'})")


def _scorer_info(scorer: Scorer) -> dict[str, object]:
    info: dict[str, object] = {
        "name": scorer.name,
        "type": "baseline" if scorer.is_baseline else "model",
        "source": scorer.spec.name,
        "threshold": scorer.threshold,
        "policies": scorer.own_policies,
        "notes": scorer.notes(),
    }
    if isinstance(scorer, (GuardScorer, GuardSetScorer)):
        info["kind"] = scorer.kind
        info["thresholds"] = scorer.thresholds
    if isinstance(scorer, GuardSetScorer):
        info["members"] = {policy_id: str(member.folder) for policy_id, member in scorer.members.items()}
    return info


def run_evaluation(config: EvaluateConfig) -> int:
    """Run every requested suite for every model and baseline and write the report folder."""
    from guardkit.evaluate import plots
    from guardkit.evaluate.model_card import update_model_index
    from guardkit.evaluate.report import write_report
    from guardkit.evaluate.suites import policy_following
    from guardkit.evaluate.suites.robustness import POOLED

    suites = get_suites(config.suite)
    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    scorers = load_scorers(config)
    card_scorer = _card_target(config, scorers)
    policies = resolve_policies(config, scorers)
    context = EvaluationContext(config, scorers, policies)
    summaries = {suite.name: suite.summary for suite in suites}
    outcomes: list[SuiteOutcome] = []

    def results() -> dict:
        return build_results(config, [_scorer_info(scorer) for scorer in scorers], list(policies), outcomes)

    for suite in suites:
        print(f"guardkit evaluate: suite {suite.name}", file=sys.stderr)
        try:
            outcome = suite.run(context)
        except SuiteSkipped as reason:
            outcome = SuiteOutcome(suite.name, status="skipped", notes=[str(reason)])
            print(f"guardkit evaluate: suite {suite.name} skipped: {reason}", file=sys.stderr)
        outcomes.append(outcome)
        # Written after every suite, so an interrupted run keeps what it finished.
        write_results(results(), output)
        write_report(results(), summaries, {}, output)

    measurements = [measurement for outcome in outcomes for measurement in outcome.measurements]
    images = plots.pr_curves([curve for outcome in outcomes for curve in outcome.curves], output)
    scatter, bars = plots.latency_vs_f1(measurements, output), plots.robustness_bars(measurements, output, POOLED)
    for suite, image in (("efficiency", scatter), ("robustness", bars)):
        if image:
            images.setdefault(suite, []).append(image)
    heatmaps = plots.cross_policy_heatmaps(measurements, output, policy_following.NAME, policy_following.CROSS_PREFIX)
    if heatmaps:
        images[policy_following.NAME] = heatmaps + images.get(policy_following.NAME, [])
    final = results()
    results_path = write_results(final, output)
    report_path = write_report(final, summaries, images, output)
    print(f"guardkit evaluate: wrote {results_path}, {report_path} and {sum(map(len, images.values()))} plots")
    if card_scorer is not None:
        card = update_model_index(card_scorer.spec.name, card_scorer.name, measurements)
        print(f"guardkit evaluate: model-index of {card} updated")
    skipped = [outcome.suite for outcome in outcomes if outcome.status == "skipped"]
    if skipped:
        print(f"guardkit evaluate: skipped suites (reasons in report.md): {', '.join(skipped)}", file=sys.stderr)
    return 0
