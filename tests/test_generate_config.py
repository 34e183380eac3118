from pathlib import Path

import pytest

from guardkit.cli import main
from guardkit.config import parse_config, save_config
from guardkit.errors import GuardkitError
from guardkit.generate.config import GenerateConfig
from guardkit.generate.pipeline import generate

FIXTURE = Path(__file__).parent / "fixtures" / "policies" / "pet_safety.yaml"


def test_cli_flags_as_in_the_issue():
    config = parse_config(
        GenerateConfig,
        ["--policies", "prompt_injection,jailbreak", str(FIXTURE), "--num-per-label", "8", "--output", "/tmp/x", "--backend", "openai",
         "--base-url", "http://127.0.0.1:8000/v1", "--judge", "smollm2-135m", "--seed", "3", "--push-to-hub", "org/data"],
        prog="generate",
        description="",
    )
    assert config.policies == ["prompt_injection,jailbreak", str(FIXTURE)]
    assert (config.num_per_label, config.backend, config.seed, config.push_to_hub) == (8, "openai", 3, "org/data")


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--num_per_label" in text and "the labeller labels against their intended label" in text and "never written anywhere" in text


@pytest.mark.parametrize(
    "options, message",
    [
        ({"num_per_label": 0}, "num-per-label"),
        ({"validation_fraction": 0.5, "test_fraction": 0.5}, "sum to less than 1"),
        ({"augment_obfuscate_fraction": 1.5}, "augment-obfuscate-fraction"),
        ({"max_retries": -1}, "max-retries"),
        ({"dtype": "float16"}, "--dtype must be one of auto, float32, bfloat16"),
        ({"corpora": ["none"], "jailbreak_recombinations": 0, "injection_recombinations": 0}, "no unsafe rows without --generated-unsafe"),
        ({"corpora": ["none,"], "jailbreak_recombinations": 0, "injection_recombinations": 0}, "no unsafe rows without --generated-unsafe"),
    ],
)
def test_invalid_options_are_refused_before_any_work(tmp_path, options, message):
    with pytest.raises(GuardkitError, match=message):
        generate(GenerateConfig(policies=[str(FIXTURE)], output=str(tmp_path / "out"), **options))
    assert not (tmp_path / "out").exists()


def test_a_folder_resumes_only_with_the_same_plan(tmp_path):
    save_config(GenerateConfig(policies=[str(FIXTURE)], output=str(tmp_path), seed=1), tmp_path / "generation.yaml")
    with pytest.raises(GuardkitError, match=r"seed: 1 -> 2.*--config"):
        generate(GenerateConfig(policies=[str(FIXTURE)], output=str(tmp_path), seed=2))


def test_unknown_policy_names_the_shipped_ones(tmp_path):
    with pytest.raises(GuardkitError, match="prompt_injection"):
        generate(GenerateConfig(policies=["no_such_policy"], output=str(tmp_path)))
