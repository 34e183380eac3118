"""Training rows of a policy reader: the multitask rows, the dataset's everyday background, and the everyday reference.

The multitask rows teach the policy line (unsafe rows against hard negatives and other policies' unsafe texts,
which are out of the policy's scope). The background rows of config "default" (benign corpus texts labelled
safe, `guardkit generate --background-per-policy`) teach what ordinary traffic looks like; they would outnumber
the rest several times over, so together they weigh `everyday_share` of the multitask rows. A sample of their
texts becomes the guard's everyday reference and leaves the training rows: a text compared with itself would
teach the reader that an exact match means safe.
"""

from __future__ import annotations

from datasets import Dataset

from guardkit.data.schema import CORPUS_SOURCE_PREFIX
from guardkit.stable_random import stable_fraction
from guardkit.train.common import TrainingError

# Fewer reference texts than this would make "near an everyday text" a matter of luck.
MIN_EVERYDAY = 8


def background_rows(multitask: Dataset, default: Dataset) -> Dataset:
    """The safe rows of config "default" that the same split of config "multitask" lacks: its everyday background."""
    in_multitask = set(zip(multitask["policy"], multitask["text"]))
    return default.filter(
        lambda text, policy, label: label == 0 and (policy, text) not in in_multitask, input_columns=["text", "policy", "label"], desc="background rows"
    )


def reader_training_rows(multitask: Dataset, default: Dataset, everyday_texts: int, everyday_share: float, seed: int) -> tuple[Dataset, tuple[str, ...]]:
    """(rows with `rules` and `weight` columns, everyday reference texts) from the train splits of both configs."""
    if everyday_share < 0:
        raise TrainingError(f"--everyday_share must be 0 or more, got {everyday_share}")
    found = background_rows(multitask, default)
    background = list(zip(found["text"], found["policy"]))
    pool = list(dict.fromkeys(text for text, _ in background))
    if not pool:
        # A dataset generated without background rows: its safe corpus texts are the everyday texts it has.
        pool = list(dict.fromkeys(text for text, label, source in zip(multitask["text"], multitask["label"], multitask["source"]) if label == 0 and source.startswith(CORPUS_SOURCE_PREFIX)))
    if len(pool) < MIN_EVERYDAY:
        raise TrainingError(
            f"the policy reader needs at least {MIN_EVERYDAY} everyday texts (safe corpus texts) in the training split, found {len(pool)}; "
            "generate the dataset with --background-per-policy above 0"
        )
    everyday = tuple(sorted(pool, key=lambda text: stable_fraction(seed, "everyday", text))[:everyday_texts])
    kept = set(everyday)
    rows = [
        (text, label, policy, list(rules), 1.0)
        for text, label, policy, rules in zip(multitask["text"], multitask["label"], multitask["policy"], multitask["rules"])
        if text not in kept
    ]
    extra = [(text, 0, policy) for text, policy in background if text not in kept]
    if extra and everyday_share > 0:
        weight = everyday_share * len(rows) / len(extra)
        rows += [(text, label, policy, [], weight) for text, label, policy in extra]
    names = ("text", "label", "policy", "rules", "weight")
    return Dataset.from_dict({name: [row[position] for row in rows] for position, name in enumerate(names)}), everyday
