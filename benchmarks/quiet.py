"""Process setup shared by the benchmarks run as modules (`python -m benchmarks.NAME`)."""

from __future__ import annotations

import os


def quiet_offline(threads: int = 0) -> None:
    """Offline Hub, no tokenizer threads beside torch's, no transformers warnings or progress bars; `threads` torch threads (0: its default)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    if threads:
        torch.set_num_threads(threads)
