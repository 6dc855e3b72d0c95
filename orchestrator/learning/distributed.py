"""The training step on several processes (``torchrun``/``accelerate``): data parallel, same adapter.

Asking for it: set ``ORCH_TRAIN_NPROC=N`` (N > 1) in the environment of whatever calls
``train_adapter`` (the trainer daemon, a Flower ClientApp, the CLI): the call then runs the step
under ``torchrun --standalone --nproc-per-node N`` and returns its result as usual. Or launch it
yourself: ``torchrun --nproc-per-node N -m orchestrator.learning.distributed ...``.

When ``train_adapter`` runs inside an initialised ``torch.distributed`` process group (``torchrun
--nproc-per-node N -m orchestrator.learning.distributed ...``, or any launcher that calls
``init_process_group`` first), every rank builds the same model and LoRA init (same seed),
draws the same data order, and takes ``batch[rank::N]`` of each step's batch. The loss of the
whole batch is the token-weighted mean of the ranks' losses, so each rank back-propagates its
loss times its share of the batch's target tokens, and the gradients are summed across ranks
(``all_reduce``) before the optimiser step: the same update as one process on the whole batch,
in exact arithmetic. Rank 0 alone writes the adapter (same folder format); the others wait.

Bit-identity with the single-process run: not in general. The sum over the batch is split
into per-rank partial sums added in another order (and the backward's matrix products reduce
over fewer rows), so float32 rounding differs in the last bits; the tests bound the difference
(relative 1e-5 after a step) and check that all ranks hold bit-identical weights. With one
process (``--nproc-per-node 1``) the run is bit-identical to ``train_adapter`` without a group.

Backends: gloo on CPU (tested here with two processes), nccl when CUDA is available.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import LearningError


@dataclass(frozen=True)
class World:
    rank: int
    size: int


def current_world() -> World | None:
    """This process's place in an initialised process group of more than one process, else None."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    return World(dist.get_rank(), dist.get_world_size())


def shard(idx: Any, world: World) -> Any:
    """This rank's rows of a step's batch (every rank must get at least one)."""
    if len(idx) < world.size:
        raise LearningError(f"batch_size {len(idx)} is smaller than the {world.size} training processes; "
                            f"use a batch_size of at least {world.size}")
    return idx[world.rank :: world.size]


def backward(loss: Any, labels: Any, params: Sequence[Any]) -> Any:
    """Back-propagate this rank's share of the batch loss and sum the gradients over the ranks.

    Returns the loss of the whole batch (the same number on every rank).
    """
    import torch
    import torch.distributed as dist

    targets = (labels[:, 1:] != -100).sum().to(torch.float32)  # tokens the causal-LM loss averages over
    total = targets.clone()
    dist.all_reduce(total)
    (loss * (targets / total)).backward()
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad)
    batch_loss = (loss.detach() * targets / total).reshape(1)
    dist.all_reduce(batch_loss)
    return batch_loss[0]


def barrier() -> None:
    import torch.distributed as dist

    dist.barrier()


def requested_processes() -> int:
    """``ORCH_TRAIN_NPROC`` (default 1): how many processes ``train_adapter`` should train with."""
    raw = os.environ.get("ORCH_TRAIN_NPROC", "1").strip() or "1"
    try:
        n = int(raw)
    except ValueError:
        raise LearningError(f"ORCH_TRAIN_NPROC must be a whole number of processes, got {raw!r}") from None
    if n < 1:
        raise LearningError(f"ORCH_TRAIN_NPROC must be at least 1, got {n}")
    return n


def should_launch() -> int:
    """The process count to launch with, or 0 when training here (asked for 1, or already a rank)."""
    n = requested_processes()
    return n if n > 1 and "RANK" not in os.environ else 0


def train_in_processes(model: str, texts: Sequence[str], cfg: Any, out_dir: Path, nproc: int,
                       init_adapter: Path | None = None) -> Any:
    """``train_adapter`` on ``nproc`` processes; the same :class:`TrainResult` shape."""
    import time

    from orchestrator.learning.train import TrainResult

    started = time.perf_counter()
    summary = train_with_torchrun(model, texts, cfg.to_json(), Path(out_dir), nproc, init_adapter=init_adapter)
    return TrainResult(Path(summary["adapter_dir"]), int(summary["num_samples"]), float(summary["final_loss"]),
                       int(summary["tokens"]), time.perf_counter() - started, list(summary["losses"]))


# -- launching -----------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``torchrun ... -m orchestrator.learning.distributed``."""
    ap = argparse.ArgumentParser(
        prog="python -m orchestrator.learning.distributed",
        description="Train one LoRA adapter with the data-parallel training step. Run it under torchrun, "
        "e.g. `torchrun --nproc-per-node 2 -m orchestrator.learning.distributed --model tiny --org business "
        "--out adapter/`; rank 0 writes the adapter folder (the same format as a one-process run).")
    ap.add_argument("--model", default="smollm2", help="tiny | smollm2 | a local HF folder (default smollm2)")
    ap.add_argument("--org", default=None, help="BBC News topic to train on")
    ap.add_argument("--texts", default=None, help="a JSON file holding a list of training texts instead of --org")
    ap.add_argument("--config", default="{}", help="TrainConfig fields as JSON (default: the defaults)")
    ap.add_argument("--init-adapter", default=None, help="continue from this adapter folder")
    ap.add_argument("--backend", default=None, help="gloo | nccl (default: nccl with CUDA, else gloo)")
    ap.add_argument("--out", required=True, help="adapter folder to write (rank 0)")
    args = ap.parse_args(argv)

    import torch
    import torch.distributed as dist

    from orchestrator.learning.config import TrainConfig
    from orchestrator.learning.data import load_org_data
    from orchestrator.learning.train import train_adapter

    if "RANK" not in os.environ:
        raise SystemExit("not started by torchrun (no RANK in the environment); run "
                         "`torchrun --nproc-per-node N -m orchestrator.learning.distributed ...`")
    if bool(args.org) == bool(args.texts):
        raise SystemExit("give exactly one of --org TOPIC or --texts FILE.json")
    texts = load_org_data(args.org).train if args.org else json.loads(Path(args.texts).read_text())
    backend = args.backend or ("nccl" if torch.cuda.is_available() else "gloo")
    dist.init_process_group(backend)
    try:
        result = train_adapter(args.model, texts, TrainConfig.from_json(args.config), Path(args.out),
                               init_adapter=Path(args.init_adapter) if args.init_adapter else None, progress=False)
        tokens = torch.tensor([result.tokens], dtype=torch.int64)
        dist.all_reduce(tokens)
        if dist.get_rank() == 0:
            print(json.dumps({"adapter_dir": str(result.adapter_dir), "num_samples": result.num_samples,
                              "final_loss": result.final_loss, "losses": result.losses, "tokens": int(tokens[0]),
                              "world_size": dist.get_world_size()}), flush=True)
    finally:
        dist.destroy_process_group()
    return 0


def torchrun_command(nproc: int, args: Sequence[str]) -> list[str]:
    """The command line that trains with ``nproc`` local processes (standalone rendezvous)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "orchestrator.learning.distributed", *args]


def train_with_torchrun(model: str, texts: Sequence[str], cfg_json: str, out_dir: Path, nproc: int,
                        *, init_adapter: Path | None = None, timeout: float = 1800) -> dict[str, Any]:
    """Run the training step on ``nproc`` processes; returns rank 0's summary (adapter in ``out_dir``)."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    texts_file = out_dir.parent / f".{out_dir.name}-texts.json"
    texts_file.write_text(json.dumps(list(texts)))
    args = ["--model", model, "--texts", str(texts_file), "--config", cfg_json, "--out", str(out_dir)]
    if init_adapter is not None:
        args += ["--init-adapter", str(init_adapter)]
    try:
        done = subprocess.run(torchrun_command(nproc, args), capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
    finally:
        texts_file.unlink(missing_ok=True)
    if done.returncode != 0:
        raise LearningError(f"torchrun training with {nproc} processes failed (exit {done.returncode}):\n"
                            f"{(done.stdout + done.stderr)[-3000:]}")
    summary = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not summary:
        raise LearningError(f"torchrun finished but rank 0 printed no summary:\n{done.stdout[-2000:]}")
    return json.loads(summary[-1])


if __name__ == "__main__":
    raise SystemExit(main())
