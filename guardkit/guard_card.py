"""The model card of a guard: `ModelCardData` (with `eval_results` -> model-index) rendered through
`model_cards/guard_card.md`, and how it names the training data. Shared by the trainers and the merge."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from guardkit.errors import GuardkitError
from guardkit.guard import DEFAULT_INPUT_FORMAT, DatasetRef
from guardkit.policies import Policy
from guardkit.resources import shipped_path

TEMPLATE = shipped_path("model_cards/guard_card.md")
KIND_TEXT = {
    "task": ("TaskGuard", "a small encoder classifier for one guardrail policy; it reads the text alone."),
    "multitask": (
        "MultiTaskGuard",
        "one encoder classifier for many guardrail policies; it reads the policy instruction beside the text, "
        "so it also scores policies it never saw.",
    ),
    "uniguard": (
        "UniGuard",
        "one encoder classifier merged from per-policy TaskGuards and a MultiTaskGuard; it reads the policy "
        "instruction beside the text.",
    ),
    "judge": (
        "JudgeGuard",
        "a small causal LM fine-tuned to answer `safe` or `unsafe` for a text under a policy (the trained LLM "
        "baseline guardkit compares its encoders against).",
    ),
}
INPUT_TEXT = {
    "text": "the text alone",
    "instruction_pair": "the pair (policy instruction, text)",
    "rule_pair": "the pair (policy name and one disallowed rule, text), once per rule; a text is as unsafe as the rule it breaks most",
    "policy_reader": "the text's sentence embedding, read against the embeddings of the policy's examples, rules and allowed items by a policy reader (guardkit.json `reader`)",
    "multilabel": "the text alone; one logit per policy (sigmoid = P(unsafe)), all policies in one pass",
    "judge_prompt": "the judge prompt (policy and text), answered by the next token",
}


@dataclass(frozen=True)
class CardResult:
    """Test metrics for one scope: all test rows ("all") or the rows of one policy."""

    scope: str
    metrics: Mapping[str, float]  # f1, precision, recall, fpr, support, and auroc when both labels occur

    @property
    def auroc_str(self) -> str:
        value = self.metrics.get("auroc")
        return "n/a" if value is None else f"{value:.3f}"

    def __getattr__(self, name: str):
        try:
            return self.metrics[name]
        except KeyError:
            raise AttributeError(name) from None


def _eval_results(results: Sequence[CardResult], dataset: DatasetRef | None, config_name: str) -> list[EvalResult]:
    if dataset is None:
        return []
    dataset_type = dataset.id if not Path(dataset.id).is_absolute() else Path(dataset.id).name
    entries = []
    for result in results:
        suffix = "" if result.scope == "all" else f" ({result.scope})"
        for metric, label in (("f1", "F1"), ("precision", "Precision"), ("recall", "Recall"), ("fpr", "False positive rate"), ("auroc", "AUROC")):
            if metric in result.metrics:
                entries.append(
                    EvalResult(
                        task_type="text-classification",
                        task_name="Guardrail classification",
                        dataset_type=dataset_type,
                        dataset_name=Path(dataset_type).name,
                        dataset_config=config_name,
                        dataset_split="test",
                        dataset_revision=dataset.revision,
                        metric_type=metric,
                        metric_name=label + suffix,
                        metric_value=round(float(result.metrics[metric]), 4),
                    )
                )
    return entries


def dataset_ref(source: str, revision: str | None) -> DatasetRef:
    """How the guard names its training data: the Hub id and revision, or the local folder."""
    local = Path(source)
    if local.is_dir():
        return DatasetRef(id=str(local.resolve()), revision=None)
    if revision is None:
        try:
            from huggingface_hub import HfApi

            revision = HfApi().dataset_info(source).sha
        except Exception:  # offline or private: the id alone still names the data
            revision = None
    return DatasetRef(id=source, revision=revision)


def _hub_base_of(folder: Path) -> str | None:
    """The Hub model a local model folder was tuned from, as its own card's front matter names it."""
    card = folder / "README.md"
    if not card.is_file():
        return None
    try:
        base = ModelCard.load(card).data.base_model
    except ValueError:
        return None
    return base if isinstance(base, str) and not Path(base).exists() else None


def placeholder_repo_id(model_name: str) -> str:
    """The repo the usage examples name when the guard's repo is not known yet (`guardkit publish` fills it in)."""
    return f"your-name/{model_name}"


def render_guard_card(
    *,
    kind: str,
    policies: Sequence[Policy],
    base_model: str,
    datasets: Sequence[DatasetRef],
    license: str,
    threshold: float,
    calibration: str,
    max_length: int,
    thresholds: dict[str, float] | None = None,
    input_format: str | None = None,
    results: Sequence[CardResult] = (),
    repo_id: str | None = None,
    dataset_config: str = "default",
    holdout_policies: Sequence[str] = (),
    training_lines: Sequence[str] = (),
    merged_from: Sequence[str] = (),
) -> ModelCard:
    """The card of a guard of `kind`, with `results` (test split) as model-index.

    base_model: Hub id. calibration: how the threshold was chosen, in words ("max F1 on validation").
    thresholds: the per-policy thresholds (policies without one use `threshold`). input_format: what the
    model reads (default: the kind's usual input).
    repo_id: where it will be published (usage code); defaults to a placeholder name.
    training_lines: extra facts for the Training section, one sentence each.
    merged_from: for a UniGuard, the guards it was merged from (folders or Hub ids): the Hub ids among
    them become the card's base_model, and the Training section becomes the Merge section (merge.yaml).
    """
    if kind not in KIND_TEXT:
        raise GuardkitError(f"no model card for guard kind '{kind}'")
    if not policies:
        raise GuardkitError("a guard card needs at least one policy")
    title, summary = KIND_TEXT[kind]
    input_format = input_format or DEFAULT_INPUT_FORMAT[kind]
    thresholds = dict(thresholds or {})
    model_name = repo_id.split("/")[-1] if repo_id else f"guardkit-{kind}-{policies[0].id if len(policies) == 1 else 'guard'}"
    hub_datasets = [ref.id for ref in datasets if not Path(ref.id).is_absolute()]
    # Card metadata takes Hub ids only: a local base model is named in the text, and in the metadata by the Hub
    # model it was itself tuned from (a `guardkit train encoder` folder's card names it).
    base_model_on_hub = not Path(base_model).exists()
    hub_ancestor = base_model if base_model_on_hub else _hub_base_of(Path(base_model))
    card_data = ModelCardData(
        language=["en"],
        license=license,
        library_name="transformers",
        pipeline_tag="text-classification" if kind != "judge" else "text-generation",
        base_model=[name for name in merged_from if not Path(name).exists()] or hub_ancestor,
        datasets=hub_datasets or None,
        tags=["guardrails", "guardkit", "safety", "content-moderation", kind],
        model_name=model_name,
        eval_results=_eval_results(results, datasets[0] if datasets else None, dataset_config) or None,
    )
    example_policy = policies[0]
    example_text = example_policy.examples.safe[0]
    repo_id = repo_id or placeholder_repo_id(model_name)
    return ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATE),
        model_name=model_name,
        kind_title=title,
        kind_summary=summary,
        base_model=base_model,
        base_model_on_hub=base_model_on_hub,
        hub_ancestor=None if base_model_on_hub else hub_ancestor,
        dataset_names=hub_datasets,
        policies=list(policies),
        holdout_policies=list(holdout_policies),
        input_format=input_format,
        input_description=INPUT_TEXT[input_format],
        repo_id=repo_id,
        repo_id_py=repr(repo_id),
        example_text_py=repr(example_text),
        example_text_sh=shlex.quote(example_text),
        example_policy_py=repr(example_policy.id),
        example_instruction_py=repr(example_policy.instruction()),
        example_rules_py=repr(example_policy.rule_instructions()),
        example_threshold_str=f"{thresholds.get(example_policy.id, threshold):.4f}",
        threshold_str=f"{threshold:.4f}",
        thresholds=[{"policy": policy.id, "threshold": f"{thresholds[policy.id]:.4f}"} for policy in policies if policy.id in thresholds],
        calibration=calibration,
        max_length=max_length,
        results=list(results),
        training_lines=list(training_lines),
        merged_from=list(merged_from),
    )
