"""The dataset card: `DatasetCardData` (configs, features, task tags) rendered through `dataset_cards/dataset_card.md`."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from datasets import DatasetInfo, SplitDict, SplitInfo
from datasets.info import DatasetInfosDict
from huggingface_hub import DatasetCard, DatasetCardData

from guardkit.assets import SHIPPED_MODELS, hub_id_of
from guardkit.data.io import CONFIG_DIRS, SPLITS
from guardkit.data.schema import FEATURES
from guardkit.generate.candidates import GENERATED_SOURCE
from guardkit.policies import Policy
from guardkit.resources import shipped_path

TEMPLATE = shipped_path("dataset_cards/dataset_card.md")


def model_label(name: str) -> str:
    """How a model is named in the card: a Hub link for shipped models, a local folder by its name only
    (never a path on this machine), anything else (a Hub id, an API model name) as given."""
    if name in SHIPPED_MODELS:
        return f"[`{hub_id_of(name)}`](https://huggingface.co/{hub_id_of(name)})"
    if name.startswith(("/", ".", "~")) or Path(name).expanduser().exists():
        return f"`{Path(name).name}` (a local model)"
    return f"`{name}`"


def size_category(rows: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < limit:
            return name
    return "n>1M"


def _configs(split_rows: Mapping[str, Mapping[str, int]]) -> list[dict]:
    return [
        {
            "config_name": config,
            "data_files": [{"split": split, "path": f"{folder}/{split}-*"} for split in SPLITS if split_rows[config].get(split)],
            **({"default": True} if config == "default" else {}),
        }
        for config, folder in CONFIG_DIRS.items()
    ]


def _cell(text: str, limit: int = 160) -> str:
    flat = " ".join(str(text).split()).replace("|", "\\|")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _count_table(counts: Mapping[str, Mapping[str, Mapping[str, int]]]) -> list[dict]:
    return [
        {"policy": policy, "label": label, **{split: counts[policy][label].get(split, 0) for split in SPLITS}}
        for policy in sorted(counts)
        for label in ("safe", "unsafe")
        if label in counts[policy]
    ]


def _source_table(sources: Mapping[str, Mapping[str, Mapping[str, int]]]) -> list[dict]:
    return [
        {"policy": policy, "label": label, "source": source, "rows": count}
        for policy in sorted(sources)
        for label in ("safe", "unsafe")
        for source, count in sorted(sources[policy].get(label, {}).items())
    ]


def _cross_table(matrix: Mapping[str, Mapping[str, Mapping[str, int]]]) -> tuple[list[str], list[dict]]:
    """Rows: policy and label; columns: the other policies under which those rows' texts are unsafe."""
    policies = sorted(matrix)
    rows = [
        {"policy": policy, "label": label, "cells": [str(matrix[policy][label].get(other, "")) if other != policy else "–" for other in policies]}
        for policy in policies
        for label in ("safe", "unsafe")
    ]
    return policies, rows


def render_card(
    *,
    name: str,
    policies: Sequence[Policy],
    split_rows: Mapping[str, Mapping[str, int]],
    stats: Mapping,
    generation: Mapping,
    examples: Sequence[dict],
    license: str,
) -> DatasetCard:
    """The card of a dataset folder; `split_rows[config][split]` are row counts, `stats` is stats.json."""
    card_data = DatasetCardData(
        license=license,
        language=["en"],
        task_categories=["text-classification"],
        task_ids=["multi-class-classification"],
        size_categories=[size_category(sum(split_rows["default"].values()))],
        annotations_creators=["machine-generated"],
        language_creators=["found", "machine-generated"],
        source_datasets=["original", "extended"],
        pretty_name=name,
        # "synthetic" where the generator wrote some of the rows; the rest are real corpus texts.
        tags=[
            "guardrails", "safety", "guardkit", *(["synthetic"] if stats["generated_accepted"] else []),
            *sorted({tag for policy in policies for tag in policy.tags}),
        ],
        configs=_configs(split_rows),
    )
    infos = DatasetInfosDict(
        {
            config: DatasetInfo(
                features=FEATURES,
                splits=SplitDict({split: SplitInfo(name=split, num_examples=count) for split, count in split_rows[config].items()}),
            )
            for config in CONFIG_DIRS
        }
    )
    infos.to_dataset_card_data(card_data)
    labeller = stats["labeller"]
    estimate = labeller["policy_bench_estimate"]
    accuracies = [entry["balanced_accuracy"] for entry in estimate.values() if entry["balanced_accuracy"] is not None]
    cross_policies, cross_rows = _cross_table(stats["cross_policy_matrix"])
    return DatasetCard.from_template(
        card_data,
        template_path=str(TEMPLATE),
        pretty_name=name,
        repo_id_py=json.dumps(generation.get("push_to_hub") or "ORG/NAME"),
        counts_default=_count_table(stats["counts"]["default"]),
        counts_multitask=_count_table(stats["counts"]["multitask"]),
        rows_per_label=stats["rows_per_label"],
        background_rows=max(stats.get("background_rows", {}).values(), default=0),
        fragment_rows=max(stats.get("document_fragment_rows", {}).values(), default=0),
        sources=_source_table(stats["sources"]),
        cross_policies=cross_policies,
        cross_rows=cross_rows,
        corpora=stats["corpora"],
        candidates=stats["candidates"],
        labeller=labeller,
        estimate=[{"policy": policy, **entry} for policy, entry in sorted(estimate.items())],
        mean_accuracy=f"{sum(accuracies) / len(accuracies):.3f}" if accuracies else "n/a",
        generated_unsafe_rows=sum(by_label["unsafe"].get(GENERATED_SOURCE, 0) for by_label in stats["sources"].values()),
        unsafe_rows=sum(sum(by_label["unsafe"].values()) for by_label in stats["sources"].values()),
        generated_unsafe_set_aside=stats.get("generated_unsafe_set_aside", 0),
        reflection=stats["reflection"],
        reflection_mode=generation["reflection"],
        generator={**stats["generator"], "model": model_label(generation["generator"])} if stats["generator"].get("backend") != "none" else None,
        prompt_style=stats["prompt_style"],
        requests=stats["requests"],
        generated_accepted=stats["generated_accepted"],
        generated_per_minute=stats["generated_accepted_per_minute"],
        seed=generation["seed"],
        filtering=[{"name": step.replace("_", " "), "count": count} for step, count in stats["filtering"].items()],
        decontamination=stats["decontamination"],
        decontaminate_ngram=generation["decontaminate_ngram"],
        decontaminate_boilerplate=generation.get("decontaminate_boilerplate"),
        decontaminate_coverage=generation.get("decontaminate_coverage"),
        augmentation=stats["augmentation"],
        encoder=hub_id_of(generation["encoder"]),
        examples=[{**row, "text": _cell(row["text"]), "rules": "; ".join(row.get("rules") or [])} for row in examples],
        policies=[{"id": policy.id, "name": policy.name, "yaml": policy.to_yaml().strip()} for policy in policies],
    )
