"""The texts every evaluation suite scores, gathered in one place so that the data engine keeps them out.

Nothing an evaluation uses may become training material or seed material: the data engine decontaminates
its candidates against all of these and reports the counts per set.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from guardkit.data.schema import LABEL2ID
from guardkit.errors import GuardkitError
from guardkit.resources import shipped_path

T = TypeVar("T")
# benchmarks/policy_bench/<policy id>.jsonl: hand-written rows per shipped policy (dev and test halves).
DEFAULT_POLICY_BENCH_DIR = str(shipped_path("benchmarks/policy_bench"))
# benchmarks/policy_following/: policies no guard was trained on (policies/<id>.yaml) and their hand-labelled
# rows (<id>.jsonl). Every text there, rows and policy examples alike, is held out of training.
DEFAULT_POLICY_FOLLOWING_DIR = str(shipped_path("benchmarks/policy_following"))

POLICY_BENCH = "policy-bench"
OFFLINE_CORPORA = "offline-corpora"
PUBLIC = "public"


def policy_bench_texts(folder: str | Path) -> list[str]:
    return [json.loads(line)["text"] for path in sorted(Path(folder).glob("*.jsonl")) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def evaluation_texts(policy_bench_dir: str | Path, extra_dirs: dict[str, Path] | None = None, public: bool = True) -> tuple[dict[str, list[str]], list[str]]:
    """({set name: texts}, notes) for every evaluation set that can be read here.

    The public registry's benchmarks are read from the local datasets cache only (nothing is downloaded);
    those not cached are named in the notes: they cannot be checked, and the card says so.
    """
    sets: dict[str, list[str]] = {POLICY_BENCH: policy_bench_texts(policy_bench_dir)}
    notes: list[str] = []
    for name, folder in (extra_dirs or {}).items():
        if Path(folder).is_dir():
            # Rows and the examples of the policies kept there (the policy-following suite's unseen policies).
            from guardkit.policies import load_policy_files

            policies = load_policy_files(sorted((Path(folder) / "policies").glob("*.yaml")))
            sets[name] = policy_bench_texts(folder) + [text for policy in policies for text, _ in policy.all_examples()]
    from guardkit.data.corpora import installed, load_corpus_texts

    available, _ = installed()
    sets[OFFLINE_CORPORA] = [text.text for text in load_corpus_texts(available, split="eval")]
    if public:
        from guardkit.data.benchmarks import BENCHMARKS, BenchmarkUnavailable, load_benchmark

        texts, unavailable = [], []
        for name in BENCHMARKS:
            try:
                texts += [text for text in load_benchmark(name)["text"] if text]
            except BenchmarkUnavailable:
                unavailable.append(name)
        sets[PUBLIC] = texts
        if unavailable:
            notes.append(f"public benchmarks not in the local datasets cache, not checked: {', '.join(unavailable)}")
    return sets, notes


@dataclass
class PolicyBenchRow:
    text: str
    label: int
    policy: str
    hard_negative: bool
    # Unsafe rows only: the other shipped policies the text is also unsafe under, and those under which a
    # careful reader could go either way (the policy-following suite leaves those out of that policy's
    # cell). None: the row is not annotated.
    also_unsafe_under: tuple[str, ...] | None = None
    ambiguous_under: tuple[str, ...] | None = None

    @property
    def half(self) -> str:
        return policy_bench_half(self.text)


POLICY_BENCH_HALVES = ("dev", "test")
# What each choice of rows reads, in words for evaluation notes and report titles.
POLICY_BENCH_SCOPES = {
    "test": "test half, never tuned on",
    "dev": "dev half, tuned on",
    "all": "both halves, the dev half tuned on",
}


def bench_scope_of(evaluation_config: dict) -> str:
    """The policy-bench rows an evaluation read, in words, from its config as results.json records it (runs from
    before --policy_bench_half read both halves)."""
    return POLICY_BENCH_SCOPES[evaluation_config.get("policy_bench_half", "all")]


def policy_bench_half(text: str) -> str:
    """The half of policy-bench a row belongs to, by a stable hash of its text: "dev" rows may tune what the
    data engine does (bench_labels.py), "test" rows are only ever reported on."""
    return POLICY_BENCH_HALVES[hashlib.sha256(text.encode("utf-8")).digest()[0] % 2]


def read_jsonl(path: Path, build: Callable[[dict], T], expected: str) -> list[T]:
    """`build` applied to the JSON object of each non-empty line; a line it cannot build names itself and what was expected."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(build(json.loads(line)))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise GuardkitError(f"{path}:{number}: not {expected} ({error})") from None
    return rows


def _policy_ids(raw: dict, key: str) -> tuple[str, ...] | None:
    if key not in raw:
        return None
    values = raw[key]
    if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
        raise TypeError(f"{key} must be a list of policy ids, got {values!r}")
    return tuple(values)


def _policy_bench_row(raw: dict) -> PolicyBenchRow:
    return PolicyBenchRow(
        raw["text"],
        LABEL2ID[raw["label"]],
        raw["policy"],
        bool(raw.get("hard_negative", False)),
        _policy_ids(raw, "also_unsafe_under"),
        _policy_ids(raw, "ambiguous_under"),
    )


def read_policy_bench(path: Path) -> list[PolicyBenchRow]:
    """Rows of one policy-bench file, one JSON object per line.

    Fields: text, label ("safe"|"unsafe"), policy, hard_negative, and on unsafe rows also_unsafe_under and
    ambiguous_under (lists of other policy ids; absent means not annotated).
    """
    expected = (
        "a policy-bench row; expected text, label, policy, hard_negative and, on unsafe rows, also_unsafe_under "
        "and ambiguous_under"
    )
    return read_jsonl(path, _policy_bench_row, expected)
