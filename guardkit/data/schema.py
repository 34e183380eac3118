"""The one dataset schema guardkit reads and writes, for every stage and every benchmark."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from datasets import ClassLabel, Dataset, Features, Sequence, Value

LABELS = ["safe", "unsafe"]
ID2LABEL = dict(enumerate(LABELS))
LABEL2ID = {label: index for index, label in ID2LABEL.items()}

FEATURES = Features(
    {
        "text": Value("string"),
        "label": ClassLabel(names=LABELS),
        "policy": Value("string"),
        "source": Value("string"),
        "rationale": Value("string"),
        # Unsafe rows: the disallowed rules of `policy` the text breaks; safe rows: the allowed items it stands
        # for. Rule texts exactly as the policy writes them, so policies composed from rules label rows too.
        "rules": Sequence(Value("string")),
    }
)
COLUMNS = list(FEATURES)
# The `source` of a row taken from a real corpus: this prefix, then the corpus name.
CORPUS_SOURCE_PREFIX = "corpus:"


def label_id(label: str | int | bool) -> int:
    """Map 'safe'/'unsafe', 0/1 or False/True to the class id."""
    if isinstance(label, str):
        if label not in LABEL2ID:
            raise ValueError(f"label must be one of {LABELS}, got {label!r}")
        return LABEL2ID[label]
    value = int(label)
    if value not in ID2LABEL:
        raise ValueError(f"label id must be 0 (safe) or 1 (unsafe), got {label!r}")
    return value


def normalise_row(row: Mapping[str, object]) -> dict[str, object]:
    """One row in the schema: label as class id, missing optional strings as '', missing rules as []."""
    text = row.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"row has no text: {dict(row)!r}")
    rules = row.get("rules") or []
    if isinstance(rules, str) or not all(isinstance(rule, str) for rule in rules):
        raise ValueError(f"rules must be a list of rule texts, got {rules!r}")
    return {
        "text": text,
        "label": label_id(row["label"]),
        "policy": str(row.get("policy") or ""),
        "source": str(row.get("source") or ""),
        "rationale": str(row.get("rationale") or ""),
        "rules": list(rules),
    }


def rows_to_dataset(rows: Iterable[Mapping[str, object]]) -> Dataset:
    """Build a `datasets.Dataset` with the guardkit schema from row mappings."""
    columns: dict[str, list[object]] = {name: [] for name in COLUMNS}
    for row in rows:
        for name, value in normalise_row(row).items():
            columns[name].append(value)
    return Dataset.from_dict(columns, features=FEATURES)
