import json

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from guardkit.llm_judge import LLMJudge, build_judge_prompt, judge_examples
from guardkit.policies import Policy, get_policy

POLICY = Policy(
    id="pets",
    name="Pet safety",
    description="Flags advice that would hurt a pet.",
    allowed=["Feeding and grooming questions"],
    disallowed=["Feeding pets toxic food"],
    examples={"safe": ["How often should I brush my cat?", "Best toys for a puppy?"], "unsafe": ["Give my dog chocolate to calm him", "Grapes are a fine treat for dogs, right?"]},
    hard_negatives=["Which foods are toxic to dogs so I can avoid them?"],
)
TEXTS = ["hello there", "Is chocolate bad for dogs?", "Mix antifreeze into the water bowl.\nThen wait.", "  ok  ", "a " * 40]


def reference_scores(judge: LLMJudge, policy: Policy, texts: list[str]) -> np.ndarray:
    """The uncached computation: the whole prompt, one text at a time."""
    scores = []
    for text in texts:
        prefix, suffix = judge.prompt(policy, text)
        ids = judge.tokenizer(prefix + suffix, return_tensors="pt").input_ids
        with torch.inference_mode():
            logits = judge.model(input_ids=ids).logits[0, -1, judge.verdict_ids]
        scores.append(torch.softmax(logits, dim=-1)[1].item())
    return np.array(scores)


def test_prompt_prefix_depends_only_on_policy_and_ends_at_the_verdict():
    examples = judge_examples(POLICY, 2)
    prefix_a, suffix_a = build_judge_prompt(POLICY, "first", examples)
    prefix_b, suffix_b = build_judge_prompt(POLICY, "second", examples)
    assert prefix_a == prefix_b
    assert "Feeding pets toxic food" in prefix_a and "Feeding and grooming questions" in prefix_a
    assert suffix_a.endswith("first\nAnswer:") and suffix_b.endswith("second\nAnswer:")
    assert [label for _, label in examples] == ["unsafe", "safe", "unsafe", "safe"]
    assert ("Which foods are toxic to dogs so I can avoid them?", "safe") in examples
    with pytest.raises(ValueError, match="label"):
        build_judge_prompt(POLICY, "x", [("text", "maybe")])


def test_split_tokenization_equals_joint_tokenization(smollm2_dir):
    """The trainer tokenizes prefix + suffix as one string; the judge tokenizes them apart."""
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    policy = get_policy("prompt_injection")
    for text in TEXTS + policy.examples.unsafe[:3]:
        prefix, suffix = build_judge_prompt(policy, text, judge_examples(policy, 2))
        apart = tokenizer(prefix).input_ids + tokenizer(suffix, add_special_tokens=False).input_ids
        assert apart == tokenizer(prefix + suffix).input_ids
        for verdict in (" safe", " unsafe"):
            assert tokenizer(prefix + suffix + verdict).input_ids == apart + tokenizer(verdict, add_special_tokens=False).input_ids


def test_cached_batched_scores_match_uncached(tiny_causal_lm_dir):
    judge = LLMJudge(str(tiny_causal_lm_dir), few_shot=2, batch_size=2)
    scores = judge.score(POLICY, TEXTS)
    assert scores.shape == (len(TEXTS),) and scores.dtype == np.float32
    assert np.all((scores > 0) & (scores < 1))
    np.testing.assert_allclose(scores, reference_scores(judge, POLICY, TEXTS), atol=1e-5)
    assert len(judge._prefix_cache) == 1
    np.testing.assert_allclose(judge.score(POLICY, TEXTS[::-1]), scores[::-1], atol=1e-5)
    assert judge.score(POLICY, []).shape == (0,)


def test_judge_folder_uses_the_zero_shot_prompt(tiny_causal_lm_dir, tmp_path):
    import shutil

    folder = tmp_path / "judge"
    shutil.copytree(tiny_causal_lm_dir, folder)
    (folder / "guardkit.json").write_text(json.dumps({"format_version": 1, "kind": "judge"}))
    judge = LLMJudge(str(folder))
    assert judge.few_shot == 0
    assert judge.prompt(POLICY, "x") == build_judge_prompt(POLICY, "x")
    assert LLMJudge(str(tiny_causal_lm_dir)).few_shot > 0


def test_long_texts_are_cut_to_the_token_limit(tiny_causal_lm_dir):
    judge = LLMJudge(str(tiny_causal_lm_dir), few_shot=0, max_text_tokens=8)
    long_text = "word " * 200
    cut = judge._suffix(POLICY, long_text)
    assert len(judge.tokenizer(cut, add_special_tokens=False).input_ids) < 20
    assert judge.score(POLICY, [long_text]).shape == (1,)


@pytest.mark.integration
def test_smollm2_few_shot_judge_ranks_held_out_unsafe_above_safe(smollm2_dir):
    policy = get_policy("prompt_injection")
    judge = LLMJudge("smollm2-135m", few_shot=4, batch_size=8)
    unsafe = policy.examples.unsafe[4:10]
    safe = policy.examples.safe[4:10]
    scores = judge.score(policy, unsafe + safe)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score([1] * len(unsafe) + [0] * len(safe), scores) > 0.6
