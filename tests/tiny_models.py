"""The randomly initialised 2-layer BERT classifier the tests build instead of downloading a model."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from guardkit.data.schema import ID2LABEL, LABEL2ID
from guardkit.policies import Policy


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
