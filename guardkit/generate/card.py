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
        language_creators=["machine-generated"],
        source_datasets=["original"],
        pretty_name=name,
        tags=["synthetic", "guardrails", "safety", "guardkit", *sorted({tag for policy in policies for tag in policy.tags})],
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
    judge = stats["judge"]
    calibration = judge.get("calibration") or {}
    agreement = []
    for row in stats["reflection"]:
        policy_calibration = calibration.get(row["policy"], {})
        agreement.append(
            {
                **row,
                "rate": f"{row['agreed'] / row['judged']:.0%}" if row["judged"] else "n/a",
                "threshold": f"{policy_calibration['threshold']:.3f}" if policy_calibration else "",
                "accuracy": f"{policy_calibration['held_out_balanced_accuracy']:.2f}" if policy_calibration else "",
            }
        )
    return DatasetCard.from_template(
        card_data,
        template_path=str(TEMPLATE),
        pretty_name=name,
        repo_id_py=json.dumps(generation.get("push_to_hub") or "ORG/NAME"),
        counts_default=_count_table(stats["counts"]["default"]),
        counts_multitask=_count_table(stats["counts"]["multitask"]),
        generator={**stats["generator"], "model": model_label(generation["generator"])},
        judge={"model": model_label(judge["model"]), "kind": judge["kind"]},
        prompt_style=stats["prompt_style"],
        texts_per_request=generation["texts_per_request"],
        max_new_tokens=generation["max_new_tokens"],
        reflection=generation["reflection"],
        requests=stats["requests"],
        candidates=stats["candidates"],
        seed=generation["seed"],
        seed_corpora=stats["seed_corpora"],
        agreement=agreement,
        calibration=bool(calibration),
        filtering=[{"name": step.replace("_", " "), "count": count} for step, count in stats["filtering"].items()],
        decontaminated_against=[f"`{Path(spec).name}`" for spec in generation["decontaminate"]],
        decontaminate_ngram=generation["decontaminate_ngram"],
        augmentation=stats["augmentation"],
        encoder=hub_id_of(generation["encoder"]),
        diversity=stats["diversity"],
        examples=[{**row, "text": _cell(row["text"])} for row in examples],
        policies=[{"id": policy.id, "name": policy.name, "yaml": policy.to_yaml().strip()} for policy in policies],
    )
