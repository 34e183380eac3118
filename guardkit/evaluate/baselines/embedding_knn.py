"""`embedding-knn`: nearest policy examples in the base encoder's embedding space, no training.

Texts and the policy's own examples (safe ones and hard negatives on one side, unsafe ones on the
other) are mean-pooled, L2-normalised encoder embeddings. A text's score compares its mean cosine
similarity to the k nearest unsafe examples with that to the k nearest safe ones:
score = sigmoid((unsafe - safe) / TEMPERATURE), so 0.5 means equally close to both sides.
"""

from __future__ import annotations

import numpy as np

from guardkit.assets import resolve_model
from guardkit.evaluate.baselines import register_baseline
from guardkit.evaluate.scorers import Scorer, ScorerSpec, folder_size
from guardkit.guard import model_length_limit
from guardkit.policies import Policy, shipped_policies

EQUIDISTANT_THRESHOLD = 0.5
# Cosine similarities of one encoder differ by a few hundredths between near and far; this spreads them over (0, 1).
TEMPERATURE = 0.05
# Texts are cut here (or at the encoder's own limit): the start of a text says enough for a nearest-neighbour vote.
MAX_TOKENS = 256


class SentenceEncoder:
    """Mean-pooled, L2-normalised embeddings from a transformers encoder (sentence-transformers style)."""

    def __init__(self, model: str, batch_size: int, device: str | None = None):
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.path = resolve_model(model)
        self.batch_size = batch_size
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.model = AutoModel.from_pretrained(self.path).to(self.device).eval()
        self.max_length = min(MAX_TOKENS, model_length_limit(self.model.config, self.tokenizer))

    def encode(self, texts: list[str]) -> np.ndarray:
        import torch

        # Length bucketing: sorted texts share batches with texts of similar length, so little padding.
        order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
        embeddings = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                members = order[start : start + self.batch_size]
                batch = self.tokenizer(
                    [texts[index] for index in members], padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
                ).to(self.device)
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
                embeddings[members] = torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy()
        return embeddings


@register_baseline("embedding-knn")
class EmbeddingKnnBaseline(Scorer):
    is_baseline = True

    def __init__(self, name: str, encoder: SentenceEncoder, k: int):
        super().__init__(name, ScorerSpec("baseline", name), EQUIDISTANT_THRESHOLD)
        self.encoder = encoder
        self.k = k
        self._examples: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    @classmethod
    def from_config(cls, config) -> "EmbeddingKnnBaseline":
        return cls(cls.registry_name, SentenceEncoder(config.encoder, config.batch_size, config.device), config.knn_k)

    @property
    def own_policies(self) -> list[str]:
        return []

    def can_score(self, policy_id: str) -> bool:
        return True

    def example_embeddings(self, policy: Policy) -> tuple[np.ndarray, np.ndarray]:
        """(safe, unsafe) example embeddings of the policy, computed once."""
        if policy.id not in self._examples:
            safe = [*policy.examples.safe, *policy.hard_negatives]
            self._examples[policy.id] = (self.encoder.encode(safe), self.encoder.encode(policy.examples.unsafe))
        return self._examples[policy.id]

    def _side_similarity(self, texts: np.ndarray, examples: np.ndarray) -> np.ndarray:
        similarities = texts @ examples.T
        k = min(self.k, examples.shape[0])
        nearest = np.partition(similarities, similarities.shape[1] - k, axis=1)[:, -k:]
        return nearest.mean(axis=1)

    def _score(self, policy: Policy, texts: list[str]) -> np.ndarray:
        safe, unsafe = self.example_embeddings(policy)
        embedded = self.encoder.encode(texts)
        margin = self._side_similarity(embedded, unsafe) - self._side_similarity(embedded, safe)
        return 1.0 / (1.0 + np.exp(-margin / TEMPERATURE))

    def size_on_disk(self) -> int:
        """The encoder folder plus the float32 embeddings of every shipped policy's examples."""
        examples = sum(len(policy.all_examples()) for policy in shipped_policies().values())
        return folder_size(self.encoder.path) + examples * self.encoder.model.config.hidden_size * 4
