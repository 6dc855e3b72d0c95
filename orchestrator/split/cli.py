"""``python -m orchestrator split-train``: run split learning and write a JSON report."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from orchestrator.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    from orchestrator.split.runner import RUN_MODES, SplitTrainConfig
    from orchestrator.split.server import SERVER_LORA, SYNC_MODES

    d = SplitTrainConfig()
    p = subparsers.add_parser(
        "split-train",
        help="split learning (FL-GLM): clients keep embeddings/first+last block, server the middle",
        description=(
            "Train with a server process holding the middle blocks (LoRA) and one process per "
            "client holding embeddings + first block and last block + norm + LM head. "
            "Activations and gradients cross a loopback HTTP link, encrypted per client."
        ),
    )
    p.add_argument(
        "--model", default=d.model, help="tiny | smollm2 | local HF folder (default %(default)s)"
    )
    p.add_argument(
        "--clients", type=int, default=d.clients, help="client organisations (default %(default)s)"
    )
    p.add_argument(
        "--mode", choices=RUN_MODES, default=d.mode, help="server mode (default %(default)s)"
    )
    p.add_argument(
        "--steps", type=int, default=d.steps, help="training steps (default %(default)s)"
    )
    p.add_argument(
        "--batch-size", type=int, default=d.batch_size, help="sequences per client per step"
    )
    p.add_argument("--seq-len", type=int, default=d.seq_len, help="max tokens per sequence")
    p.add_argument(
        "--lr", type=float, default=d.lr, help="Adam learning rate (default %(default)s)"
    )
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--lora-r", type=int, default=d.lora_r)
    p.add_argument("--lora-alpha", type=int, default=d.lora_alpha)
    p.add_argument(
        "--replicas", type=int, default=d.replicas, help="hierarchical: server replicas K"
    )
    p.add_argument(
        "--sync-every", type=int, default=d.sync_every, help="hierarchical: average every M steps"
    )
    p.add_argument(
        "--step-timeout",
        type=float,
        default=d.step_timeout_s,
        dest="step_timeout_s",
        help="seconds before a silent client is dropped (default %(default)s)",
    )
    p.add_argument("--threads", type=int, default=d.threads, help="torch threads per process")
    p.add_argument(
        "--sync",
        choices=SYNC_MODES,
        default=d.sync,
        help="hierarchical: what replicas keep in step: grads = all-reduce the LoRA gradient "
        "every step (trains what one batched server would), adam = average weights and Adam "
        "moments every M steps, weights = average weights every M steps (default %(default)s)",
    )
    p.add_argument(
        "--server-lora",
        choices=SERVER_LORA,
        default=d.server_lora,
        help="shared = one server LoRA for all clients; per-client = one per client, so "
        "forgetting a client is an exact re-merge (costs server memory; default %(default)s)",
    )
    p.add_argument(
        "--device", default=d.device, help="torch device of every process (cpu, cuda, cuda:1)"
    )
    p.add_argument(
        "--exclude",
        type=int,
        nargs="*",
        default=list(d.exclude),
        help="client indices left out; the others keep their ids and data (a run without them)",
    )
    p.add_argument(
        "--adapters-dir",
        default=None,
        help="write each client's full-model LoRA adapter (own blocks + its server LoRA) here",
    )
    p.add_argument(
        "--no-baseline", action="store_false", dest="baseline", help="skip centralised training"
    )
    p.add_argument(
        "--no-equivalence",
        action="store_false",
        dest="check_equivalence",
        help="skip the in-process fp32 equivalence checks",
    )
    p.add_argument(
        "--chain",
        action="store_true",
        help="run as a consortium round: the aggregator opens it, each client's adapter is "
        "stored by CID and submitted from its wallet, the round finalizes with rewards",
    )
    p.add_argument(
        "--rpc-url",
        default=None,
        help="--chain: deploy on this JSON-RPC dev chain (e.g. anvil) instead of a new "
        "in-process chain",
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="--chain: daemon state and the IPFS blockstore (default: a temporary folder)",
    )
    p.add_argument(
        "--forget",
        type=int,
        default=None,
        metavar="INDEX",
        help="--chain: afterwards client INDEX asks to be forgotten and the unlearning "
        "executor re-merges without it",
    )
    p.add_argument("--json", type=Path, default=None, help="write the report here")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from orchestrator.split.runner import SplitTrainConfig, run_split_training

    names = {f.name for f in fields(SplitTrainConfig)}
    try:
        cfg = SplitTrainConfig(**{k: v for k, v in vars(args).items() if k in names})
    except ValueError as exc:
        raise ConfigError(f"split-train: {exc}") from exc
    if not args.chain and (args.rpc_url or args.forget is not None or args.state_dir):
        raise ConfigError("split-train: --rpc-url, --forget and --state-dir need --chain")
    if args.forget is not None and args.forget not in cfg.client_indices:
        raise ConfigError(
            f"split-train: --forget {args.forget} is not a training client "
            f"(clients {cfg.client_indices})"
        )
    if args.chain:
        chain = _run_chain(cfg, args)
        report = chain["split"]
    else:
        report = run_split_training(cfg)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(chain if args.chain else report, indent=2, default=str))
    eq = report.get("equivalence", {})
    central = report.get("centralized", {})
    print(
        f"split-train {cfg.mode}: {len(cfg.client_indices)} clients, {cfg.steps} steps, "
        f"loss {report['mean_loss_per_step'][0]:.4f} -> {report['final_loss']:.4f}, "
        f"{report['steps_per_s']:.2f} steps/s, "
        f"{report['bytes_on_wire']['per_client_step'] / 1024:.1f} KiB/client/step, "
        f"encryption {100 * (report['encryption']['overhead_fraction'] or 0):.2f}% of step time"
    )
    if central:
        print(
            f"  centralised final loss {central['final_loss']:.4f} "
            f"(split differs by {100 * central['final_loss_rel_diff']:.2f}%)"
        )
    if eq:
        print(
            f"  equivalence (fp32, tol {eq['tolerance']:g}): {'passed' if eq['passed'] else 'FAILED'}"
        )
    if report["client_errors"]:
        print(f"  client errors: {report['client_errors']}")
    return 0 if not report["client_errors"] and eq.get("passed", True) else 1


def _run_chain(cfg: Any, args: argparse.Namespace) -> dict[str, Any]:
    import tempfile

    from orchestrator.split.ledger import forget, open_ledger, org_name, run_split_round

    with tempfile.TemporaryDirectory(prefix="split-chain-") as tmp:
        state = Path(args.state_dir) if args.state_dir else Path(tmp)
        ledger = open_ledger(cfg, state, args.rpc_url)
        result = run_split_round(cfg, ledger)
        rep = result["round_report"]
        print(
            f"round {result['round']} finalized: model {rep['model_cid']} "
            f"(sha256 {rep['model_sha256'][:16]}...), {len(result['submissions'])} submissions, "
            f"rewards {result['rewards']}, claimed {sorted(n for n, c in result['claimed'].items() if c)}"
        )
        if args.forget is not None:
            done = forget(ledger, org_name(args.forget))
            result["forget"] = done
            print(
                f"request {done['request']}: {org_name(args.forget)} forgotten, new model "
                f"{done['receipt']['model_cid']} (sha256 {done['receipt']['model_sha256'][:16]}...)"
            )
    return result
