"""Publish-ready copies of guardkit folders, with what is known only at publish time written in.

A guard trained from a local dataset folder names that folder; the copy that is uploaded names the
dataset's Hub id instead (the card's `datasets` and model-index, `guardkit.json`), a UniGuard's card
names its sources' Hub ids as `base_model`, and the usage examples name the repo the guard goes to.
A Space's copy gets the guards it serves (`models`), their training data (`datasets`) and the
requirement that installs guardkit: by default a wheel built from this checkout, uploaded beside app.py
and installed from the Space repo's own URL (a Space installs its requirements before its files arrive).

A copy is a folder of symbolic links to the source files (weights are not duplicated); the files that
change are written anew in its place, so the source folders are never modified.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from huggingface_hub import ModelCard, SpaceCard, constants

from guardkit import __version__
from guardkit.errors import GuardkitError
from guardkit.guard import MANIFEST_FILE, DatasetRef, read_manifest
from guardkit.guard_card import placeholder_repo_id
from guardkit.resources import PACKAGE_DIR, SHIPPED_DIR

REQUIREMENTS_FILE = "requirements.txt"


class StagingError(GuardkitError):
    """A folder that cannot be made publish-ready as asked; the message says what to pass instead."""


def _link(source: str, target: str) -> None:
    """A symbolic link to the source file: the upload reads through it, and no weights are copied."""
    os.symlink(Path(source).resolve(), target)


def _rewrite(path: Path, text: str) -> None:
    """Replace a linked file by a new one, leaving the file it linked to untouched."""
    path.unlink(missing_ok=True)
    path.write_text(text, encoding="utf-8")


def is_local_path(value: str) -> bool:
    return Path(value).is_absolute() or value.startswith((".", "~"))


class Stage:
    """A temporary folder holding the publish-ready copies; removed on close."""

    def __init__(self):
        self._folder = tempfile.TemporaryDirectory(prefix="guardkit-publish-")
        self.root = Path(self._folder.name)
        self._wheel: Path | None = None

    def wheel(self) -> Path:
        """The guardkit wheel for Spaces, built once per stage."""
        if self._wheel is None:
            self._wheel = build_wheel(self.root / "dist")
        return self._wheel

    def copy(self, folder: Path, name: str) -> Path:
        target = self.root / name
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(folder, target, copy_function=_link, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        return target

    def close(self) -> None:
        self._folder.cleanup()

    def __enter__(self) -> "Stage":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------- guards


def stage_guard(
    stage: Stage, folder: Path, repo_id: str, dataset: DatasetRef | None = None, sources: Mapping[str, str] | None = None
) -> Path:
    """A copy of a guard folder that names `dataset` (its local training data, published as that Hub id),
    a UniGuard's `sources` by their Hub ids (source as merge.yaml names it -> Hub id) and `repo_id` in
    its usage examples. A pair guard carried inside it names the dataset the same way."""
    staged = stage.copy(folder, repo_id.replace("/", "--"))
    manifest = read_manifest(staged)
    if dataset is not None and not any(is_local_path(ref.id) for ref in manifest.datasets):
        named = ", ".join(ref.id for ref in manifest.datasets) or "none"
        raise StagingError(f"{folder} names no local dataset folder to replace by {dataset.id} (it names: {named}); drop --dataset-id")
    _write_published_ids(staged, dataset, sources or {}, repo_id)
    if manifest.pair_folder:
        _write_published_ids(staged / manifest.pair_folder, dataset, {}, None)
    return staged


def _write_published_ids(folder: Path, dataset: DatasetRef | None, sources: Mapping[str, str], repo_id: str | None) -> None:
    manifest = read_manifest(folder)
    local = [ref for ref in manifest.datasets if is_local_path(ref.id)]
    if dataset is not None and local:
        refs = [dataset, *(ref for ref in manifest.datasets if not is_local_path(ref.id))]
        _rewrite(folder / MANIFEST_FILE, json.dumps(dataclasses.replace(manifest, datasets=refs).to_dict(), indent=2) + "\n")
    if not (folder / "README.md").is_file():
        return
    card = ModelCard.load(folder / "README.md")
    if dataset is not None and local:
        card.data.datasets = list(dict.fromkeys([dataset.id, *(card.data.datasets or [])]))
        local_names = {Path(ref.id).name for ref in local} | {ref.id for ref in local}
        for result in card.data.eval_results or []:
            # Results on the local folder name it by its folder name (the training card) or path.
            if result.dataset_type in local_names:
                if result.dataset_name and result.dataset_name.startswith(result.dataset_type):
                    result.dataset_name = dataset.id + result.dataset_name[len(result.dataset_type) :]
                result.dataset_type = dataset.id
                result.dataset_revision = dataset.revision
    text = card.text
    if sources:
        card.data.base_model = list(sources.values())
        for name, hub_id in sources.items():
            text = text.replace(f"`{name}`", f"`{hub_id}`")  # "Merged from `<source>`, ..."
    if repo_id and card.data.model_name:
        text = text.replace(placeholder_repo_id(card.data.model_name), repo_id)
    card.text = text
    _rewrite(folder / "README.md", str(card))


# ---------------------------------------------------------------- Spaces


def build_wheel(folder: Path) -> Path:
    """A wheel of this guardkit, built from the checkout it runs from, into `folder`."""
    root = PACKAGE_DIR.parent
    if SHIPPED_DIR.is_dir() or not (root / "pyproject.toml").is_file():
        raise StagingError(
            "this guardkit was installed from a wheel, so there is no checkout to build the Space's wheel from; pass "
            "--guardkit-requirement with what the Space should install instead, e.g. 'guardkit==X' when an index has "
            "it or 'guardkit @ git+https://github.com/ORG/guardkit@TAG'"
        )
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(folder), str(root)]
    if importlib.util.find_spec("setuptools") is not None:
        command.insert(4, "--no-build-isolation")  # offline, with the setuptools already here
    result = subprocess.run(command, capture_output=True, text=True)
    wheel = folder / f"guardkit-{__version__}-py3-none-any.whl"
    if result.returncode != 0 or not wheel.is_file():
        raise StagingError(f"building the guardkit wheel for the Space failed ({' '.join(command)}):\n{result.stderr[-3000:]}")
    return wheel


def wheel_requirement(repo_id: str, wheel: Path, revision: str | None) -> str:
    """The requirement that installs `wheel` from the Space repo itself; the hash pins its content (and
    changes the line when the wheel changes, so the Space's cached install step reruns)."""
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    return f"guardkit @ {constants.ENDPOINT}/spaces/{repo_id}/resolve/{revision or 'main'}/{wheel.name}#sha256={digest}"


def stage_space(
    stage: Stage,
    folder: Path,
    repo_id: str,
    models: Sequence[str],
    datasets: Sequence[str],
    guardkit_requirement: str | None = None,
    revision: str | None = None,
    private: bool = False,
) -> Path:
    """A copy of a Space folder that serves `models` and installs guardkit: `guardkit_requirement`, else the
    folder's own requirements line for it, else a freshly built wheel uploaded with it."""
    staged = stage.copy(folder, repo_id.replace("/", "--"))
    card = SpaceCard.load(staged / "README.md")
    if models:
        card.data.models = list(models)
    if datasets:
        card.data.datasets = list(datasets)
    _rewrite(staged / "README.md", str(card))
    path = staged / REQUIREMENTS_FILE
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    if guardkit_requirement is None and any(_names_guardkit(line) for line in lines):
        return staged
    if guardkit_requirement is None:
        if private:
            raise StagingError(
                "a private Space cannot download the guardkit wheel from its own repository while it builds (the "
                "build has no token); pass --guardkit-requirement (e.g. 'guardkit @ git+https://github.com/ORG/"
                "guardkit@TAG') or publish the Space public"
            )
        wheel = stage.wheel()
        _link(str(wheel), str(staged / wheel.name))
        guardkit_requirement = wheel_requirement(repo_id, wheel, revision)
    lines = [line for line in lines if not _names_guardkit(line)]
    _rewrite(path, "\n".join([*lines, guardkit_requirement]) + "\n")
    return staged


def _names_guardkit(line: str) -> bool:
    from packaging.requirements import InvalidRequirement, Requirement

    line = line.split("#")[0].strip() if " @ " not in line else line.strip()
    if not line or line.startswith("-"):
        return False
    try:
        return Requirement(line).name.lower() == "guardkit"
    except InvalidRequirement:
        return False


def space_requirement_problems(folder: Path) -> list[str]:
    """What keeps a Space folder's requirements from installing guardkit on the Hub."""
    path = folder / REQUIREMENTS_FILE
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    if any(_names_guardkit(line) for line in lines):
        return []
    return [
        f"{REQUIREMENTS_FILE} does not install guardkit, which no package index has: publish the Space with "
        "`guardkit publish` (it uploads a wheel and adds the line) or add a requirement that installs it"
    ]
