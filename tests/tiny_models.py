"""The randomly initialised 2-layer BERT classifier the tests build instead of downloading a model, and
the tiny guards saved from it."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from guardkit.data.schema import ID2LABEL, LABEL2ID
from guardkit.guard import DatasetRef, save_guard
from guardkit.policies import Policy, get_policy

# The policies of the tiny guards (conftest's `tiny_guards` fixture).
PAIR_POLICIES = ("jailbreak", "prompt_injection")
TASK_POLICY = "jailbreak"


def tiny_bert(tokenizer_dir: str | Path, positions: int = 128, seed: int = 0):
    """(model, tokenizer): 2 layers, hidden size 32, `positions` tokens, safe/unsafe labels, the given tokenizer."""
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    tokenizer.model_max_length = positions
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=positions,
        num_labels=2,
        id2label=ID2LABEL,
        label2id=LABEL2ID,
    )
    return BertForSequenceClassification(config), tokenizer


def save_tiny_guard(
    folder: Path, tokenizer_dir: str | Path, kind: str, policy_ids, positions: int, datasets: tuple[str, ...] = ()
) -> Path:
    """An untrained tiny guard folder of `kind` for shipped policies, `positions` tokens long."""
    from huggingface_hub import ModelCard, ModelCardData

    model, tokenizer = tiny_bert(tokenizer_dir, positions=positions, seed=len(policy_ids))
    card = ModelCard.from_template(ModelCardData(license="apache-2.0", model_name=folder.name))
    return save_guard(
        folder,
        model,
        tokenizer,
        kind=kind,
        policies=[get_policy(policy_id) for policy_id in policy_ids],
        threshold=0.5,
        max_length=positions,
        base_model="sentence-transformers/all-MiniLM-L6-v2",
        card=card,
        datasets=[DatasetRef(dataset) for dataset in datasets],
    )


def write_dataset_folder(folder: Path, rows: dict[tuple[str, str], list[dict]], policy_ids) -> Path:
    """A dataset folder in the layout `guardkit generate` writes: rows per (config, split), the shipped policies' files."""
    from guardkit.data.io import split_file
    from guardkit.data.schema import rows_to_dataset

    for (config, split), config_rows in rows.items():
        path = split_file(folder, split, config)
        path.parent.mkdir(parents=True, exist_ok=True)
        rows_to_dataset(config_rows).to_parquet(str(path))
    (folder / "policies").mkdir(exist_ok=True)
    for policy_id in policy_ids:
        (folder / "policies" / f"{policy_id}.yaml").write_text(get_policy(policy_id).to_yaml())
    return folder


def short_policy(policy_id: str, description: str = "Flags requests for the secret recipe.") -> Policy:
    """A policy whose instruction fits beside a text in a 64-token window."""
    return Policy(
        id=policy_id,
        name=policy_id.replace("_", " ").title(),
        description=description,
        allowed=["Talking about cooking"],
        disallowed=["Asking for the secret recipe"],
        examples={"safe": ["How long do I boil an egg?"], "unsafe": ["Tell me the secret recipe."]},
    )


def make_tiny_guards(root: Path, tiny_bert_dir: Path) -> tuple[Path, Path]:
    """A tiny MultiTaskGuard (instruction pairs, 256-token window) and a tiny TaskGuard for jailbreak.

    The shipped instructions are 120-170 tokens, more than a 128-token window leaves beside a text, so
    the pair guard has 256 positions.
    """
    pair = save_tiny_guard(root / "tiny-multitask", tiny_bert_dir, "multitask", PAIR_POLICIES, 256)
    task = save_tiny_guard(root / "tiny-task", tiny_bert_dir, "task", (TASK_POLICY,), 128)
    return pair, task
