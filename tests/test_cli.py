import dataclasses

import pytest

from guardkit import cli
from guardkit.config import ConfigError, GuardkitParser, parse_config


@dataclasses.dataclass
class DemoConfig:
    output: str = dataclasses.field(metadata={"help": "where to write"})
    epochs: int = dataclasses.field(default=3, metadata={"help": "passes over the data"})
    texts: list[str] = dataclasses.field(default_factory=list, metadata={"positional": True, "help": "inputs"})


def test_config_file_fills_defaults_and_flags_override(tmp_path):
    config_file = tmp_path / "c.yaml"
    config_file.write_text("output: from-file\nepochs: 7\n")
    config = parse_config(DemoConfig, ["--config", str(config_file), "--epochs", "9", "a", "b"], "x", "d")
    assert config == DemoConfig(output="from-file", epochs=9, texts=["a", "b"])


def test_required_field_still_required_without_config():
    with pytest.raises(SystemExit):
        parse_config(DemoConfig, [], "x", "d")


def test_unknown_key_in_config_file_is_named(tmp_path):
    config_file = tmp_path / "c.yaml"
    config_file.write_text("output: x\nepoch: 2\n")
    with pytest.raises(ConfigError, match=r"unknown option\(s\) epoch"):
        GuardkitParser(DemoConfig).parse_with_config(["--config", str(config_file)])


def test_every_stage_resolves_to_a_config_and_a_runner():
    for name, stage in cli.STAGES.items():
        config_type = cli._load(stage.config)
        assert dataclasses.is_dataclass(config_type), name
        assert callable(cli._load(stage.runner)), name
        for field in dataclasses.fields(config_type):
            assert field.metadata.get("help"), f"{name}: --{field.name} has no help text"


def test_top_level_help_and_unknown_command(capsys):
    assert cli.main([]) == 0
    assert "generate" in capsys.readouterr().out
    assert cli.main(["frobnicate"]) == 2
    assert cli.main(["train"]) == 2
    assert "train multitask" in capsys.readouterr().err
