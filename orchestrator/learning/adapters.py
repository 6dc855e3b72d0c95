"""Reading, writing and hashing peft LoRA adapter folders.

An adapter folder is what ``PeftModel.save_pretrained`` writes (``adapter_config.json`` +
``adapter_model.safetensors``) plus ``ledgerlora.json``: the base-model id and the number of
training samples, so aggregation can refuse adapters trained on a different base.  Nothing in
the folder depends on wall time, so two identical trainings give byte-identical folders.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import LearningError

if TYPE_CHECKING:  # pragma: no cover
    import torch

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
META_FILE = "ledgerlora.json"


@dataclass
class Adapter:
    """An adapter in memory: peft config dict, tensors by peft key, our metadata."""

    path: Path | None
    config: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def rank(self) -> int:
        return int(self.config["r"])

    @property
    def alpha(self) -> float:
        return float(self.config["lora_alpha"])

    @property
    def scaling(self) -> float:
        """peft's factor on ``B @ A`` (alpha / r; alpha / sqrt(r) with rsLoRA)."""
        if self.config.get("use_rslora"):
            return self.alpha / self.rank**0.5
        return self.alpha / self.rank

    @property
    def targets(self) -> tuple[str, ...]:
        targets = self.config.get("target_modules") or []
        if isinstance(targets, str):
            return (targets,)
        return tuple(sorted(targets))

    @property
    def base_model(self) -> str:
        """The base model id; a built-in base's registered alias ``ledgerlora/<id>`` counts as <id>."""
        name = str(self.meta.get("base_model") or self.config.get("base_model_name_or_path") or "")
        return name.removeprefix("ledgerlora/")

    @property
    def num_samples(self) -> int:
        return int(self.meta.get("num_samples", 0))

    def pairs(self) -> dict[str, tuple[str, str]]:
        """Module prefix -> (key of A, key of B)."""
        out: dict[str, tuple[str, str]] = {}
        for key in self.tensors:
            if ".lora_A." in key:
                prefix = key.split(".lora_A.")[0]
                b_key = key.replace(".lora_A.", ".lora_B.")
                if b_key not in self.tensors:
                    raise LearningError(f"adapter {self.name}: {key} has no matching {b_key}")
                out[prefix] = (key, b_key)
        if not out:
            raise LearningError(f"adapter {self.name} holds no LoRA A/B tensors")
        return out

    @property
    def name(self) -> str:
        return str(self.path) if self.path else "<in-memory adapter>"


def is_adapter_dir(path: Path) -> bool:
    return (Path(path) / ADAPTER_CONFIG).is_file() and (Path(path) / ADAPTER_WEIGHTS).is_file()


def read_adapter(path: Path) -> Adapter:
    from safetensors.torch import load_file

    path = Path(path)
    if not is_adapter_dir(path):
        raise LearningError(
            f"{path} is not a LoRA adapter folder (needs {ADAPTER_CONFIG} and {ADAPTER_WEIGHTS})"
        )
    config = json.loads((path / ADAPTER_CONFIG).read_text())
    if config.get("peft_type", "LORA") != "LORA":
        raise LearningError(f"adapter {path} is a {config.get('peft_type')} adapter; only LoRA is supported")
    meta_path = path / META_FILE
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    return Adapter(path=path, config=config, tensors=load_file(str(path / ADAPTER_WEIGHTS)), meta=meta)


def write_adapter(adapter: Adapter, out_dir: Path) -> Path:
    """Write atomically (temp folder + rename) so a reader never sees half an adapter."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        tensors = {k: v.detach().contiguous().cpu() for k, v in sorted(adapter.tensors.items())}
        save_file(tensors, str(tmp / ADAPTER_WEIGHTS))
        (tmp / ADAPTER_CONFIG).write_text(json.dumps(adapter.config, indent=2, sort_keys=True))
        (tmp / META_FILE).write_text(json.dumps(adapter.meta, indent=2, sort_keys=True))
        replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def replace_dir(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst``, replacing an existing folder."""
    os.chmod(src, 0o755)
    if dst.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{dst.name}-old-", dir=dst.parent))
        os.rename(dst, old / "x")
        os.rename(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(src, dst)


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over (name, dtype, shape, raw bytes) of every tensor in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        h.update(name.encode())
        h.update(b"\0" + str(t.dtype).encode() + b"\0" + json.dumps(list(t.shape)).encode() + b"\0")
        h.update(t.view(-1).view(_byte_dtype()).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _byte_dtype() -> Any:
    import torch

    return torch.uint8


def adapter_sha256(adapter_dir: Path) -> str:
    """Hash of an adapter's tensors, independent of file layout, metadata and safetensors header order."""
    return tensors_sha256(read_adapter(Path(adapter_dir)).tensors)
