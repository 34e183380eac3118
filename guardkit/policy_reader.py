"""The policy reader: P(unsafe) of a text under any policy, from where the text lies among the policy's own parts.

A pair model that reads (instruction, text) has to learn to read instructions, and on two CPU cores it
cannot be trained long enough to do so (the rule-pair MultiTaskGuard flagged 95% of everyday requests
and 82% of other policies' unsafe texts). The base encoder already places a text near the texts it
resembles. The reader embeds the policy's parts — its unsafe examples, its safe examples and hard
negatives, its disallowed rules and its allowed items — with the same encoder, and reads a text's
similarities to each of them, and to a background of other policies' unsafe examples, with a logistic
regression fitted across the training policies. Every feature is a similarity to the policy's own
parts, never a policy's identity, so a policy the reader never saw is read the same way: from its YAML.

Two references sit beside the policy. The background (other policies' unsafe examples) makes the reader
ask "is this the policy's kind of unsafe?" rather than "is this unsafe?": a text as close to other
policies' unsafe examples as to this policy's is not this policy's. The everyday texts (benign requests,
documents and chat from real corpora, stored with the guard in EVERYDAY_FILE) say what ordinary traffic
looks like, which a policy's handful of safe examples cannot: without them the reader flagged 89% of
real everyday requests under at least one of ten harm policies.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from guardkit.embeddings import nearest_mean

# The everyday reference texts of a policy_reader guard, a JSON list of strings in its folder.
EVERYDAY_FILE = "reader_everyday.json"

# What the reader reads, in the order of its weights: similarity to the unsafe examples, the safe examples and
# hard negatives, the disallowed rules, the allowed items, the background and the everyday texts; 1/3/5: mean
# of the nearest 1, 3 or 5 of them; nearest_safe: the closer of the safe examples and the everyday texts (so that
# a text near either is read as safe, which a sum of separate terms cannot say).
FEATURES = (
    "unsafe_1",
    "unsafe_3",
    "safe_1",
    "safe_3",
    "disallowed_1",
    "allowed_1",
    "unsafe_3-safe_3",
    "unsafe_1-safe_1",
    "disallowed_1-allowed_1",
    "background_1",
    "background_5",
    "unsafe_1-background_1",
    "unsafe_3-background_5",
    "everyday_1",
    "everyday_5",
    "unsafe_1-everyday_1",
    "unsafe_3-everyday_5",
    "unsafe_1-nearest_safe_1",
    "unsafe_3-nearest_safe_3",
)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1, so dot products are cosine similarities."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def policy_parts(policy) -> dict[str, list[str]]:
    """The texts of a policy the reader embeds, by part."""
    return {
        "unsafe": list(policy.examples.unsafe),
        "safe": [*policy.examples.safe, *policy.hard_negatives],
        "disallowed": list(policy.disallowed),
        "allowed": list(policy.allowed),
    }


@dataclass(frozen=True)
class PolicyAnchors:
    """A policy's parts as unit embeddings (rows)."""

    unsafe: np.ndarray
    safe: np.ndarray
    disallowed: np.ndarray
    allowed: np.ndarray

    @classmethod
    def embed(cls, policy, embed_texts) -> "PolicyAnchors":
        """`embed_texts(list of str) -> (n, d) array` applied to every part of `policy`."""
        return cls(**{part: unit_rows(embed_texts(texts)) if texts else np.zeros((0, 1), np.float32) for part, texts in policy_parts(policy).items()})


def background_of(anchors: Mapping[str, PolicyAnchors], leave_out: str | Collection[str] | None) -> np.ndarray:
    """The unsafe examples of every reference policy but `leave_out` (the policy or policies being read), stacked."""
    left_out = {leave_out} if isinstance(leave_out, str) else set(leave_out or ())
    parts = [value.unsafe for policy_id, value in anchors.items() if policy_id not in left_out and len(value.unsafe)]
    return np.vstack(parts) if parts else np.zeros((0, 1), np.float32)


def reader_features(texts: np.ndarray, anchors: PolicyAnchors, background: np.ndarray, everyday: np.ndarray) -> np.ndarray:
    """The FEATURES of each text (unit rows) under the policy of `anchors`, against `background` and `everyday`."""

    def similarities(part: np.ndarray) -> np.ndarray:
        return texts @ part.T if len(part) else np.zeros((len(texts), 0), np.float32)

    unsafe, safe = similarities(anchors.unsafe), similarities(anchors.safe)
    rules, allowed, other = similarities(anchors.disallowed), similarities(anchors.allowed), similarities(background)
    ordinary = similarities(everyday)
    u1, u3, s1, s3 = nearest_mean(unsafe, 1), nearest_mean(unsafe, 3), nearest_mean(safe, 1), nearest_mean(safe, 3)
    d1, a1, b1, b5 = nearest_mean(rules, 1), nearest_mean(allowed, 1), nearest_mean(other, 1), nearest_mean(other, 5)
    e1, e5 = nearest_mean(ordinary, 1), nearest_mean(ordinary, 5)
    nearest_safe_1, nearest_safe_3 = np.maximum(s1, e1), np.maximum(s3, e5)
    columns = (u1, u3, s1, s3, d1, a1, u3 - s3, u1 - s1, d1 - a1, b1, b5, u1 - b1, u3 - b5, e1, e5, u1 - e1, u3 - e5, u1 - nearest_safe_1, u3 - nearest_safe_3)
    return np.stack(columns, axis=1).astype(np.float32)


@dataclass(frozen=True)
class PolicyReader:
    """A logistic regression over FEATURES: P(unsafe) = sigmoid(weights . features + bias)."""

    weights: tuple[float, ...]
    bias: float

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        logits = features @ np.asarray(self.weights, dtype=np.float32) + self.bias
        return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)

    def to_dict(self) -> dict:
        return {"features": list(FEATURES), "weights": [float(value) for value in self.weights], "bias": float(self.bias)}

    @classmethod
    def from_dict(cls, raw: Mapping, source: str) -> "PolicyReader":
        """Read what `to_dict` wrote; a reader of other features than this guardkit computes is refused."""
        names = list(raw.get("features") or [])
        weights = list(raw.get("weights") or [])
        if names != list(FEATURES) or len(weights) != len(FEATURES):
            raise ValueError(
                f"{source}: the policy reader reads features {names} with {len(weights)} weights; this guardkit computes "
                f"{list(FEATURES)}: retrain the guard with this version"
            )
        return cls(tuple(float(value) for value in weights), float(raw["bias"]))


def fit_policy_reader(features: np.ndarray, labels: Sequence[int], c: float, sample_weight: np.ndarray | None = None) -> tuple[PolicyReader, float]:
    """(reader, training accuracy): an L2 logistic regression, both labels weighted equally."""
    from sklearn.linear_model import LogisticRegression

    labels = np.asarray(labels)
    regression = LogisticRegression(C=c, class_weight="balanced", max_iter=5000)
    regression.fit(features, labels, sample_weight=sample_weight)
    reader = PolicyReader(tuple(float(value) for value in regression.coef_[0]), float(regression.intercept_[0]))
    return reader, float(regression.score(features, labels))
