"""The guardkit Space: the page from `guardkit.demo`, with the guards named in GUARDKIT_MODEL.

Locally (`make space`, run from the repository root) it opens the guards of the last `make reproduce`
when GUARDKIT_MODEL is unset; on the Hub, set GUARDKIT_MODEL in the Space's variables.
"""

from guardkit.demo import DemoConfig, build_app

demo = build_app(DemoConfig())

if __name__ == "__main__":
    demo.launch()
