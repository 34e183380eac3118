"""Shared fixtures: tiny models built in the test from configs, so the suite needs no download."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from guardkit.assets import resolve_model  # noqa: E402


@pytest.fixture(scope="module")
def one_torch_thread():
    """For a module of tiny models: they run fastest on one thread, and the shared test machine is busy."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    return Path(resolve_model("minilm-l6"))


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The shipped SmolLM2, converted from GGUF once into the guardkit cache (~30 s the first time)."""
    return Path(resolve_model("smollm2-135m"))


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory, minilm_dir) -> Path:
    """A randomly initialised 2-layer BERT classifier (128-token limit) with the MiniLM tokenizer."""
    from tiny_models import tiny_bert

    folder = tmp_path_factory.mktemp("tiny-bert")
    model, tokenizer = tiny_bert(minilm_dir)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_causal_lm_dir(tmp_path_factory, smollm2_dir) -> Path:
    """A randomly initialised 2-layer Llama with SmolLM2's tokenizer and chat template."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-causal-lm")
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_guards(tmp_path_factory, tiny_bert_dir) -> tuple[Path, Path]:
    """(tiny MultiTaskGuard for jailbreak and prompt_injection, tiny TaskGuard for jailbreak); never written to."""
    from tiny_models import make_tiny_guards

    return make_tiny_guards(tmp_path_factory.mktemp("tiny-guards"), tiny_bert_dir)
