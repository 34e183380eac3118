"""Sentence embeddings from a base encoder and the nearest-example vote on them.

Shared by the data engine (dedup, the labeller), training (heads fitted on frozen embeddings) and the
evaluation's embedding-knn baseline, so that all of them read a text exactly the same way: mean pooling
over the tokens the attention mask keeps, L2-normalised, as all-MiniLM-L6-v2 was trained to be read.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from guardkit.assets import resolve_model

# Cosine similarities of one encoder differ by a few hundredths between near and far; this spreads them over (0, 1).
KNN_TEMPERATURE = 0.05


def pool_and_normalise(hidden, attention_mask, pooling: str = "mean"):
    """L2-normalised sentence embeddings from token states: the mean over the tokens the mask keeps, or the
    first token's state for pooling "cls"."""
    import torch

    if pooling == "cls":
        pooled = hidden[:, 0]
    else:
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
    return torch.nn.functional.normalize(pooled, dim=-1)


class SentenceEncoder:
    """Mean-pooled, L2-normalised embeddings from a transformers encoder (sentence-transformers style).

    max_length: tokens read per text; the start of a text says enough for similarity and dedup.
    """

    def __init__(self, model: str, batch_size: int = 64, device: str | None = None, max_length: int = 128):
        import torch
        from transformers import AutoModel, AutoTokenizer

        from guardkit.guard import model_length_limit

        self.path = resolve_model(model)
        self.batch_size = batch_size
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.model = AutoModel.from_pretrained(self.path).to(self.device).eval()
        self.max_length = min(max_length, model_length_limit(self.model.config, self.tokenizer))

    @property
    def dimension(self) -> int:
        return int(self.model.config.hidden_size)

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        import torch
        from tqdm.auto import tqdm

        texts = list(texts)
        embeddings = np.zeros((len(texts), self.dimension), dtype=np.float32)
        # Length bucketing: sorted texts share batches with texts of similar length, so little padding.
        order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
        batches = range(0, len(order), self.batch_size)
        with torch.inference_mode():
            for start in tqdm(batches, desc="embedding", unit="batch", disable=not progress):
                members = order[start : start + self.batch_size]
                batch = self.tokenizer(
                    [texts[index] for index in members], padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
                ).to(self.device)
                pooled = pool_and_normalise(self.model(**batch).last_hidden_state, batch["attention_mask"])
                embeddings[members] = pooled.float().cpu().numpy()
        return embeddings


def nearest_mean(similarities: np.ndarray, k: int) -> np.ndarray:
    """Per row, the mean of its k largest similarities (all of them when fewer; 0 when there are none)."""
    if similarities.shape[1] == 0:
        return np.zeros(similarities.shape[0], dtype=np.float32)
    k = min(k, similarities.shape[1])
    return np.partition(similarities, similarities.shape[1] - k, axis=1)[:, -k:].mean(axis=1)


def nearest_mean_similarity(queries: np.ndarray, examples: np.ndarray, k: int) -> np.ndarray:
    """Per query, the mean cosine similarity to its k most similar examples (all of them when fewer)."""
    return nearest_mean(queries @ examples.T, k)


def knn_margin(queries: np.ndarray, safe: np.ndarray, unsafe: np.ndarray, k: int) -> np.ndarray:
    """How much closer each query is to its k nearest unsafe examples than to its k nearest safe ones, in
    units of KNN_TEMPERATURE: 0 means equally close, sigmoid(margin) reads as P(unsafe)."""
    return (nearest_mean_similarity(queries, unsafe, k) - nearest_mean_similarity(queries, safe, k)) / KNN_TEMPERATURE
