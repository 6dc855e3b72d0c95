"""Deterministic LoRA training with peft.

Reproducibility is the product here, not a nicety: exact unlearning in isolated mode means that
anyone re-running the remaining orgs' training gets bit-identical adapters.  So on CPU:
- the LoRA init is drawn right after ``torch.manual_seed(cfg.seed)``;
- the data order comes from a private ``torch.Generator`` seeded with ``cfg.seed`` (not from
  the global RNG, which other code may consume);
- dropout defaults to 0, so no RNG is consumed during the forward pass;
- nothing in the saved folder depends on wall time.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import LearningError
from orchestrator.learning.adapters import META_FILE, is_adapter_dir, read_adapter, replace_dir
from orchestrator.learning.config import TrainConfig
from orchestrator.learning.models import base_name_for_config, deterministic_mode, load_model, model_id

if TYPE_CHECKING:  # pragma: no cover
    import torch

log = logging.getLogger(__name__)

MIN_TOKENS = 2
"""A sequence needs at least two tokens to have one next-token prediction."""


@dataclass(frozen=True)
class TrainResult:
    """What one training call produced."""

    adapter_dir: Path
    num_samples: int
    final_loss: float
    tokens: int
    seconds: float
    losses: list[float] = field(default_factory=list)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else float("nan")


@dataclass
class Encoded:
    """Padded token tensors for a list of texts; ``labels`` are -100 on padding."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    kept: list[int]  # indices of the input texts that had enough tokens

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


def encode(tokenizer: Any, texts: Sequence[str], seq_len: int, *, what: str = "texts") -> Encoded:
    """Tokenise, truncate to ``seq_len`` and pad; drop texts too short to predict anything."""
    if not texts:
        raise LearningError(f"no {what} given; need at least one text")
    batch = tokenizer(
        list(texts),
        truncation=True,
        max_length=seq_len,
        padding="max_length",
        return_tensors="pt",
    )
    lengths = batch["attention_mask"].sum(dim=1)
    kept = [i for i, n in enumerate(lengths.tolist()) if n >= MIN_TOKENS]
    if not kept:
        raise LearningError(
            f"all {len(texts)} {what} are too short to train on (fewer than {MIN_TOKENS} tokens "
            f"each, e.g. {texts[0]!r}); give longer texts"
        )
    ids = batch["input_ids"][kept]
    mask = batch["attention_mask"][kept]
    labels = ids.masked_fill(mask == 0, -100)
    return Encoded(ids, mask, labels, kept)


def data_order(num_samples: int, count: int, seed: int) -> list[int]:
    """``count`` sample indices: concatenated seeded permutations (epochs) of ``num_samples``."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    order: list[int] = []
    while len(order) < count:
        order.extend(torch.randperm(num_samples, generator=gen).tolist())
    return order[:count]


def _lora_config(cfg: TrainConfig) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha,
        target_modules=list(cfg.target_modules),
        lora_dropout=cfg.dropout,
        bias="none",
        task_type="CAUSAL_LM",
    )


def _check_init_adapter(init_adapter: Path, base: str) -> None:
    if not is_adapter_dir(init_adapter):
        raise LearningError(f"init_adapter {init_adapter} is not a LoRA adapter folder")
    other = read_adapter(init_adapter).base_model
    if other and other != base:
        raise LearningError(
            f"init_adapter {init_adapter} was trained on base model {other!r}, not {base!r}; "
            "continue from an adapter of the same base model"
        )


def save_peft(peft_model: Any, out_dir: Path, meta: dict[str, Any]) -> Path:
    """``save_pretrained`` into a temp folder, add our metadata, then swap it in atomically."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        with warnings.catch_warnings():
            # peft probes the hub for the base config to see if embeddings changed; they never do
            # here (only LoRA layers train), and offline the probe only produces noise.
            warnings.filterwarnings("ignore", message="Could not find a config file")
            peft_model.save_pretrained(str(tmp))
        (tmp / "README.md").unlink(missing_ok=True)  # peft's model card: boilerplate, not data
        # A stable name, not this machine's folder: the config is what travels through storage
        # (the meta file does not), and a local path would leak into shared adapters.  Built-in
        # bases get their registered alias (ledgerlora/<id>), which stock tools resolve offline.
        if meta.get("base_model"):
            config_path = tmp / "adapter_config.json"
            config = json.loads(config_path.read_text())
            config["base_model_name_or_path"] = str(meta.get("base_name") or meta["base_model"])
            config_path.write_text(json.dumps(config, indent=2, sort_keys=True))
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
        replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def initial_adapter(model_spec: str, cfg: TrainConfig, out_dir: Path) -> Path:
    """A fresh (untrained) LoRA adapter drawn after ``torch.manual_seed(cfg.seed)``: the shared
    starting point a collaborative group broadcasts before its first round (B = 0, so the model
    is the base model)."""
    import torch
    from peft import get_peft_model

    model, _ = load_model(model_spec)
    torch.manual_seed(cfg.seed)
    peft_model = get_peft_model(model, _lora_config(cfg))
    meta = {"base_model": model_id(model_spec), "base_name": base_name_for_config(model_spec), "num_samples": 0,
            "config": cfg.to_dict(), "initial": True}
    return save_peft(peft_model, Path(out_dir), meta)


def train_adapter(
    model_spec: str,
    texts: Sequence[str],
    cfg: TrainConfig,
    out_dir: Path,
    *,
    init_adapter: Path | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train one LoRA adapter on ``texts`` and save it to ``out_dir``.

    ``init_adapter`` continues from an existing adapter (its rank and targets win over
    ``cfg``'s).  A non-finite loss or gradient stops training with ``LearningError`` after
    saving the last good adapter to ``out_dir``.
    """
    from orchestrator.learning import distributed

    nproc = distributed.should_launch()  # ORCH_TRAIN_NPROC > 1: this step on that many processes
    if nproc:
        return distributed.train_in_processes(model_spec, texts, cfg, Path(out_dir), nproc, init_adapter)

    import torch
    from peft import PeftModel, get_peft_model

    texts = list(texts)
    base = model_id(model_spec)
    if init_adapter is not None:
        _check_init_adapter(Path(init_adapter), base)
    model, tokenizer = load_model(model_spec)
    device = next(model.parameters()).device
    determinism = deterministic_mode(str(device))
    data = encode(tokenizer, texts, cfg.seq_len, what="training texts")

    torch.manual_seed(cfg.seed)
    if init_adapter is not None:
        peft_model = PeftModel.from_pretrained(model, str(init_adapter), is_trainable=True)
    else:
        peft_model = get_peft_model(model, _lora_config(cfg))
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    last_good = [torch.empty_like(p) for p in params]
    order = data_order(len(data), cfg.steps * cfg.batch_size, cfg.seed)
    world = distributed.current_world()  # set under torchrun: each rank takes its rows of each batch
    meta = {
        "base_model": base,
        "base_name": base_name_for_config(model_spec),
        "num_samples": len(texts),
        "config": cfg.to_dict(),
        "init_adapter_sha256": _sha_or_none(init_adapter),
        "device": str(device),
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "determinism": determinism,
    }

    losses: list[float] = []
    tokens = 0
    bar = _progress(cfg.steps, progress, f"train {Path(out_dir).name}")
    peft_model.train()
    started = time.perf_counter()
    try:
        for step in range(cfg.steps):
            idx = torch.tensor(order[step * cfg.batch_size : (step + 1) * cfg.batch_size])
            if world is not None:
                idx = distributed.shard(idx, world)
            mask = data.attention_mask[idx].to(device)
            out = peft_model(
                input_ids=data.input_ids[idx].to(device),
                attention_mask=mask,
                labels=data.labels[idx].to(device),
            )
            loss = out.loss
            if not torch.isfinite(loss):
                _fail_nan(peft_model, out_dir, meta, step, f"loss is {loss.item()}")
            if world is None:
                loss.backward()
            else:
                loss = distributed.backward(loss, data.labels[idx], params)
            # One fused check, one sync: a finite sum means every element is finite (a sum that
            # overflows on huge finite values is flagged too, an equally good reason to stop).
            if not _all_finite([p.grad for p in params if p.grad is not None]):
                _fail_nan(peft_model, out_dir, meta, step, "a gradient is not finite")
            with torch.no_grad():
                torch._foreach_copy_(last_good, params)  # LoRA weights only: small
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if not _all_finite(params):
                with torch.no_grad():
                    torch._foreach_copy_(params, last_good)
                _fail_nan(peft_model, out_dir, meta, step, "the update made a LoRA weight non-finite")
            losses.append(float(loss.item()))
            tokens += int(mask.sum().item())
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    peft_model.eval()
    meta["final_loss"] = losses[-1]
    if world is None or world.rank == 0:
        save_peft(peft_model, Path(out_dir), meta)
    if world is not None:
        distributed.barrier()
    return TrainResult(Path(out_dir), len(texts), losses[-1], tokens, seconds, losses)


def _all_finite(tensors: Sequence[Any]) -> bool:
    import torch

    if not tensors:
        return True
    with torch.no_grad():
        return bool(torch.isfinite(torch.stack([t.detach().float().sum() for t in tensors])).all())


def _sha_or_none(path: Path | None) -> str | None:
    if path is None:
        return None
    from orchestrator.learning.adapters import adapter_sha256

    return adapter_sha256(Path(path))


def _fail_nan(peft_model: Any, out_dir: Path, meta: dict[str, Any], step: int, why: str) -> None:
    meta = {**meta, "stopped_at_step": step, "stopped_because": why}
    save_peft(peft_model, Path(out_dir), meta)
    raise LearningError(
        f"training stopped at step {step}: {why}. The last good adapter (before step {step}) is "
        f"saved in {out_dir}; lower the learning rate or check the data"
    )


class _NullBar:
    def update(self, n: int) -> None:
        pass

    def set_postfix(self, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool, desc: str) -> Any:
    if not enabled:
        return _NullBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)


def is_finite_number(x: float) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)
