"""The guardkit web app: check texts against policies, try a policy of your own, compare guards, score files.

`guardkit demo` and the Hugging Face Space in `spaces/guardkit/` both build the page with `build_app`.
Guards come from `--model` or `GUARDKIT_MODEL` (Hub ids or guard folders, comma-separated); without
either, from the last `make reproduce` (its UniGuard first, else its MultiTaskGuard, then every other
guard it trained, for Compare). Guards are loaded with `Guard.from_pretrained` and scored with
`Guard.check`, so the page shows exactly what the library decides.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guardkit.errors import GuardkitError
from guardkit.guard import MAX_TEXT_CHARS, Guard, guard_folders, read_manifest, text_problem
from guardkit.policies import Policy, PolicyError, shipped_policies

if TYPE_CHECKING:
    import gradio as gr

    from guardkit.llm_judge import LLMJudge

MODEL_ENV = "GUARDKIT_MODEL"
JUDGE_ENV = "GUARDKIT_LLM_JUDGE"
DEFAULT_REPRODUCE_DIR = "runs/reproduce"
# The guard the page opens with, by folder name under the reproduce directory, best first.
PRIMARY_GUARD_FOLDERS = ("uniguard", "multitask")
KIND_NAMES = {"task": "TaskGuard", "multitask": "MultiTaskGuard", "uniguard": "UniGuard"}
KIND_ORDER = ("uniguard", "multitask", "task")
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
UPLOAD_SUFFIXES = (".csv", ".jsonl")
# Texts per forward call in Batch: small enough for a smooth progress bar, large enough to batch well.
BATCH_CHUNK = 64
# The LLM judge decides unsafe when the " unsafe" verdict token is the likelier of the two.
JUDGE_THRESHOLD = 0.5
# Batch results keep P(unsafe) to 1e-6; the float32 digits beyond that are noise.
SCORE_DECIMALS = 6
# Files written for download are copied into Gradio's own cache when returned; older ones can go.
DOWNLOAD_RETENTION_S = 3600
NO_MODEL_MESSAGE = (
    "**No guard to load.** Create one with `make reproduce` (it writes `runs/reproduce/uniguard`), "
    "or train one with `guardkit train multitask` (see `guardkit train multitask --help`), "
    "or point `GUARDKIT_MODEL` at a guard folder or Hub model id (comma-separated for several)."
)
EMPTY_TEXT_MESSAGE = "Type or paste a text to check."
LONG_TEXT_MESSAGE = (
    "The text has {length:,} characters; a guard scores at most {limit:,} per text (scoring time grows with "
    "length). Split it into parts and check each: the whole is unsafe when any part is."
)
WINDOW_MESSAGE = (
    "This text is longer than the guard reads at once: it was scored with a sliding window over "
    "overlapping pieces, and each score is the highest over the pieces (lowered for their number when the "
    "guard's window_aggregation is length_adjusted_max, so that length alone does not flag a text)."
)


class DemoError(GuardkitError):
    """A model source the app cannot use; the message says what to do."""


@dataclass
class DemoConfig:
    model: str | None = field(
        default=None,
        metadata={
            "help": f"guard folders or Hub model ids, comma-separated (several appear side by side in Compare); "
            f"default: ${MODEL_ENV}, else the guards of the last `make reproduce` under --reproduce-dir"
        },
    )
    reproduce_dir: str = field(
        default=DEFAULT_REPRODUCE_DIR,
        metadata={"help": "where `make reproduce` wrote its guards and REPORT.md (the default models and the About tab)"},
    )
    llm_judge: str | None = field(
        default=None,
        metadata={
            "help": f"causal LM shown as the LLM-judge baseline in Compare (smollm2-135m, a JudgeGuard folder or a "
            f"Hub id); default: ${JUDGE_ENV}, else no judge"
        },
    )
    host: str = field(default="127.0.0.1", metadata={"help": "address to serve on (0.0.0.0 to accept other machines)"})
    port: int = field(default=7860, metadata={"help": "port to serve on"})
    concurrency: int = field(default=1, metadata={"help": "requests scored at the same time; the rest wait in the queue"})
    max_queue: int = field(default=64, metadata={"help": "requests allowed to wait; beyond that the page asks to retry later"})


@dataclass(frozen=True)
class LoadedGuard:
    """A guard as the page shows it: a short name, where it came from, and the loaded model."""

    name: str
    source: str
    guard: Guard

    @property
    def reads_policies(self) -> bool:
        """Whether it scores any policy it is given (pair guards and policy readers), not only its own."""
        return self.guard.manifest.input_format in ("instruction_pair", "rule_pair", "policy_reader")

    @property
    def kind_name(self) -> str:
        return KIND_NAMES.get(self.guard.kind, self.guard.kind)

    def can_score(self, policy_id: str) -> bool:
        return self.reads_policies or policy_id in self.guard.manifest.policies


def reproduce_guards(reproduce_dir: str | Path) -> list[tuple[str, str]]:
    """(name, folder) of every classifier guard under the reproduce directory, the page's default first."""
    root = Path(reproduce_dir)
    if not root.is_dir():
        return []
    found = []
    for folder in guard_folders(root):
        kind = read_manifest(folder).kind
        if kind in KIND_ORDER:
            found.append((folder.relative_to(root).as_posix(), kind, folder))

    def rank(entry: tuple[str, str, Path]) -> tuple[int, int, str]:
        name, kind, _ = entry
        primary = PRIMARY_GUARD_FOLDERS.index(name) if name in PRIMARY_GUARD_FOLDERS else len(PRIMARY_GUARD_FOLDERS)
        return primary, KIND_ORDER.index(kind), name

    return [(name, str(folder)) for name, _, folder in sorted(found, key=rank)]


def model_sources(config: DemoConfig) -> list[tuple[str, str]]:
    """(name, source) of the guards to load: --model, else $GUARDKIT_MODEL, else the reproduce guards."""
    spec = config.model if config.model is not None else os.environ.get(MODEL_ENV, "")
    sources = [part.strip() for part in spec.split(",") if part.strip()]
    if not sources:
        return reproduce_guards(config.reproduce_dir)
    names = [Path(source).name if Path(source).is_dir() else source for source in sources]
    return [(name if names.count(name) == 1 else source, source) for name, source in zip(names, sources)]


def space_config(folder: str | Path) -> DemoConfig:
    """The Space's page: the guards in $GUARDKIT_MODEL when set, else those its README front matter names
    (`models`, filled in by `guardkit publish`), else, in a checkout, those of the last `make reproduce`."""
    from huggingface_hub import SpaceCard

    models = SpaceCard.load(Path(folder) / "README.md").data.models or []
    return DemoConfig(model=None if os.environ.get(MODEL_ENV) or not models else ",".join(models))


def load_guards(sources: Sequence[tuple[str, str]]) -> list[LoadedGuard]:
    loaded = []
    for name, source in sources:
        guard = Guard.from_pretrained(source)
        if guard.kind not in KIND_NAMES:
            raise DemoError(
                f"{source} is a {guard.kind} guard; the page shows classifier guards (task, multitask, uniguard). "
                f"Pass a JudgeGuard with --llm-judge (or ${JUDGE_ENV}) to see it beside them in Compare"
            )
        # The first forward pass pays for one-off set-up; latencies shown later should not.
        guard.score(["warm-up"], guard.policy_ids[0])
        loaded.append(LoadedGuard(name, source, guard))
    return loaded


def policy_id_from_name(name: str) -> str:
    """The id a policy typed in the page gets: its name in lower case, runs of other characters as `_`."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if slug and not slug[0].isalpha():
        slug = f"policy_{slug}"
    return slug or "custom_policy"


def bullet_lines(value: str | None) -> list[str]:
    """One item per non-empty line, without list markers (`-`, `*`, `•`, `1.`)."""
    items = []
    for line in (value or "").splitlines():
        item = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", line).strip()
        if item:
            items.append(item)
    return items


def _text_room(guard: Guard, instruction: str | None) -> int:
    """How many text tokens fit in one input of `guard`, beside `instruction` for pair guards."""
    tokenizer = guard.tokenizer
    if instruction is None:
        return guard.max_length - tokenizer.num_special_tokens_to_add(pair=False)
    instruction_tokens = len(tokenizer(instruction, add_special_tokens=False)["input_ids"])
    return guard.max_length - tokenizer.num_special_tokens_to_add(pair=True) - instruction_tokens


def _token_counts(guard: Guard, texts: Sequence[str]) -> list[int]:
    encoded = guard.tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
    return [len(ids) for ids in encoded]


def _count(number: int, singular: str, plural: str | None = None) -> str:
    return f"{number:,} {singular if number == 1 else plural or singular + 's'}"


def _thresholds_text(guard: Guard) -> str:
    """A guard's decision threshold, or the range of its per-policy ones."""
    values = [guard.threshold_for(policy_id) for policy_id in guard.policy_ids] or [guard.threshold]
    low, high = min(values), max(values)
    return f"{low:.3f}" if high - low < 5e-4 else f"{low:.3f}-{high:.3f} per policy"


def _markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        text = "–" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def _verdict_html(cards: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """One card per verdict: title, label, P(unsafe) as a bar with the threshold marked, score and latency."""
    parts = []
    for title, row in cards:
        unsafe = row["label"] == "unsafe"
        colour = "#dc2626" if unsafe else "#16a34a"
        score, threshold = row["score"], row["threshold"]
        detail = f"P(unsafe) {score:.3f} · threshold {threshold:.3f}"
        if row.get("latency_ms") is not None:
            detail += f" · {row['latency_ms']:.1f} ms"
        if row.get("model"):
            detail += f" · {row['model']}"
        parts.append(
            f'<div class="gk-verdict" data-label="{row["label"]}" '
            'style="border:1px solid #d1d5db;border-radius:8px;padding:8px 12px;margin:6px 0">'
            '<div style="display:flex;justify-content:space-between;gap:1em">'
            f"<strong>{html.escape(title)}</strong>"
            f'<span class="gk-label" style="color:{colour};font-weight:700">{row["label"].upper()}</span></div>'
            f'<div title="{html.escape(detail)}" style="position:relative;height:12px;background:#e5e7eb;border-radius:6px;margin:6px 0">'
            f'<div style="width:{score * 100:.1f}%;height:100%;background:{colour};border-radius:6px"></div>'
            f'<div style="position:absolute;top:-3px;bottom:-3px;left:{threshold * 100:.1f}%;width:2px;background:#111827"></div>'
            f"</div><small>{html.escape(detail)}</small></div>"
        )
    return '<div class="gk-verdicts">' + "".join(parts) + "</div>"


def _no_result(message: str) -> tuple[str, str, dict[str, Any]]:
    return message, "", {"verdicts": []}


def _text_refusal(text: str | None) -> str | None:
    """The page's message for a text no guard scores (empty, or over the length cap), or None."""
    if not text or not text.strip():
        return EMPTY_TEXT_MESSAGE
    if len(text) > MAX_TEXT_CHARS:
        return LONG_TEXT_MESSAGE.format(length=len(text), limit=MAX_TEXT_CHARS)
    return None


class DemoService:
    """What the page does, without the page: every handler takes and returns plain values."""

    def __init__(
        self,
        guards: Sequence[LoadedGuard],
        judge: LLMJudge | None = None,
        judge_name: str | None = None,
        reproduce_dir: str | Path = DEFAULT_REPRODUCE_DIR,
    ):
        self.guards = list(guards)
        self.judge = judge
        self.judge_name = judge_name
        self.reproduce_dir = Path(reproduce_dir)
        self.policies: dict[str, Policy] = {}
        for loaded in self.guards:
            for policy_id, policy in loaded.guard.policies.items():
                self.policies.setdefault(policy_id, policy)
        if any(loaded.reads_policies for loaded in self.guards):
            for policy_id, policy in shipped_policies().items():
                self.policies.setdefault(policy_id, policy)
        # The guards' own policies first (the first guard's lead), then the rest of the library.
        known = dict.fromkeys([policy_id for loaded in self.guards for policy_id in loaded.guard.policy_ids] + list(self.policies))
        self.policy_ids = [policy_id for policy_id in known if any(loaded.can_score(policy_id) for loaded in self.guards)]
        # Removed with the service (or at exit); Gradio serves copies from its own cache.
        self._downloads = tempfile.TemporaryDirectory(prefix="guardkit-demo-")

    @classmethod
    def from_config(cls, config: DemoConfig) -> "DemoService":
        guards = load_guards(model_sources(config))
        judge_name = config.llm_judge if config.llm_judge is not None else os.environ.get(JUDGE_ENV) or None
        judge = None
        if judge_name:
            from guardkit.llm_judge import LLMJudge

            judge = LLMJudge(judge_name)
        return cls(guards, judge=judge, judge_name=judge_name, reproduce_dir=config.reproduce_dir)

    # ---- what the page lists -------------------------------------------------------------------

    @property
    def primary(self) -> LoadedGuard | None:
        return self.guards[0] if self.guards else None

    @property
    def custom_guard(self) -> LoadedGuard | None:
        """The guard that scores policies typed in the page: the first that reads any policy it is given."""
        return next((loaded for loaded in self.guards if loaded.reads_policies), None)

    def policy_name(self, policy_id: str) -> str:
        policy = self.policies.get(policy_id)
        return policy.name if policy else policy_id

    def policy_choices(self) -> list[tuple[str, str]]:
        return [(self.policy_name(policy_id), policy_id) for policy_id in self.policy_ids]

    def default_policies(self) -> list[str]:
        return [policy_id for policy_id in self.primary.guard.policy_ids if policy_id in self.policy_ids] if self.primary else []

    def examples(self) -> list[tuple[str, str, str]]:
        """(label, text, policy id): one safe, one unsafe and one hard-negative example per policy."""
        found = []
        for policy_id in self.policy_ids:
            policy = self.policies.get(policy_id)
            if policy is None:
                continue
            found.append((f"{policy.name} · safe", policy.examples.safe[0], policy_id))
            found.append((f"{policy.name} · unsafe", policy.examples.unsafe[0], policy_id))
            if policy.hard_negatives:
                found.append((f"{policy.name} · hard negative", policy.hard_negatives[0], policy_id))
        return found

    def guard_for(self, policy_id: str) -> LoadedGuard | None:
        return next((loaded for loaded in self.guards if loaded.can_score(policy_id)), None)

    def models_markdown(self) -> str:
        if not self.guards:
            return NO_MODEL_MESSAGE
        rows = [
            (
                loaded.name,
                loaded.kind_name,
                ", ".join(loaded.guard.policy_ids),
                _thresholds_text(loaded.guard),
                loaded.guard.max_length,
                loaded.guard.manifest.base_model,
                loaded.source,
            )
            for loaded in self.guards
        ]
        if self.judge is not None:
            judge = self.judge_name
            window = self.judge.max_text_tokens
            rows.append((f"LLM judge ({judge})", "LLM judge", "any (policy as prompt)", JUDGE_THRESHOLD, window, judge, judge))
        return _markdown_table(["model", "kind", "policies", "threshold", "window (tokens)", "base model", "source"], rows)

    def summary_markdown(self) -> str:
        if not self.guards:
            return NO_MODEL_MESSAGE
        primary = self.primary
        line = (
            f"Checking with **{primary.name}**, a {primary.kind_name} for "
            f"{_count(len(primary.guard.policy_ids), 'policy', 'policies')} (threshold {_thresholds_text(primary.guard)})"
        )
        if primary.reads_policies:
            line += "; it reads the policy it is given, so it also scores other policies and your own"
        others = len(self.guards) - 1 + (self.judge is not None)
        if others:
            line += f". {_count(others, 'more model')} in Compare"
        return line + "."

    def evaluation_markdown(self) -> str:
        """The evaluation table from the latest report: REPORT.md, else results.json, else the model cards."""
        report = self.reproduce_dir / "REPORT.md"
        if report.is_file():
            text = report.read_text(encoding="utf-8")
            # Figures are files beside the report that the page does not serve.
            return f"From `{report}`:\n\n" + re.sub(r"!\[[^\]]*\]\([^)]*\)", "", text)
        results = sorted(self.reproduce_dir.rglob("results.json"), key=lambda path: path.stat().st_mtime)
        if results:
            return self._results_markdown(results[-1])
        card_rows = self._card_results()
        if card_rows:
            return "From the model cards:\n\n" + _markdown_table(["model", "dataset", "metric", "value"], card_rows)
        return (
            f"No evaluation report yet: `make reproduce` writes `{self.reproduce_dir / 'REPORT.md'}`, "
            "and `guardkit evaluate --output DIR` writes `DIR/results.json`."
        )

    @staticmethod
    def _results_markdown(path: Path) -> str:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            return f"`{path}` cannot be read ({error}); rerun `guardkit evaluate`."
        records = raw.get("results", []) if isinstance(raw, dict) else raw
        records = [record for record in records if isinstance(record, dict) and {"model", "metric", "value"} <= set(record)]
        if not records:
            return f"`{path}` holds no results with model, metric and value; rerun `guardkit evaluate`."
        keys = [key for key in ("suite", "dataset", "policy", "metric") if any(key in record for record in records)]
        models = list(dict.fromkeys(str(record["model"]) for record in records))
        table: dict[tuple, dict[str, Any]] = {}
        for record in records:
            row = table.setdefault(tuple(str(record.get(key, "")) for key in keys), {})
            row[str(record["model"])] = record["value"]
        rows = [list(key) + [values.get(model, "") for model in models] for key, values in table.items()]
        return f"From `{path}`:\n\n" + _markdown_table(keys + models, rows)

    def _card_results(self) -> list[tuple[str, str, str, Any]]:
        from huggingface_hub import ModelCard
        from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

        rows = []
        for loaded in self.guards:
            local = Path(loaded.source)
            try:
                card = ModelCard.load(local / "README.md" if local.is_dir() else loaded.source)
            except (OSError, EntryNotFoundError, HfHubHTTPError, ValueError):
                continue  # a guard without a readable card has no results to show
            for result in card.data.eval_results or []:
                rows.append((loaded.name, result.dataset_name, result.metric_type, result.metric_value))
        return rows

    def policy_markdown(self, policy_id: str) -> str:
        policy = self.policies[policy_id]
        unsafe = "\n".join(f"- {item}" for item in policy.disallowed)
        safe = "\n".join(f"- {item}" for item in policy.allowed)
        return f"{policy.description.strip()}\n\n**Unsafe**\n\n{unsafe}\n\n**Safe**\n\n{safe}\n\nid `{policy.id}`, version {policy.version}"

    # ---- handlers --------------------------------------------------------------------------------

    def _instruction(self, loaded: LoadedGuard, policy_id: str) -> str | None:
        """The instruction `loaded` reads beside a text for `policy_id`; None for a guard that reads the text alone."""
        if loaded.guard.manifest.input_format != "instruction_pair":
            return None
        return loaded.guard.manifest.policies.get(policy_id) or self.policies[policy_id].instruction()

    def _score_one(self, loaded: LoadedGuard, text: str, policy_id: str) -> dict[str, Any]:
        policy = self.policies.get(policy_id, policy_id)
        start = time.perf_counter()
        verdict = loaded.guard.check([text], [policy])[0]
        latency_ms = (time.perf_counter() - start) * 1000
        return {
            "model": loaded.name,
            "kind": loaded.guard.kind,
            "policy": policy_id,
            "label": verdict.label,
            "score": verdict.score,
            "threshold": verdict.threshold,
            "latency_ms": latency_ms,
            "windowed": _token_counts(loaded.guard, [text])[0] > _text_room(loaded.guard, self._instruction(loaded, policy_id)),
        }

    def _judge_one(self, text: str, policy_id: str) -> dict[str, Any]:
        start = time.perf_counter()
        score = float(self.judge.score(self.policies[policy_id], [text])[0])
        latency_ms = (time.perf_counter() - start) * 1000
        return {
            "model": f"LLM judge ({self.judge_name})",
            "kind": "llm-judge",
            "policy": policy_id,
            "label": "unsafe" if score >= JUDGE_THRESHOLD else "safe",
            "score": score,
            "threshold": JUDGE_THRESHOLD,
            "latency_ms": latency_ms,
            "windowed": False,
        }

    def check(self, text: str | None, policy_ids: Sequence[str] | None) -> tuple[str, str, dict[str, Any]]:
        """Verdict per ticked policy for one text: (message, verdict cards, {"verdicts": [...]})."""
        if not self.guards:
            return _no_result(NO_MODEL_MESSAGE)
        refusal = _text_refusal(text)
        if refusal:
            return _no_result(refusal)
        if not policy_ids:
            return _no_result("Tick at least one policy to check against.")
        rows = []
        for policy_id in policy_ids:
            loaded = self.guard_for(policy_id)
            if loaded is None:
                return _no_result(f"None of the loaded guards scores policy `{policy_id}`.")
            rows.append(self._score_one(loaded, text, policy_id))
        unsafe = [self.policy_name(row["policy"]) for row in rows if row["label"] == "unsafe"]
        if unsafe:
            message = f"**Unsafe** under {', '.join(unsafe)}."
        else:
            message = f"**Safe** under {_count(len(rows), 'checked policy', 'checked policies')}."
        if any(row["windowed"] for row in rows):
            message += f"\n\n{len(text):,} characters. {WINDOW_MESSAGE}"
        cards = [(self.policy_name(row["policy"]), row) for row in rows]
        return message, _verdict_html(cards), {"verdicts": rows}

    def compare(self, text: str | None, policy_id: str | None) -> tuple[str, str, dict[str, Any]]:
        """The same text and policy through every loaded model that can score it, with latencies."""
        if not self.guards:
            return _no_result(NO_MODEL_MESSAGE)
        refusal = _text_refusal(text)
        if refusal:
            return _no_result(refusal)
        if not policy_id:
            return _no_result("Choose a policy to compare on.")
        rows = [self._score_one(loaded, text, policy_id) for loaded in self.guards if loaded.can_score(policy_id)]
        if self.judge is not None and policy_id in self.policies:
            rows.append(self._judge_one(text, policy_id))
        skipped = [loaded.name for loaded in self.guards if not loaded.can_score(policy_id)]
        message = f"{_count(len(rows), 'model')} on {self.policy_name(policy_id)}."
        if skipped:
            message += f" Not shown: {', '.join(skipped)} (TaskGuards for other policies)."
        if any(row["windowed"] for row in rows):
            message += f"\n\n{len(text):,} characters. {WINDOW_MESSAGE}"
        judge_limit = self.judge.max_text_tokens if self.judge is not None else None
        if judge_limit and len(self.judge.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]) > judge_limit:
            message += f"\n\nThe LLM judge reads only the first {judge_limit} tokens of a text."
        cards = [(f"{row['model']} ({KIND_NAMES.get(row['kind'], 'LLM judge')})", {**row, "model": None}) for row in rows]
        return message, _verdict_html(cards), {"verdicts": rows}

    def custom_policy(
        self,
        name: str | None,
        description: str | None,
        disallowed: str | None,
        allowed: str | None,
        safe_examples: str | None,
        unsafe_examples: str | None,
        texts: str | None,
    ) -> tuple[str, str, dict[str, Any], str, str | None]:
        """Validate a policy typed in the page and score texts (one per line) against it.

        Returns (message, verdict cards, {"policy": id, "verdicts": [...]}, policy YAML, YAML file to download).
        """
        raw = {
            "id": policy_id_from_name(name or ""),
            "name": (name or "").strip(),
            "description": (description or "").strip(),
            "disallowed": bullet_lines(disallowed),
            "allowed": bullet_lines(allowed),
            "examples": {"safe": bullet_lines(safe_examples), "unsafe": bullet_lines(unsafe_examples)},
        }
        try:
            policy = Policy.from_dict(raw, source="your policy")
        except PolicyError as error:
            return f"The policy is not complete yet: {error}.", "", {"policy": None, "verdicts": []}, "", None
        policy_yaml = policy.to_yaml()
        download = self._download_path(f"{policy.id}.yaml")
        download.write_text(policy_yaml, encoding="utf-8")
        result: dict[str, Any] = {"policy": policy.id, "verdicts": []}
        loaded = self.custom_guard
        if loaded is None:
            message = NO_MODEL_MESSAGE if not self.guards else (
                "Scoring a policy of your own needs a MultiTaskGuard (it reads any policy it is given); the loaded "
                "guards score their own policies only. The policy file is ready to download."
            )
            return message, "", result, policy_yaml, str(download)
        lines = [line.strip() for line in (texts or "").splitlines() if line.strip()]
        if not lines:
            return "The policy is valid. Add texts to score, one per line.", "", result, policy_yaml, str(download)
        # A policy typed under the id of one the guard was trained on must still be scored from its own text.
        scored_as = policy if policy.id not in loaded.guard.manifest.policies else policy.model_copy(update={"id": f"custom_{policy.id}"})
        start = time.perf_counter()
        try:
            verdicts = loaded.guard.check(lines, [scored_as])
        except GuardkitError as error:
            return str(error), "", result, policy_yaml, str(download)
        latency_ms = (time.perf_counter() - start) * 1000
        room = _text_room(loaded.guard, scored_as.instruction() if loaded.guard.manifest.input_format == "instruction_pair" else None)
        lengths = _token_counts(loaded.guard, lines)
        rows = [
            {
                "text": lines[verdict.text_index],
                "label": verdict.label,
                "score": verdict.score,
                "threshold": verdict.threshold,
                "windowed": lengths[verdict.text_index] > room,
            }
            for verdict in verdicts
        ]
        result["verdicts"] = rows
        unsafe = sum(row["label"] == "unsafe" for row in rows)
        message = (
            f"**{policy.name}** scored by {loaded.name} ({loaded.kind_name}): {unsafe} of {len(rows)} "
            f"{'text' if len(rows) == 1 else 'texts'} unsafe, {latency_ms:.1f} ms in all."
        )
        if any(row["windowed"] for row in rows):
            message += f"\n\n{WINDOW_MESSAGE}"
        cards = [(row["text"] if len(row["text"]) <= 90 else row["text"][:87] + "...", row) for row in rows]
        return message, _verdict_html(cards), result, policy_yaml, str(download)

    def batch(self, upload: str | None, policy_ids: Sequence[str] | None, progress=None):
        """Score the `text` column of an uploaded CSV or JSONL file: (message, table, CSV file to download)."""
        import pandas as pd

        empty = pd.DataFrame()
        if not self.guards:
            return NO_MODEL_MESSAGE, empty, None
        if not upload:
            return "Upload a CSV or JSONL file with a `text` column.", empty, None
        path = Path(upload)
        size = path.stat().st_size
        if size > MAX_UPLOAD_BYTES:
            return (
                f"The file is {size / 1024 / 1024:.1f} MB; uploads are limited to {MAX_UPLOAD_BYTES // 1024 // 1024} MB. "
                "Split it into smaller files, or score it with `Guard.from_pretrained(...).check(texts)` in Python.",
                empty,
                None,
            )
        suffix = path.suffix.lower()
        if suffix not in UPLOAD_SUFFIXES:
            return f"`{path.name}` is neither CSV nor JSONL; upload a .csv or .jsonl file with a `text` column.", empty, None
        if not policy_ids:
            return "Tick at least one policy to score against.", empty, None
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False) if suffix == ".csv" else pd.read_json(path, lines=True, dtype=False)
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as error:
            return f"`{path.name}` cannot be read as {suffix[1:].upper()}: {error}", empty, None
        if "text" not in frame.columns:
            columns = ", ".join(f"`{column}`" for column in frame.columns) or "none"
            message = f"`{path.name}` has no `text` column (columns found: {columns}); name the column that holds the texts `text`."
            return message, empty, None
        texts = ["" if value is None or (isinstance(value, float) and value != value) else str(value) for value in frame["text"]]
        problems = [text_problem(text) for text in texts]
        rows = [index for index, problem in enumerate(problems) if problem is None]
        if not rows:
            return f"`{path.name}` has no text to score (every row is empty or over {MAX_TEXT_CHARS:,} characters).", empty, None
        guards = {policy_id: self.guard_for(policy_id) for policy_id in policy_ids}
        unscorable = [policy_id for policy_id, loaded in guards.items() if loaded is None]
        if unscorable:
            return f"None of the loaded guards scores {', '.join(unscorable)}.", empty, None
        start = time.perf_counter()
        steps = len(policy_ids) * ((len(rows) + BATCH_CHUNK - 1) // BATCH_CHUNK)
        done = 0
        flagged: list[list[str]] = [[] for _ in texts]
        windowed: set[int] = set()
        for policy_id, loaded in guards.items():
            policy = self.policies.get(policy_id, policy_id)
            room = _text_room(loaded.guard, self._instruction(loaded, policy_id))
            scores: list[float | None] = [None] * len(texts)
            labels = [""] * len(texts)
            for offset in range(0, len(rows), BATCH_CHUNK):
                chunk = rows[offset : offset + BATCH_CHUNK]
                chunk_texts = [texts[index] for index in chunk]
                windowed.update(index for index, length in zip(chunk, _token_counts(loaded.guard, chunk_texts)) if length > room)
                for verdict in loaded.guard.check(chunk_texts, [policy]):
                    index = chunk[verdict.text_index]
                    scores[index], labels[index] = verdict.score, verdict.label
                    if verdict.unsafe:
                        flagged[index].append(policy_id)
                done += 1
                if progress is not None:
                    progress(done / steps, desc=f"scoring {self.policy_name(policy_id)}")
            frame[f"{policy_id}_score"] = [None if score is None else round(score, SCORE_DECIMALS) for score in scores]
            frame[f"{policy_id}_label"] = labels
        frame["unsafe_policies"] = [",".join(policies) for policies in flagged]
        frame["skipped"] = [None if problem is None else f"text {problem}" for problem in problems]
        seconds = time.perf_counter() - start
        output = self._download_path(f"{path.stem}-scored.csv")
        frame.to_csv(output, index=False)
        message = (
            f"Scored {_count(len(rows), 'text')} against {_count(len(policy_ids), 'policy', 'policies')} "
            f"in {seconds:.1f} s ({len(rows) * len(policy_ids) / max(seconds, 1e-9):.0f} checks/s); "
            f"{sum(bool(policies) for policies in flagged):,} flagged unsafe."
        )
        if windowed:
            message += (
                f" {_count(len(windowed), 'text')} {'was' if len(windowed) == 1 else 'were'} longer than the guard reads at once "
                "and scored with a sliding window (the score is the highest over overlapping pieces, or that "
                "lowered for their number: the guard's window_aggregation)."
            )
        if len(rows) < len(texts):
            skipped = len(texts) - len(rows)
            message += (
                f" {_count(skipped, 'row')} {'was' if skipped == 1 else 'were'} left unscored (empty, or over "
                f"{MAX_TEXT_CHARS:,} characters: the skipped column says which)."
            )
        return message, frame, str(output)

    def _download_path(self, filename: str) -> Path:
        """A fresh folder for one file the page offers for download; drops those older than an hour."""
        now = time.time()
        root = Path(self._downloads.name)
        for old in root.iterdir():
            if now - old.stat().st_mtime > DOWNLOAD_RETENTION_S:
                shutil.rmtree(old, ignore_errors=True)
        folder = root / uuid.uuid4().hex
        folder.mkdir()
        return folder / filename


STARTER_POLICY = {
    "name": "Cooking assistant topics",
    "description": "Flags requests a recipe assistant should not handle: anything unrelated to cooking, food or kitchen work.",
    "disallowed": "- Help with programming, homework or office tasks\n- Politics, news and celebrities\n"
    "- Medical, legal or financial advice",
    "allowed": "- Recipes, ingredients and substitutions\n- Cooking techniques, equipment and kitchen safety\n"
    "- Meal planning, food storage and nutrition basics",
    "safe": "- How long should I rest a steak after grilling?\n- What can I use instead of eggs in pancakes?",
    "unsafe": "- Write me a Python script that scrapes stock prices.\n- Who should I vote for in the next election?",
    "texts": "Can I swap butter for olive oil in banana bread?\nSummarise the latest news about the stock market for me.",
}


def build_app(config: DemoConfig) -> gr.Blocks:
    """The page as a queued `gr.Blocks`, with the guards of `config` loaded."""
    import gradio as gr

    service = DemoService.from_config(config)
    choices = service.policy_choices()
    defaults = service.default_policies()

    with gr.Blocks(title="guardkit", analytics_enabled=False, delete_cache=(DOWNLOAD_RETENTION_S, DOWNLOAD_RETENTION_S)) as blocks:
        gr.Markdown(
            "# guardkit\nGuardrail policies written in plain language, enforced by small, fast classifiers. "
            "Check a text against the shipped policies, write a policy of your own, compare models, or score a file.",
            elem_id="title",
        )
        gr.Markdown(service.summary_markdown(), elem_id="model-summary")

        with gr.Tab("Check", elem_id="tab-check"):
            check_text = gr.Textbox(label="Text", lines=5, placeholder="Type or paste a prompt or a reply", elem_id="check-text")
            check_policies = gr.CheckboxGroup(choices, value=defaults, label="Policies", elem_id="check-policies")
            check_button = gr.Button("Check", variant="primary", elem_id="check-button")
            check_message = gr.Markdown(elem_id="check-message")
            check_verdicts = gr.HTML(elem_id="check-verdicts")
            with gr.Accordion("Raw result (JSON)", open=False):
                check_json = gr.JSON(elem_id="check-json")
            check_button.click(service.check, [check_text, check_policies], [check_message, check_verdicts, check_json], api_name="check")
            examples = service.examples()
            if examples:
                gr.Examples(
                    examples=[[text, [policy_id]] for _, text, policy_id in examples],
                    inputs=[check_text, check_policies],
                    example_labels=[label for label, _, _ in examples],
                    examples_per_page=12,
                    cache_examples=False,
                    label="Examples: safe, unsafe and hard negatives (safe texts that look unsafe), one click each",
                    elem_id="check-examples",
                )

        with gr.Tab("Custom policy", elem_id="tab-custom"):
            gr.Markdown(
                "Write a policy and score texts against it at once: a MultiTaskGuard or UniGuard reads the policy "
                "as an instruction beside each text, so no training is needed. Lists take one item per line."
            )
            with gr.Row():
                with gr.Column():
                    custom_name = gr.Textbox(STARTER_POLICY["name"], label="Name", elem_id="custom-name")
                    custom_description = gr.Textbox(
                        STARTER_POLICY["description"], label="Description", lines=2, elem_id="custom-description"
                    )
                    custom_disallowed = gr.Textbox(
                        STARTER_POLICY["disallowed"], label="Disallowed (unsafe)", lines=3, elem_id="custom-disallowed"
                    )
                    custom_allowed = gr.Textbox(STARTER_POLICY["allowed"], label="Allowed (safe)", lines=3, elem_id="custom-allowed")
                    custom_safe = gr.Textbox(STARTER_POLICY["safe"], label="Safe examples", lines=2, elem_id="custom-safe")
                    custom_unsafe = gr.Textbox(STARTER_POLICY["unsafe"], label="Unsafe examples", lines=2, elem_id="custom-unsafe")
                with gr.Column():
                    custom_texts = gr.Textbox(
                        STARTER_POLICY["texts"], label="Texts to score, one per line", lines=5, elem_id="custom-texts"
                    )
                    custom_button = gr.Button("Score against this policy", variant="primary", elem_id="custom-button")
                    custom_message = gr.Markdown(elem_id="custom-message")
                    custom_verdicts = gr.HTML(elem_id="custom-verdicts")
                    custom_download = gr.DownloadButton("Download policy YAML", elem_id="custom-download")
                    with gr.Accordion("Policy YAML and raw result", open=False):
                        custom_yaml = gr.Code(language="yaml", label="guardkit policy file", elem_id="custom-yaml")
                        custom_json = gr.JSON(elem_id="custom-json")
            custom_button.click(
                service.custom_policy,
                [custom_name, custom_description, custom_disallowed, custom_allowed, custom_safe, custom_unsafe, custom_texts],
                [custom_message, custom_verdicts, custom_json, custom_yaml, custom_download],
                api_name="custom_policy",
            )

        with gr.Tab("Compare", elem_id="tab-compare"):
            gr.Markdown("The same text through every loaded model, side by side with its latency.")
            compare_text = gr.Textbox(label="Text", lines=4, elem_id="compare-text")
            compare_policy = gr.Dropdown(choices, value=defaults[0] if defaults else None, label="Policy", elem_id="compare-policy")
            compare_button = gr.Button("Compare", variant="primary", elem_id="compare-button")
            compare_message = gr.Markdown(elem_id="compare-message")
            compare_verdicts = gr.HTML(elem_id="compare-verdicts")
            with gr.Accordion("Raw result (JSON)", open=False):
                compare_json = gr.JSON(elem_id="compare-json")
            compare_button.click(
                service.compare, [compare_text, compare_policy], [compare_message, compare_verdicts, compare_json], api_name="compare"
            )

        with gr.Tab("Batch", elem_id="tab-batch"):
            gr.Markdown(
                f"Upload a CSV or JSONL file (at most {MAX_UPLOAD_BYTES // 1024 // 1024} MB) with a `text` column; "
                "every other column is kept. The result adds a score and a label per policy."
            )
            # No file_types filter: a wrong file gets the page's message rather than Gradio's error.
            batch_file = gr.File(label="CSV or JSONL", elem_id="batch-file")
            batch_policies = gr.CheckboxGroup(choices, value=defaults, label="Policies", elem_id="batch-policies")
            batch_button = gr.Button("Score file", variant="primary", elem_id="batch-button")
            batch_message = gr.Markdown(elem_id="batch-message")
            batch_table = gr.Dataframe(label="Scored", interactive=False, max_chars=200, elem_id="batch-table")
            batch_download = gr.File(label="Download scored CSV", interactive=False, elem_id="batch-download")

            def batch(upload, policy_ids, progress=gr.Progress()):
                return service.batch(upload, policy_ids, progress)

            batch_button.click(batch, [batch_file, batch_policies], [batch_message, batch_table, batch_download], api_name="batch")

        with gr.Tab("About", elem_id="tab-about"):
            gr.Markdown("## Models")
            gr.Markdown(service.models_markdown(), elem_id="about-models")
            gr.Markdown("## Evaluation")
            gr.Markdown(service.evaluation_markdown(), elem_id="about-evaluation")
            gr.Markdown("## Policies")
            for policy_id in service.policy_ids:
                if policy_id in service.policies:
                    with gr.Accordion(service.policy_name(policy_id), open=False):
                        gr.Markdown(service.policy_markdown(policy_id), elem_id=f"about-policy-{policy_id}")

    return blocks.queue(default_concurrency_limit=config.concurrency, max_size=config.max_queue)


def launch(config: DemoConfig) -> int:
    """`guardkit demo`: serve the page until interrupted."""
    build_app(config).launch(server_name=config.host, server_port=config.port)
    return 0
