"""A small causal LM used as a policy judge: P(unsafe) from the logits of the verdict token.

One prompt format serves three users: the generator's self-reflection, the evaluation's `llm-judge`
baseline and the JudgeGuard's training prompts (`guardkit train judge` fine-tunes on
`prefix + suffix` followed by the completion `" safe"` or `" unsafe"`).

The prompt is split so that everything that depends only on the policy (instructions, policy text,
few-shot examples) is the prefix. Its KV cache is computed once per policy and reused for every
candidate; only the short suffix (`Text: ...` / `Answer:`) is run per text, batched.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from guardkit.assets import resolve_model
from guardkit.errors import GuardkitError
from guardkit.policies import Policy, get_policy

VERDICT_TOKENS = (" safe", " unsafe")
DEFAULT_FEW_SHOT = 4
JUDGE_INTRO = (
    "You are a content-safety judge. Read the policy, then decide whether the text is safe or unsafe "
    "under this policy only. Answer with one word: safe or unsafe."
)


class JudgeError(GuardkitError):
    """A judge model that cannot score (missing verdict tokens, unreadable folder)."""


def _bullets(items: Sequence[str]) -> str:
    return "\n".join(f"- {item}" for item in items)


def build_judge_prompt(policy: Policy, text: str, examples: Sequence[tuple[str, str]] = ()) -> tuple[str, str]:
    """The judge prompt for `text` under `policy` as (prefix, suffix); the verdict follows `Answer:`.

    `examples` are (text, "safe"|"unsafe") pairs shown before the text. The prefix ends with a single
    newline and the suffix starts with one: tokenizing them apart gives the same ids as tokenizing
    `prefix + suffix` (a blank line at the end of the prefix would merge into one token).
    """
    lines = [
        JUDGE_INTRO,
        "",
        f"Policy: {policy.name}",
        policy.description.strip(),
        "Unsafe:",
        _bullets(policy.disallowed),
        "Safe:",
        _bullets(policy.allowed),
    ]
    for example_text, label in examples:
        if label not in ("safe", "unsafe"):
            raise ValueError(f"example label must be 'safe' or 'unsafe', got {label!r}")
        lines += ["", f"Text: {example_text.strip()}", f"Answer: {label}"]
    prefix = "\n".join(lines) + "\n"
    suffix = f"\nText: {text.strip()}\nAnswer:"
    return prefix, suffix


def judge_examples(policy: Policy, per_label: int) -> list[tuple[str, str]]:
    """`per_label` unsafe and safe examples from the policy, alternating; hard negatives count as safe.

    Half of the safe side are hard negatives when the policy has them: they teach the judge the
    boundary, which is where a weak model errs.
    """
    hard = policy.hard_negatives[: per_label // 2]
    safe = hard + [text for text in policy.examples.safe if text not in hard][: per_label - len(hard)]
    unsafe = policy.examples.unsafe[:per_label]
    pairs: list[tuple[str, str]] = []
    for index in range(max(len(safe), len(unsafe))):
        if index < len(unsafe):
            pairs.append((unsafe[index], "unsafe"))
        if index < len(safe):
            pairs.append((safe[index], "safe"))
    return pairs


def _is_trained_judge(path: str) -> bool:
    marker = Path(path) / "guardkit.json"
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text(encoding="utf-8")).get("kind") == "judge"
    except (OSError, json.JSONDecodeError) as error:
        raise JudgeError(f"{marker}: unreadable ({error}); re-save the judge with `guardkit train judge`") from None


class LLMJudge:
    """Scores texts against a policy with a causal LM: P(unsafe) = softmax over the two verdict logits.

    few_shot: examples per label taken from the policy into the prompt; None means
    `DEFAULT_FEW_SHOT`, except for a JudgeGuard folder (`guardkit.json` kind "judge"), which was
    fine-tuned on the zero-shot prompt and therefore gets none.
    """

    def __init__(
        self,
        model: str = "smollm2-135m",
        few_shot: int | None = None,
        batch_size: int = 16,
        device: str | None = None,
        max_text_tokens: int = 384,
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_name = model
        path = resolve_model(model)
        trained = _is_trained_judge(path)
        self.few_shot = (0 if trained else DEFAULT_FEW_SHOT) if few_shot is None else few_shot
        if self.few_shot < 0 or batch_size < 1:
            raise ValueError("few_shot must be >= 0 and batch_size >= 1")
        self.batch_size = batch_size
        self.max_text_tokens = max_text_tokens
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path).to(self.device).eval()
        self.verdict_ids = [self._single_token(word) for word in VERDICT_TOKENS]
        self._prefix_cache: dict[tuple[str, str], tuple[list[tuple[object, object]], int]] = {}

    def _single_token(self, word: str) -> int:
        ids = self.tokenizer(word, add_special_tokens=False).input_ids
        if len(ids) != 1:
            raise JudgeError(
                f"judge model '{self.model_name}': the verdict {word!r} is {len(ids)} tokens in its tokenizer; "
                "the judge needs a tokenizer where ' safe' and ' unsafe' are single tokens (e.g. smollm2-135m)"
            )
        return ids[0]

    def prompt(self, policy: Policy, text: str) -> tuple[str, str]:
        return build_judge_prompt(policy, text, judge_examples(policy, self.few_shot))

    def _prefix_state(self, policy: Policy):
        """Per-layer (key, value) tensors of the policy prefix and its length, computed once per policy."""
        import torch

        prefix, _ = self.prompt(policy, "")
        key = (policy.id, prefix)
        if key not in self._prefix_cache:
            ids = self.tokenizer(prefix, return_tensors="pt").input_ids.to(self.device)
            with torch.inference_mode():
                cache = self.model(input_ids=ids, use_cache=True).cache
            layers = [(layer.keys, layer.values) for layer in cache.layers]
            self._prefix_cache[key] = (layers, ids.shape[1])
        return self._prefix_cache[key]

    def score(self, policy: Policy | str, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """P(unsafe) for each text under `policy` (a Policy or a shipped policy id)."""
        import torch
        from tqdm.auto import tqdm
        from transformers import DynamicCache

        if isinstance(policy, str):
            policy = get_policy(policy)
        texts = list(texts)
        scores = np.zeros(len(texts), dtype=np.float32)
        if not texts:
            return scores
        layers, prefix_length = self._prefix_state(policy)
        suffix_ids = [
            self.tokenizer(self._suffix(policy, text), add_special_tokens=False).input_ids for text in texts
        ]
        # Similar lengths in one batch: less padding to run through the model.
        order = sorted(range(len(texts)), key=lambda index: len(suffix_ids[index]))
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        batches = range(0, len(order), self.batch_size)
        for start in tqdm(batches, desc=f"judging {policy.id}", unit="batch", disable=not progress):
            members = order[start : start + self.batch_size]
            lengths = [len(suffix_ids[index]) for index in members]
            width = max(lengths)
            # Right padding: with causal attention a real token never sees the pads after it, so the
            # logits at each row's last real token are exact without any mask over the pads.
            batch = torch.full((len(members), width), pad_id, dtype=torch.long)
            for row, index in enumerate(members):
                batch[row, : lengths[row]] = torch.tensor(suffix_ids[index])
            cache = DynamicCache(
                ddp_cache_data=[(keys.expand(len(members), -1, -1, -1), values.expand(len(members), -1, -1, -1)) for keys, values in layers],
                config=self.model.config,
            )
            positions = torch.arange(prefix_length, prefix_length + width).unsqueeze(0).expand(len(members), -1)
            with torch.inference_mode():
                logits = self.model(
                    input_ids=batch.to(self.device),
                    cache=cache,
                    position_ids=positions.to(self.device),
                    use_cache=True,
                ).logits
            last = torch.tensor(lengths, device=logits.device) - 1
            verdict_logits = logits[torch.arange(len(members), device=logits.device), last][:, self.verdict_ids].float()
            probabilities = torch.softmax(verdict_logits, dim=-1)[:, 1].cpu().numpy()
            scores[members] = probabilities
        return scores

    def _suffix(self, policy: Policy, text: str) -> str:
        """The suffix for `text`, with over-long texts cut to `max_text_tokens` (keeps judging fast)."""
        ids = self.tokenizer(text, add_special_tokens=False).input_ids
        if len(ids) > self.max_text_tokens:
            text = self.tokenizer.decode(ids[: self.max_text_tokens])
        return build_judge_prompt(policy, text)[1]
