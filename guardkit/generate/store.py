"""`candidates.jsonl`: the append-only log that makes generation resumable.

Three record types, one JSON object per line:
  candidate  a generated text, with the request it came from (policy, kind, intended label, behaviour)
  request    a request's outcome: "done" (its candidates precede it), "unparseable" (one failed attempt,
             with the raw response) or "failed" (gave up after the parse retries)
  verdict    a judge's P(unsafe) and rationale for a text under a policy (self-reflection, cross-policy rows)

A request's candidates and its "done" line are written in a single append, so after a crash a request is
either fully recorded or redone: resuming never duplicates a candidate nor loses a finished one. A line cut
off by a crash is ignored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from pathlib import Path

from guardkit.errors import GuardkitError

logger = logging.getLogger(__name__)


class StoreError(GuardkitError):
    """candidates.jsonl cannot be written; what it already holds is kept."""


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:20]


class CandidateStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.candidates: list[dict] = []
        self.finished: dict[str, str] = {}
        self.unparseable_attempts: Counter[str] = Counter()
        self.verdicts: dict[tuple[str, str, str], dict] = {}
        self._load()
        self._handle = None

    def _load(self) -> None:
        if not self.path.exists():
            return
        pending: dict[str, list[dict]] = {}
        accepted: list[dict] = []
        skipped = 0
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                skipped += 1
                continue
            kind = record.get("type")
            if kind == "candidate":
                pending.setdefault(record["request_id"], []).append(record)
            elif kind == "request":
                request_id, status = record["request_id"], record["status"]
                if status == "unparseable":
                    self.unparseable_attempts[request_id] += 1
                    continue
                self.finished[request_id] = status
                # Only the candidates written with this "done" line count: earlier ones were cut off by a crash.
                waiting = pending.pop(request_id, [])
                if status == "done" and record["candidates"]:
                    accepted.extend(waiting[-record["candidates"] :])
            elif kind == "verdict":
                self.verdicts[(record["judge"], record["policy"], record["text_key"])] = record
        self.candidates = accepted
        if skipped:
            logger.warning("%s: ignored %d unreadable line(s) left by an interrupted run", self.path, skipped)

    def _append(self, records: list[dict]) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            cut_off = False
            if self.path.exists() and self.path.stat().st_size > 0:
                with self.path.open("rb") as existing:
                    existing.seek(-1, os.SEEK_END)
                    cut_off = existing.read(1) != b"\n"
            self._handle = self.path.open("a", encoding="utf-8")
            if cut_off:
                # End the line a crash cut off, so the next record starts on a line of its own.
                self._handle.write("\n")
        try:
            self._handle.write("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as error:
            # A full disk (or a lost mount): the lines already there stay, a cut-off one is ignored on resume.
            self.close_quietly()
            raise StoreError(
                f"cannot append to {self.path} ({error.strerror or error}); free some space and rerun the same "
                "command: it resumes after the requests recorded so far"
            ) from None

    def record_done(self, request_id: str, candidates: list[dict]) -> None:
        records = [{"type": "candidate", "request_id": request_id, **candidate} for candidate in candidates]
        self._append([*records, {"type": "request", "request_id": request_id, "status": "done", "candidates": len(records)}])
        self.candidates.extend(records)
        self.finished[request_id] = "done"

    def record_unparseable(self, request_id: str, raw: str, give_up: bool) -> None:
        records = [{"type": "request", "request_id": request_id, "status": "unparseable", "raw": raw[:1000]}]
        if give_up:
            records.append({"type": "request", "request_id": request_id, "status": "failed"})
            self.finished[request_id] = "failed"
        self._append(records)
        self.unparseable_attempts[request_id] += 1

    def verdict(self, judge: str, policy: str, text: str) -> dict | None:
        return self.verdicts.get((judge, policy, text_key(text)))

    def record_verdicts(self, judge: str, policy: str, verdicts: list[tuple[str, float, str]]) -> None:
        """Append (text, P(unsafe), rationale) verdicts of `judge` under `policy` (the label follows from the threshold)."""
        records = [
            {"type": "verdict", "judge": judge, "policy": policy, "text_key": text_key(text), "score": score, "rationale": rationale}
            for text, score, rationale in verdicts
        ]
        self._append(records)
        for record in records:
            self.verdicts[(judge, policy, record["text_key"])] = record

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def close_quietly(self) -> None:
        """Drop the handle after a failed write (closing flushes the rest of the buffer, which may fail again)."""
        handle, self._handle = self._handle, None
        try:
            handle.close()
        except OSError:
            pass
