"""Turning raw generator output into texts, robustly: models wrap JSON in prose, fences and trailing commas.

Order of attempts for a chat response: JSON (fenced block, then the outermost list or object, each first as is
and then repaired), then a plain numbered or bulleted list. A response that yields nothing is "unparseable";
the pipeline counts, logs and retries it.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass

FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
TRAILING_COMMA = re.compile(r",\s*([\]}])")
LIST_ITEM = re.compile(r"^\s*(?:\d{1,3}[.)]|[-*\u2022])\s+(.+?)\s*$")
NUMBER_MARKER = re.compile(r"(?m)^[ \t]*\d{1,3}[.)]")
SMART_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})
TEXT_KEYS = ("text", "message", "prompt", "content", "example")
LIST_KEYS = ("examples", "messages", "items", "texts", "data", "results")
VERDICT_WORD = re.compile(r"\b(unsafe|safe)\b", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedText:
    text: str
    rationale: str = ""


def _strip_quotes(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def _json_candidates(response: str) -> list[str]:
    candidates = [block.strip() for block in FENCE.findall(response)]
    for opening, closing in ("[]", "{}"):
        start, end = response.find(opening), response.rfind(closing)
        if start != -1 and end > start:
            candidates.append(response[start : end + 1])
    return candidates


def _load_loose(candidate: str) -> object | None:
    """json.loads, then after repairs: smart quotes, trailing commas, Python-style single quotes."""
    attempts = [candidate, TRAILING_COMMA.sub(r"\1", candidate.translate(SMART_QUOTES))]
    for attempt in attempts:
        try:
            return json.loads(attempt)
        except json.JSONDecodeError:
            continue
    try:
        return ast.literal_eval(attempts[-1])
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None


def _texts_from(value: object) -> list[ParsedText]:
    if isinstance(value, dict):
        for key in LIST_KEYS:
            if isinstance(value.get(key), list):
                return _texts_from(value[key])
        value = [value]
    if not isinstance(value, list):
        return []
    texts = []
    for item in value:
        if isinstance(item, str) and item.strip():
            texts.append(ParsedText(item.strip()))
        elif isinstance(item, dict):
            text = next((item[key] for key in TEXT_KEYS if isinstance(item.get(key), str)), "")
            if text.strip():
                texts.append(ParsedText(text.strip(), str(item.get("rationale") or item.get("reason") or "").strip()))
    return texts


def _list_lines(response: str) -> list[ParsedText]:
    texts = []
    for line in response.splitlines():
        match = LIST_ITEM.match(line)
        if match:
            text = _strip_quotes(match.group(1))
            if text:
                texts.append(ParsedText(text))
    return texts


def parse_generated_texts(response: str) -> list[ParsedText]:
    """Texts from a chat response that was asked for a JSON list of {text, rationale}."""
    for candidate in _json_candidates(response):
        loaded = _load_loose(candidate)
        if loaded is not None:
            texts = _texts_from(loaded)
            if texts:
                return texts
    return _list_lines(response)


def parse_list_continuation(completion: str, first_number: int, truncated: bool) -> list[ParsedText]:
    """Items of a numbered list continued from `first_number.`; the prompt ended right after that marker.

    Each item is one line (the examples were shown on one line each); whatever follows the list is ignored.
    The last item is dropped when generation hit the token limit, since it is probably cut off.
    """
    full = f"{first_number}." + completion
    markers = list(NUMBER_MARKER.finditer(full))
    items = []
    for index, marker in enumerate(markers):
        end = markers[index + 1].start() if index + 1 < len(markers) else len(full)
        raw = full[marker.end() : end]
        body = raw.strip()
        first_line = body.split("\n", 1)[0]
        complete = index + 1 < len(markers) or not truncated or "\n" in raw.lstrip()
        if first_line and complete:
            items.append(ParsedText(_strip_quotes(first_line)))
        if "\n\n" in body:
            break  # a blank line ends the list; what follows is something else
    return [item for item in items if item.text]


def parse_verdict(response: str) -> tuple[str, str] | None:
    """(label, rationale) from a judge's chat answer, or None when it gives no usable verdict."""
    for candidate in _json_candidates(response):
        loaded = _load_loose(candidate)
        if isinstance(loaded, dict):
            label = str(loaded.get("label") or loaded.get("verdict") or "").strip().lower()
            if label in ("safe", "unsafe"):
                return label, str(loaded.get("rationale") or loaded.get("reason") or "").strip()
    words = {word.lower() for word in VERDICT_WORD.findall(response)}
    if len(words) == 1:
        return words.pop(), response.strip()[:300]
    return None
