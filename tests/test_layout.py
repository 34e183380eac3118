"""Imports run one way: no stage imports the CLI or another stage, and the inference API imports no stage."""

import ast
from pathlib import Path

import pytest

import guardkit

PACKAGE = Path(guardkit.__file__).parent
STAGES = ("generate", "train", "merge", "evaluate")


def _guardkit_imports(path: Path) -> set[str]:
    """Every `guardkit.*` module a file imports, at module level or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.startswith("guardkit.")}


def _reaches(imports: set[str], package: str) -> bool:
    return any(name == f"guardkit.{package}" or name.startswith(f"guardkit.{package}.") for name in imports)


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_imports_neither_the_cli_nor_another_stage(stage):
    offending = []
    for path in sorted((PACKAGE / stage).rglob("*.py")):
        imports = _guardkit_imports(path)
        offending += [f"{path.relative_to(PACKAGE)} -> {other}" for other in (*STAGES, "cli") if other != stage and _reaches(imports, other)]
    assert offending == []


def test_the_inference_api_imports_no_stage():
    imports = _guardkit_imports(PACKAGE / "guard.py")
    assert [stage for stage in (*STAGES, "cli") if _reaches(imports, stage)] == []


def test_the_check_sees_a_stage_reaching_into_another(tmp_path):
    module = tmp_path / "module.py"
    module.write_text("def load():\n    from guardkit.train.common import TrainingError\n", encoding="utf-8")
    assert _reaches(_guardkit_imports(module), "train")
