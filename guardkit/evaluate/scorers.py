"""What the harness scores with: trained guards and baselines behind one small interface.

A scorer gives P(unsafe) for texts under a policy and decides with its own threshold under that policy.
Every suite talks only to this interface, so guards and baselines meet exactly the same inputs and metrics.
Suites measure `decision_scores`: each scorer's P(unsafe) under each policy mapped so that its own
threshold there sits at DECISION_THRESHOLD (monotone, so rankings and verdicts are the scorer's own), which
lets one threshold serve every scorer and a text scored under several policies be flagged when any flags it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from guardkit.errors import GuardkitError
from guardkit.guard import MAX_TEXT_CHARS, aggregate_windows
from guardkit.policies import Policy

DECISION_THRESHOLD = 0.5


@dataclass(frozen=True)
class ScorerSpec:
    """How to build a scorer again in another process (the efficiency suite measures in a fresh one)."""

    kind: str  # "model" or "baseline"
    name: str  # the --model value, or the baseline's registry name


def folder_size(path: str | Path) -> int:
    """Bytes of every file under `path` (a file's own size when it is one)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


class Scorer(ABC):
    """P(unsafe) for texts under a policy, with a memo so that suites sharing texts score them once."""

    #: True for baselines, False for the guards under evaluation.
    is_baseline: bool = False

    def __init__(self, name: str, spec: ScorerSpec, threshold: float):
        self.name = name
        self.spec = spec
        self.threshold = threshold
        self._memo: dict[tuple[str, str], float] | None = {}

    @property
    @abstractmethod
    def own_policies(self) -> list[str]:
        """The policy ids this scorer was built or trained for (empty: none in particular)."""

    @abstractmethod
    def can_score(self, policy_id: str) -> bool:
        """Whether it can score texts under this policy (a TaskGuard only under its own)."""

    @abstractmethod
    def _score(self, policy: Policy, texts: list[str]) -> np.ndarray:
        """P(unsafe) of each text, computed afresh."""

    def size_on_disk(self) -> int | None:
        """Bytes it needs on disk to run (weights, tokenizer, lists); None when it runs elsewhere."""
        return None

    def training_dataset_ids(self) -> list[tuple[str, str | None]]:
        """(id, revision) of the datasets it was trained on, for decontamination."""
        return []

    def notes(self) -> list[str]:
        """Anything the report should say about how this scorer's numbers came about."""
        return []

    def stored_policy(self, policy_id: str) -> Policy | None:
        """The policy file stored with the guard that scores `policy_id` (None for baselines and unknown ids)."""
        return None

    def disable_memo(self) -> None:
        """Score every call afresh: needed wherever the time of scoring is what is measured."""
        self._memo = None

    def score(self, policy: Policy, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros(0, dtype=np.float64)
        if self._memo is None:
            return np.asarray(self._score(policy, texts), dtype=np.float64)
        missing = list(dict.fromkeys(text for text in texts if (policy.id, text) not in self._memo))
        if missing:
            for text, value in zip(missing, self._score(policy, missing)):
                self._memo[(policy.id, text)] = float(value)
        return np.array([self._memo[(policy.id, text)] for text in texts], dtype=np.float64)

    def score_policies(self, policies: Sequence[Policy], texts: Sequence[str]) -> dict[str, np.ndarray]:
        """P(unsafe) of `texts` under each of `policies`, by policy id: what checking a text against all of them costs."""
        return {policy.id: self.score(policy, texts) for policy in policies}

    def threshold_for(self, policy: Policy) -> float:
        """The threshold on P(unsafe) this scorer decides with under `policy`."""
        return self.threshold

    def decision_scores(self, policies: Sequence[Policy], texts: Sequence[str]) -> np.ndarray:
        """Scores whose DECISION_THRESHOLD is this scorer's verdict, under the strictest of `policies`.

        Each policy's P(unsafe) is mapped piecewise-linearly so that its own threshold lands on
        DECISION_THRESHOLD; the maximum over policies is what a deployment checking them all would flag.
        """
        scores = self.score_policies(policies, texts)
        return np.max(np.stack([to_decision_scale(scores[policy.id], self.threshold_for(policy)) for policy in policies]), axis=0)


def to_decision_scale(scores: np.ndarray, threshold: float) -> np.ndarray:
    """`scores` mapped monotonically onto [0, 1] with `threshold` sent to DECISION_THRESHOLD."""
    scores = np.asarray(scores, dtype=np.float64)
    below = DECISION_THRESHOLD * scores / threshold if threshold > 0 else np.zeros_like(scores)
    above = (
        DECISION_THRESHOLD + (1 - DECISION_THRESHOLD) * (scores - threshold) / (1 - threshold)
        if threshold < 1
        else np.full_like(scores, DECISION_THRESHOLD)
    )
    return np.where(scores >= threshold, above, below)


class GuardScorer(Scorer):
    """A trained guard (task, multitask, uniguard or judge folder) read through `guardkit.guard.Guard`."""

    def __init__(self, name: str, spec: ScorerSpec, guard, folder: Path, batch_size: int):
        super().__init__(name, spec, guard.threshold)
        self.guard = guard
        self.folder = folder
        self.batch_size = batch_size

    @classmethod
    def load(cls, model: str, name: str, batch_size: int, device: str | None = None) -> "GuardScorer":
        from guardkit.guard import Guard

        guard = Guard.from_pretrained(model, device=device)
        if Path(model).is_dir():
            folder = Path(model)
        else:
            from huggingface_hub import snapshot_download

            # from_pretrained has just put the repo in the Hub cache; this only finds it there.
            folder = Path(snapshot_download(model, local_files_only=True))
        return cls(name, ScorerSpec("model", model), guard, folder, batch_size)

    @property
    def kind(self) -> str:
        return self.guard.kind

    @property
    def own_policies(self) -> list[str]:
        return self.guard.policy_ids

    def can_score(self, policy_id: str) -> bool:
        # Pair guards and judges read the policy as input, so they also score policies they never saw.
        return self.guard.manifest.input_format != "text" or policy_id in self.guard.policy_ids

    def threshold_for(self, policy: Policy) -> float:
        # By id, as `_score` reads it: a known id its stored instruction and own threshold, any other the default.
        return self.guard.threshold_for(policy.id)

    @property
    def thresholds(self) -> dict[str, float]:
        """The per-policy thresholds stored in guardkit.json."""
        return dict(self.guard.manifest.thresholds)

    def stored_policy(self, policy_id: str) -> Policy | None:
        return self.guard.policies.get(policy_id)

    def _one_pass(self, policy: Policy) -> bool:
        return self.guard.manifest.input_format == "multilabel" and policy.id in self.guard.manifest.policies

    def _score(self, policy: Policy, texts: list[str]) -> np.ndarray:
        if self._one_pass(policy):
            scores = self._score_one_pass(texts)
            if self._memo is not None:
                # The same pass scored every policy the guard knows: suites asking for the others next find them here.
                for policy_id, values in scores.items():
                    self._memo.update(((policy_id, text), float(value)) for text, value in zip(texts, values))
            return scores[policy.id]
        # By id for a policy the guard was trained on (it reads the instruction stored with it), as a
        # Policy for any other (it reads that policy's own instruction).
        known = policy.id in self.guard.manifest.policies
        parts, owners = split_long_texts(texts)
        return self._join_parts(self.guard.score(parts, policy=policy.id if known else policy, batch_size=self.batch_size), owners, len(texts))

    def _score_one_pass(self, texts: list[str]) -> dict[str, np.ndarray]:
        parts, owners = split_long_texts(texts)
        scores = self.guard.score_all(parts, batch_size=self.batch_size)
        return {policy_id: self._join_parts(values, owners, len(texts)) for policy_id, values in scores.items()}

    def _join_parts(self, scores: np.ndarray, owners: np.ndarray, count: int) -> np.ndarray:
        if len(owners) == count:
            return np.asarray(scores)
        # Suites hold real documents longer than a guard takes in one call (MAX_TEXT_CHARS); a deployment
        # splits those and combines the parts the way the guard combines its windows, so the suite does too.
        return aggregate_windows(np.asarray(scores).reshape(-1, 1), owners, count, self.guard.manifest.window_aggregation)[:, 0]

    def score_policies(self, policies: Sequence[Policy], texts: Sequence[str]) -> dict[str, np.ndarray]:
        # Without the memo (timed), one pass for all of them, as a deployment runs it; with it, the first
        # policy's pass fills the memo for the rest.
        if self._memo is None and policies and all(self._one_pass(policy) for policy in policies):
            scores = self._score_one_pass(list(texts))
            return {policy.id: scores[policy.id] for policy in policies}
        return super().score_policies(policies, texts)

    def size_on_disk(self) -> int:
        return folder_size(self.folder)

    def training_dataset_ids(self) -> list[tuple[str, str | None]]:
        return [(ref.id, ref.revision) for ref in self.guard.manifest.datasets]


class GuardSetScorer(Scorer):
    """Guards deployed side by side, each scoring its own policies: a folder of TaskGuards (`make reproduce`'s
    taskguards/). Under one policy it is that policy's guard; under several, a text is flagged when any of
    them flags it, the verdict a single TaskGuard cannot give on its own.
    """

    def __init__(self, name: str, spec: ScorerSpec, members: Sequence[GuardScorer]):
        super().__init__(name, spec, DECISION_THRESHOLD)
        self.guards = list(members)
        self.members: dict[str, GuardScorer] = {}
        for member in self.guards:
            for policy_id in member.own_policies:
                if policy_id in self.members:
                    raise GuardkitError(
                        f"{spec.name}: {self.members[policy_id].folder} and {member.folder} both score policy '{policy_id}'; "
                        "a guard set holds one guard per policy"
                    )
                self.members[policy_id] = member

    @classmethod
    def load(cls, folder: str, name: str, batch_size: int, device: str | None = None) -> "GuardSetScorer":
        from guardkit.guard import guard_folders

        members = [GuardScorer.load(str(path), path.name, batch_size, device=device) for path in guard_folders(folder)]
        return cls(name, ScorerSpec("model", folder), members)

    @property
    def kind(self) -> str:
        kinds = {member.kind for member in self.guards}
        return kinds.pop() if len(kinds) == 1 else "guard-set"

    @property
    def own_policies(self) -> list[str]:
        return list(self.members)

    def can_score(self, policy_id: str) -> bool:
        return policy_id in self.members

    def threshold_for(self, policy: Policy) -> float:
        return self.members[policy.id].threshold_for(policy)

    @property
    def thresholds(self) -> dict[str, float]:
        return {policy_id: member.guard.threshold_for(policy_id) for policy_id, member in self.members.items()}

    def stored_policy(self, policy_id: str) -> Policy | None:
        return self.members[policy_id].stored_policy(policy_id) if policy_id in self.members else None

    def _score(self, policy: Policy, texts: list[str]) -> np.ndarray:
        # The set's memo is the one that counts: each text is scored once by the policy's own guard.
        return self.members[policy.id]._score(policy, texts)

    def size_on_disk(self) -> int:
        return sum(member.size_on_disk() for member in self.guards)

    def training_dataset_ids(self) -> list[tuple[str, str | None]]:
        return list(dict.fromkeys(ref for member in self.guards for ref in member.training_dataset_ids()))

    def notes(self) -> list[str]:
        return [f"{len(self.guards)} guards side by side, one per policy; under several policies a text is flagged when any flags it"]


def is_guard_set(model: str) -> bool:
    """Whether `model` is a local folder of guard folders rather than one guard."""
    from guardkit.guard import MANIFEST_FILE, guard_folders

    path = Path(model)
    return path.is_dir() and not (path / MANIFEST_FILE).is_file() and bool(guard_folders(path))


def split_long_texts(texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Texts cut into consecutive parts of at most MAX_TEXT_CHARS, and the index of the text each part came from."""
    parts: list[str] = []
    owners: list[int] = []
    for index, text in enumerate(texts):
        for start in range(0, max(len(text), 1), MAX_TEXT_CHARS):
            parts.append(text[start : start + MAX_TEXT_CHARS])
            owners.append(index)
    return parts, np.asarray(owners, dtype=np.int64)


def build_scorer(spec: ScorerSpec, name: str, config) -> Scorer:
    """The scorer a spec describes: a guard loaded from its folder or Hub id, or a registered baseline."""
    if spec.kind == "model":
        loader = GuardSetScorer.load if is_guard_set(spec.name) else GuardScorer.load
        return loader(spec.name, name, config.batch_size, device=config.device)
    from guardkit.evaluate.baselines import build_baseline

    return build_baseline(spec.name, config)
