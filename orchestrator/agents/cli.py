"""``incentives`` (the economic simulation) and ``incentives-calibrate`` (fit the surrogate).

No torch at import time: ``--help`` and the simulation never load a model; only
``incentives-calibrate`` and ``incentives --live`` import the learning layer, lazily.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from orchestrator.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "incentives",
        help="economic simulation: Q-learning orgs paid by exact Shapley values",
        description=(
            "Simulate N organisations for R rounds on the calibrated surrogate, each choosing every "
            "round to skip or train at low/medium/high, paid by exact Shapley values of the "
            "validation-loss reduction (price per nat, capped at the round budget). Compares "
            "Q-learning, always-high, random, myopic best response and the best static profile "
            "over several seeds, and writes a JSON report and a plot. With --live, also runs a short "
            "consortium of real daemons on the in-process chain with Q-learning trainers."
        ),
    )
    p.add_argument("--orgs", type=int, default=10, help="organisations (2..10 for exact Shapley; default 10)")
    p.add_argument("--rounds", type=int, default=300, help="rounds per run (default 300)")
    p.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--seeds", type=int, default=5, help="number of seeds: SEED .. SEED+SEEDS-1 (default 5)")
    p.add_argument("--price", type=float, default=None,
                   help="tokens per nat of Shapley value (default (N-1) * valuation)")
    p.add_argument("--valuation", type=float, default=100.0, help="tokens an org values one nat at (default 100)")
    p.add_argument("--cost-range", type=float, nargs=2, default=(0.3, 3.0), metavar=("LOW", "HIGH"),
                   help="org costs at high, as multiples of their all-high payment (log-uniform; default 0.3 3)")
    p.add_argument("--calibration", type=Path, default=None,
                   help="surrogate parameters (default: the committed orchestrator/agents/calibration.json)")
    p.add_argument("--json", type=Path, default=Path("out/incentives/report.json"), metavar="OUT")
    p.add_argument("--plot", type=Path, default=None, metavar="OUT.png", help="plot path (default: OUT with .png)")
    p.add_argument("--live", action="store_true", help="also run real daemons with Q-learning trainers")
    p.add_argument("--model", default="tiny", help="model for --live (default tiny)")
    p.add_argument("--live-orgs", type=int, default=3, help="orgs in the --live consortium (default 3)")
    p.add_argument("--live-rounds", type=int, default=3, help="rounds in the --live consortium (default 3)")
    p.set_defaults(func=_run_incentives)

    c = subparsers.add_parser(
        "incentives-calibrate",
        help="fit the incentives surrogate from real training runs",
        description=(
            "Train one adapter per BBC topic, resource level (1/4, 1/2, all local steps) and seed with "
            "the project's trainer, measure validation-loss reductions and every coalition's value, "
            "and fit the surrogate's parameters (written as JSON; the committed file is "
            "orchestrator/agents/calibration.json)."
        ),
    )
    c.add_argument("--model", default="tiny", help="tiny, smollm2 or a local Hugging Face folder")
    c.add_argument("--steps", type=int, default=None, help="local steps of the high level")
    c.add_argument("--seeds", type=int, default=None, help="seeds per (topic, level)")
    c.add_argument("--out", type=Path, default=Path("out/incentives/calibration.json"))
    c.add_argument("--work-dir", type=Path, default=None, help="keep adapters here (default: temp, deleted)")
    c.set_defaults(func=_run_calibrate)


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _run_incentives(args: argparse.Namespace) -> int:
    from orchestrator.agents.simulation import SimConfig, run_experiment
    from orchestrator.agents.surrogate import load_surrogate

    if not 2 <= args.orgs <= 10:
        raise ConfigError(f"--orgs must be between 2 and 10 (exact Shapley over all 2^N coalitions), got {args.orgs}")
    if args.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {args.seeds}")
    try:
        surrogate = load_surrogate(args.calibration)
        config = SimConfig(orgs=args.orgs, rounds=args.rounds, seed=args.seed, price=args.price,
                           valuation=args.valuation, cost_low=args.cost_range[0], cost_high=args.cost_range[1],
                           ratio_round=min(200, args.rounds))
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    report = run_experiment(config, surrogate, seeds=args.seeds)
    report["surrogate"] = surrogate.to_dict()
    report["command"] = "python -m orchestrator " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["incentives"] else None
    if args.live:
        report["live"] = _run_live(args)
    plot = args.plot or args.json.with_suffix(".png")
    _atomic_write(args.json, json.dumps(report, indent=1, sort_keys=True))
    write_plot(report, plot)
    print_table(report, sys.stdout)
    print(f"report: {args.json}\nplot: {plot}")
    return 0


def print_table(report: dict[str, Any], out: Any) -> None:
    cfg = report["config"]
    out.write(f"{cfg['orgs']} orgs, {cfg['rounds']} rounds, seeds {report['seeds']}\n")
    out.write(f"{'policy':<12}{'welfare':>12}{'+-95%':>10}{'particip.':>11}{'quality':>10}{'gini':>7}{'free-ride':>11}\n")
    for name, p in report["policies"].items():
        out.write(f"{name:<12}{p['welfare']:>12.1f}{p['welfare_ci95']:>10.1f}{p['participation']:>11.2f}"
                  f"{p['final_quality']:>10.4f}{p['reward_gini']:>7.2f}{p['free_rider_share']:>11.2f}\n")
    lo, hi = report["welfare_ratio_window"]
    out.write(f"welfare_ratio (q_learning / best_static, rounds {lo}-{hi}): "
              f"{report['welfare_ratio']:.3f} +- {report['welfare_ratio_ci95']:.3f}\n")
    o = report["orgs"]
    out.write(f"negative-margin orgs skipping >= 90% of the last {cfg['window']} rounds: "
              f"{o['negative_margin_skipping_90pct']}/{o['negative_margin']}; positive-margin orgs participating "
              f">= 90%: {o['positive_margin_participating_90pct']}/{o['positive_margin']}; "
              f"indifferent (not classified): {o['indifferent']}\n")
    for key, ok in report["targets"].items():
        out.write(f"target {key}: {'met' if ok else 'MISSED' if ok is not None else 'n/a'}\n")


def write_plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    k = 10
    for name, curve in report["curves"].items():
        y = np.convolve(np.asarray(curve), np.ones(k) / k, mode="valid")
        ax1.plot(np.arange(k, len(curve) + 1), y, label=name)
    ax1.set_xlabel("round")
    ax1.set_ylabel(f"welfare per round ({k}-round mean, over seeds)")
    ax1.legend()
    orgs = [o for seed in report["orgs"]["per_seed"] for o in seed]
    colors = {"positive": "tab:green", "negative": "tab:red", "indifferent": "tab:gray"}
    for kind, color in colors.items():
        pts = [(o["margin"] / o["cost_high"], o["participation_last"]) for o in orgs if o["kind"] == kind]
        if pts:
            ax2.scatter(*zip(*pts, strict=True), c=color, label=f"{kind} margin", s=18)
    ax2.axvline(0, color="black", lw=0.5)
    ax2.set_xlabel("margin of participating / cost at high")
    ax2.set_ylabel(f"Q-learning participation, last {report['config']['window']} rounds")
    ax2.legend()
    fig.suptitle(f"LedgerLoRA incentives: welfare_ratio {report['welfare_ratio']:.3f}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _run_live(args: argparse.Namespace) -> dict[str, Any]:
    """A short consortium of real daemons (in-process chain) whose trainers are Q-learning agents."""
    from orchestrator.daemons.demo import DemoConfig, build_setup, drive
    from orchestrator.daemons.incentives import agents_settled, attach_agents, close_when_everyone_decided, decisions
    from orchestrator.daemons.rewards import recompute_rewards, round_report
    from orchestrator.learning.data import TOPICS

    if not 2 <= args.live_orgs <= len(TOPICS) or args.live_rounds < 1:
        raise ConfigError(f"--live-orgs must be 2..{len(TOPICS)} and --live-rounds >= 1, got "
                          f"{args.live_orgs} and {args.live_rounds}")
    state = args.json.parent / "live"
    if state.exists():
        import shutil

        shutil.rmtree(state)  # in-process chains start from genesis
    cfg = DemoConfig(model=args.model, orgs=args.live_orgs, rounds=args.live_rounds, unlearn=TOPICS[0],
                     out=state, quiet=True, seed=args.seed)
    setup = build_setup(cfg, state)
    attach_agents(setup.trainers, seed=args.seed)
    cons = setup.consortium
    rounds = cons.protocol.contract("Rounds")
    drive(setup.daemons, lambda: agents_settled(setup.trainers, cfg.rounds),
          on_tick=lambda: close_when_everyone_decided(rounds, cons.private, setup.trainers), max_ticks=2000)
    roots = []
    for r in range(1, cfg.rounds + 1):
        report = round_report(rounds, cons.store, r)
        onchain = bytes(rounds.events.RoundFinalized().get_logs(
            from_block=0, argument_filters={"roundId": r})[0]["args"]["rewardsRoot"])
        assert report is not None
        roots.append({"round": r, "root": "0x" + onchain.hex(),
                      "recomputed_from_report": recompute_rewards(report["contributions"]).root == onchain})
    table = decisions(setup.trainers)
    for org, rows in table.items():
        print(f"{org:<14}" + "  ".join(f"r{d['round']}: {d['action']:<6} {int(d['tokens']) / 10**18:8.2f} LLS"
                                       for d in rows))
    return {"model": args.model, "decisions": table, "rewards_roots": roots}


def _run_calibrate(args: argparse.Namespace) -> int:
    import dataclasses

    from orchestrator.agents.calibrate import CalibrationPlan, fit, measure, summary_lines

    plan = CalibrationPlan.for_model(args.model)
    if args.steps is not None:
        plan = dataclasses.replace(plan, steps=args.steps)
    if args.seeds is not None:
        plan = dataclasses.replace(plan, seeds=tuple(range(args.seeds)))
    if args.work_dir is not None:
        measured = measure(plan, args.work_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="ledgerlora-calibrate-") as tmp:
            measured = measure(plan, Path(tmp))
    doc = fit(measured) | {"measurements": measured,
                           "command": "python -m orchestrator " + " ".join(sys.argv[1:])}
    _atomic_write(args.out, json.dumps(doc, indent=1, sort_keys=True))
    for line in summary_lines(doc):
        print(line)
    print(f"calibration: {args.out}")
    return 0
