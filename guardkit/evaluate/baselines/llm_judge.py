"""`llm-judge`: the policy as a prompt to a local causal LM (Llama Guard / ShieldGemma style).

The prompt, the few-shot examples and the scoring (softmax over the next-token logits of " safe" and
" unsafe") are guardkit.llm_judge's, the same that the generator's self-reflection and the JudgeGuard
use. The verdict is the more likely word, hence the threshold 0.5.
"""

from __future__ import annotations

import numpy as np

from guardkit.assets import resolve_model
from guardkit.evaluate.baselines import register_baseline
from guardkit.evaluate.scorers import Scorer, ScorerSpec, folder_size
from guardkit.policies import Policy

VERDICT_THRESHOLD = 0.5


@register_baseline("llm-judge")
class LLMJudgeBaseline(Scorer):
    is_baseline = True

    def __init__(self, name: str, judge):
        super().__init__(name, ScorerSpec("baseline", name), VERDICT_THRESHOLD)
        self.judge = judge

    @classmethod
    def from_config(cls, config) -> "LLMJudgeBaseline":
        from guardkit.llm_judge import LLMJudge

        judge = LLMJudge(config.judge_model, few_shot=config.judge_few_shot, batch_size=config.batch_size, device=config.device)
        return cls(cls.registry_name, judge)

    @property
    def own_policies(self) -> list[str]:
        return []

    def can_score(self, policy_id: str) -> bool:
        return True

    def _score(self, policy: Policy, texts: list[str]) -> np.ndarray:
        return self.judge.score(policy, texts)

    def size_on_disk(self) -> int:
        return folder_size(resolve_model(self.judge.model_name))
