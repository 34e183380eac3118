"""The labeller: each candidate text's label under each policy, or an abstention, and the rules behind it.

Every candidate (a real corpus text, a recombination, a generated text) is labelled under every policy by
an ensemble of components. Each gives a logit centred on its own decision boundary (0: undecided):

  examples-lr   a guard trained on the policy's own examples: logistic regression on the base encoder's
                sentence embeddings, safe examples and hard negatives against unsafe ones
  examples-knn  the nearest-example vote: how much closer the text is to its k nearest unsafe examples
                than to its k nearest safe ones
  policy-rules  the policy's own words: how much closer the text is to its closest disallowed rule than to
                its closest allowed item (0 for a policy with no allowed items: nothing to compare against)
  llm           a causal LM judge's verdict-token logits (few-shot policy prompt), centred on a threshold
                calibrated on policy examples that are not in its prompt; asked only where the embedding
                components are unsure (|their sum| < llm_band), since each judgement costs a forward pass

The ensemble adds the weighted logits (each clipped to ±COMPONENT_CLIP: a regression fitted on a few dozen
examples extrapolates wildly far from them). A source prior shifts the sum: a text from a corpus of benign
requests is pulled towards safe by `prior_shift`, so it is labelled unsafe only when the components agree
strongly (as for an off-topic request under a scope policy). Where |sum| <= abstain_margin the labeller
abstains and the candidate is not used under that policy. Weights and margins are tuned on one half of
policy-bench by `benchmarks/bench_labels.py`, which reports on the other half.

Scope: a guard trained on one policy's examples learns "harmful or not", and calls a text unsafe under a
policy that does not cover it (violent-crime examples flag election disinformation). The scope gate is a
second regression that also sees the other policies' unsafe examples as safe: a text it gives less than
`scope_gate` is out of the policy's scope and labelled safe, whatever the ensemble says. A gate fitted on a few
dozen examples per policy still lets through much of a red-team corpus (a hand audit of corpus texts labelled
unsafe under six narrow policies found 46% right, benchmarks/label_audit), since such a text sits near several
policies' examples. So a content policy also loses a text to a rival: another gated content policy whose scope
rating, times `scope_share`, exceeds this one's and whose closest disallowed rule is at least as close. Both
counts must agree, since a text in two policies' scope (a threat that posts someone's home address) is unsafe
under both; on the audit, either count alone removes more right rows than the pair does. A policy tagged
`scope` or `product-scope` (an assistant that must stay on its topic) flags other policies' texts as off
topic, so it gets no gate. The unsafe examples of attack-technique policies (tagged `llm-attacks`: jailbreak,
prompt injection) wrap other policies' content (a role-play around a bomb recipe), so they are out-of-scope
examples only for each other, never for a content policy.

Scope evidence: a corpus that files its texts by category (pyrit's harm categories, Do-Not-Answer's risk areas)
says which policy some of them belong to. Those texts (the training side, decontaminated) join the content
policies' scope regressions: in scope for the policy their category maps to, out of scope for the others. They are
real requests, like the texts being labelled, where the policies' examples are a few dozen hand-written ones.

Rules: an unsafe decision names the disallowed rules of the policy the text is closest to (the best one and
any within RULE_MARGIN of it); a safe one names the allowed item it stands for when one is close enough.
A generated text keeps the rule it was asked for when that rule is among the close ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from guardkit.embeddings import SentenceEncoder, knn_margin
from guardkit.policies import Policy

COMPONENTS = ("examples-lr", "examples-knn", "policy-rules", "llm")
KNN_K = 3
# On policy-bench a text's closest rule and closest allowed item differ by 0.06 cosine (median; 0.15 at the 90th
# percentile): times 20, about the size of the examples' regression logits (median 1.3, 2.6 at the 90th).
RULES_LOGIT_SCALE = 20.0
COMPONENT_CLIP = 8.0
# Tags of policies about how a request is made (an attack technique) rather than what it asks for.
TECHNIQUE_TAGS = frozenset({"llm-attacks"})
# How much each of the other policies' unsafe examples counts, as a safe example, in a policy's scope gate.
OTHER_POLICIES_WEIGHT = 0.3
# How much a corpus text of a category one policy covers (scope evidence) counts in the scope regressions: in its
# policy's as in scope, in the other content policies' as out of scope (times OTHER_POLICIES_WEIGHT). The texts are
# real requests, closer to what is labelled than the policies' own examples; 3 measured better than 1 on the label audit
# (docs/benchmarks.md).
SCOPE_EVIDENCE_WEIGHT = 3.0
# Cosine similarity a rule may trail the closest rule by and still be named as broken.
RULE_MARGIN = 0.04
# A safe text stands for an allowed item only when it is at least this similar to it.
ALLOWED_FLOOR = 0.3
BENIGN, HARMFUL = "benign", "harmful"


@dataclass(frozen=True)
class LabellerSettings:
    """How the components are combined; the defaults are those bench_labels.py tuned on policy-bench's dev half
    (the scope gate and the rival share: the largest whose dev balanced accuracy stays at 0.90 or more)."""

    weights: dict[str, float] = field(
        default_factory=lambda: {"examples-lr": 1.0, "examples-knn": 0.5, "policy-rules": 0.25, "llm": 0.5}
    )
    abstain_margin: float = 0.75
    prior_shift: float = 3.0
    scope_gate: float = 0.3
    scope_share: float = 1.0
    llm_band: float = 4.0
    lr_c: float = 10.0


@dataclass(frozen=True)
class Decision:
    """The labeller's verdict on one text under one policy."""

    label: str | None  # "safe", "unsafe", or None when it abstains
    score: float  # the ensemble's P(unsafe), prior included
    components: dict[str, float]  # each component's centred logit
    rules: tuple[str, ...] = ()

    @property
    def margin(self) -> float:
        return abs(float(np.log(self.score / (1 - self.score)))) if 0 < self.score < 1 else float("inf")


def reflect(decision: Decision, intended: str, mode: str) -> tuple[Decision, str]:
    """Self-reflection on a text generated as `intended`: the decision kept, and what happened to it.

    mode "off" keeps the requested label; "drop" keeps only texts the labeller agrees on; "relabel" takes the
    labeller's label. An abstention drops the text unless reflection is off.
    """
    if mode == "off":
        rules = decision.rules if decision.label == intended else ()
        return Decision(intended, decision.score, decision.components, rules), "kept_as_asked"
    if decision.label is None:
        return decision, "dropped_labeller_abstained"
    if decision.label == intended:
        return decision, "agreed"
    if mode == "drop":
        return Decision(None, decision.score, decision.components), "dropped_labeller_disagreed"
    return decision, "relabelled"


def _logit(probabilities: np.ndarray) -> np.ndarray:
    clipped = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(clipped / (1 - clipped))


class PolicyModel:
    """The fitted embedding components of one policy, its scope gate, and its rule and allowed-item embeddings.

    others_unsafe: the other policies' unsafe examples (what is out of this policy's scope), or None.
    evidence_in, evidence_out: embedded corpus texts whose category this policy covers, and those another policy
    covers (scope evidence; see Labeller).
    """

    def __init__(
        self,
        policy: Policy,
        encode,
        lr_c: float,
        others_unsafe: Sequence[str] = (),
        evidence_in: np.ndarray | None = None,
        evidence_out: np.ndarray | None = None,
    ):
        from sklearn.linear_model import LogisticRegression

        self.policy = policy
        safe_texts = [*policy.examples.safe, *policy.hard_negatives]
        self.safe = encode(safe_texts)
        self.unsafe = encode(policy.examples.unsafe)
        features = np.vstack([self.safe, self.unsafe])
        labels = np.r_[np.zeros(len(self.safe)), np.ones(len(self.unsafe))]
        self.classifier = LogisticRegression(C=lr_c, max_iter=5000, class_weight="balanced").fit(features, labels)
        self.scope = None
        if others_unsafe and not policy.restricts_scope:
            others = encode(list(others_unsafe))
            evidence_in = np.zeros((0, features.shape[1])) if evidence_in is None else evidence_in
            evidence_out = np.zeros((0, features.shape[1])) if evidence_out is None else evidence_out
            weights = np.r_[
                np.ones(len(features)),
                np.full(len(others), OTHER_POLICIES_WEIGHT),
                np.full(len(evidence_in), SCOPE_EVIDENCE_WEIGHT),
                np.full(len(evidence_out), SCOPE_EVIDENCE_WEIGHT * OTHER_POLICIES_WEIGHT),
            ]
            self.scope = LogisticRegression(C=lr_c, max_iter=5000, class_weight="balanced").fit(
                np.vstack([features, others, evidence_in, evidence_out]),
                np.r_[labels, np.zeros(len(others)), np.ones(len(evidence_in)), np.zeros(len(evidence_out))],
                sample_weight=weights,
            )
        self.rules = encode([f"{policy.name}: {rule}" for rule in policy.disallowed])
        self.allowed = encode([f"{policy.name}: {item}" for item in policy.allowed])

    def embedding_logits(self, vectors: np.ndarray) -> dict[str, np.ndarray]:
        return {
            "examples-lr": self.classifier.decision_function(vectors),
            "examples-knn": knn_margin(vectors, self.safe, self.unsafe, KNN_K),
            "policy-rules": self.rules_margin(vectors),
        }

    def rules_margin(self, vectors: np.ndarray) -> np.ndarray:
        if not len(self.rules) or not len(self.allowed):
            return np.zeros(len(vectors))
        return RULES_LOGIT_SCALE * (self.closest_rule(vectors) - (vectors @ self.allowed.T).max(axis=1))

    def closest_rule(self, vectors: np.ndarray) -> np.ndarray:
        return (vectors @ self.rules.T).max(axis=1)

    def in_scope(self, vectors: np.ndarray) -> np.ndarray:
        """P(the text is about this policy's disallowed content rather than another policy's): 1 without a gate."""
        return self.scope.predict_proba(vectors)[:, 1] if self.scope is not None else np.ones(len(vectors))

    def unsafe_rules(self, vector: np.ndarray, intended: str | None) -> tuple[str, ...]:
        similarity = self.rules @ vector
        close = [rule for rule, value in zip(self.policy.disallowed, similarity) if value >= similarity.max() - RULE_MARGIN]
        if intended in self.policy.disallowed and intended in close:
            return (intended,)
        return tuple(close)

    def allowed_items(self, vector: np.ndarray, intended: str | None) -> tuple[str, ...]:
        if intended in self.policy.allowed:
            return (intended,)
        similarity = self.allowed @ vector
        best = int(np.argmax(similarity))
        return (self.policy.allowed[best],) if similarity[best] >= ALLOWED_FLOOR else ()


class Labeller:
    """Labels texts under policies with the component ensemble (see the module docstring).

    llm: a `guardkit.generate.reflection.CachedJudge` (verdicts cached in candidates.jsonl) or None to label
    from the embedding components alone. library: every policy of the run; the others' unsafe examples are
    each policy's out-of-scope texts (its scope gate). scope_evidence: {policy id: corpus texts of a category
    that policy covers}, in scope for it and out of scope for the library's other content policies.
    """

    def __init__(
        self,
        encoder: SentenceEncoder,
        settings: LabellerSettings | None = None,
        llm=None,
        library: Sequence[Policy] = (),
        scope_evidence: Mapping[str, Sequence[str]] | None = None,
    ):
        self.encoder = encoder
        self.settings = settings or LabellerSettings()
        self.llm = llm
        self.library = list(library)
        self._models: dict[str, PolicyModel] = {}
        self.set_scope_evidence(scope_evidence or {})
        self._vectors: dict[str, np.ndarray] = {}
        self.llm_calls = 0

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of policy texts, each computed once (every policy's examples serve all the others' gates)."""
        missing = [text for text in dict.fromkeys(texts) if text not in self._vectors]
        if missing:
            self._vectors.update(zip(missing, self.encoder.encode(missing)))
        return np.stack([self._vectors[text] for text in texts])

    def set_scope_evidence(self, scope_evidence: Mapping[str, Sequence[str]]) -> None:
        """Replace the scope evidence; the policies' models are fitted again when next asked for."""
        self.scope_evidence = {policy_id: list(texts) for policy_id, texts in scope_evidence.items() if texts}
        self._models.clear()

    def _encode_evidence(self, texts: list[str]) -> np.ndarray | None:
        return self._encode(texts) if texts else None

    def model(self, policy: Policy) -> PolicyModel:
        key = policy.id
        if key not in self._models or self._models[key].policy != policy:
            technique = bool(TECHNIQUE_TAGS & set(policy.tags))
            others = [
                text
                for other in self.library
                if other.id != policy.id and (technique or not TECHNIQUE_TAGS & set(other.tags))
                for text in other.examples.unsafe
            ]
            evidence_in = evidence_out = None
            if not technique:
                content = {other.id for other in self.library if not TECHNIQUE_TAGS & set(other.tags)}
                evidence_in = self._encode_evidence([text for owner, texts in self.scope_evidence.items() if owner == policy.id for text in texts])
                evidence_out = self._encode_evidence(
                    [text for owner, texts in self.scope_evidence.items() if owner != policy.id and owner in content for text in texts]
                )
            self._models[key] = PolicyModel(policy, self._encode, self.settings.lr_c, others, evidence_in, evidence_out)
        return self._models[key]

    def out_of_scope(self, policy: Policy, vectors: np.ndarray) -> np.ndarray:
        """Per text, whether it is outside `policy`'s scope: below its scope gate, or claimed by a rival."""
        return (self.model(policy).in_scope(vectors) < self.settings.scope_gate) | self.claimed_by_rival(policy, vectors)

    def claimed_by_rival(self, policy: Policy, vectors: np.ndarray) -> np.ndarray:
        """Per text, whether another gated content policy of the library explains it better than `policy` on both
        counts: its scope rating, times `scope_share`, exceeds this policy's, and its closest disallowed rule is
        at least as close as this policy's (0 turns rivals off). Always False for an ungated or
        attack-technique policy, which competes with none."""
        claimed = np.zeros(len(vectors), dtype=bool)
        model = self.model(policy)
        if model.scope is None or TECHNIQUE_TAGS & set(policy.tags):
            return claimed
        in_scope, closest_rule = model.in_scope(vectors), model.closest_rule(vectors)
        for other in self.library:
            if other.id == policy.id or TECHNIQUE_TAGS & set(other.tags):
                continue
            rival = self.model(other)
            if rival.scope is not None:
                claimed |= (in_scope < self.settings.scope_share * rival.in_scope(vectors)) & (closest_rule <= rival.closest_rule(vectors))
        return claimed

    def component_logits(
        self, policy: Policy, texts: Sequence[str], vectors: np.ndarray, llm_for: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """Each component's centred logit per text; llm (when the labeller has one) only where `llm_for`
        is True, NaN elsewhere."""
        logits = self.model(policy).embedding_logits(vectors)
        if self.llm is not None:
            asked = np.flatnonzero(llm_for) if llm_for is not None else np.arange(len(texts))
            logits["llm"] = self._llm_logits(policy, texts, asked)
        return logits

    def _llm_logits(self, policy: Policy, texts: Sequence[str], asked: np.ndarray) -> np.ndarray:
        values = np.full(len(texts), np.nan)
        if len(asked):
            results = self.llm.scores(policy, [texts[index] for index in asked])
            centre = _logit(np.array([self.llm.threshold(policy)]))[0]
            self.llm_calls += len(asked)
            for index, result in zip(asked, results):
                if result is not None:
                    values[index] = _logit(np.array([result[0]]))[0] - centre
        return values

    def combine(self, logits: dict[str, np.ndarray], priors: Sequence[str]) -> np.ndarray:
        """The ensemble logit per text: weighted component logits (a missing llm verdict counts 0), prior shift."""
        total = np.zeros(len(priors))
        for name, values in logits.items():
            total += self.settings.weights.get(name, 0.0) * np.clip(np.nan_to_num(values, nan=0.0), -COMPONENT_CLIP, COMPONENT_CLIP)
        total -= self.settings.prior_shift * np.asarray([prior == BENIGN for prior in priors], dtype=np.float64)
        return total

    def label(
        self,
        policy: Policy,
        texts: Sequence[str],
        vectors: np.ndarray,
        priors: Sequence[str] | None = None,
        intended_rules: Sequence[str | None] | None = None,
    ) -> list[Decision]:
        """A decision per text under `policy`.

        priors: per text, BENIGN for a text from a benign corpus, anything else for no prior.
        intended_rules: per text, the rule or allowed item a generated text was asked for (None otherwise).
        """
        texts = list(texts)
        priors = list(priors) if priors is not None else [""] * len(texts)
        intended_rules = list(intended_rules) if intended_rules is not None else [None] * len(texts)
        model = self.model(policy)
        logits = model.embedding_logits(vectors)
        if self.llm is not None:
            unsure = np.abs(self.combine(logits, priors)) < self.settings.llm_band
            logits["llm"] = self._llm_logits(policy, texts, np.flatnonzero(unsure))
        total = self.combine(logits, priors)
        in_scope = model.in_scope(vectors)
        out_of_scope = self.out_of_scope(policy, vectors)
        decisions = []
        for index, value in enumerate(total):
            components = {name: float(values[index]) for name, values in logits.items() if not np.isnan(values[index])}
            if model.scope is not None:
                components["in-scope"] = float(in_scope[index])
            score = float(1 / (1 + np.exp(-value)))
            if value > self.settings.abstain_margin and out_of_scope[index]:
                decisions.append(Decision("safe", score, components))
            elif abs(value) <= self.settings.abstain_margin:
                decisions.append(Decision(None, score, components))
            elif value > 0:
                decisions.append(Decision("unsafe", score, components, model.unsafe_rules(vectors[index], intended_rules[index])))
            else:
                decisions.append(Decision("safe", score, components, model.allowed_items(vectors[index], intended_rules[index])))
        return decisions

    def describe(self) -> dict[str, object]:
        settings = self.settings
        return {
            "components": [name for name in COMPONENTS if name != "llm" or self.llm is not None],
            "weights": dict(settings.weights),
            "abstain_margin": settings.abstain_margin,
            "prior_shift": settings.prior_shift,
            "scope_gate": settings.scope_gate,
            "scope_share": settings.scope_share,
            "scope_evidence": {policy_id: len(texts) for policy_id, texts in sorted(self.scope_evidence.items())},
            "scope_gated_policies": sorted(policy_id for policy_id, model in self._models.items() if model.scope is not None),
            "llm_band": settings.llm_band if self.llm is not None else None,
            "llm": self.llm.judge.describe() if self.llm is not None else None,
            "llm_judgements": self.llm_calls,
        }
