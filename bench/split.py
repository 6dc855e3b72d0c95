"""Split-learning throughput: sequential vs client-batching vs server-hierarchical.

    python bench/split.py [--model tiny|smollm2] [--clients 2 4 8] [--steps 10] [--json OUT]

For each client count N, every mode trains the same N clients on the same data for the same
steps (server and every client in their own process, loopback HTTP, per-client AES-GCM), and
the script prints steps/s, the ratio to sequential measured in the same run, the encryption
overhead as a fraction of step time, and each mode's final loss relative to centralised
training of the same LoRA on the same batches (target: within 2 %).

steps/s is 1 / the median step duration, a step being complete when every client has finished
it (process start-up and step 0, the warm-up, excluded); the median resists other processes
stealing the CPU for a moment. The mean rate over the same steps is kept in the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MODES = ("sequential", "batched", "hierarchical")


def main() -> int:
    from orchestrator.split.base import split_model_dir
    from orchestrator.split.runner import (
        SplitTrainConfig,
        _final,
        centralized_losses,
        client_batches,
        run_split_training,
    )

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--clients", type=int, nargs="+", default=[2, 4, 8])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--sync-every", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    folder = split_model_dir(args.model)
    rows = []
    started = time.perf_counter()
    for n in args.clients:
        base = dict(
            model=args.model,
            clients=n,
            steps=args.steps,
            batch_size=args.batch_size,
            seq_len=args.seq_len,
            lr=args.lr,
            replicas=min(args.replicas, n),
            sync_every=args.sync_every,
            baseline=False,
            check_equivalence=False,
        )
        probe = SplitTrainConfig(**base)
        batches = client_batches(folder, n, args.steps, args.batch_size, args.seq_len, probe.seed)
        central = _final(centralized_losses(folder, batches, probe.lora, probe.seed, args.lr))
        seq_rate = None
        for mode in MODES:
            rep = run_split_training(SplitTrainConfig(**{**base, "mode": mode}), model_dir=folder)
            rate = rep["steps_per_s_median"]
            seq_rate = rate if mode == "sequential" else seq_rate
            row = {
                "clients": n,
                "mode": mode,
                "steps_per_s": rate,
                "steps_per_s_mean": rep["steps_per_s"],
                "speedup_vs_sequential": rate / seq_rate if seq_rate else None,
                "encryption_fraction": rep["encryption"]["overhead_fraction"],
                "kib_per_client_step": rep["bytes_on_wire"]["per_client_step"] / 1024,
                "final_loss": rep["final_loss"],
                "centralized_final_loss": central,
                "loss_rel_diff": abs(rep["final_loss"] - central) / central,
                "server_forward_passes": sum(s["forward_passes"] for s in rep["server"]),
                "client_errors": rep["client_errors"],
            }
            rows.append(row)
            print(
                f"N={n} {mode:12s} {rate:7.2f} steps/s  x{row['speedup_vs_sequential']:.2f} vs seq  "
                f"crypto {100 * row['encryption_fraction']:5.2f}%  "
                f"loss {row['final_loss']:.4f} vs central {central:.4f} "
                f"({100 * row['loss_rel_diff']:.2f}%{'' if row['loss_rel_diff'] <= 0.02 else ' > 2%!'})",
                flush=True,
            )
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}",
        "model": args.model,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "rows": rows,
        "wall_seconds": time.perf_counter() - started,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    bad = [r for r in rows if r["loss_rel_diff"] > 0.02 or r["client_errors"]]
    print(f"done in {result['wall_seconds']:.0f} s; {len(bad)} row(s) outside the 2 % loss target")
    return 0 if not bad else 1


if __name__ == "__main__":
    raise SystemExit(main())
