"""The texts every evaluation suite scores, gathered in one place so that the data engine keeps them out.

Nothing an evaluation uses may become training material or seed material: the data engine decontaminates
its candidates against all of these and reports the counts per set.
"""

from __future__ import annotations

import json
from pathlib import Path

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
