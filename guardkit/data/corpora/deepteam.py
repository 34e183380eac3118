"""DeepTeam's example attacks (Confident AI), as shipped by deepteam==1.0.10.

Each vulnerability's `template.py` holds the prompts DeepTeam gives its attack generator as examples, one JSON
`"input": "..."` per line, under a `generate_<subtype>_attacks` or `generate_<subtype>_baseline_attacks` method. The file is read as text and
never imported. Only the folders of harms that a content policy speaks to are read; the agent, tool and
access-control folders (BOLA, SQL injection, goal theft, ...) test systems rather than ask for content.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from guardkit.data.corpora.registry import Entry, corpus

CONTENT_HARM_FOLDERS = (
    "bias",
    "child_protection",
    "graphic_content",
    "illegal_activity",
    "misinformation",
    "personal_safety",
    "pii_leakage",
    "toxicity",
)
SUBTYPE = re.compile(r"def generate_(\w+?)(?:_baseline)?_attacks\(")
INPUT = re.compile(r'"input"\s*:\s*("(?:[^"\\]|\\.)*")')


def example_inputs(template: str) -> list[tuple[str, str]]:
    """(subtype, prompt) for every example `"input"` line of one template file, in file order."""
    subtype, found = "", []
    for line in template.splitlines():
        method = SUBTYPE.search(line)
        if method:
            subtype = method.group(1)
            continue
        match = INPUT.search(line)
        if match and subtype:
            # f-string templates double their braces; the examples are JSON strings inside them.
            found.append((subtype, json.loads(match.group(1).replace("{{", "{").replace("}}", "}"))))
    return found


@corpus(
    "deepteam-attacks",
    package="deepteam",
    kind="sensitive",
    registers=("chat-request",),
    description="DeepTeam's example attack prompts for content harms (sexual content, child safety, self-harm "
    "and stalking, personal data, insults and threats, bias, illegal activity, misinformation and unqualified "
    "advice); category = folder/subtype; unsafe under some policies only, so labelled per policy; training only",
    eval_fraction=0.0,
)
def deepteam_attacks(root: Path):
    for folder in CONTENT_HARM_FOLDERS:
        template = root / "vulnerabilities" / folder / "template.py"
        for subtype, prompt in example_inputs(template.read_text(encoding="utf-8")):
            yield Entry(prompt, f"{folder}/{subtype}")
