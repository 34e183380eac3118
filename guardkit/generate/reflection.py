"""Self-reflection: a judge re-reads each candidate with the policy and gives its own safe/unsafe verdict.

Two judges:
  LogitJudge  a local causal LM through `guardkit.llm_judge.LLMJudge`: P(unsafe) from the verdict-token logits,
              KV-cached policy prefix, batched. A small model's scores are compressed (e.g. 0.05-0.35), so the
              decision threshold is calibrated per policy on the policy's own examples that are not in the prompt.
  ChatJudge   any chat model on an OpenAI-compatible endpoint, asked for JSON {label, rationale}.
Verdicts are cached in candidates.jsonl, so a resumed run never judges a text twice.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from guardkit.generate.backends import GeneratorBackend
from guardkit.generate.parsing import parse_verdict
from guardkit.generate.prompting import Response, judge_chat_prompt
from guardkit.generate.store import CandidateStore
from guardkit.llm_judge import LLMJudge, judge_examples
from guardkit.policies import Policy

# Held-out policy examples per label used to calibrate the logit judge's threshold (bounded: each costs a judgement).
CALIBRATION_PER_LABEL = 12


@dataclass(frozen=True)
class Verdict:
    label: str
    score: float  # P(unsafe) (logit judge) or 0/1 (chat judge)
    rationale: str


class Judge(ABC):
    id: str  # names the judge in the verdict cache: a different judge never reuses another's verdicts

    @abstractmethod
    def raw_scores(self, policy: Policy, texts: Sequence[str]) -> list[tuple[float, str] | None]:
        """(P(unsafe), rationale) per text, None where the judge gave no usable answer."""

    def threshold(self, policy: Policy, cached_scores) -> float:
        return 0.5

    def describe(self) -> dict[str, object]:
        return {"judge": self.id}


class LogitJudge(Judge):
    def __init__(self, model: str, few_shot: int | None, batch_size: int, device: str | None):
        self.model_name = model
        self.llm = LLMJudge(model, few_shot=few_shot, batch_size=batch_size, device=device)
        self.id = f"transformers:{model}:few_shot={self.llm.few_shot}"
        self.calibration: dict[str, dict[str, float]] = {}

    def raw_scores(self, policy: Policy, texts: Sequence[str]) -> list[tuple[float, str] | None]:
        scores = self.llm.score(policy, texts)
        return [(float(score), f"{self.model_name} P(unsafe)={score:.3f}") for score in scores]

    def calibration_examples(self, policy: Policy) -> list[tuple[str, str]]:
        """Policy examples the judge prompt does not contain, up to CALIBRATION_PER_LABEL per label."""
        in_prompt = {text for text, _ in judge_examples(policy, self.llm.few_shot)}
        held_out: list[tuple[str, str]] = []
        for label in ("safe", "unsafe"):
            texts = [text for text, pair_label in policy.all_examples() if pair_label == label and text not in in_prompt]
            held_out += [(text, label) for text in texts[:CALIBRATION_PER_LABEL]]
        return held_out

    def threshold(self, policy: Policy, cached_scores) -> float:
        """The threshold with the best balanced accuracy on held-out policy examples (0.5 without both labels)."""
        if policy.id not in self.calibration:
            examples = self.calibration_examples(policy)
            scores = cached_scores(policy, [text for text, _ in examples])
            labels = np.array([label == "unsafe" for _, label in examples])
            values = np.array([score for score, _ in scores])
            threshold, accuracy = best_threshold(values, labels)
            self.calibration[policy.id] = {"threshold": threshold, "held_out_balanced_accuracy": accuracy, "held_out": len(examples)}
        return self.calibration[policy.id]["threshold"]

    def describe(self) -> dict[str, object]:
        return {"judge": self.id, "backend": "transformers", "model": self.model_name, "few_shot": self.llm.few_shot, "calibration": self.calibration}


def best_threshold(scores: np.ndarray, unsafe: np.ndarray) -> tuple[float, float]:
    """(threshold, balanced accuracy) maximising balanced accuracy; the middle one among equally good thresholds."""
    if unsafe.all() or not unsafe.any():
        return 0.5, float("nan")
    values = np.unique(scores)
    candidates = np.concatenate([[values[0] - 1e-6], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-6]])
    accuracies = np.array([(np.mean(scores[unsafe] >= t) + np.mean(scores[~unsafe] < t)) / 2 for t in candidates])
    best = np.flatnonzero(accuracies == accuracies.max())
    return float(candidates[best[len(best) // 2]]), float(accuracies.max())


class ChatJudge(Judge):
    def __init__(self, backend: GeneratorBackend, parse_retries: int):
        self.backend = backend
        self.parse_retries = parse_retries
        self.id = f"{backend.name}:{backend.model_name}:chat"
        self.unparseable = 0

    def raw_scores(self, policy: Policy, texts: Sequence[str]) -> list[tuple[float, str] | None]:
        results: list[tuple[float, str] | None] = [None] * len(texts)
        pending = list(range(len(texts)))
        for _ in range(self.parse_retries + 1):
            if not pending:
                break
            prompts = [judge_chat_prompt(str(index), policy, texts[index]) for index in pending]

            def collect(response: Response) -> None:
                verdict = parse_verdict(response.text)
                if verdict is None:
                    self.unparseable += 1
                else:
                    label, rationale = verdict
                    results[int(response.prompt_id)] = (1.0 if label == "unsafe" else 0.0, rationale)

            self.backend.run(prompts, collect)
            pending = [index for index in pending if results[index] is None]
        return results

    def describe(self) -> dict[str, object]:
        return {"judge": self.id, **self.backend.describe(), "unparseable_answers": self.unparseable}


class CachedJudge:
    """A judge whose scores are read from and written to candidates.jsonl, so no text is judged twice."""

    def __init__(self, judge: Judge, store: CandidateStore):
        self.judge = judge
        self.store = store

    def scores(self, policy: Policy, texts: Sequence[str]) -> list[tuple[float, str] | None]:
        cached = [self.store.verdict(self.judge.id, policy.id, text) for text in texts]
        missing = sorted({text for text, record in zip(texts, cached) if record is None})
        fresh = dict(zip(missing, self.judge.raw_scores(policy, missing))) if missing else {}
        new_records = [(text, result[0], result[1]) for text, result in fresh.items() if result is not None]
        if new_records:
            self.store.record_verdicts(self.judge.id, policy.id, new_records)
        results = []
        for text, record in zip(texts, cached):
            results.append((record["score"], record["rationale"]) if record is not None else fresh.get(text))
        return results

    def threshold(self, policy: Policy) -> float:
        """The judge's decision threshold on P(unsafe) under `policy` (calibrated once per policy)."""
        return self.judge.threshold(policy, self._calibration_scores)

    def verdicts(self, policy: Policy, texts: Sequence[str]) -> list[Verdict | None]:
        threshold = self.threshold(policy)
        results = []
        for result in self.scores(policy, texts):
            if result is None:
                results.append(None)
            else:
                score, rationale = result
                results.append(Verdict("unsafe" if score >= threshold else "safe", score, rationale))
        return results

    def _calibration_scores(self, policy: Policy, texts: Sequence[str]) -> list[tuple[float, str]]:
        return [result if result is not None else (0.5, "") for result in self.scores(policy, texts)]
