"""The registry of public guardrail benchmarks, each read into the guardkit dataset schema.

A benchmark is one `register(Benchmark(...))` entry: where it lives on the Hub, what its split holds
(as its dataset card documents it) and a row mapper that reads the dataset's own columns. The mapper
turns one raw row into `text`, `label` ("safe"/"unsafe"), `policy` (the guardkit policy the row's own
category maps to, "" when the dataset has no category or none guardkit covers) and `rationale` (the
dataset's category text), or None for a row that cannot be scored.

`load_benchmark(name)` reads the split from the Hub (or the local `datasets` cache);
`load_benchmark(name, data_files=...)` reads local copies of the dataset's own files instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
from datasets.exceptions import DatasetNotFoundError
from datasets.load import CachedDatasetModuleFactory
from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError

from guardkit.data.schema import rows_to_dataset
from guardkit.errors import GuardkitError

RawRow = Mapping[str, Any]
RowMapper = Callable[[RawRow], dict[str, Any] | None]


class BenchmarkUnavailable(GuardkitError):
    """A benchmark that cannot be read here and now: gated without access, or offline and not cached.

    `reason` is the cause without the benchmark's name, so that a report can name a shared cause once.
    """

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Benchmark:
    name: str
    hub_id: str
    config: str | None
    split: str
    license: str
    num_rows: int
    policies: tuple[str, ...]
    gated: bool
    description: str
    # The `datasets` packaged builder that reads the Hub files ("parquet", "csv", "json").
    file_format: str
    row_mapper: RowMapper

    def to_rows(self, raw_row: RawRow) -> dict[str, Any] | None:
        """One raw row in the guardkit schema, or None when the row cannot be scored (no text, no label)."""
        row = self.row_mapper(raw_row)
        if row is None or not isinstance(row["text"], str) or not row["text"].strip():
            return None
        return {**row, "source": self.name}


BENCHMARKS: dict[str, Benchmark] = {}


def register(benchmark: Benchmark) -> Benchmark:
    if benchmark.name in BENCHMARKS:
        raise ValueError(f"benchmark '{benchmark.name}' is already registered")
    BENCHMARKS[benchmark.name] = benchmark
    return benchmark


def get_benchmark(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise GuardkitError(f"unknown benchmark '{name}'; registered: {', '.join(sorted(BENCHMARKS))}")
    return BENCHMARKS[name]


# ---------------------------------------------------------------------------------------------------
# Mapping helpers
# ---------------------------------------------------------------------------------------------------


def _normalised(category: str) -> str:
    # Cards and data spell the same category with different case and punctuation
    # ("Suicide, Self-Harm and Eating Disorders" vs "Suicide, Self-Harm, and Eating Disorders").
    return re.sub(r"[^a-z0-9]+", " ", category.lower()).strip()


class CategoryPolicies:
    """A dataset's category names mapped to guardkit policy ids; unmapped categories have no policy."""

    def __init__(self, policy_of: Mapping[str, str]):
        self.policy_of = dict(policy_of)
        self._lookup = {_normalised(category): policy for category, policy in policy_of.items()}

    def policy(self, categories: Iterable[str]) -> str:
        """The policy of the first category guardkit covers, '' when it covers none."""
        return next((self._lookup[key] for key in map(_normalised, categories) if key in self._lookup), "")

    def policies(self, *extra: str) -> tuple[str, ...]:
        return tuple(sorted({*self.policy_of.values(), *extra}))


def _row(text: object, unsafe: bool, policy: str = "", rationale: str = "") -> dict[str, Any]:
    return {"text": text, "label": "unsafe" if unsafe else "safe", "policy": policy, "rationale": rationale}


# ---------------------------------------------------------------------------------------------------
# The benchmarks
# ---------------------------------------------------------------------------------------------------


def _toxic_chat_row(raw: RawRow) -> dict[str, Any]:
    # The card's only category is the jailbreaking flag; every other toxic prompt is uncategorised.
    jailbreaking = raw["jailbreaking"] == 1
    return _row(
        raw["user_input"],
        unsafe=raw["toxicity"] == 1,
        policy="jailbreak" if jailbreaking else "",
        rationale="jailbreaking" if jailbreaking else "",
    )


register(
    Benchmark(
        name="toxic-chat",
        hub_id="lmsys/toxic-chat",
        config="toxicchat0124",
        split="test",
        license="cc-by-nc-4.0",
        num_rows=5083,
        # ToxicChat's "toxicity" is broad (usage-policy style) and uncategorised, hence several policies.
        policies=("hate_harassment", "jailbreak", "self_harm", "sexual_content", "violent_crimes"),
        gated=False,
        description="Real user prompts from the Vicuna demo; toxicity=1 is unsafe, jailbreaking=1 marks jailbreaks.",
        file_format="csv",
        row_mapper=_toxic_chat_row,
    )
)


# Ordered most specific first, so a row flagged both "sexual/minors" and "sexual" names the former.
OPENAI_MODERATION_CATEGORIES = {
    "S3": "sexual/minors",
    "SH": "self-harm",
    "H2": "hate/threatening",
    "V2": "violence/graphic",
    "S": "sexual",
    "H": "hate",
    "HR": "harassment",
    "V": "violence",
}
OPENAI_MODERATION_POLICIES = CategoryPolicies(
    {
        "S3": "sexual_content",
        "SH": "self_harm",
        "H2": "hate_harassment",
        "V2": "violent_crimes",
        "S": "sexual_content",
        "H": "hate_harassment",
        "HR": "hate_harassment",
        "V": "violent_crimes",
    }
)


def _openai_moderation_row(raw: RawRow) -> dict[str, Any] | None:
    # The card: a category missing from a sample's JSON means its label is unknown. A sample is unsafe
    # when any known category is flagged and safe when every known one is 0; with none known it is skipped.
    known = {code: raw.get(code) for code in OPENAI_MODERATION_CATEGORIES if raw.get(code) is not None}
    if not known:
        return None
    flagged = [code for code, value in known.items() if value == 1]
    return _row(
        raw["prompt"],
        unsafe=bool(flagged),
        policy=OPENAI_MODERATION_POLICIES.policy(flagged),
        rationale=", ".join(OPENAI_MODERATION_CATEGORIES[code] for code in flagged),
    )


register(
    Benchmark(
        name="openai-moderation",
        hub_id="mmathys/openai-moderation-api-evaluation",
        config=None,
        split="train",
        license="mit",
        num_rows=1680,
        policies=OPENAI_MODERATION_POLICIES.policies(),
        gated=False,
        description="OpenAI's moderation evaluation set (samples-1680); unsafe when any category S,H,V,HR,SH,S3,H2,V2 is 1.",
        file_format="json",
        row_mapper=_openai_moderation_row,
    )
)


AEGIS_POLICIES = CategoryPolicies(
    {
        "Violence": "violent_crimes",
        "Sexual": "sexual_content",
        "Criminal Planning/Confessions": "nonviolent_crimes",
        "Guns and Illegal Weapons": "violent_crimes",
        "Controlled/Regulated Substances": "nonviolent_crimes",
        "Suicide and Self Harm": "self_harm",
        "Sexual (minor)": "sexual_content",
        "Hate/Identity Hate": "hate_harassment",
        "PII/Privacy": "privacy_pii",
        "Harassment": "hate_harassment",
        "Threat": "violent_crimes",
        "Fraud/Deception": "nonviolent_crimes",
        "Malware": "nonviolent_crimes",
        "Political/Misinformation/Conspiracy": "elections_misinformation",
        "Unauthorized Advice": "regulated_advice",
        "Illegal Activity": "nonviolent_crimes",
    }
)


def _aegis_row(raw: RawRow) -> dict[str, Any] | None:
    # Prompts from the Suicide Detection dataset are not distributed: the prompt reads "REDACTED" and
    # `reconstruction_id_if_redacted` points at the source row.
    if raw.get("reconstruction_id_if_redacted") is not None or raw["prompt"] == "REDACTED":
        return None
    if raw["prompt_label"] not in ("safe", "unsafe"):
        return None
    unsafe = raw["prompt_label"] == "unsafe"
    # `violated_categories` annotates the whole interaction, so on a safe prompt it describes the response.
    listed = (raw.get("violated_categories") or "") if unsafe else ""
    categories = [part.strip() for part in listed.split(",") if part.strip()]
    return _row(raw["prompt"], unsafe=unsafe, policy=AEGIS_POLICIES.policy(categories), rationale=", ".join(categories))


register(
    Benchmark(
        name="aegis2",
        hub_id="nvidia/Aegis-AI-Content-Safety-Dataset-2.0",
        config=None,
        split="test",
        license="cc-by-4.0",
        num_rows=1964,
        policies=AEGIS_POLICIES.policies(),
        gated=False,
        description="Nemotron/Aegis 2.0 human-labelled prompts: prompt text with prompt_label; redacted prompts skipped.",
        file_format="json",
        row_mapper=_aegis_row,
    )
)


BEAVERTAILS_POLICIES = CategoryPolicies(
    {
        "animal_abuse": "violent_crimes",
        "child_abuse": "violent_crimes",
        "discrimination,stereotype,injustice": "hate_harassment",
        "drug_abuse,weapons,banned_substance": "nonviolent_crimes",
        "financial_crime,property_crime,theft": "nonviolent_crimes",
        "hate_speech,offensive_language": "hate_harassment",
        "privacy_violation": "privacy_pii",
        "self_harm": "self_harm",
        "sexually_explicit,adult_content": "sexual_content",
        "terrorism,organized_crime": "violent_crimes",
        "violence,aiding_and_abetting,incitement": "violent_crimes",
    }
)


def _beavertails_row(raw: RawRow) -> dict[str, Any] | None:
    # `is_safe` judges the question-answer pair, not the question: a harmful question with a refusal is
    # safe. So the text is the whole exchange; the prompt alone would carry the wrong label.
    prompt, response = raw.get("prompt"), raw.get("response")
    if not prompt or not response:
        return None
    flagged = [category for category, is_flagged in (raw.get("category") or {}).items() if is_flagged]
    return _row(
        f"User: {prompt}\nAssistant: {response}",
        unsafe=not raw["is_safe"],
        policy=BEAVERTAILS_POLICIES.policy(flagged),
        # Category names contain commas, so they are joined with semicolons.
        rationale="; ".join(flagged),
    )


register(
    Benchmark(
        name="beavertails",
        hub_id="PKU-Alignment/BeaverTails",
        config=None,
        split="30k_test",
        license="cc-by-nc-4.0",
        num_rows=3021,
        policies=BEAVERTAILS_POLICIES.policies(),
        gated=False,
        description="BeaverTails QA pairs; text is 'User: prompt / Assistant: response' because is_safe labels the pair.",
        file_format="json",
        row_mapper=_beavertails_row,
    )
)


XSTEST_POLICIES = CategoryPolicies(
    {
        "privacy_public": "privacy_pii",
        "privacy_fictional": "privacy_pii",
        "contrast_privacy": "privacy_pii",
        "real_group_nons_discr": "hate_harassment",
        "nons_group_real_discr": "hate_harassment",
        "contrast_discr": "hate_harassment",
    }
)


def _xstest_row(raw: RawRow) -> dict[str, Any] | None:
    if raw["label"] not in ("safe", "unsafe"):
        return None
    return _row(raw["prompt"], unsafe=raw["label"] == "unsafe", policy=XSTEST_POLICIES.policy([raw["type"]]), rationale=raw["type"])


register(
    Benchmark(
        name="xstest",
        hub_id="walledai/XSTest",
        config=None,
        split="test",
        license="cc-by-4.0",
        num_rows=450,
        # Most unsafe contrasts (homonyms, safe targets, contexts) ask about violence or drugs.
        policies=XSTEST_POLICIES.policies("nonviolent_crimes", "violent_crimes"),
        gated=False,
        description="Exaggerated-safety suite: 250 safe prompts that look unsafe and 200 unsafe contrasts.",
        file_format="parquet",
        row_mapper=_xstest_row,
    )
)


WILDGUARD_POLICIES = CategoryPolicies(
    {
        "cyberattack": "nonviolent_crimes",
        "disseminating_false_or_misleading_information_encouraging_disinformation_campaigns": "elections_misinformation",
        "fraud_assisting_illegal_activities": "nonviolent_crimes",
        "mental_health_over-reliance_crisis": "self_harm",
        "private_information_individual": "privacy_pii",
        "sexual_content": "sexual_content",
        "social_stereotypes_and_unfair_discrimination": "hate_harassment",
        "toxic_language_hate_speech": "hate_harassment",
        "violence_and_physical_harm": "violent_crimes",
    }
)


def _wildguard_row(raw: RawRow) -> dict[str, Any] | None:
    # A few test prompts have no prompt-harm annotation; they cannot be scored.
    if raw["prompt_harm_label"] not in ("harmful", "unharmful"):
        return None
    subcategory = raw.get("subcategory") or ""
    return _row(
        raw["prompt"],
        unsafe=raw["prompt_harm_label"] == "harmful",
        policy=WILDGUARD_POLICIES.policy([subcategory]),
        rationale=f"{subcategory} (adversarial)" if raw.get("adversarial") else subcategory,
    )


register(
    Benchmark(
        name="wildguardtest",
        hub_id="allenai/wildguardmix",
        config="wildguardtest",
        split="test",
        license="odc-by",
        num_rows=1725,
        policies=WILDGUARD_POLICIES.policies(),
        gated=True,
        description="WildGuardTest: human-labelled vanilla and adversarial prompts; prompt_harm_label harmful is unsafe.",
        file_format="parquet",
        row_mapper=_wildguard_row,
    )
)


JBB_POLICIES = CategoryPolicies(
    {
        "Harassment/Discrimination": "hate_harassment",
        "Malware/Hacking": "nonviolent_crimes",
        "Physical harm": "violent_crimes",
        "Economic harm": "nonviolent_crimes",
        "Fraud/Deception": "nonviolent_crimes",
        "Disinformation": "elections_misinformation",
        "Sexual/Adult content": "sexual_content",
        "Privacy": "privacy_pii",
        "Expert advice": "regulated_advice",
    }
)


def _jbb_benchmark(split: str, unsafe: bool) -> Benchmark:
    # The harmful and benign splits hold the same columns; the split alone says which label a row has.
    def jbb_row(raw: RawRow) -> dict[str, Any]:
        return _row(raw["Goal"], unsafe=unsafe, policy=JBB_POLICIES.policy([raw["Category"]]), rationale=raw["Category"])

    return Benchmark(
        name=f"jbb-{split}",
        hub_id="JailbreakBench/JBB-Behaviors",
        config="behaviors",
        split=split,
        license="mit",
        num_rows=100,
        policies=JBB_POLICIES.policies(),
        gated=False,
        description=f"JailbreakBench behaviors, {split} split: the Goal requests, all {'unsafe' if unsafe else 'safe'}.",
        file_format="csv",
        row_mapper=jbb_row,
    )


register(_jbb_benchmark("harmful", unsafe=True))
register(_jbb_benchmark("benign", unsafe=False))


def _deepset_row(raw: RawRow) -> dict[str, Any]:
    return _row(raw["text"], unsafe=raw["label"] == 1)


register(
    Benchmark(
        name="deepset-prompt-injections",
        hub_id="deepset/prompt-injections",
        config=None,
        split="test",
        license="apache-2.0",
        num_rows=116,
        policies=("prompt_injection",),
        gated=False,
        description="deepset prompt injections (English and German); label 1 is an injection.",
        file_format="parquet",
        row_mapper=_deepset_row,
    )
)


SIMPLE_SAFETY_POLICIES = CategoryPolicies(
    {
        "Suicide, Self-Harm, and Eating Disorders": "self_harm",
        "Physical Harm": "violent_crimes",
        "Illegal and Highly Regulated Items": "nonviolent_crimes",
        "Scams and Fraud": "nonviolent_crimes",
        "Child Abuse": "violent_crimes",
    }
)


def _simple_safety_row(raw: RawRow) -> dict[str, Any]:
    # Every SimpleSafetyTests prompt is one a model must refuse.
    return _row(raw["prompt"], unsafe=True, policy=SIMPLE_SAFETY_POLICIES.policy([raw["harm_area"]]), rationale=raw["harm_area"])


register(
    Benchmark(
        name="simple-safety-tests",
        hub_id="Bertievidgen/SimpleSafetyTests",
        config=None,
        split="test",
        license="cc-by-2.0",
        num_rows=100,
        policies=SIMPLE_SAFETY_POLICIES.policies(),
        gated=False,
        description="SimpleSafetyTests: 100 clearly harmful prompts across five harm areas, all unsafe.",
        file_format="csv",
        row_mapper=_simple_safety_row,
    )
)


# ---------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in datasets.config.ENV_VARS_TRUE_VALUES


def _hub_offline() -> bool:
    # `datasets` reads HF_HUB_OFFLINE once, at import; the environment is read again here so that
    # setting it later (a notebook, a test) still keeps guardkit off the network.
    return datasets.config.HF_HUB_OFFLINE or _env_flag("HF_HUB_OFFLINE") or _env_flag("HF_DATASETS_OFFLINE")


def _datasets_cache_dir() -> str:
    """Where `datasets` keeps prepared datasets, as the environment says now."""
    if os.environ.get("HF_DATASETS_CACHE"):
        return os.environ["HF_DATASETS_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "datasets")
    return str(datasets.config.HF_DATASETS_CACHE)


def _is_cached(benchmark: Benchmark, cache_dir: str) -> bool:
    # The same lookup `datasets` performs when it cannot reach the Hub.
    try:
        CachedDatasetModuleFactory(benchmark.hub_id, cache_dir=cache_dir).get_module()
    except FileNotFoundError:
        return False
    return True


def _not_cached(benchmark: Benchmark, cache_dir: str) -> BenchmarkUnavailable:
    reason = (
        f"not in the local datasets cache ({cache_dir}) and the Hugging Face Hub cannot be reached "
        "(HF_HUB_OFFLINE is set or there is no network)"
    )
    message = (
        f"benchmark '{benchmark.name}' ({benchmark.hub_id}) is {reason}. Fetch it once while online with:\n"
        f"  python -c \"from guardkit.data.benchmarks import load_benchmark; load_benchmark('{benchmark.name}')\"\n"
        f"or pass data_files= with local copies of its {benchmark.file_format} files."
    )
    return BenchmarkUnavailable(message, reason)


def _gated(benchmark: Benchmark) -> BenchmarkUnavailable:
    message = (
        f"benchmark '{benchmark.name}' ({benchmark.hub_id}) is gated on the Hugging Face Hub. Log in at "
        f"https://huggingface.co/datasets/{benchmark.hub_id} and accept its terms, then authenticate with "
        "`hf auth login` (`huggingface-cli login` on older huggingface_hub) or set HF_TOKEN, or pass token=."
    )
    return BenchmarkUnavailable(message, "gated on the Hugging Face Hub (log in and accept its terms)")


def _load_raw(benchmark: Benchmark, data_files: str | Path | Sequence[str | Path] | None, token: str | None) -> datasets.Dataset:
    cache_dir = _datasets_cache_dir()
    if data_files is not None:
        files = [str(data_files)] if isinstance(data_files, (str, Path)) else [str(path) for path in data_files]
        return datasets.load_dataset(benchmark.file_format, data_files=files, split="train", cache_dir=cache_dir)
    # Checked before `datasets` is asked, so that offline it fails at once instead of trying the network.
    if _hub_offline() and not _is_cached(benchmark, cache_dir):
        raise _not_cached(benchmark, cache_dir)
    try:
        return datasets.load_dataset(benchmark.hub_id, benchmark.config, split=benchmark.split, token=token, cache_dir=cache_dir)
    except (GatedRepoError, DatasetNotFoundError) as error:
        if isinstance(error, GatedRepoError) or benchmark.gated or "gated" in str(error):
            raise _gated(benchmark) from error
        raise
    except (ConnectionError, LocalEntryNotFoundError) as error:
        raise _not_cached(benchmark, cache_dir) from error


def load_benchmark(
    name: str, data_files: str | Path | Sequence[str | Path] | None = None, token: str | None = None
) -> datasets.Dataset:
    """The benchmark's split in the guardkit schema; rows its mapper cannot score are skipped.

    With `data_files` (a path or paths to local copies of the dataset's own Hub files, in its
    `file_format`) nothing is fetched. Raises BenchmarkUnavailable when the dataset is gated and the
    token has no access, or when the Hub cannot be reached and the dataset is not cached.
    """
    benchmark = get_benchmark(name)
    raw = _load_raw(benchmark, data_files, token)
    return rows_to_dataset(row for row in map(benchmark.to_rows, raw) if row is not None)


def format_registry_table() -> str:
    """The registry as a plain-text table, one benchmark a line, for `guardkit benchmarks list`."""
    header = ("name", "hub id", "split", "rows", "license", "gated", "policies")
    lines = [
        (
            benchmark.name,
            benchmark.hub_id,
            f"{benchmark.config}/{benchmark.split}" if benchmark.config else benchmark.split,
            str(benchmark.num_rows),
            benchmark.license,
            "yes" if benchmark.gated else "no",
            ", ".join(benchmark.policies),
        )
        for benchmark in BENCHMARKS.values()
    ]
    widths = [max(len(line[column]) for line in (header, *lines)) for column in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in (header, *lines))
