"""How a text longer than a guard's window is cut: shared by inference (`Guard`) and head fitting (training, merging)."""

from __future__ import annotations


def window_starts(tokens: int, room: int) -> list[int]:
    """Where the windows of a text of `tokens` tokens start, `room` tokens each, consecutive ones overlapping by half
    (so any span up to half a window lies whole inside one window)."""
    step = room - room // 2
    starts = list(range(0, max(tokens - room, 0) + 1, step))
    if starts[-1] + room < tokens:
        starts.append(tokens - room)
    return starts


def window_texts(tokenizer, texts: list[str], max_length: int, first: bool = True) -> list[str]:
    """The text of every window of each text (without each text's first window where `first` is False), cut where
    `Guard` cuts it for a text-only guard, in order."""
    room = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    passages = []
    for text, ids in zip(texts, tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]):
        starts = window_starts(len(ids), room)
        if len(starts) == 1:
            # A text that fits in one window is kept as written (decoding may lowercase or respace it).
            passages += [text] if first else []
        else:
            passages += [tokenizer.decode(ids[start : start + room]) for start in (starts if first else starts[1:])]
    return passages


def later_windows(tokenizer, texts: list[str], max_length: int) -> list[str]:
    """The text of every window after the first of each text: what a head fitted on whole rows never reads."""
    return window_texts(tokenizer, texts, max_length, first=False)
