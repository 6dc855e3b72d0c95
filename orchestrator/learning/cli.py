"""``python -m orchestrator simulate``: the learning loop in one process, with its report.

Imports nothing heavy at module level: ``register`` runs for every CLI invocation.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from orchestrator.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "simulate",
        help="train, merge, unlearn and verify in one process (no chain)",
        description=(
            "Simulate a consortium (one org per BBC topic) training LoRA adapters, unlearn an org "
            "or samples, retrain from scratch without them, and write the verification report."
        ),
    )
    p.add_argument("--model", default="smollm2", help="tiny, smollm2 or a local Hugging Face folder")
    p.add_argument("--orgs", type=int, default=5, help="number of orgs (business, entertainment, ...)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--mode", choices=("isolated", "collaborative", "grouped"), default="isolated",
                   help="isolated (exact stack), collaborative (FedAvg) or grouped (FedAvg inside G groups, "
                        "exact stack across them)")
    p.add_argument("--groups", type=int, default=2, metavar="G", help="number of groups for --mode grouped")
    p.add_argument("--unlearn", default="sport", metavar="ORG", help="the org to forget")
    p.add_argument("--unlearn-samples", type=int, default=0, metavar="K",
                   help="remove K samples of ORG (SISA shards) instead of the whole org")
    p.add_argument("--shards", type=int, default=4, help="SISA shards for --unlearn-samples")
    p.add_argument("--join-round", type=int, default=0, help="round in which ORG first contributes")
    p.add_argument("--steps", type=int, default=None, help="training steps per org and round")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--rank", type=int, default=None)
    p.add_argument("--seq-len", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--max-train", type=int, default=32, help="training texts per org")
    p.add_argument("--max-val", type=int, default=8, help="validation texts per org")
    p.add_argument("--mia-samples", type=int, default=16,
                   help="member and non-member texts of the calibrated membership attack (>= 100 for evidence)")
    p.add_argument("--canary-reps", default="1,4,16", metavar="N,N,...",
                   help="canaries of ORG and how often each is inserted (comma-separated counts)")
    p.add_argument("--retrain-seeds", type=int, default=3,
                   help="independent retrains without the forgotten data (the yardstick's spread)")
    p.add_argument("--score-val", type=int, default=4, help="validation texts per org for contribution scores")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-score", action="store_true", help="skip leave-one-out contribution scores")
    p.add_argument("--json", type=Path, default=Path("out/simulate/report.json"), metavar="OUT")
    p.add_argument("--png", type=Path, default=None, help="plot path (default: OUT with .png)")
    p.add_argument("--work-dir", type=Path, default=None, help="keep adapters here (default: temp, deleted)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_run_simulate)


def _run_simulate(args: argparse.Namespace) -> int:
    from orchestrator.learning.config import TrainConfig
    from orchestrator.learning.simulate import SimulationConfig, simulate

    defaults = default_train_config(args.model)
    overrides = {
        k: v
        for k, v in (
            ("steps", args.steps), ("lr", args.lr), ("rank", args.rank),
            ("seq_len", args.seq_len), ("batch_size", args.batch_size), ("seed", args.seed),
        )
        if v is not None
    }
    try:
        try:
            reps = tuple(int(x) for x in args.canary_reps.split(",") if x.strip())
        except ValueError:
            raise ValueError(f"--canary-reps must be comma-separated integers like 1,4,16; got {args.canary_reps!r}") from None
        train = TrainConfig.from_dict({**defaults.to_dict(), **overrides})
        cfg = SimulationConfig(
            model=args.model, orgs=args.orgs, rounds=args.rounds, mode=args.mode, groups=args.groups,
            canary_reps=reps, retrain_seeds=args.retrain_seeds, unlearn=args.unlearn,
            unlearn_samples=args.unlearn_samples, shards=args.shards, join_round=args.join_round,
            max_train=args.max_train, max_val=args.max_val, mia_samples=args.mia_samples,
            score_val=args.score_val,
            train=train, seed=args.seed, score=not args.no_score, progress=not args.no_progress,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    started = time.perf_counter()
    report = simulate(cfg, args.work_dir)
    png = args.png or args.json.with_suffix(".png")
    report.seconds["wall"] = round(time.perf_counter() - started, 1)  # not hashed
    report.write(args.json, png)
    print_summary(report.to_dict(), sys.stdout)
    print(f"report: {args.json}  plot: {png}  ({report.seconds['wall']} s)")
    return 0


def default_train_config(model: str) -> "TrainConfig":  # noqa: F821 - lazy import
    """Per-model defaults: the tiny model needs a higher learning rate to learn anything visible."""
    from orchestrator.learning.config import TrainConfig

    if model == "tiny":
        # Higher lr than SmolLM2 (the tiny base knows little), but not so high that the adapters
        # mostly learn generic English, which would make removing one org move the others.
        return TrainConfig(steps=30, lr=5e-3, seq_len=64, batch_size=4)
    return TrainConfig(steps=8, lr=2e-3, seq_len=64, batch_size=4)


def print_summary(data: dict, out) -> None:  # type: ignore[no-untyped-def]
    models = [m for m in data["models"]]
    short = {m: m.replace("retrain_seed", "r") for m in models}
    out.write(f"{'perplexity':<24}" + "".join(f"{short[m]:>10}" for m in models) + "\n")
    for org in data["orgs"]:
        row = data["perplexity"][org]
        label = org + (" (forgotten)" if org == data["forget"] else "")
        out.write(f"{label:<24}" + "".join(f"{row[m]:>10.2f}" for m in models) + "\n")
    att = data["attack"]["per_model"]
    out.write(f"{'calibrated MIA AUC':<24}{'':>10}" + "".join(f"{att[m]['auc']:>10.3f}" for m in models[1:]) + "\n")
    if "canaries" in data:
        ex = data["canaries"]["exposure_bits"]
        for k in data["canaries"]["keys"]:
            out.write(f"{f'exposure {k} (bits)':<24}" + "".join(f"{ex[m][k]:>10.2f}" for m in models) + "\n")
    s, c = data["seconds"], data["cost"]
    out.write(f"unlearn {s.get('unlearn', 0):.2f} s, {c.get('unlearn_trainings', 0)} trainings vs one retrain "
              f"{s.get('retrain', 0):.2f} s, {c.get('retrain_trainings', 0)} trainings\n")
    out.write(f"unlearned_sha256 {data['unlearned_sha256']}\n")
    out.write(f"metrics_sha256 {data['metrics_sha256']}\n")
    out.write("checks: " + json.dumps(data["checks"]) + "\n")
