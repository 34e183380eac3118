"""`api-judge`: guardkit's judge prompt sent to an OpenAI-compatible endpoint (OpenAI, vLLM, transformers serve).

The prompt is guardkit.llm_judge's, as one user message. The score is P(unsafe) from the logprobs of
the first answer token where the server returns them (OpenAI, vLLM); a server that ignores logprobs
(`transformers serve`) gives only the answer, read as 1.0 for "unsafe", 0.0 for "safe" and 0.5 for
anything else (counted, and reported as a note).
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from guardkit.errors import GuardkitError, server_refusal
from guardkit.evaluate.baselines import register_baseline
from guardkit.evaluate.scorers import Scorer, ScorerSpec
from guardkit.llm_judge import DEFAULT_FEW_SHOT, build_judge_prompt, judge_examples
from guardkit.policies import Policy

VERDICT_THRESHOLD = 0.5
UNDECIDED = 0.5
TOP_LOGPROBS = 10
# A verdict word may come split ("uns" + "afe") or with a trailing period; two tokens cover both.
ANSWER_TOKENS = 3


def verdict_from_logprobs(top_logprobs: list[tuple[str, float]]) -> float | None:
    """P(unsafe) among the first token's alternatives that spell a verdict; None when none does."""
    mass = {"safe": 0.0, "unsafe": 0.0}
    for token, logprob in top_logprobs:
        word = token.strip().strip(".").lower()
        if word in mass:
            mass[word] += math.exp(logprob)
    total = mass["safe"] + mass["unsafe"]
    return mass["unsafe"] / total if total > 0 else None


def verdict_from_answer(answer: str) -> float | None:
    """1.0 / 0.0 for an answer whose first word is unsafe / safe; None otherwise."""
    words = answer.strip().lower().split()
    first = words[0].strip(".,:;!*\"'") if words else ""
    return {"unsafe": 1.0, "safe": 0.0}.get(first)


class APIJudgeError(GuardkitError):
    """The api-judge endpoint is missing, unreachable or refuses the request."""


@register_baseline("api-judge")
class APIJudgeBaseline(Scorer):
    is_baseline = True

    def __init__(self, name: str, client, model: str, few_shot: int, concurrency: int):
        super().__init__(name, ScorerSpec("baseline", name), VERDICT_THRESHOLD)
        self.client = client
        self.model = model
        self.few_shot = few_shot
        self.concurrency = concurrency
        self.undecided = 0
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config) -> "APIJudgeBaseline":
        import openai

        if not config.api_base_url or not config.api_model:
            raise APIJudgeError(
                "the api-judge baseline needs --api_base_url (e.g. http://127.0.0.1:8000/v1) and --api_model "
                "(the model name the server expects)"
            )
        # Local servers (vLLM, transformers serve) accept any key; the client insists on one.
        key = os.environ.get(config.api_key_env) or "no-key"
        client = openai.OpenAI(base_url=config.api_base_url, api_key=key, max_retries=2, timeout=120)
        few_shot = DEFAULT_FEW_SHOT if config.judge_few_shot is None else config.judge_few_shot
        return cls(cls.registry_name, client, config.api_model, few_shot, config.api_concurrency)

    @property
    def own_policies(self) -> list[str]:
        return []

    def can_score(self, policy_id: str) -> bool:
        return True

    def _score_one(self, policy: Policy, text: str) -> float:
        import openai

        prefix, suffix = build_judge_prompt(policy, text, judge_examples(policy, self.few_shot))
        try:
            response = self.client.chat.completions.create(
                model=self.model,
                messages=[{"role": "user", "content": prefix + suffix}],
                max_tokens=ANSWER_TOKENS,
                temperature=0,
                logprobs=True,
                top_logprobs=TOP_LOGPROBS,
            )
        except openai.APIConnectionError as error:
            raise APIJudgeError(f"api-judge: cannot reach {self.client.base_url} ({error}); is the server running?") from None
        except openai.APIStatusError as error:
            raise APIJudgeError(f"api-judge: {self.client.base_url} answered {error.status_code}: {server_refusal(error)}") from None
        choice = response.choices[0]
        content = choice.logprobs.content if choice.logprobs is not None else None
        score = None
        if content:
            score = verdict_from_logprobs([(item.token, item.logprob) for item in content[0].top_logprobs or []])
        if score is None:
            score = verdict_from_answer(choice.message.content or "")
        if score is None:
            with self._lock:
                self.undecided += 1
            return UNDECIDED
        return score

    def _score(self, policy: Policy, texts: list[str]) -> np.ndarray:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return np.array(list(pool.map(lambda text: self._score_one(policy, text), texts)), dtype=np.float64)

    def notes(self) -> list[str]:
        if not self.undecided:
            return []
        return [f"api-judge: {self.undecided} answers named no verdict and scored {UNDECIDED}"]
