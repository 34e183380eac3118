"""What a frozen encoder's head reads for each text, kept on disk, so that guards fitted on one encoder read a text once.

The TaskGuards of a run are separate processes on the same frozen base encoder (--epochs 0), and most of their
rows are shared: the everyday background, the document fragments and their later windows. Without this each
process embeds them again (on 2 cores that was most of each TaskGuard's time).

An entry is keyed by the text (and its pair) under a fingerprint of everything the features depend on: every
weight but the final linear layer's, the model config, the tokenizer and max_length. A changed encoder therefore
never reads stale features; it starts a new folder. Each process writes what it computed as one shard file,
written whole and then renamed, so runs sharing the folder, also at the same time, never see half a shard.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from guardkit.heads import final_linear, head_features


class FeatureCache:
    """Head features of one model in `folder/<fingerprint>/`: those of earlier runs loaded, new ones added as a shard."""

    def __init__(self, folder: str | Path, model, tokenizer, max_length: int):
        self.model, self.tokenizer, self.max_length = model, tokenizer, max_length
        self.folder = Path(folder) / fingerprint(model, tokenizer, max_length)
        self.rows: dict[str, np.ndarray] = {}
        for shard in sorted(self.folder.glob("*.npz")):
            with np.load(shard) as stored:
                self.rows.update(zip(stored["keys"].tolist(), stored["features"]))

    def features(self, texts: Sequence[str], batch_size: int, progress: bool = False, pairs: Sequence[str] | None = None) -> np.ndarray:
        """`head_features` of the texts, computing (and storing) only those not in the folder yet."""
        keys = [_key(text, pairs[index] if pairs is not None else None) for index, text in enumerate(texts)]
        first_of: dict[str, int] = {}
        for index, key in enumerate(keys):
            if key not in self.rows:
                first_of.setdefault(key, index)
        missing = list(first_of.values())
        if missing:
            computed = head_features(
                self.model,
                self.tokenizer,
                [texts[index] for index in missing],
                self.max_length,
                batch_size,
                progress=progress,
                pairs=[pairs[index] for index in missing] if pairs is not None else None,
            )
            new_keys = [keys[index] for index in missing]
            self._write(new_keys, computed)
            self.rows.update(zip(new_keys, computed))
        if not keys:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self.rows[key] for key in keys])

    def _write(self, keys: list[str], features: np.ndarray) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = uuid.uuid4().hex
        # Not named *.npz until whole: a process killed mid-write leaves a file no cache loads.
        partial = self.folder / f"{name}.partial"
        with partial.open("wb") as handle:
            np.savez(handle, keys=np.asarray(keys), features=features.astype(np.float32))
        os.replace(partial, self.folder / f"{name}.npz")


def fingerprint(model, tokenizer, max_length: int) -> str:
    """A digest of what a model's head features depend on: weights (the final linear layer's excepted), config, tokenizer, length."""
    digest = hashlib.sha256()
    skipped = {id(parameter) for parameter in final_linear(model).parameters()}
    for name, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) in skipped:
            continue
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    digest.update(model.config.to_json_string(use_diff=False).encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # Without the padding and truncation a call leaves set: they differ before and after the first batch.
        described = {key: value for key, value in json.loads(backend.to_str()).items() if key not in ("padding", "truncation")}
        digest.update(json.dumps(described, sort_keys=True).encode())
    else:
        digest.update(repr(sorted(tokenizer.get_vocab().items())).encode())
    digest.update(f"{type(tokenizer).__name__}:{max_length}".encode())
    return digest.hexdigest()[:24]


def _key(text: str, pair: str | None) -> str:
    return hashlib.sha256(f"{pair}\x00{text}".encode() if pair is not None else text.encode()).hexdigest()
