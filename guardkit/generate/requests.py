"""Planning generation requests: which label, behaviour and style each request asks the generator for.

A plan is a pure function of (policy, round, number of requests, seed): rerunning on the same folder plans
the same request ids, so finished ones are skipped on resume.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from guardkit.policies import Policy
from guardkit.stable_random import stable_seed

# The intended label of each kind; hard negatives share the topic of the disallowed behaviours but are allowed.
KIND_LABELS = {"unsafe": "unsafe", "safe": "safe", "hard_negative": "safe"}

DIVERSITY_AXES: dict[str, tuple[str, ...]] = {
    "persona": (
        "a student",
        "a software developer",
        "a small-business owner",
        "a retiree",
        "a journalist",
        "a teenager",
        "a customer-support agent",
        "a researcher",
        "a parent",
        "a non-native English speaker",
    ),
    "tone": ("neutral", "casual", "formal", "urgent", "friendly", "frustrated", "curious"),
    "length": ("one short sentence", "one or two sentences", "a short paragraph"),
    "format": ("question", "command", "role-play setup", "pasted document", "multi-turn chat excerpt"),
    "directness": ("direct", "indirect"),
    "typos": ("no typos", "a few typos"),
}
# Word budget per length: the list-continuation prompt has no other way to steer length than its examples.
LENGTH_WORDS = {"one short sentence": 20, "one or two sentences": 40, "a short paragraph": 90}


@dataclass(frozen=True)
class GenerationRequest:
    id: str
    round: int
    policy: str
    kind: str
    behaviour: str
    axes: dict[str, str] = field(hash=False)
    examples: tuple[str, ...]
    count: int

    @property
    def label(self) -> str:
        return KIND_LABELS[self.kind]


def example_pool(policy: Policy, kind: str, seeds: Sequence[str] = ()) -> list[str]:
    """Few-shot texts for a kind: the policy's own examples, plus retrieved seed-corpus texts for unsafe."""
    if kind == "unsafe":
        return list(policy.examples.unsafe) + list(seeds)
    if kind == "hard_negative":
        return list(policy.hard_negatives) or list(policy.examples.safe)
    return list(policy.examples.safe)


def _examples_for(pool: Sequence[str], rng: random.Random, format_axis: str, count: int) -> tuple[str, ...]:
    """`count` examples, preferring multi-line ones when the request asks for documents or chat excerpts."""
    if format_axis in ("pasted document", "multi-turn chat excerpt"):
        multi = [text for text in pool if "\n" in text.strip()]
        if multi:
            chosen = rng.sample(multi, min(len(multi), count - 1))
            rest = [text for text in pool if text not in chosen]
            return tuple(chosen + rng.sample(rest, min(len(rest), count - len(chosen))))
    return tuple(rng.sample(list(pool), min(len(pool), count)))


def plan_requests(
    policy: Policy,
    round_index: int,
    requests_per_label: dict[str, int],
    seed: int,
    texts_per_request: int,
    hard_negative_fraction: float,
    ranked_pools: dict[tuple[str, str], Sequence[str]] | None = None,
    shots: int = 3,
) -> list[GenerationRequest]:
    """Requests for one policy and round; `requests_per_label` maps "safe"/"unsafe" to how many to plan.

    Behaviours are taken round-robin (every disallowed behaviour gets unsafe requests, every allowed one safe
    requests) and the diversity axes are sampled per request. `ranked_pools[(kind, behaviour)]` lists few-shot
    candidates most similar to the behaviour first; the examples are drawn from its head, so a weak model
    continues on the behaviour's topic. Without it, examples are drawn from the kind's whole pool.
    """
    plan: list[GenerationRequest] = []
    for label, count in requests_per_label.items():
        if count <= 0:
            continue
        kinds = ["unsafe"] * count
        if label == "safe":
            hard = round(count * hard_negative_fraction)
            kinds = ["hard_negative"] * hard + ["safe"] * (count - hard)
        counters: dict[str, int] = {}
        for kind in kinds:
            index = counters.get(kind, 0)
            counters[kind] = index + 1
            request_id = f"r{round_index}/{policy.id}/{kind}/{index:04d}"
            rng = random.Random(stable_seed(seed, request_id))
            behaviours = policy.disallowed if kind in ("unsafe", "hard_negative") else policy.allowed
            # Offset by round so that top-up rounds do not start over at the first behaviour.
            behaviour = behaviours[(index + round_index * 7) % len(behaviours)]
            axes = {name: rng.choice(values) for name, values in DIVERSITY_AXES.items()}
            if ranked_pools and (kind, behaviour) in ranked_pools:
                pool = list(ranked_pools[(kind, behaviour)])[: max(2 * shots, 6)]
            else:
                pool = example_pool(policy, kind)
            plan.append(
                GenerationRequest(
                    id=request_id,
                    round=round_index,
                    policy=policy.id,
                    kind=kind,
                    behaviour=behaviour,
                    axes=axes,
                    examples=_examples_for(pool, rng, axes["format"], shots),
                    count=texts_per_request,
                )
            )
    return plan
