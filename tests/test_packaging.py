"""The wheel is the product: built with `python -m build`, checked with twine, installed into a fresh virtual
environment without the checkout on the path, and used from a temporary folder.

The fresh environment gets guardkit from the wheel alone (`--no-deps`); its dependencies are the test
environment's, reached through a `.pth` line naming that environment's site-packages (so nothing is
downloaded and the checkout's editable install is not seen).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from dataclasses import asdict
from pathlib import Path

import pytest

import guardkit

REPO = Path(__file__).resolve().parents[1]
# Folders the package reads at run time that this checkout has; setup.py may list more (shipped once they exist).
PRESENT = ("dataset_cards", "model_cards", "benchmarks/policy_bench", "spaces/guardkit")


def shipped_folders() -> tuple[str, ...]:
    """setup.py's SHIPPED_FOLDERS, read without running setup.py."""
    tree = ast.parse((REPO / "setup.py").read_text())
    return next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "SHIPPED_FOLDERS"
    )


def _run(command: list[str], cwd: Path, env: dict | None = None, timeout: int = 600) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, command))} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _isolated_env() -> dict:
    """The environment of a user outside the checkout: no PYTHONPATH, offline as the suite is."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["HF_HUB_OFFLINE"] = "1"
    return env


@pytest.fixture(scope="session")
def dist(tmp_path_factory) -> dict[str, Path]:
    """The sdist and the wheel `python -m build` makes from the checkout (the wheel built from the sdist)."""
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: the suite runs offline, and the test environment has the build requirements.
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(REPO)], cwd=REPO)
    return {"wheel": next(out.glob("*.whl")), "sdist": next(out.glob("*.tar.gz"))}


def make_venv(folder: Path, requirement: str) -> Path:
    """A fresh virtual environment with guardkit installed from `requirement` alone (a wheel file or a
    requirements line), offline; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", "--no-index", requirement], cwd=folder)
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=folder).strip())
    # A plain path line: the test environment's packages become importable, its .pth files (the editable
    # install of this checkout among them) are not run.
    paths = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "test_environment.pth").write_text("\n".join(paths) + "\n")
    return python


@pytest.fixture(scope="session")
def venv(dist, tmp_path_factory) -> Path:
    return make_venv(tmp_path_factory.mktemp("venv") / "env", str(dist["wheel"]))


def test_build_and_twine_check_pass_and_the_version_comes_from_the_package(dist):
    _run([sys.executable, "-m", "twine", "check", "--strict", str(dist["wheel"]), str(dist["sdist"])], cwd=REPO)
    assert dist["wheel"].name == f"guardkit-{guardkit.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        metadata = wheel.read(f"guardkit-{guardkit.__version__}.dist-info/METADATA").decode()
    assert f"Version: {guardkit.__version__}\n" in metadata


def test_the_wheel_and_the_sdist_carry_every_file_the_package_reads(dist):
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        names = set(wheel.namelist())
    with tarfile.open(dist["sdist"]) as sdist:
        members = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert set(PRESENT) <= set(shipped_folders()) and all((REPO / folder).is_dir() for folder in PRESENT)
    for folder in shipped_folders():
        files = [path.relative_to(REPO).as_posix() for path in (REPO / folder).rglob("*") if path.is_file()]
        assert files or folder not in PRESENT, folder
        for name in files:
            assert f"guardkit/_shipped/{name}" in names, f"{name} is not in the wheel"
            assert name in members, f"{name} is not in the sdist"
    shipped_yaml = {f"guardkit/policies/{path.name}" for path in (REPO / "guardkit" / "policies").glob("*.yaml")}
    prompts = {f"guardkit/generate/prompts/{path.name}" for path in (REPO / "guardkit" / "generate" / "prompts").iterdir()}
    assert shipped_yaml | prompts | {"guardkit/evaluate/templates/report.md.jinja"} <= names
    assert not [name for name in names if name.endswith(".pyc") or "__pycache__" in name]


def test_the_installed_wheel_finds_what_it_reads_and_runs_policy_bench_outside_the_checkout(venv, tmp_path, tiny_bert_dir):
    from tiny_models import save_tiny_guard

    guard = save_tiny_guard(tmp_path / "guard", tiny_bert_dir, "task", ("jailbreak",), 128)
    work = tmp_path / "work"
    work.mkdir()
    script = """
import json
from pathlib import Path
import guardkit
from guardkit import Guard, Policy
from guardkit.evaluate.config import DEFAULT_POLICY_BENCH_DIR, DEFAULT_POLICY_FOLLOWING_DIR
from guardkit.generate.card import TEMPLATE as DATASET_TEMPLATE
from guardkit.resources import shipped_path
from guardkit.guard_card import TEMPLATE as MODEL_TEMPLATE

folders = {"bench": DEFAULT_POLICY_BENCH_DIR, "following": DEFAULT_POLICY_FOLLOWING_DIR, "space": str(shipped_path("spaces/guardkit"))}
print(json.dumps({
    "package": guardkit.__file__,
    "paths": [str(DATASET_TEMPLATE), str(MODEL_TEMPLATE), *folders.values()],
    # (pip byte-compiles the Space's app.py where it installs it; the Space's own copy never has __pycache__)
    "files": {name: sorted(str(path.relative_to(folder)) for path in Path(folder).rglob("*") if path.is_file() and "__pycache__" not in path.parts)
              for name, folder in folders.items()},
    "api": [Guard.__name__, Policy.__name__],
}))
"""
    env = _isolated_env()
    report = json.loads(_run([str(venv), "-c", script], cwd=work, env=env))
    venv_root = venv.parent.parent
    assert Path(report["package"]).is_relative_to(venv_root)  # the wheel's guardkit, not the checkout's
    assert all(Path(path).is_relative_to(venv_root) and Path(path).exists() for path in report["paths"])
    for name, folder in (("bench", "benchmarks/policy_bench"), ("following", "benchmarks/policy_following"), ("space", "spaces/guardkit")):
        in_checkout = sorted(str(path.relative_to(REPO / folder)) for path in (REPO / folder).rglob("*") if path.is_file())
        assert report["files"][name] == in_checkout  # every file, subfolders included
    assert report["api"] == ["Guard", "Policy"]

    guardkit_command = venv.parent / "guardkit"
    _run(
        [str(guardkit_command), "evaluate", "--suite", "policy-bench", "--model", str(guard), "--output", "eval", "--bootstrap_resamples", "10", "--policy_bench_half", "all"],
        cwd=work,
        env=env,
    )
    results = json.loads((work / "eval" / "results.json").read_text())
    assert results["guardkit_version"] == guardkit.__version__
    bench = [record for record in results["results"] if record["suite"] == "policy-bench" and record["policy"] == "jailbreak"]
    assert {"f1", "recall"} <= {record["metric"] for record in bench}
    assert all(record["model"] == "guard" and record["n"] >= 60 for record in bench)  # every hand-written jailbreak row


def test_the_installed_wheel_renders_a_dataset_card_and_a_model_card_from_its_templates(venv, tmp_path):
    """The sample stats are tests/test_generate_card.py's: the card renders from what generate records."""
    from test_generate_card import FIXTURE, _stats

    from guardkit.generate.config import GenerateConfig

    inputs = {
        "stats": _stats(),
        "generation": asdict(GenerateConfig(policies=[str(FIXTURE)], output="data", push_to_hub="org/pets")),
        "policy": str(FIXTURE),
    }
    (tmp_path / "inputs.json").write_text(json.dumps(inputs))
    script = """
import json
from pathlib import Path
from guardkit.generate.card import render_card
from guardkit.policies import load_policies
from guardkit.guard_card import CardResult, render_guard_card

inputs = json.loads(Path("inputs.json").read_text())
policies = load_policies([inputs["policy"]])
render_card(
    name="pets", policies=policies, split_rows={"default": {"train": 10, "test": 4}, "multitask": {"train": 12, "test": 4}},
    stats=inputs["stats"], generation=inputs["generation"], examples=[], license="apache-2.0",
).save("dataset_card.md")
render_guard_card(
    kind="task", policies=policies, base_model="sentence-transformers/all-MiniLM-L6-v2", datasets=[], license="apache-2.0",
    threshold=0.5, calibration="max F1 on validation", max_length=128,
    results=[CardResult("all", {"f1": 0.9, "precision": 0.9, "recall": 0.9, "fpr": 0.1, "support": 8})], repo_id="org/pet-guard",
).save("model_card.md")
"""
    _run([str(venv), "-c", script], cwd=tmp_path, env=_isolated_env())
    from huggingface_hub import DatasetCard, ModelCard

    dataset_card = DatasetCard.load(tmp_path / "dataset_card.md")
    assert dataset_card.data.task_categories == ["text-classification"] and "Feeding pets foods" in dataset_card.text
    model_card = ModelCard.load(tmp_path / "model_card.md")
    assert model_card.data.pipeline_tag == "text-classification" and "Guard.from_pretrained('org/pet-guard')" in model_card.text
