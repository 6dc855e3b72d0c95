"""Where every split-learning process gets its (identical) starting model from.

All processes (server, each client, the centralised baseline) load the same folder and inject
LoRA with the same seed, so they start from bit-identical weights without shipping any.

The learning layer's ``tiny`` model has 2 decoder blocks, which leaves nothing for the server
once the client keeps one block at each end. ``split_model_dir("tiny")`` therefore derives a
4-block variant of it (same tokenizer, same widths, seeded weights) once into the cache.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.split.errors import SplitModelError
from orchestrator.split.model import LoraSpec, add_lora

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

log = logging.getLogger(__name__)

TINY_SPLIT_LAYERS = 4
MIDDLE_SCALE = 0.1


def _derive_tiny(src: Path, out: Path, layers: int) -> None:
    """Deepen the warmed-up tiny model to ``layers`` blocks without losing what it learned.

    The original first and last blocks stay at the ends (they become the client's blocks);
    the new middle blocks are copies of the originals with their output projections
    (``o_proj``, ``down_proj``) scaled by ``MIDDLE_SCALE``, so they start close to identity
    residual blocks (the deepened model computes nearly the 2-block function) yet still pass
    gradient to the server's LoRA. Deterministic: no random draws.
    """
    import copy

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    orig = list(model.model.layers)
    middle = []
    for i in range(layers - 2):
        block = copy.deepcopy(orig[i % len(orig)])
        with torch.no_grad():
            block.self_attn.o_proj.weight.mul_(MIDDLE_SCALE)
            block.mlp.down_proj.weight.mul_(MIDDLE_SCALE)
        middle.append(block)
    new_layers = [orig[0], *middle, orig[-1]]
    for idx, block in enumerate(new_layers):
        block.self_attn.layer_idx = idx
    model.model.layers = torch.nn.ModuleList(new_layers)
    model.config.num_hidden_layers = layers
    if hasattr(model.config, "layer_types") and model.config.layer_types is not None:
        model.config.layer_types = [model.config.layer_types[0]] * layers
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(src).save_pretrained(out)


def split_model_dir(spec: str) -> Path:
    """Folder of the base model for ``spec`` ("tiny", "smollm2" or a local HF folder)."""
    try:
        from orchestrator.learning.models import cache_dir, resolve_model
    except ImportError as exc:  # pragma: no cover - learning layer missing
        raise SplitModelError(f"the learning layer is not importable: {exc}") from exc
    folder = resolve_model(spec)
    if spec != "tiny":
        return folder
    cfg = json.loads((folder / "config.json").read_text())
    if cfg.get("num_hidden_layers", 0) >= 3:
        return folder
    target = cache_dir() / "models" / f"split-{folder.name}-{TINY_SPLIT_LAYERS}L"
    if (target / ".complete").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        _derive_tiny(folder, tmp, TINY_SPLIT_LAYERS)
        (tmp / ".complete").write_text("{}")
        os.rename(tmp, target)  # atomic publish; loses the race harmlessly if another won
    except OSError:
        if not (target / ".complete").exists():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def set_threads(n: int) -> None:
    """Pin torch's intra-op threads (several processes share the cores)."""
    import torch

    torch.set_num_threads(max(1, n))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def load_base(model_dir: str | Path, lora: LoraSpec, seed: int) -> nn.Module:
    """The full fp32 model with seeded LoRA injected; callers keep only their part."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise SplitModelError(f"cannot load base model from {model_dir}: {exc}") from exc
    model.eval()  # no dropout: both sides must compute the same function
    return add_lora(model, lora, seed)
