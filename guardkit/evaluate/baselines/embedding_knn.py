"""`embedding-knn`: nearest policy examples in the base encoder's embedding space, no training.

Texts and the policy's own examples (safe ones and hard negatives on one side, unsafe ones on the
other) are mean-pooled, L2-normalised encoder embeddings. A text's score compares its mean cosine
similarity to the k nearest unsafe examples with that to the k nearest safe ones:
score = sigmoid((unsafe - safe) / KNN_TEMPERATURE), so 0.5 means equally close to both sides.
"""

from __future__ import annotations

import numpy as np

from guardkit.embeddings import SentenceEncoder, knn_margin
from guardkit.evaluate.baselines import register_baseline
from guardkit.evaluate.scorers import Scorer, ScorerSpec, folder_size
from guardkit.policies import Policy, shipped_policies

EQUIDISTANT_THRESHOLD = 0.5
# Texts are cut here (or at the encoder's own limit): the start of a text says enough for a nearest-neighbour vote.
MAX_TOKENS = 256


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
        return cls(cls.registry_name, SentenceEncoder(config.encoder, config.batch_size, config.device, max_length=MAX_TOKENS), config.knn_k)

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

    def _score(self, policy: Policy, texts: list[str]) -> np.ndarray:
        safe, unsafe = self.example_embeddings(policy)
        return 1.0 / (1.0 + np.exp(-knn_margin(self.encoder.encode(texts), safe, unsafe, self.k)))

    def size_on_disk(self) -> int:
        """The encoder folder plus the float32 embeddings of every shipped policy's examples."""
        examples = sum(len(policy.all_examples()) for policy in shipped_policies().values())
        return folder_size(self.encoder.path) + examples * self.encoder.model.config.hidden_size * 4
