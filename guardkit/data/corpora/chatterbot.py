"""The ChatterBot dialog corpus (chatterbot-corpus==1.3.3): casual chat in 28 languages, user contributed.

Each conversation alternates user and bot turns, the user first. The user turns are texts of their own;
a conversation with several user turns is also kept whole, as a transcript a guard would see.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from guardkit.data.corpora.registry import Entry, corpus

ENGLISH = "english"


def _conversations(path: Path) -> list[list[str]]:
    content = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    return [[str(turn) for turn in conversation] for conversation in content.get("conversations", []) if isinstance(conversation, list)]


def _transcript(turns: list[str]) -> str:
    return "\n".join(f"{'User' if position % 2 == 0 else 'Assistant'}: {turn}" for position, turn in enumerate(turns))


def _dialogs(folder: Path, category_prefix: str, turn_register: str, transcript_register: str):
    for path in sorted(folder.glob("*.yml")):
        category = f"{category_prefix}{path.stem}"
        for turns in _conversations(path):
            user_turns = turns[0::2]
            yield from (Entry(turn, category, turn_register) for turn in user_turns)
            if len(user_turns) > 1:
                yield Entry(_transcript(turns), category, transcript_register)


@corpus(
    "chatterbot-en",
    package="chatterbot_corpus",
    kind="benign",
    registers=("chat-request", "multi-turn"),
    description="English casual-chat dialogs: each user turn, and whole conversations with several user turns; "
    "category = topic file",
)
def chatterbot_english(root: Path):
    yield from _dialogs(root / "data" / ENGLISH, "", "chat-request", "multi-turn")


@corpus(
    "chatterbot-multilingual",
    package="chatterbot_corpus",
    kind="benign",
    registers=("non-english",),
    description="the same kind of casual chat in 27 other languages, category = language/topic",
)
def chatterbot_multilingual(root: Path):
    for folder in sorted(path for path in (root / "data").iterdir() if path.is_dir() and path.name != ENGLISH):
        yield from _dialogs(folder, f"{folder.name}/", "non-english", "non-english")
