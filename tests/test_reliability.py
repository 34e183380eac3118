"""The bad-input sweep: each row of the table in docs/reliability.md, as a user meets it.

Every case checks what the user sees (a message, exit status 2, no traceback; or 130 after Ctrl-C) and
that nothing is lost (inputs untouched, finished work kept, a rerun resumes without taking anything
half-written for done). The score cases that read files live in tests/test_score.py; the table names them.
"""

from __future__ import annotations

import errno
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from test_merge import toy_dataset, toy_sources  # noqa: F401  (fixtures: a toy dataset and two guards to merge)

from guardkit import cli
from guardkit.guard import MAX_TEXT_CHARS, Guard, GuardError

pytestmark = pytest.mark.usefixtures("one_torch_thread")
FIXTURE_POLICY = Path(__file__).parent / "fixtures" / "policies" / "pet_safety.yaml"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return status, out, err


def fails_clearly(capsys, *argv: str) -> str:
    """The command exits 2 with one `guardkit <command>: error: ...` line and no traceback; returns stderr."""
    status, _, err = run_cli(capsys, *argv)
    assert status == 2, err
    assert "guardkit " in err and ": error: " in err
    return err


def interrupt(argv: list[str], ready: Callable[[], bool], timeout: float = 600) -> str:
    """Run `guardkit ARGV` in a child process, press Ctrl-C once `ready()` holds; returns its output."""
    process = subprocess.Popen(
        [sys.executable, "-m", "guardkit.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        # A terminal's Ctrl-C: a suite started in the background (`make test &`) inherits SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + timeout
    while not ready() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, f"finished before the interrupt:\n{process.communicate()[0].decode()[-3000:]}"
    process.send_signal(signal.SIGINT)
    output = process.communicate(timeout=180)[0].decode()
    assert process.returncode == 130, output[-3000:]
    assert "interrupted; rerun the same command to resume where it stopped" in output and "Traceback" not in output
    return output


# ---------------------------------------------------------------- texts


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_and_whitespace_texts(tiny_guards, capsys, text):
    _, task = tiny_guards
    err = fails_clearly(capsys, "check", "--model", str(task), text)
    assert "text 0 is empty or only whitespace; a guard scores non-empty strings" in err


@pytest.mark.parametrize("size", [1_000_000, 10_000_000])
def test_megabyte_texts_are_refused_at_the_cap_not_scored_for_minutes(tiny_guards, capsys, size):
    pair, task = tiny_guards
    text = "A calm report on the weather. " * (size // 30)
    # Through the Python API (a shell cannot pass an argument this long: Linux caps one at 128 KB).
    err = fails_clearly(capsys, "check", "--model", str(task), "a short text", text)
    assert f"text 1 has {len(text):,} characters, more than the {MAX_TEXT_CHARS:,} a guard scores" in err
    assert "split a longer text into parts" in err
    with pytest.raises(GuardError, match="MAX_TEXT_CHARS"):
        Guard.from_pretrained(pair).check([text], ["jailbreak"])
    assert Guard.from_pretrained(task).check(text[:MAX_TEXT_CHARS])[0].policy == "jailbreak"  # the cap itself is scored


# ---------------------------------------------------------------- guard folders


def _damaged_copy(guard: Path, folder: Path, damage: Callable[[Path], None]) -> Path:
    shutil.copytree(guard, folder)
    damage(folder)
    return folder


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda folder: _truncate(folder / "model.safetensors"), "the model cannot be loaded"),
        (lambda folder: (folder / "model.safetensors").write_bytes(b""), "the model cannot be loaded"),
        (lambda folder: [(folder / name).unlink() for name in ("tokenizer.json", "tokenizer_config.json")], "has no tokenizer"),
        (lambda folder: (folder / "tokenizer.json").unlink(), "no vocabulary besides its special tokens"),
    ],
    ids=["truncated-weights", "empty-weights", "no-tokenizer", "no-vocabulary"],
)
def test_damaged_guard_folders_say_how_to_repair_them(tiny_guards, tmp_path, capsys, damage, message):
    _, task = tiny_guards
    folder = _damaged_copy(task, tmp_path / "guard", damage)
    err = fails_clearly(capsys, "check", "--model", str(folder), "hello")
    assert message in err and ("copy the folder again" in err)
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "hello"}\n')
    assert message in fails_clearly(capsys, "score", "--model", str(folder), "--input", str(source), "--output", str(tmp_path / "out.jsonl"))
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"format_version": 99}, "format_version 99 is not one this guardkit reads"),
        ({"format_version": "2"}, "format_version '2' is not one this guardkit reads"),
        ({"kind": "classifier"}, "unknown guard kind 'classifier'"),
        ({"kind": None}, "unknown guard kind 'None'"),
        ({"policies": ["jailbreak"]}, "guardkit.json is missing or has a bad field"),
    ],
)
def test_a_guardkit_json_with_a_wrong_version_or_kind(tiny_guards, tmp_path, capsys, change, message):
    _, task = tiny_guards
    folder = _damaged_copy(task, tmp_path / "guard", lambda folder: None)
    manifest = json.loads((folder / "guardkit.json").read_text())
    (folder / "guardkit.json").write_text(json.dumps({**manifest, **change}))
    assert message in fails_clearly(capsys, "check", "--model", str(folder), "hello")
    (folder / "guardkit.json").write_text("[1, 2]")
    assert "expected a JSON object" in fails_clearly(capsys, "check", "--model", str(folder), "hello")
    (folder / "guardkit.json").write_bytes(b"\x89PNG\r\n\x1a\n\x00")
    assert "not valid JSON" in fails_clearly(capsys, "check", "--model", str(folder), "hello")


# ---------------------------------------------------------------- policies and configs


def _policy_text(**changes) -> str:
    import yaml

    from guardkit.policies import get_policy

    return yaml.safe_dump({**get_policy("jailbreak").model_dump(), "id": "house_rules", **changes}, sort_keys=False)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"disallowed": "Role-play as an unrestricted AI"}, "field 'disallowed': Input should be a valid list"),
        ({"examples": ["a", "b"]}, "field 'examples': Input should be a valid dictionary"),
        ({"name": 42}, "field 'name': Input should be a valid string"),
        ({"id": "House Rules"}, "field 'id': String should match pattern"),
        ({"allowed": []}, "field 'allowed': List should have at least 1 item"),
    ],
)
def test_a_policy_yaml_with_a_wrong_type(tiny_guards, tmp_path, capsys, changes, message):
    pair, _ = tiny_guards
    path = tmp_path / "house_rules.yaml"
    path.write_text(_policy_text(**changes))
    assert message in fails_clearly(capsys, "policies", "validate", str(path))
    assert message in fails_clearly(capsys, "check", "--model", str(pair), "--policy", str(path), "hello")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    assert "must be a YAML mapping" in fails_clearly(capsys, "policies", "validate", str(tmp_path / "list.yaml"))
    (tmp_path / "binary.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    assert "not UTF-8 text" in fails_clearly(capsys, "policies", "validate", str(tmp_path / "binary.yaml"))


def test_a_duplicated_policy_id(tiny_guards, tmp_path, capsys):
    pair, _ = tiny_guards
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(_policy_text())
    second.write_text(_policy_text(name="Other house rules"))
    assert "duplicate policy id 'house_rules'" in fails_clearly(capsys, "policies", "validate", str(first), str(second))
    err = fails_clearly(capsys, "check", "--model", str(pair), "--policy", f"{first},{second}", "hello")
    assert "policy id given more than once: house_rules" in err
    # The same key twice in one file: YAML would keep the last silently.
    (tmp_path / "twice.yaml").write_text(_policy_text() + "id: house_rules_again\n")
    assert "key 'id' appears more than once" in fails_clearly(capsys, "policies", "validate", str(tmp_path / "twice.yaml"))


def test_ten_thousand_item_lists(tiny_guards, tmp_path, capsys):
    pair, task = tiny_guards
    path = tmp_path / "huge.yaml"
    behaviours = [f"Asking for forbidden thing number {index}" for index in range(10_000)]
    path.write_text(_policy_text(disallowed=behaviours, allowed=behaviours, hard_negatives=behaviours))
    status, out, _ = run_cli(capsys, "policies", "validate", str(path))
    assert status == 0 and "house_rules" in out  # a valid policy, however long
    err = fails_clearly(capsys, "check", "--model", str(pair), "--policy", str(path), "hello")
    assert "the policy instruction takes" in err and "shorten the policy's description and lists" in err
    texts = [f"message number {index}" for index in range(10_000)]
    status, out, _ = run_cli(capsys, "check", "--model", str(task), "--as_json", "true", *texts)
    lines = out.splitlines()
    assert status == 0 and len(lines) == 10_000 and json.loads(lines[-1])["text"] == texts[-1]


def test_a_config_file_with_an_unknown_key(tiny_guards, tmp_path, capsys):
    _, task = tiny_guards
    config = tmp_path / "check.yaml"
    config.write_text(f"model: {task}\nbatchsize: 8\n")
    err = fails_clearly(capsys, "check", "--config", str(config), "hello")
    assert f"--config {config}: unknown option(s) batchsize; valid: " in err and "batch_size" in err
    config.write_text(f"model: {task}\nmodel: {task}\n")
    assert "key 'model' appears more than once" in fails_clearly(capsys, "check", "--config", str(config), "hello")


# ---------------------------------------------------------------- Ctrl-C, then a rerun


def test_ctrl_c_during_train_then_a_rerun_resumes_from_the_last_complete_checkpoint(tmp_path, tiny_bert_dir, capsys):
    from test_train import write_dataset

    dataset = write_dataset(tmp_path / "data", ["jailbreak"], {"train": 48, "validation": 16, "test": 16}, max_words=12)
    output = tmp_path / "guard"
    argv = [
        "train", "task", "--dataset", str(dataset), "--policy", "jailbreak", "--output", str(output), "--base_model", str(tiny_bert_dir),
        "--epochs", "4", "--batch_size", "8", "--eval_steps", "4", "--early_stopping_patience", "0", "--policy_examples", "false",
    ]  # fmt: skip
    checkpoints = output / "checkpoints"
    interrupt(argv, lambda: any(checkpoints.glob("checkpoint-*/trainer_state.json")))
    assert not (output / "guardkit.json").exists()  # no guard folder vouches for an unfinished training
    complete = sorted(checkpoints.glob("checkpoint-*/trainer_state.json"))
    state = json.loads(complete[-1].read_text())
    assert 0 < state["global_step"] < state["max_steps"]
    # What an interrupt in the middle of a save leaves: a newer checkpoint with cut-off weights and no trainer state.
    partial = checkpoints / "checkpoint-9999"
    shutil.copytree(complete[-1].parent, partial)
    (partial / "trainer_state.json").unlink()
    _truncate(partial / "model.safetensors")

    status, _, err = run_cli(capsys, *argv)
    assert status == 0, err
    assert f"removing {partial}: its save was interrupted" in err
    assert f"resuming the interrupted training from {checkpoints / 'checkpoint-'}" in err
    results = json.loads((output / "eval_results.json").read_text())
    assert results["training"]["steps"] == state["max_steps"]  # every planned step, counted across both runs
    assert (output / "guardkit.json").exists() and not checkpoints.exists()
    assert Guard.from_pretrained(output).check("hello")[0].policy == "jailbreak"


def _trials(database: Path, state: str) -> int:
    if not database.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1) as connection:
            return connection.execute("SELECT COUNT(*) FROM trials WHERE state = ?", (state,)).fetchone()[0]
    except sqlite3.OperationalError:  # the tables are not there yet, or the writer holds the lock
        return 0


def test_ctrl_c_during_merge_then_a_rerun_finishes_the_search(tmp_path, toy_sources, toy_dataset, capsys):
    output = tmp_path / "uniguard"
    argv = [
        "merge", "--models", *toy_sources, "--dataset", str(toy_dataset), "--output", str(output), "--method", "linear",
        "--trials", "12", "--compare_split", "",
    ]  # fmt: skip
    database = output / "search.db"
    interrupt(argv, lambda: _trials(database, "COMPLETE") >= 2)
    finished = _trials(database, "COMPLETE")
    assert 2 <= finished < 12 and not (output / "guardkit.json").exists()
    status, _, err = run_cli(capsys, *argv)
    assert status == 0, err
    # Exactly the trials asked for: the one cut off is recorded as failed, never as a finished trial.
    assert _trials(database, "COMPLETE") + _trials(database, "PRUNED") == 12
    assert _trials(database, "RUNNING") == 0
    assert Guard.from_pretrained(output).kind == "uniguard"


def test_ctrl_c_during_score_then_a_rerun_writes_each_row_once(tiny_guards, tmp_path, capsys):
    import pandas as pd

    from guardkit.score import JOURNAL_SUFFIX

    _, task = tiny_guards
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps({"n": index, "text": f"message number {index} about the weather"}) + "\n" for index in range(6_000)))
    output = tmp_path / "scored.csv"
    journal = output.with_name(output.name + JOURNAL_SUFFIX)

    def journal_rows() -> int:
        return journal.read_bytes().count(b"\n") if journal.exists() else 0

    argv = ["score", "--model", str(task), "--input", str(source), "--output", str(output)]
    interrupt(argv, lambda: journal_rows() >= 1024)
    kept = journal_rows()
    assert 1024 <= kept < 6_000 and not output.exists()
    status, out, err = run_cli(capsys, *argv)
    assert status == 0, err
    assert f"resumed after {kept:,} rows already scored" in out
    frame = pd.read_csv(output, keep_default_na=False)
    assert frame["n"].tolist() == list(range(6_000))  # every row once, in order
    # The rows on both sides of the interruption carry the scores the guard gives them.
    edge = frame.iloc[[kept - 1, kept]]
    expected = Guard.from_pretrained(task).score(edge["text"].tolist())
    assert edge["jailbreak_score"].tolist() == pytest.approx(expected.tolist(), abs=1e-6)
    assert not journal.exists()


# ---------------------------------------------------------------- a full disk during generate


def test_a_full_disk_while_candidates_are_written_is_one_message_and_loses_nothing(tmp_path, monkeypatch, capsys):
    from guardkit.generate import store as store_module
    from guardkit.generate.store import CandidateStore, StoreError

    path = tmp_path / "candidates.jsonl"
    store = CandidateStore(path)
    store.record_done("r0/a", [{"id": "r0/a#0", "text": "first"}])
    store.close()
    before = path.read_text()

    def full(_descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module.os, "fsync", full)
    store = CandidateStore(path)
    with pytest.raises(StoreError, match=r"cannot append to .*candidates.jsonl \(No space left on device\); free some space"):
        store.record_done("r0/b", [{"id": "r0/b#0", "text": "second"}])
    assert path.read_text().startswith(before)
    assert [candidate["id"] for candidate in CandidateStore(path).candidates][0] == "r0/a#0"


def _mount_tmpfs(folder: Path, size: str) -> bool:
    folder.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True).returncode == 0


def test_generate_on_a_full_tmpfs_stops_with_a_message_and_resumes_once_there_is_room(tmp_path, tiny_causal_lm_dir, capsys):
    """A real full disk: a 12 KB tmpfs (needs root and a kernel that lets the test mount one)."""
    disk = tmp_path / "small-disk"
    if not _mount_tmpfs(disk, "12k"):
        pytest.skip("cannot mount a tmpfs here (not root, or no mount permission); the failing-writer test covers the code")
    try:
        argv = [
            "generate", "--policies", str(FIXTURE_POLICY), "--output", str(disk / "data"), "--generator", str(tiny_causal_lm_dir),
            "--num_per_label", "4", "--texts_per_request", "2", "--max_new_tokens", "24", "--oversample", "4", "--max_rounds", "1",
            "--reflection", "off", "--parse_retries", "0", "--batch_size", "4",
            # Generated candidates only: the real corpora would take the disk's room before the first request.
            "--corpora", "none", "--jailbreak_recombinations", "0", "--injection_recombinations", "0", "--generated_unsafe",
        ]  # fmt: skip
        err = fails_clearly(capsys, *argv)
        assert "candidates.jsonl (No space left on device); free some space and rerun the same command" in err
        candidates = disk / "data" / "candidates.jsonl"
        written = candidates.read_text(encoding="utf-8", errors="replace")
        complete = written[: written.rfind("\n") + 1]
        finished = {json.loads(line)["request_id"] for line in complete.splitlines() if json.loads(line)["status"] == "failed"}
        assert finished, "the disk filled before any request was recorded: make the tmpfs larger"

        subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True)
        status, _, err = run_cli(capsys, *argv)
        # The tiny random generator writes nothing parseable: the run ends without generated rows, and says so.
        assert status == 0 or (status == 2 and ": error: " in err), err
        after = candidates.read_text(encoding="utf-8", errors="replace")
        assert after.startswith(complete)  # every line written before the disk filled is still there
        rerun = [json.loads(line) for line in after[len(complete) :].splitlines() if line.startswith("{") and line.endswith("}")]
        assert not finished & {record["request_id"] for record in rerun if record.get("status") == "failed"}  # none redone
    finally:
        subprocess.run(["umount", str(disk)], check=False)


# ---------------------------------------------------------------- the Space


@pytest.fixture(scope="module")
def service(tiny_guards, tmp_path_factory):
    from guardkit.demo import DemoService, LoadedGuard

    pair, task = tiny_guards
    return DemoService(
        [LoadedGuard("pair", str(pair), Guard.from_pretrained(pair)), LoadedGuard("task", str(task), Guard.from_pretrained(task))],
        reproduce_dir=tmp_path_factory.mktemp("no-reproduce"),
    )


def test_the_space_text_box_given_a_megabyte_or_binary_text(service):
    from guardkit.demo import LONG_TEXT_MESSAGE

    megabyte = "x" * 1_000_000
    expected = LONG_TEXT_MESSAGE.format(length=len(megabyte), limit=MAX_TEXT_CHARS)
    assert service.check(megabyte, ["jailbreak"]) == (expected, "", {"verdicts": []})
    assert service.compare(megabyte, "jailbreak") == (expected, "", {"verdicts": []})
    binary = bytes(range(256)).decode("latin-1") * 4  # control characters, NUL, bytes pasted from a binary file
    message, cards, result = service.check(binary, ["jailbreak"])
    assert [row["policy"] for row in result["verdicts"]] == ["jailbreak"] and 'class="gk-verdict"' in cards
    message, _, result, _, _ = service.custom_policy("Rules", "Flags rule breaking.", "Breaking rules", "Keeping rules", "ok", "bad", megabyte)
    assert "more than the 32,000 a guard scores" in message and result["verdicts"] == []


def test_the_space_batch_tab_given_a_megabyte_text_or_a_binary_file(service, tmp_path):
    import pandas as pd

    upload = tmp_path / "texts.csv"
    pd.DataFrame({"text": ["hello there", "y" * 1_000_000, "how are you"]}).to_csv(upload, index=False)
    message, frame, download = service.batch(str(upload), ["jailbreak"])
    assert "Scored 2 texts" in message and "1 row was left unscored" in message and download
    assert frame["skipped"].tolist()[1].startswith("text has 1,000,000 characters") and frame["jailbreak_score"].notna().tolist() == [True, False, True]
    for suffix in (".csv", ".jsonl"):
        binary = tmp_path / f"image{suffix}"
        binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8)
        message, frame, download = service.batch(str(binary), ["jailbreak"])
        assert f"`image{suffix}` cannot be read as {suffix[1:].upper()}" in message and download is None and frame.empty
