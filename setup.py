"""The build step that puts the repository-root folders guardkit reads at run time inside the wheel.

Card templates, the hand-written benchmarks and the Space live at the repository root, where the design
and the docs name them. A wheel carries a copy under `guardkit/_shipped/` (`guardkit.resources` looks
there first); an editable install reads them from the checkout. Metadata lives in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

ROOT = Path(__file__).resolve().parent
# Every file under these folders ships; a folder missing from a checkout is skipped.
SHIPPED_FOLDERS = (
    "dataset_cards",
    "model_cards",
    "benchmarks/policy_bench",
    "benchmarks/policy_following",
    "spaces/guardkit",
)
PACKAGED_UNDER = "guardkit/_shipped"
# Local leftovers, never part of a release.
SKIPPED_NAMES = {"__pycache__", ".ipynb_checkpoints", ".DS_Store"}


def shipped_files() -> list[str]:
    """The files to ship, relative to the repository root (also the sdist's extra members)."""
    found = []
    for folder in SHIPPED_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*")):
            relative = path.relative_to(ROOT)
            if path.is_file() and not SKIPPED_NAMES & set(relative.parts) and path.suffix != ".pyc":
                found.append(relative.as_posix())
    return found


class BuildPyWithShippedFolders(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return  # an editable install reads the folders in place
        for relative in shipped_files():
            target = Path(self.build_lib) / PACKAGED_UNDER / relative
            self.mkpath(str(target.parent))
            self.copy_file(str(ROOT / relative), str(target))


class SdistWithShippedFolders(sdist):
    # A wheel built from the sdist (what `python -m build` does) must find the folders too.
    def make_release_tree(self, base_dir, files) -> None:
        super().make_release_tree(base_dir, sorted(set(files) | set(shipped_files())))


setup(cmdclass={"build_py": BuildPyWithShippedFolders, "sdist": SdistWithShippedFolders})
