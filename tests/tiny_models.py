"""The randomly initialised 2-layer BERT classifier the tests build instead of downloading a model, and
the tiny guards saved from it."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from guardkit.data.schema import ID2LABEL, LABEL2ID

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


def save_tiny_guard(folder: Path, model_dir: Path, kind: str, policy_ids: tuple[str, ...], max_length: int) -> Path:
    from huggingface_hub import ModelCard
    from transformers import AutoModelForSequenceClassification

    from guardkit.guard import save_guard
    from guardkit.policies import get_policy

    return save_guard(
        folder,
        AutoModelForSequenceClassification.from_pretrained(model_dir),
        AutoTokenizer.from_pretrained(model_dir),
        kind=kind,
        policies=[get_policy(policy_id) for policy_id in policy_ids],
        threshold=0.5,
        max_length=max_length,
        base_model="sentence-transformers/all-MiniLM-L6-v2",
        card=ModelCard("---\nlicense: apache-2.0\n---\n# tiny test guard\n"),
    )


def make_tiny_guards(root: Path, tiny_bert_dir: Path) -> tuple[Path, Path]:
    """A tiny MultiTaskGuard (instruction pairs, 256-token window) and a tiny TaskGuard for jailbreak.

    The shipped instructions are 120-170 tokens, more than `tiny_bert_dir`'s 128-token limit leaves
    beside a text, so the pair guard is a 2-layer BERT like it with 512 positions.
    """
    wide = root / "wide-bert"
    model, tokenizer = tiny_bert(tiny_bert_dir, positions=512, seed=1)
    model.save_pretrained(wide)
    tokenizer.save_pretrained(wide)
    pair = save_tiny_guard(root / "tiny-multitask", wide, "multitask", PAIR_POLICIES, max_length=256)
    task = save_tiny_guard(root / "tiny-task", tiny_bert_dir, "task", (TASK_POLICY,), max_length=128)
    return pair, task
