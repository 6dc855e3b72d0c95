"""Helpers for the split tests: a tiny real Llama config (4 blocks, GQA, tied embeddings).

The tiny model is built here from a ``LlamaConfig`` rather than taken from the learning layer
so that protocol tests need no tokenizer or corpus: token ids are drawn from a seeded
generator. The end-to-end CLI test uses the learning layer's model and data.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

VOCAB = 300


def tiny_config() -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=True,
    )


def token_batch(seed: int, rows: int, lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded ids (never the pad id 0) with right padding to the longest length."""
    g = torch.Generator().manual_seed(seed)
    t = max(lengths)
    ids = torch.randint(1, VOCAB, (rows, t), generator=g)
    mask = torch.zeros(rows, t, dtype=torch.long)
    for r, n in enumerate(lengths):
        mask[r, :n] = 1
    return ids.masked_fill(mask == 0, 0), mask


def run_threads(fns: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    """Run each client's loop in its own thread; return results or the exception raised."""
    out: dict[str, Any] = {}

    def wrap(name: str, fn: Callable[[], Any]) -> None:
        try:
            out[name] = fn()
        except Exception as exc:  # noqa: BLE001 - handed back to the test to assert on
            out[name] = exc

    threads = [threading.Thread(target=wrap, args=(k, f)) for k, f in fns.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return out
