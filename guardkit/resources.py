"""Files guardkit reads at run time that live at the repository root: card templates, benchmarks, the Space.

A wheel carries them inside the package, under `guardkit/_shipped/` (setup.py's build step copies them
there); an editable install or a source checkout reads them where they are. Either way they are found
by their path relative to the repository root, e.g. `shipped_path("model_cards/guard_card.md")`.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# Where a wheel puts the folders; absent in a checkout, whose root is the package's parent.
SHIPPED_DIR = PACKAGE_DIR / "_shipped"


def shipped_path(relative: str) -> Path:
    """The installed copy of a repository-root file or folder (`relative` as it is named in the repository)."""
    root = SHIPPED_DIR if SHIPPED_DIR.is_dir() else PACKAGE_DIR.parent
    return root / relative
