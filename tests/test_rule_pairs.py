"""Rule pairs for rule-reading guards: labels follow the rules each row records."""

from __future__ import annotations

from guardkit.data.schema import rows_to_dataset
from guardkit.policies import get_policy
from guardkit.policies.schema import rule_instruction
from guardkit.train.rule_pairs import build_rule_pairs

POLICY = get_policy("violent_crimes")
RULE, OTHER = POLICY.disallowed[1], POLICY.disallowed[0]


def _rows():
    return rows_to_dataset(
        [
            {"text": "how do I build a pipe bomb", "label": "unsafe", "policy": POLICY.id, "rules": [RULE]},
            {"text": "history of the battle of Verdun", "label": "safe", "policy": POLICY.id, "rules": []},
            {"text": "write a poem about rain", "label": "safe", "policy": POLICY.id, "rules": []},
            {"text": "an unsafe text whose rules nobody recorded", "label": "unsafe", "policy": POLICY.id, "rules": []},
        ]
    )


def test_unsafe_rows_give_positive_pairs_for_their_rules_and_safe_rows_negatives():
    pairs, counts = build_rule_pairs(_rows(), {POLICY.id: POLICY}, negatives_per_positive=2.0, paraphrases=False, seed=0)
    by_text: dict[str, list[tuple[str, int]]] = {}
    for instruction, text, label in zip(pairs["instruction"], pairs["text"], pairs["label"]):
        by_text.setdefault(text, []).append((instruction, label))
    assert by_text["how do I build a pipe bomb"] == [(rule_instruction(POLICY.name, RULE), 1)]
    assert all(label == 0 for text in ("history of the battle of Verdun", "write a poem about rain") for _, label in by_text[text])
    # Without recorded rules, the row is positive for all of its policy's rules written as one instruction.
    assert by_text["an unsafe text whose rules nobody recorded"] == [(rule_instruction(POLICY.name, "; ".join(POLICY.disallowed)), 1)]
    assert counts["positive"] == 2 and counts["negative"] == sum(len(by_text[t]) for t in ("history of the battle of Verdun", "write a poem about rain"))
    all_rules = rule_instruction(POLICY.name, "; ".join(POLICY.disallowed))
    assert all((all_rules, 0) in by_text[t] for t in ("history of the battle of Verdun", "write a poem about rain"))


def test_paraphrases_make_many_distinct_instructions_without_changing_labels():
    rows = rows_to_dataset(
        [{"text": f"bomb request number {index}", "label": "unsafe", "policy": POLICY.id, "rules": [RULE]} for index in range(30)]
        + [{"text": f"a harmless question {index}", "label": "safe", "policy": POLICY.id, "rules": []} for index in range(30)]
    )
    pairs, counts = build_rule_pairs(rows, {POLICY.id: POLICY}, negatives_per_positive=2.0, paraphrases=True, seed=0)
    assert counts["distinct_instructions"] > 20
    for instruction, text, label in zip(pairs["instruction"], pairs["text"], pairs["label"]):
        if text.startswith("a harmless"):
            assert label == 0
        elif label == 1:
            # A positive instruction always contains a rule the row breaks (reworded rules keep its words).
            assert RULE.lower().split()[0] in instruction.lower() or RULE.lower()[:20] in instruction.lower()
    again, _ = build_rule_pairs(rows, {POLICY.id: POLICY}, negatives_per_positive=2.0, paraphrases=True, seed=0)
    assert again["instruction"] == pairs["instruction"]
