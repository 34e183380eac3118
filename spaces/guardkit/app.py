"""The guardkit Space: the page from `guardkit.demo`, serving the guards named in this folder's README.

`guardkit publish spaces/guardkit --repo-id ORG/NAME --model ORG/GUARD` fills the README's `models` and
uploads guardkit itself with the Space. GUARDKIT_MODEL (a Space variable) overrides the README; locally
(`make space`, run from the repository root) the page opens the guards of the last `make reproduce`.
"""

from pathlib import Path

from guardkit.demo import build_app, space_config

demo = build_app(space_config(Path(__file__).parent))

if __name__ == "__main__":
    demo.launch()
