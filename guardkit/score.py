"""`guardkit score`: a verdict per policy for every row of a file or a dataset, resumable after an interrupt.

Input: a JSONL, CSV or Parquet file, a dataset folder in the Hub layout, or a Hub dataset id (read through
the Hub cache, so a dataset fetched once with `guardkit pull` also scores offline). Output, by its suffix
(.jsonl, .csv or .parquet): the input's columns, then `<policy>_score` (P(unsafe)) and `<policy>_label`
for each policy, `unsafe_policies` (the ids that flagged the row, comma-separated) and `skipped` (why a
row was not scored: empty, not text, or longer than `guardkit.guard.MAX_TEXT_CHARS`; null when scored).

Rows are scored in chunks through `Guard.check`, so every guard gets its own fastest path. Each finished
chunk is appended to a journal beside the output (`OUTPUT.partial.jsonl`, flushed to disk, with the run's
options in `OUTPUT.partial.json`); a rerun with the same options carries on after the last complete line
(a line cut off by an interrupt is dropped and its rows scored again), and OUTPUT itself appears, whole,
only once every row is scored.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from guardkit.errors import GuardkitError
from guardkit.guard import Guard, policies_option, text_problem
from guardkit.policies import Policy

OUTPUT_FORMATS = (".jsonl", ".csv", ".parquet")
# Input suffix -> the `datasets` packaged builder that reads it.
INPUT_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
# Rows per Guard.check call and per journal write: large enough for the guard's length bucketing to batch
# well, small enough that an interrupt costs seconds of work.
ROWS_PER_CHUNK = 1024
JOURNAL_SUFFIX = ".partial.jsonl"
RUN_RECORD_SUFFIX = ".partial.json"
SCORED_COLUMNS = ("unsafe_policies", "skipped")


class ScoreError(GuardkitError):
    """An input, output or option `guardkit score` cannot use; the message says what to do."""


@dataclass
class ScoreConfig:
    model: str = field(metadata={"help": "guard folder (written by `guardkit train` or `guardkit merge`) or Hub model id"})
    input: str = field(
        metadata={
            "help": "rows to score: a .jsonl, .csv or .parquet file, a dataset folder in the Hub layout, or a Hub "
            "dataset id ORG/NAME (read through the Hub cache: `guardkit pull ORG/NAME` once to score it offline)"
        }
    )
    output: str = field(
        metadata={
            "help": "file to write, .jsonl, .csv or .parquet: the input's columns plus a score and a label per policy; "
            "an interrupted run resumes from OUTPUT.partial.jsonl when rerun with the same options"
        }
    )
    column: str = field(default="text", metadata={"help": "the input column that holds the texts"})
    policy: str | None = field(
        default=None,
        metadata={
            "help": "policies to score: ids separated by commas, or policy YAML files (a MultiTaskGuard or UniGuard "
            "scores unseen policies from their instruction); default: all the guard's policies"
        },
    )
    split: str | None = field(
        default=None, metadata={"help": "split of a dataset folder or Hub dataset; default: its only split (a file has one)"}
    )
    dataset_config: str | None = field(default=None, metadata={"help": "config name of a dataset folder or Hub dataset"})
    input_revision: str | None = field(default=None, metadata={"help": "Hub revision of --input when it is a Hub dataset id"})
    revision: str | None = field(default=None, metadata={"help": "Hub revision (branch, tag or commit) when --model is a Hub id"})
    batch_size: int = field(default=32, metadata={"help": "texts per forward pass"})
    device: str | None = field(default=None, metadata={"help": "torch device (cpu, cuda, ...); default: cuda when available"})
    backend: Literal["auto", "torch", "onnx"] = field(
        default="auto",
        metadata={"help": "forward pass: the ONNX model `guardkit export` wrote (auto: when the guard has one and runs on the CPU) or torch"},
    )


# ---------------------------------------------------------------- reading the input


def _undecodable_position(path: Path) -> tuple[int, int] | None:
    """(line, byte offset) of the first byte that is not UTF-8, or None when the file decodes."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line, offset = 1, 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as error:
                return line + block[: error.start].count(b"\n"), offset + error.start
            line += block.count(b"\n")
            offset += len(block)
    return None


def _check_utf8(path: Path) -> None:
    """Refuse a text file that is not UTF-8 before any row is read: the readers would fail later, or let
    broken text through."""
    position = _undecodable_position(path)
    if position is not None:
        line, offset = position
        raise ScoreError(
            f"{path} is not UTF-8 text: the byte at line {line} (offset {offset}) is not valid UTF-8 (is it a binary "
            f"file?); save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8 {path.name} > fixed{path.suffix}`) and rerun"
        )


def _read_file(path: Path):
    import datasets
    from datasets import Features, Value, load_dataset

    builder = INPUT_BUILDERS.get(path.suffix.lower())
    if builder is None:
        raise ScoreError(f"{path}: cannot tell its format from the suffix; name it .jsonl, .csv or .parquet")
    options = {}
    if builder != "parquet":
        _check_utf8(path)
        # The readers fail on a file without rows with messages about splits; say what it is.
        with path.open(encoding="utf-8-sig", newline="") as handle:  # -sig: a byte-order mark is no part of a name
            if builder == "csv":
                rows = csv.reader(handle)
                header, first = next(rows, []), next(rows, None)
            else:
                header, first = [], next((line for line in handle if line.strip()), None)
        if first is None:
            raise ScoreError(f"{path} has no rows to score")
    if builder == "csv":
        # Every cell as the text it is: no numbers guessed, no empty cell turned into NaN.
        options = {"features": Features({name: Value("string") for name in header}), "keep_default_na": False, "na_filter": False}
    try:
        return load_dataset(builder, data_files=str(path), split="train", **options)
    except (datasets.exceptions.DatasetGenerationError, ValueError, OSError) as error:
        # pyarrow's ArrowInvalid is a ValueError; datasets wraps parse errors in DatasetGenerationError.
        cause = error
        while cause.__cause__ is not None:
            cause = cause.__cause__
        raise ScoreError(f"{path} cannot be read as {builder.upper()} ({type(cause).__name__}: {cause})".replace("\n", " ")) from None


def _looks_like_hub_id(value: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if value.startswith((".", "/", "~")) or Path(value).suffix.lower() in INPUT_BUILDERS:
        return False
    try:
        validate_repo_id(value)
    except HFValidationError:
        return False
    return "/" in value


def _hub_folder(repo_id: str, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, repo_type="dataset", revision=revision))
    except LocalEntryNotFoundError:
        raise ScoreError(
            f"{repo_id}: not a local file or folder, and not in the Hub cache (offline, or the Hub did not answer); "
            f"fetch it once with `guardkit pull {repo_id}` while online"
        ) from None
    except HfHubHTTPError as error:
        raise ScoreError(f"{repo_id}: cannot download the dataset from the Hub ({error})") from None


def _read_folder(folder: Path, source: str, config_name: str | None, split: str | None):
    from datasets import load_dataset

    try:
        splits = load_dataset(str(folder), name=config_name)
    except (ValueError, FileNotFoundError) as error:
        raise ScoreError(f"{source} cannot be read as a dataset ({error})".replace("\n", " ")) from None
    if split is None:
        if len(splits) != 1:
            raise ScoreError(f"{source} has several splits ({', '.join(splits)}); choose one with --split")
        split = next(iter(splits))
    if split not in splits:
        raise ScoreError(f"{source} has no split '{split}' (splits: {', '.join(splits)})")
    return splits[split]


def open_input(config: ScoreConfig):
    """The rows to score as a `datasets.Dataset` (memory-mapped Arrow) and how to name their source."""
    path = Path(config.input).expanduser()
    if path.is_file():
        if config.split not in (None, "train"):
            raise ScoreError(f"--split: a file has one split; drop --split {config.split}")
        return _read_file(path), str(path.resolve())
    if path.is_dir():
        return _read_folder(path, config.input, config.dataset_config, config.split), str(path.resolve())
    if not _looks_like_hub_id(config.input):
        raise ScoreError(f"{config.input}: no such file or folder (nor a Hub dataset id ORG/NAME)")
    folder = _hub_folder(config.input, config.input_revision)
    return _read_folder(folder, config.input, config.dataset_config, config.split), f"{config.input}@{folder.name}"


# ---------------------------------------------------------------- the journal of finished chunks


def _columns(policy_ids: list[str]) -> list[str]:
    return [name for policy_id in policy_ids for name in (f"{policy_id}_score", f"{policy_id}_label")] + list(SCORED_COLUMNS)


class Journal:
    """`OUTPUT.partial.jsonl`: one line per scored row, in input order, appended a chunk at a time and fsynced."""

    def __init__(self, output: Path, run: dict):
        self.path = output.with_name(output.name + JOURNAL_SUFFIX)
        self.record = output.with_name(output.name + RUN_RECORD_SUFFIX)
        self.run = run
        self.done = self._resume()

    def _resume(self) -> int:
        if not self.record.is_file():
            self.path.unlink(missing_ok=True)  # rows without the record of the run that made them are nobody's
            temporary = self.record.with_name(self.record.name + ".tmp")
            temporary.write_text(json.dumps(self.run, indent=1, sort_keys=True), encoding="utf-8")
            os.replace(temporary, self.record)
            return 0
        previous = json.loads(self.record.read_text(encoding="utf-8"))
        if previous != self.run:
            changed = sorted(key for key in set(previous) | set(self.run) if previous.get(key) != self.run.get(key))
            raise ScoreError(
                f"{self.path} holds rows of a run with other options ({', '.join(changed)}); rerun with the same "
                f"options to resume it, or delete {self.path} and {self.record} to start over"
            )
        if not self.path.is_file():
            return 0
        content = self.path.read_bytes()
        complete = content[: content.rfind(b"\n") + 1]
        if len(complete) < len(content):
            # The tail of a chunk an interrupt cut off: its rows are scored again.
            with self.path.open("r+b") as handle:
                handle.truncate(len(complete))
        lines = complete.decode("utf-8").splitlines()
        for expected, line in enumerate(lines):
            try:
                row = json.loads(line)["row"]
            except (json.JSONDecodeError, KeyError, TypeError):
                row = None
            if row != expected:
                raise ScoreError(f"{self.path}: line {expected + 1} is not row {expected}; delete {self.path} to start over")
        return len(lines)

    def append(self, rows: list[dict]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
            handle.flush()
            os.fsync(handle.fileno())
        self.done += len(rows)

    def table(self, columns: list[str]):
        """Every journal row as an Arrow table with exactly `columns` (the row index dropped)."""
        import pyarrow as pa
        from pyarrow import json as pa_json

        types = {name: pa.float64() if name.endswith("_score") else pa.string() for name in columns}
        schema = pa.schema([("row", pa.int64()), *types.items()])
        table = pa_json.read_json(self.path, parse_options=pa_json.ParseOptions(explicit_schema=schema))
        return table.select(columns)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        self.record.unlink(missing_ok=True)


# ---------------------------------------------------------------- scoring


def _scored_rows(start: int, texts: list, policy_ids: list[str], guard: Guard, policies, batch_size: int) -> list[dict]:
    """The journal lines of one chunk: a score and a label per policy, or why the row was skipped."""
    rows = [{"row": start + offset, **dict.fromkeys(_columns(policy_ids))} for offset in range(len(texts))]
    scorable = []
    for offset, text in enumerate(texts):
        problem = text_problem(text)
        if problem:
            rows[offset]["skipped"] = f"text {problem}"
        else:
            scorable.append(offset)
    if not scorable:
        return rows
    flagged: dict[int, list[str]] = {offset: [] for offset in scorable}
    for verdict in guard.check([texts[offset] for offset in scorable], policies, batch_size=batch_size):
        offset = scorable[verdict.text_index]
        rows[offset][f"{verdict.policy}_score"] = round(verdict.score, 6)
        rows[offset][f"{verdict.policy}_label"] = verdict.label
        if verdict.unsafe:
            flagged[offset].append(verdict.policy)
    for offset, unsafe in flagged.items():
        rows[offset]["unsafe_policies"] = ",".join(unsafe)
    return rows


def _write_output(dataset, scores, output: Path) -> None:
    """The input's columns and the scores, written to a temporary file first so OUTPUT is always whole."""
    from datasets import Dataset, concatenate_datasets

    combined = concatenate_datasets([dataset, Dataset(scores)], axis=1)
    temporary = output.with_name(output.name + ".tmp")
    suffix = output.suffix.lower()
    if suffix == ".jsonl":
        combined.to_json(temporary, lines=True, force_ascii=False)
    elif suffix == ".csv":
        combined.to_csv(temporary, index=False)
    else:
        combined.to_parquet(temporary)
    os.replace(temporary, output)


def _policy_record(policies: list[str | Policy] | None, guard: Guard) -> dict[str, str | None]:
    """Policy id -> the instruction of a custom policy (None for the guard's own), in column order.

    A custom policy is recorded by its text: a rerun with an edited YAML file must not resume old rows.
    """
    return {
        policy.id if isinstance(policy, Policy) else policy: policy.instruction() if isinstance(policy, Policy) else None
        for policy in (policies if policies is not None else guard.policy_ids)
    }


def score(config: ScoreConfig) -> int:
    """`guardkit score`: see the module docstring."""
    from tqdm.auto import tqdm
    from transformers.utils import logging as transformers_logging

    output = Path(config.output)
    if output.suffix.lower() not in OUTPUT_FORMATS:
        raise ScoreError(f"--output {output}: name it .jsonl, .csv or .parquet (the format follows the suffix)")
    if config.batch_size < 1:
        raise ScoreError(f"--batch_size must be at least 1, got {config.batch_size}")
    if not output.parent.is_dir():
        raise ScoreError(f"--output {output}: the folder {output.parent} does not exist")
    transformers_logging.disable_progress_bar()
    guard = Guard.from_pretrained(config.model, revision=config.revision, device=config.device, backend=config.backend)
    policies = policies_option(guard, config.policy)
    policy_record = _policy_record(policies, guard)
    policy_ids = list(policy_record)
    dataset, source = open_input(config)
    if len(dataset) == 0:
        raise ScoreError(f"{config.input} has no rows to score")
    if config.column not in dataset.column_names:
        raise ScoreError(
            f"{config.input} has no column '{config.column}' (columns: {', '.join(dataset.column_names) or 'none'}); "
            "name the column that holds the texts with --column"
        )
    feature = dataset.features[config.column]
    if getattr(feature, "dtype", None) not in ("string", "large_string"):
        raise ScoreError(f"column '{config.column}' of {config.input} holds {feature}, not text; name a text column with --column")
    columns = _columns(policy_ids)
    clashes = [name for name in columns if name in dataset.column_names]
    if clashes:
        raise ScoreError(f"{config.input} already has column(s) {', '.join(clashes)}, which the scores would overwrite; rename them")
    run = {
        "model": config.model,
        "revision": config.revision,
        "guard": guard.manifest.to_dict(),
        "backend": guard.backend,  # an int8 ONNX model scores a little differently from torch: rows are not mixed
        "input": source,
        "split": config.split,
        "dataset_config": config.dataset_config,
        "column": config.column,
        "rows": len(dataset),
        "policies": policy_record,
    }
    journal = Journal(output, run)
    texts = dataset.select_columns([config.column])
    started, resumed = time.perf_counter(), journal.done
    with tqdm(total=len(dataset), initial=journal.done, unit="row", desc="scoring", dynamic_ncols=True) as bar:
        for start in range(journal.done, len(dataset), ROWS_PER_CHUNK):
            chunk = texts[start : start + ROWS_PER_CHUNK][config.column]
            journal.append(_scored_rows(start, chunk, policy_ids, guard, policies, config.batch_size))
            bar.update(len(chunk))
    seconds = time.perf_counter() - started
    scores = journal.table(columns)
    _write_output(dataset, scores, output)
    journal.remove()
    flagged = sum(1 for value in scores.column("unsafe_policies").to_pylist() if value)
    not_scored = len(dataset) - scores.column("skipped").null_count
    line = f"wrote {output}: {len(dataset):,} rows x {len(policy_ids)} policies, {flagged:,} flagged unsafe"
    if not_scored:
        line += f", {not_scored:,} not scored (the skipped column says why)"
    if resumed:
        line += f"; resumed after {resumed:,} rows already scored"
    if len(dataset) > resumed:
        line += f"; {(len(dataset) - resumed) / max(seconds, 1e-9):,.0f} rows/s"
    print(line)
    return 0
