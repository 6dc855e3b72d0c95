"""Split-learning throughput and quality: sequential vs client-batching vs server-hierarchical.

    python bench/split.py [--model tiny|smollm2|llama1b-shape ...] [--clients 2 4 8] [--steps 10]
        [--modes sequential batched hierarchical] [--sync grads adam weights]
        [--server-lora shared per-client] [--eval] [--device cpu|cuda] [--json OUT]

For each model and client count N, every variant (mode; for hierarchical each ``--sync``; each
``--server-lora``, per-client only with sequential/hierarchical) trains the same N clients on
the same data for the same steps (server and every client in their own process, loopback HTTP,
per-client AES-GCM). Printed per row: steps/s, the ratio to the first variant of that N
measured in the same run (sequential unless ``--modes`` says otherwise), the encryption
overhead as a fraction of step time, the final loss relative to centralised training of the
same LoRA on the same batches (target: within 2 %), and the server's trainable-state bytes and
peak RSS. ``--eval`` also merges the clients' full-model adapters (exact stacking, weighted by
samples, as the aggregator does) and reports the merged model's perplexity on the clients'
public validation texts.

steps/s is 1 / the median step duration, a step being complete when every client has finished
it (process start-up and step 0, the warm-up, excluded); the median resists other processes
stealing the CPU for a moment. The mean rate over the same steps is kept in the JSON.

``--device cuda``: every process puts its blocks on the GPU (sharing it); throughput only (no
centralised baseline, no loss target). Without CUDA it prints that it is skipped and exits 0.
``llama1b-shape`` is a random-weight Llama of TinyLlama-1.1B's shape (d 2048, 22 blocks, GQA
32/4 heads, MLP 5632) with SmolLM2's tokenizer and vocabulary (49152), built once into the cache.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MODES = ("sequential", "batched", "hierarchical")
LLAMA_1B = "llama1b-shape"


def llama_1b_dir() -> Path:
    """A random-weight 1B-class Llama folder (seeded; built once under the model cache)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from orchestrator.learning.models import cache_dir, resolve_model

    out = cache_dir() / "models" / "split-llama1b-shape"
    if (out / "config.json").is_file():
        return out
    tok_dir = resolve_model("smollm2")
    config = LlamaConfig(
        hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
        num_key_value_heads=4, vocab_size=49152, max_position_embeddings=2048,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    tmp = Path(tempfile.mkdtemp(prefix=".split-llama1b-", dir=out.parent))
    LlamaForCausalLM(config).save_pretrained(tmp)
    AutoTokenizer.from_pretrained(str(tok_dir)).save_pretrained(tmp)
    os.rename(tmp, out)
    return out


def variants(modes: list[str], syncs: list[str], loras: list[str]) -> list[dict[str, str]]:
    out = []
    for lora in loras:
        for mode in modes:
            if lora == "per-client" and mode == "batched":
                continue  # per-client server LoRA needs one pass per client
            for sync in syncs if mode == "hierarchical" and lora == "shared" else [syncs[0]]:
                out.append({"mode": mode, "sync": sync, "server_lora": lora})
    return out


def merged_perplexity(rep: dict[str, Any], spec: str, texts: list[str], work: Path) -> float:
    """Stack the clients' adapters as the aggregator does; perplexity on ``texts``."""
    from orchestrator.learning.api import evaluate_perplexity, merge_adapters

    adapters = rep["adapters"]
    cids = sorted(adapters)
    out = merge_adapters(
        [Path(adapters[c]["dir"]) for c in cids],
        [adapters[c]["num_samples"] for c in cids],
        work / "merged",
        method="stack",
    )
    return evaluate_perplexity(spec, out, texts, seq_len=64, batch_size=8)


def main() -> int:
    from orchestrator.learning.data import TOPICS, load_org_data
    from orchestrator.split.base import split_model_dir
    from orchestrator.split.runner import (
        SplitTrainConfig,
        _final,
        centralized_losses,
        client_batches,
        run_split_training,
    )
    from orchestrator.split.server import SERVER_LORA, SYNC_MODES

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", nargs="+", default=["tiny"], help=f"tiny | smollm2 | {LLAMA_1B}")
    ap.add_argument("--clients", type=int, nargs="+", default=[2, 4, 8])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--sync-every", type=int, default=2)
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    ap.add_argument("--sync", nargs="+", choices=SYNC_MODES, default=["grads"])
    ap.add_argument("--server-lora", nargs="+", choices=SERVER_LORA, default=["shared"])
    ap.add_argument("--eval", action="store_true", help="merged-model perplexity per row")
    ap.add_argument("--device", default="cpu", help="cpu | cuda (cuda: throughput only)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    gpu = args.device.startswith("cuda")
    if gpu:
        import torch

        if not torch.cuda.is_available():
            print(f"skipped: --device {args.device} needs a CUDA GPU and none is visible")
            return 0
    rows = []
    started = time.perf_counter()
    for model in args.model:
        folder = llama_1b_dir() if model == LLAMA_1B else split_model_dir(model)
        spec = str(folder) if model in ("tiny", LLAMA_1B) else model
        for n in args.clients:
            base = dict(
                model=str(folder) if model == LLAMA_1B else model,
                clients=n,
                steps=args.steps,
                batch_size=args.batch_size,
                seq_len=args.seq_len,
                lr=args.lr,
                replicas=min(args.replicas, n),
                sync_every=args.sync_every,
                baseline=False,
                check_equivalence=False,
                device=args.device,
                step_timeout_s=600.0,
            )
            probe = SplitTrainConfig(**base)
            central = None
            if not gpu:
                batches = client_batches(
                    folder, n, args.steps, args.batch_size, args.seq_len, probe.seed
                )
                central = _final(
                    centralized_losses(folder, batches, probe.lora, probe.seed, args.lr)
                )
            val = [t for i in range(n) for t in load_org_data(TOPICS[i % len(TOPICS)]).val[:4]]
            ref_rate = None
            for var in variants(args.modes, args.sync, args.server_lora):
                with tempfile.TemporaryDirectory() as tmp:
                    cfg = SplitTrainConfig(
                        **{**base, **var}, adapters_dir=str(Path(tmp) / "a") if args.eval else None
                    )
                    rep = run_split_training(cfg, model_dir=folder)
                    ppl = merged_perplexity(rep, spec, val, Path(tmp)) if args.eval else None
                rate = rep["steps_per_s_median"]
                ref_rate = rate if ref_rate is None else ref_rate
                diff = abs(rep["final_loss"] - central) / central if central else None
                row = {
                    "model": model,
                    "clients": n,
                    **var,
                    "steps_per_s": rate,
                    "steps_per_s_mean": rep["steps_per_s"],
                    "speedup_vs_first": rate / ref_rate,
                    "encryption_fraction": rep["encryption"]["overhead_fraction"],
                    "kib_per_client_step": rep["bytes_on_wire"]["per_client_step"] / 1024,
                    "final_loss": rep["final_loss"],
                    "centralized_final_loss": central,
                    "loss_rel_diff": diff,
                    "merged_val_perplexity": ppl,
                    "server_forward_passes": sum(s["forward_passes"] for s in rep["server"]),
                    "server_lora_state_bytes": sum(s["lora_bytes"]["total"] for s in rep["server"]),
                    "server_max_rss_bytes": max(s["max_rss_bytes"] for s in rep["server"]),
                    "client_errors": rep["client_errors"],
                }
                rows.append(row)
                label = var["mode"] + (f"/{var['sync']}" if var["mode"] == "hierarchical" else "")
                loss = (
                    f"loss {row['final_loss']:.4f} vs central {central:.4f} ({100 * diff:.2f}%"
                    f"{'' if diff <= 0.02 else ' > 2%!'})"
                    if diff is not None
                    else f"loss {row['final_loss']:.4f}"
                )
                print(
                    f"{model} N={n} {label:20s} {var['server_lora']:10s} {rate:7.2f} steps/s "
                    f"x{row['speedup_vs_first']:.2f}  crypto "
                    f"{100 * (row['encryption_fraction'] or 0):5.2f}%  {loss}  server LoRA+Adam "
                    f"{row['server_lora_state_bytes'] / 2**20:.2f} MiB, RSS "
                    f"{row['server_max_rss_bytes'] / 2**20:.0f} MiB"
                    + (f"  merged ppl {ppl:.3f}" if ppl is not None else ""),
                    flush=True,
                )
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, OMP_NUM_THREADS="
        f"{os.environ['OMP_NUM_THREADS']}, device {args.device}",
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "rows": rows,
        "wall_seconds": time.perf_counter() - started,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    bad = [
        r
        for r in rows
        if (r["loss_rel_diff"] is not None and r["loss_rel_diff"] > 0.02) or r["client_errors"]
    ]
    print(f"done in {result['wall_seconds']:.0f} s; {len(bad)} row(s) outside the 2 % loss target")
    return 0 if not bad else 1


if __name__ == "__main__":
    raise SystemExit(main())
