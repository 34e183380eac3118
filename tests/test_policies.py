import textwrap

import pytest

from guardkit.cli import main
from guardkit.policies import Policy, PolicyError, get_policy, load_policies, load_policy_files, shipped_policies

REQUIRED_TOPICS = {
    "prompt_injection",
    "jailbreak",
    "violent_crimes",
    "nonviolent_crimes",
    "hate_harassment",
    "self_harm",
    "sexual_content",
    "privacy_pii",
    "regulated_advice",
    "elections_misinformation",
    "banking_assistant",
}

VALID = textwrap.dedent(
    """\
    id: demo_policy
    name: Demo policy
    description: Flags requests for the secret word.
    allowed: [talking about words]
    disallowed: [asking for the secret word]
    examples:
      safe: ["what is a word?"]
      unsafe: [tell me the secret word]
    hard_negatives: ['is "secret" a word?']
    """
)


def write(tmp_path, text, name="policy.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_valid_policy_loads_and_renders_instruction(tmp_path):
    policy = Policy.from_yaml(write(tmp_path, VALID))
    assert policy.id == "demo_policy"
    assert policy.version == "1"
    instruction = policy.instruction()
    assert instruction.startswith("Demo policy: Flags requests for the secret word.")
    assert "Unsafe: asking for the secret word." in instruction
    assert "talking about words" not in instruction
    assert ("is \"secret\" a word?", "safe") in policy.all_examples()
    assert Policy.from_dict(__import__("yaml").safe_load(policy.to_yaml())) == policy


@pytest.mark.parametrize(
    "broken, field",
    [
        (VALID.replace("id: demo_policy\n", ""), "id"),
        (VALID.replace("name: Demo policy\n", ""), "name"),
        (VALID.replace("description: Flags requests for the secret word.\n", ""), "description"),
        (VALID.replace("allowed: [talking about words]", "allowed: []"), "allowed"),
        (VALID.replace("disallowed: [asking for the secret word]", "disallowed: []"), "disallowed"),
        (VALID.replace('safe: ["what is a word?"]', "safe: []"), "examples.safe"),
        (VALID.replace("unsafe: [tell me the secret word]", "unsafe: []"), "examples.unsafe"),
        (VALID.replace("unsafe: [tell me the secret word]", "unsafe: ['  ']"), "examples.unsafe"),
        (VALID.replace("id: demo_policy", "id: Demo Policy"), "id"),
        (VALID + "colour: blue\n", "colour"),
    ],
)
def test_bad_policy_names_file_and_field(tmp_path, broken, field):
    path = write(tmp_path, broken)
    with pytest.raises(PolicyError) as error:
        Policy.from_yaml(path)
    assert str(path) in str(error.value)
    assert f"field '{field}" in str(error.value)


def test_yaml_error_and_non_mapping_and_missing_file(tmp_path):
    with pytest.raises(PolicyError, match="not valid YAML"):
        Policy.from_yaml(write(tmp_path, "id: [unclosed"))
    with pytest.raises(PolicyError, match="must be a YAML mapping"):
        Policy.from_yaml(write(tmp_path, "- a list", "list.yaml"))
    with pytest.raises(PolicyError, match="no such policy file"):
        Policy.from_yaml(tmp_path / "absent.yaml")


def test_duplicate_ids_are_refused(tmp_path):
    first = write(tmp_path, VALID, "a.yaml")
    second = write(tmp_path, VALID, "b.yaml")
    with pytest.raises(PolicyError, match=r"b\.yaml: field 'id': duplicate policy id 'demo_policy'"):
        load_policy_files([first, second])


def test_load_policies_mixes_ids_and_paths(tmp_path):
    path = write(tmp_path, VALID)
    policies = load_policies(["prompt_injection,jailbreak", str(path)])
    assert [policy.id for policy in policies] == ["prompt_injection", "jailbreak", "demo_policy"]
    with pytest.raises(PolicyError, match="unknown policy 'nope'"):
        load_policies(["nope"])
    with pytest.raises(PolicyError, match="more than once"):
        load_policies(["jailbreak", "jailbreak"])


def test_shipped_library_is_complete_and_rich():
    library = shipped_policies()
    assert REQUIRED_TOPICS <= set(library)
    seen: set[str] = set()
    for policy in library.values():
        assert len(policy.examples.safe) >= 20, policy.id
        assert len(policy.examples.unsafe) >= 20, policy.id
        assert len(policy.hard_negatives) >= 8, policy.id
        assert any("\n" in text.strip() for text, _ in policy.all_examples()), f"{policy.id} has no multi-line example"
        lengths = [len(text) for text, _ in policy.all_examples()]
        assert max(lengths) > 4 * min(lengths) and max(lengths) >= 250, f"{policy.id} examples barely vary in length"
        for text, _ in policy.all_examples():
            assert text not in seen, f"duplicate example text in {policy.id}: {text[:60]}"
            seen.add(text)
        assert len(policy.instruction().split()) < 90, f"{policy.id} instruction is too long for pair models"


def test_policies_cli(tmp_path, capsys):
    assert main(["policies", "list"]) == 0
    listed = capsys.readouterr().out
    assert all(policy_id in listed for policy_id in REQUIRED_TOPICS)
    assert main(["policies", "show", "self_harm"]) == 0
    assert Policy.from_dict(__import__("yaml").safe_load(capsys.readouterr().out)) == get_policy("self_harm")
    good = write(tmp_path, VALID)
    assert main(["policies", "validate", str(good)]) == 0
    assert "ok  demo_policy" in capsys.readouterr().out
    bad = write(tmp_path, VALID.replace("name: Demo policy\n", ""), "bad.yaml")
    assert main(["policies", "validate", str(good), str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "field 'name'" in err and "Traceback" not in err
