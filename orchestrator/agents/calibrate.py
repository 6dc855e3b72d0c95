"""Calibrating the surrogate from real training runs of this project.

``python -m orchestrator incentives-calibrate --model tiny`` trains, for each BBC topic, one
adapter per resource level (a quarter, half and all of the round's local steps) and seed with
the project's own trainer, measures each adapter's own-topic validation-loss reduction, then
evaluates every coalition of the topic adapters (at the high level) on the mixed validation
set with the aggregator's coalition evaluator. The fits (:func:`surrogate.fit_curve`,
:func:`surrogate.fit_coalitions`) turn the measurements into the surrogate's parameters.

The measuring half imports the learning layer (torch) lazily; the fitting half is pure.
"""

from __future__ import annotations

import itertools
import math
import platform
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.agents.qlearning import ACTIONS, LEVEL_FRACTION
from orchestrator.agents.surrogate import Surrogate, fit_coalitions, fit_tau


@dataclass(frozen=True)
class CalibrationPlan:
    model: str = "tiny"
    topics: tuple[str, ...] = ("business", "entertainment", "politics", "sport", "tech")
    steps: int = 24
    seeds: tuple[int, ...] = (0, 1)
    max_train: int = 32
    max_val: int = 6
    seq_len: int = 64
    batch_size: int = 4
    lr: float = 5e-3

    @classmethod
    def for_model(cls, model: str) -> CalibrationPlan:
        """Defaults sized for 2 CPU cores: the tiny model as in the demo, SmolLM2 smaller and one seed."""
        if model == "tiny":
            return cls()
        return cls(model=model, steps=8, seeds=(0,), max_train=16, max_val=4, lr=2e-3)


def level_steps(plan: CalibrationPlan) -> dict[str, int]:
    return {a: max(1, round(LEVEL_FRACTION[a] * plan.steps)) for a in ACTIONS if a != "skip"}


def measure(plan: CalibrationPlan, work: Path, progress: bool = False) -> dict[str, Any]:
    """Train and evaluate; returns raw measurements (JSON-ready)."""
    from orchestrator.learning.api import TrainConfig, evaluate_perplexity, load_org_data, train_adapter
    from orchestrator.learning.coalitions import coalition_values

    started = time.perf_counter()
    data = {t: load_org_data(t, max_train=plan.max_train, max_val=plan.max_val) for t in plan.topics}
    val_mixed = [x for t in plan.topics for x in data[t].val]
    ev = {"seq_len": plan.seq_len, "batch_size": 8}
    base_loss = {t: math.log(evaluate_perplexity(plan.model, None, data[t].val, **ev)) for t in plan.topics}
    own: list[dict[str, Any]] = []
    high_dirs: dict[str, Path] = {}
    samples: dict[str, int] = {}
    for topic, (level, steps), seed in itertools.product(plan.topics, level_steps(plan).items(), plan.seeds):
        cfg = TrainConfig(steps=steps, lr=plan.lr, seq_len=plan.seq_len, batch_size=plan.batch_size, seed=seed)
        out = work / f"{topic}-{level}-s{seed}"
        result = train_adapter(plan.model, data[topic].train, cfg, out, progress=progress)
        loss = math.log(evaluate_perplexity(plan.model, out, data[topic].val, **ev))
        own.append({"topic": topic, "level": level, "steps": steps, "seed": seed,
                    "loss_reduction": base_loss[topic] - loss})
        if level == "high" and seed == plan.seeds[0]:
            high_dirs[topic] = out
            samples[topic] = int(result.num_samples)
    topics = list(plan.topics)
    coalitions = [frozenset(t for i, t in enumerate(topics) if m >> i & 1) for m in range(1 << len(topics))]
    base_mixed, values = coalition_values(plan.model, high_dirs, samples, val_mixed, coalitions, **ev)
    return {
        "model": plan.model, "plan": plan.__dict__ | {"topics": topics, "seeds": list(plan.seeds)},
        "base_loss": base_loss, "base_loss_mixed": base_mixed, "own_topic": own,
        "coalitions": [{"mask": m, "members": sorted(c), "value": values[c]} for m, c in enumerate(coalitions)],
        "samples": samples, "seconds": time.perf_counter() - started,
        "machine": f"{platform.machine()} {platform.processor() or platform.system()}",
    }


def fit(measured: Mapping[str, Any]) -> dict[str, Any]:
    """Fitted surrogate parameters and goodness of fit from :func:`measure`'s output."""
    plan = measured["plan"]
    topics: list[str] = list(plan["topics"])
    steps = int(plan["steps"])
    cells: dict[tuple[str, int], list[float]] = {}
    for r in measured["own_topic"]:
        cells.setdefault((r["topic"], int(r["steps"])), []).append(float(r["loss_reduction"]))
    # The level curve's shape from the topics whose own-topic loss visibly falls (mean > 0.05 nats
    # at the high level); each point is normalised by its topic's high-level mean.
    shape_points: list[tuple[float, float]] = []
    learning_topics = [t for t in topics if statistics.mean(cells[(t, steps)]) > 0.05]
    for t in learning_topics:
        top = statistics.mean(cells[(t, steps)])
        shape_points += [(0.0, 0.0)] + [(float(s), x / top) for (tt, s), xs in cells.items() if tt == t for x in xs]
    tau, tau_rmse = fit_tau(shape_points, steps) if shape_points else (float(steps), math.nan)
    spread = [statistics.stdev(xs) / statistics.mean(xs) for (t, _), xs in cells.items()
              if t in learning_topics and len(xs) > 1 and statistics.mean(xs) > 0.05]
    noise = min(statistics.mean(spread), 0.9) if spread else 0.0
    table = {int(row["mask"]): float(row["value"]) for row in measured["coalitions"] if int(row["mask"])}
    contributions, saturation, dilution, r2 = fit_coalitions(topics, table)
    surrogate = Surrogate(contributions, saturation, dilution, tau, noise, steps,
                          {"model": measured["model"], "fitted_from": "the measurements in this file"})
    return {"surrogate": surrogate.to_dict(),
            "fit": {"coalition_r2": r2, "tau_rmse": tau_rmse, "learning_topics": learning_topics,
                    "relative_seed_spread": spread}}


def summary_lines(doc: Mapping[str, Any]) -> Sequence[str]:
    s = doc["surrogate"]
    lines = [f"{t}: contribution at high {g:.4f} nats" for t, g in s["contributions"].items()]
    lines.append(f"saturation {s['saturation']:.4f} nats, dilution {s['dilution']:.3f} "
                 f"(coalition R^2 {doc['fit']['coalition_r2']:.3f}); level curve tau {s['tau']:.2f} steps "
                 f"(rmse {doc['fit']['tau_rmse']:.3f}); noise {s['noise']:.3f}")
    return lines
