"""Training pairs for rule-reading guards: (rule instruction, text, does the text break that rule).

A rule-pair guard reads a policy one disallowed rule at a time and calls a text as unsafe as the rule it
breaks most. Its training pairs come from the dataset's rows and the rules each row records:

- an unsafe row under policy P gives a positive pair for every rule of P it breaks;
- a safe row under P gives negative pairs with P's rules (it breaks none of them): the hard negatives on
  P's topic and the texts that are unsafe under other policies, which are out of P's scope;
- composed instructions: several rules of a policy in one instruction, positive when the row breaks any
  of them, so a guard also reads a rule written as a list;
- paraphrases (reworded rules, other policy names) so that the guard learns to read a rule, not to
  recognise a few fixed strings. Together they make thousands of distinct instructions from the library.

Every pair's label follows from the rules its row records, never from a guess about the new wording.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from datasets import Dataset

from guardkit.stable_random import stable_seed
from guardkit.policies import Policy
from guardkit.policies.schema import rule_instruction

# Ways to write a disallowed rule that keep what it forbids.
RULE_FORMS = (
    "{rule}",
    "No {lower}",
    "Not allowed: {lower}",
    "Flag {lower}",
    "Block anything involving {lower}",
    "{rule} are unsafe",
    "Disallowed: {lower}",
)
# Ways to name the policy that frame the rule.
NAME_FORMS = ("{name}", "{name} policy", "Content rules", "{name} guidelines", "Moderation rule")


def _lower(text: str) -> str:
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def phrase_rule(rule: str, form: str) -> str:
    rule = rule.strip().rstrip(".")
    return form.format(rule=rule, lower=_lower(rule))


def name_variant(policy: Policy, form: str) -> str:
    return form.format(name=policy.name)


def build_rule_pairs(
    rows: Dataset,
    policies: Mapping[str, Policy],
    negatives_per_positive: float,
    paraphrases: bool,
    seed: int,
) -> tuple[Dataset, dict[str, int]]:
    """The (instruction, text, label) pairs of `rows` (columns text, label, policy, rules) and counts.

    A safe row's negative pairs are sampled among its policy's rules so that the whole set has about
    `negatives_per_positive` negatives per positive; unsafe rows without recorded rules give one pair with
    all of their policy's rules in one instruction.
    """
    rng = random.Random(stable_seed(seed, "rule-pairs"))
    positives: list[tuple[str, str]] = []
    negatives: list[tuple[str, str]] = []
    unsafe_rows = sum(1 for label in rows["label"] if label == 1)
    safe_rows = len(rows) - unsafe_rows
    for text, label, policy_id, rules in zip(rows["text"], rows["label"], rows["policy"], rows["rules"]):
        policy = policies[policy_id]
        disallowed = list(policy.disallowed)

        def instruction(rule_list: Sequence[str]) -> str:
            name = name_variant(policy, rng.choice(NAME_FORMS)) if paraphrases else policy.name
            forms = [phrase_rule(rule, rng.choice(RULE_FORMS)) if paraphrases else rule for rule in rule_list]
            return rule_instruction(name, "; ".join(forms))

        if label == 1:
            broken = [rule for rule in rules if rule in disallowed]
            if not broken:
                positives.append((instruction(disallowed), text))
                continue
            for rule in broken:
                positives.append((rule_instruction(policy.name, rule), text))
            if paraphrases:
                positives.append((instruction([broken[0]]), text))
                others = [rule for rule in disallowed if rule not in broken]
                if others:
                    positives.append((instruction(rng.sample(others, min(len(others), rng.randint(1, 2))) + [broken[0]]), text))
        else:
            expected = negatives_per_positive * max(unsafe_rows, 1) * 1.5 / max(safe_rows, 1)
            count = min(len(disallowed), max(1, round(expected + rng.random() - 0.5)))
            for rule in rng.sample(disallowed, count):
                negatives.append((rule_instruction(policy.name, rule) if not paraphrases or rng.random() < 0.5 else instruction([rule]), text))
            # The counterpart of an unsafe row without recorded rules (all rules in one instruction), so that
            # an instruction's length or number of rules never tells the label.
            negatives.append((instruction(disallowed), text))
    pairs = [(first, text, 1) for first, text in positives] + [(first, text, 0) for first, text in negatives]
    rng.shuffle(pairs)
    dataset = Dataset.from_dict(
        {"instruction": [first for first, _, _ in pairs], "text": [text for _, text, _ in pairs], "label": [label for _, _, label in pairs]}
    )
    counts = {"positive": len(positives), "negative": len(negatives), "distinct_instructions": len({first for first, _, _ in pairs})}
    return dataset, counts
