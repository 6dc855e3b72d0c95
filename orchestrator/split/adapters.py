"""A split client's contribution as an ordinary peft LoRA adapter of the whole model.

After a split run, client ``c``'s model is: its own LoRA on the front and back blocks (trained
on its machine) plus the server LoRA on the middle blocks that its activations went through
(its own bank in ``per-client`` mode, the shared one otherwise). Written as one adapter folder
in the learning layer's format (``adapter_config.json`` + ``adapter_model.safetensors`` +
``ledgerlora.json``), it is stored, sealed, submitted, merged, scored and forgotten exactly like
an adapter from the ordinary trainer: the registry and the unlearning executor need no split
knowledge.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from orchestrator.split.errors import SplitError
from orchestrator.split.model import LoraSpec

ADAPTER_NAME = "default"


def peft_key(name: str) -> str:
    """Full-model parameter name -> the key ``PeftModel.save_pretrained`` would write.

    ``model.layers.3.self_attn.q_proj.lora_A.default.weight`` ->
    ``base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight``.
    """
    if f".{ADAPTER_NAME}." not in name or ".lora_" not in name:
        raise SplitError(f"{name!r} is not a LoRA parameter of adapter {ADAPTER_NAME!r}")
    return "base_model.model." + name.replace(f".{ADAPTER_NAME}.", ".")


def lora_config_dict(lora: LoraSpec, base_model: str) -> dict[str, Any]:
    """peft's LoRA config for ``lora`` as JSON-able data (what save_pretrained writes)."""
    from peft import LoraConfig

    cfg = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        target_modules=list(lora.targets),
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
    ).to_dict()
    cfg["target_modules"] = sorted(lora.targets)
    cfg["peft_type"] = "LORA"
    cfg["task_type"] = "CAUSAL_LM"
    cfg["base_model_name_or_path"] = base_model
    return {k: v for k, v in cfg.items() if _jsonable(v)}


def _jsonable(v: Any) -> bool:
    return v is None or isinstance(v, str | int | float | bool | list | dict)


def full_adapter_tensors(
    client: Mapping[str, torch.Tensor], server: Mapping[str, torch.Tensor], expected: set[str]
) -> dict[str, torch.Tensor]:
    """Client blocks + server blocks, checked to cover every LoRA tensor of the model once."""
    overlap = set(client) & set(server)
    if overlap:
        raise SplitError(f"client and server both hold LoRA tensors {sorted(overlap)[:3]}")
    merged = {**client, **server}
    if set(merged) != expected:
        missing = sorted(expected - set(merged))[:3]
        extra = sorted(set(merged) - expected)[:3]
        raise SplitError(f"split adapter is incomplete: missing {missing}, unexpected {extra}")
    return {peft_key(k): v.detach().cpu().float().contiguous() for k, v in merged.items()}


def write_split_adapter(
    tensors: Mapping[str, torch.Tensor],
    lora: LoraSpec,
    base_model: str,
    num_samples: int,
    out_dir: Path,
    split_meta: Mapping[str, Any],
) -> Path:
    """Write the adapter folder atomically (the learning layer's writer)."""
    from orchestrator.learning.adapters import Adapter, write_adapter

    meta = {"base_model": base_model, "num_samples": int(num_samples), "split": dict(split_meta)}
    adapter = Adapter(None, lora_config_dict(lora, base_model), dict(tensors), meta)
    return write_adapter(adapter, Path(out_dir))


def base_model_id(model_dir: str | Path) -> str:
    """The base-model id the learning layer records for ``model_dir`` (merges compare it)."""
    from orchestrator.learning.models import model_id

    return model_id(str(model_dir))
