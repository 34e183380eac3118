"""End-to-end runs of `guardkit generate` on the shipped SmolLM2 and MiniLM (integration: slower)."""

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from datasets import load_dataset
from huggingface_hub import DatasetCard

from guardkit.data.io import load_guard_dataset
from guardkit.data.schema import FEATURES
from guardkit.errors import GuardkitError
from guardkit.generate.config import GenerateConfig
from guardkit.generate.pipeline import MAX_TOP_UP_OVERSAMPLING, generate, top_up_oversampling
from guardkit.generate.store import CandidateStore
from guardkit.hub import inspect_folder

FIXTURE = Path(__file__).parent / "fixtures" / "policies" / "pet_safety.yaml"
SECOND = FIXTURE.with_name("movie_spoilers.yaml")
SMALL = ["--num_per_label", "2", "--texts_per_request", "4", "--max_new_tokens", "64", "--oversample", "2", "--max_rounds", "1"]
# Two small real corpora, a few recombinations and document fragments: the corpus paths run, and the generator still
# has rows to write.
FEW_CORPORA = [
    "--corpora", "chatterbot-en", "advbench", "--max_per_corpus", "30", "--jailbreak_recombinations", "8", "--injection_recombinations", "8",
    "--document_fragments_per_policy", "4",
]  # fmt: skip


def _done_lines(path: Path) -> int:
    if not path.exists():
        return 0
    return sum('"status": "done"' in line for line in path.read_text(encoding="utf-8").splitlines())


def _check_folder(folder: Path, policies: set[str]) -> None:
    splits = load_dataset(str(folder))
    assert set(splits) == {"train", "validation", "test"}
    assert all(split.features == FEATURES for split in splits.values())
    multitask, loaded_policies = load_guard_dataset(folder, "multitask")
    assert policies <= set(loaded_policies)
    assert set(multitask["train"]["policy"]) <= policies
    default, _ = load_guard_dataset(folder, "default")
    stats = json.loads((folder / "stats.json").read_text())
    # Every default row but the background ones (everyday texts, document fragments) is in multitask too (beside its
    # cross-policy extras).
    background = sum(stats["background_rows"].values()) + sum(stats["document_fragment_rows"].values())
    assert sum(map(len, multitask.values())) >= sum(map(len, default.values())) - background
    card = DatasetCard.load(folder / "README.md")
    assert "synthetic" in card.data.tags and card.data.task_categories == ["text-classification"]
    inspect_folder(folder)  # the publishing checks: configs, features, files, no local paths
    assert (folder / "generation.yaml").exists() and all((folder / "policies" / f"{policy}.yaml").exists() for policy in policies)
    assert stats["generated_accepted"] > 0 and stats["generated_accepted_per_minute"] > 0


def _no_duplicates(folder: Path) -> CandidateStore:
    store = CandidateStore(folder / "candidates.jsonl")
    ids = [candidate["id"] for candidate in store.candidates]
    assert len(ids) == len(set(ids))
    records = [json.loads(line) for line in (folder / "candidates.jsonl").read_text().splitlines()]
    done = Counter(record["request_id"] for record in records if record["type"] == "request" and record["status"] == "done")
    assert done and max(done.values()) == 1
    return store


def test_top_up_rounds_ask_for_what_the_kept_share_needs():
    assert top_up_oversampling(kept=0, asked=0, first=2.0) == 2.0  # nothing asked yet: --oversample
    assert top_up_oversampling(kept=25, asked=100, first=2.0) == 4.0  # a quarter kept: four texts per text wanted
    assert top_up_oversampling(kept=30, asked=20, first=2.0) == 1.0  # relabelled texts from the other label count too
    assert top_up_oversampling(kept=1, asked=100, first=2.0) == MAX_TOP_UP_OVERSAMPLING
    assert top_up_oversampling(kept=0, asked=100, first=2.0) == MAX_TOP_UP_OVERSAMPLING


def test_generated_texts_are_unsafe_rows_only_with_generated_unsafe(tmp_path):
    import numpy as np

    from guardkit.generate.candidates import GENERATED_SOURCE, Candidate
    from guardkit.generate.labeller import Decision
    from guardkit.generate.pipeline import Admitted, Generation

    unsafe = Decision("unsafe", 0.9, {"examples-lr": 2.0}, ("a rule",))
    generated = Admitted(Candidate(id="r0/a#0", text="a generated text", source=GENERATED_SOURCE), "a generated text", np.zeros(3), {})
    corpus = Admitted(Candidate(id="corpus:advbench:1", text="a corpus text", source="corpus:advbench"), "a corpus text", np.zeros(3), {})
    default = Generation(GenerateConfig(policies=[str(FIXTURE)], output=str(tmp_path / "a")))
    set_aside = default._set_aside_generated_unsafe(generated, unsafe)
    assert set_aside.label is None and set_aside.rules == () and default.generated_unsafe_set_aside == 1
    assert default._set_aside_generated_unsafe(corpus, unsafe) is unsafe  # real text keeps its verdict
    safe = Decision("safe", 0.1, {})
    assert default._set_aside_generated_unsafe(generated, safe) is safe and default.generated_unsafe_set_aside == 1
    assert default._wanted("pet_safety", "unsafe") == 0 and default._wanted("pet_safety", "safe") == 150  # no unsafe requests

    trusting = Generation(GenerateConfig(policies=[str(FIXTURE)], output=str(tmp_path / "b"), generated_unsafe=True))
    assert trusting._set_aside_generated_unsafe(generated, unsafe) is unsafe and trusting.generated_unsafe_set_aside == 0
    assert trusting._wanted("pet_safety", "unsafe") == 150


@pytest.mark.integration
def test_interrupted_run_resumes_without_duplicates_or_losses(smollm2_dir, minilm_dir, tmp_path):
    folder = tmp_path / "data"
    # Oversampling 4: eight requests of ~4 s each, so Ctrl-C lands well before the last one is done. No abstention
    # margin: with two rows per label, the labeller abstaining on the other policy's few rows would leave no cross rows.
    args = [
        "--policies", str(FIXTURE), str(SECOND), "--output", str(folder), *SMALL, *FEW_CORPORA, "--oversample", "4", "--batch_size", "1",
        "--reflection", "off", "--abstain_margin", "0", "--generated_unsafe",
    ]  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "guardkit.cli", "generate", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        # A terminal's Ctrl-C: a suite started in the background (`make test &`) inherits SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 600
    while _done_lines(folder / "candidates.jsonl") < 1 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)  # Ctrl-C
    output = process.communicate(timeout=120)[0].decode()
    assert process.returncode == 130, output
    assert "rerun the same command to resume" in output
    before = (folder / "candidates.jsonl").read_text()
    first_candidates = [candidate["id"] for candidate in CandidateStore(folder / "candidates.jsonl").candidates]
    assert first_candidates

    from guardkit.config import parse_config

    config = parse_config(GenerateConfig, args, prog="generate", description="")
    assert generate(config) == 0
    after = (folder / "candidates.jsonl").read_text()
    assert after.startswith(before.rstrip("\n"))  # nothing written before the interruption was lost
    store = _no_duplicates(folder)
    assert [candidate["id"] for candidate in store.candidates][: len(first_candidates)] == first_candidates
    _check_folder(folder, {"pet_safety", "movie_spoilers"})
    # Background rows: chatterbot-en (the benign corpus here) texts, safe, beside the balanced rows, none in multitask.
    stats = json.loads((folder / "stats.json").read_text())
    default_rows = [row for split in load_dataset(str(folder)).values() for row in split]
    multitask_texts = {(row["text"], row["policy"]) for split in load_dataset(str(folder), "multitask").values() for row in split}
    for policy_id in ("pet_safety", "movie_spoilers"):
        chatter = [row for row in default_rows if row["policy"] == policy_id and row["source"] == "corpus:chatterbot-en"]
        assert 0 < stats["background_rows"][policy_id] <= len(chatter) and all(row["label"] == 0 for row in chatter)
        assert sum((row["text"], policy_id) not in multitask_texts for row in chatter) >= stats["background_rows"][policy_id]
        # Passages of the installed long documents, safe, in `default` only.
        fragments = [row for row in default_rows if row["policy"] == policy_id and row["source"].startswith("fragment:")]
        assert len(fragments) == stats["document_fragment_rows"][policy_id] and 0 < len(fragments) <= 4
        assert all(row["label"] == 0 and (row["text"], policy_id) not in multitask_texts for row in fragments)
    # The multitask config adds cross-policy rows: texts selected for one policy, labelled under the other.
    multitask = load_dataset(str(folder), "multitask")
    default = load_dataset(str(folder))
    selected_for = {(row["text"], row["policy"]) for split in default.values() for row in split}
    cross = [row for split in multitask.values() for row in split if (row["text"], row["policy"]) not in selected_for]
    # (Augmentation may have rewritten a text in `default`, so the rows are matched by their presence only.)
    assert cross and all(row["label"] in (0, 1) for row in cross)

    # Without the fragments (a copy, resumed): every other row keeps its split.
    without = tmp_path / "without-fragments"
    shutil.copytree(folder, without)
    assert generate(parse_config(GenerateConfig, [*args, "--output", str(without), "--document_fragments_per_policy", "0"], prog="generate", description="")) == 0
    split_of = {(row["text"], row["policy"]): split for split, rows in load_dataset(str(folder)).items() for row in rows}
    kept = {(row["text"], row["policy"]): split for split, rows in load_dataset(str(without)).items() for row in rows}
    assert not any(source.startswith("fragment:") for rows in load_dataset(str(without)).values() for source in rows["source"])
    assert kept and all(split_of[key] == split for key, split in kept.items())

    changed = parse_config(GenerateConfig, [*args, "--seed", "5"], prog="generate", description="")
    with pytest.raises(GuardkitError, match="seed"):
        generate(changed)


@pytest.mark.integration
def test_openai_backend_against_transformers_serve_survives_a_server_crash(smollm2_dir, minilm_dir, tmp_path):
    from test_generate_backends import Server

    server = Server(smollm2_dir, tmp_path / "serve.log")
    server.start()
    folder = tmp_path / "data"
    config = GenerateConfig(
        policies=[str(FIXTURE)], output=str(folder), num_per_label=2, texts_per_request=4, max_new_tokens=64, oversample=4, max_rounds=1,
        backend="openai", generator=str(smollm2_dir), base_url=server.base_url, prompt_style="list", concurrency=1,
        max_retries=1, retry_backoff=0.1, request_timeout=600, reflection="off",
        # No corpora: the generator writes every row, so there are requests left when the server dies.
        corpora=["none"], jailbreak_recombinations=0, injection_recombinations=0, generated_unsafe=True,
    )

    def kill_after_first_request():
        while _done_lines(folder / "candidates.jsonl") < 1 and server.process.poll() is None:
            time.sleep(0.2)
        server.kill()

    watcher = threading.Thread(target=kill_after_first_request)
    watcher.start()
    try:
        with pytest.raises(GuardkitError, match="rerun the same command"):
            generate(config)
        watcher.join()
        first = [candidate["id"] for candidate in CandidateStore(folder / "candidates.jsonl").candidates]
        assert first
        server.start()
        assert generate(config) == 0
    finally:
        server.kill()
    store = _no_duplicates(folder)
    assert [candidate["id"] for candidate in store.candidates][: len(first)] == first
    _check_folder(folder, {"pet_safety"})
