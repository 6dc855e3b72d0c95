"""The whole learning loop in one process (no chain, no IPFS): train, merge, score, unlearn,
retrain the baseline independently, verify.  Backs ``python -m orchestrator simulate``.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import LearningError
from orchestrator.learning.config import TrainConfig
from orchestrator.learning.data import TOPICS, OrgData, load_org_data
from orchestrator.learning.evaluate import score_contributions
from orchestrator.learning.federation import MODES, ShardedAdapter, run_rounds, train_sharded
from orchestrator.learning.unlearn import unlearn_org_collaborative, unlearn_org_isolated, unlearn_samples
from orchestrator.learning.verify import EvalSets, VerificationReport, build_report

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimulationConfig:
    """One simulated consortium; defaults fit SmolLM2 on 2 CPU cores in under 10 minutes."""

    model: str = "smollm2"
    orgs: int = 5
    rounds: int = 2
    mode: str = "isolated"
    unlearn: str = "sport"
    unlearn_samples: int = 0  # > 0: remove this many samples of `unlearn` instead of the org
    shards: int = 4
    join_round: int = 0  # the round in which the forgotten org first contributes
    max_train: int = 32
    max_val: int = 8
    mia_samples: int = 16
    score_val: int = 4  # validation texts per org for the leave-one-out scores (K+1 evaluations)
    eval_batch: int = 8
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0
    score: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.orgs <= len(TOPICS):
            raise ValueError(f"orgs must be in 1..{len(TOPICS)} (one per BBC topic); got {self.orgs}")
        if self.rounds < 1:
            raise ValueError(f"rounds must be >= 1; got {self.rounds}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}; got {self.mode!r}")
        if self.unlearn_samples < 0:
            raise ValueError(f"unlearn_samples must be >= 0; got {self.unlearn_samples}")
        if self.unlearn_samples and self.mode != "isolated":
            raise ValueError("sample-level unlearning (--unlearn-samples) needs --mode isolated")
        if self.shards < 1:
            raise ValueError(f"shards must be >= 1; got {self.shards}")
        if not 0 <= self.join_round < self.rounds:
            raise ValueError(f"join_round must be in 0..{self.rounds - 1}; got {self.join_round}")
        for name in ("max_train", "max_val", "mia_samples", "eval_batch", "score_val"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")

    @property
    def org_names(self) -> list[str]:
        return list(TOPICS[: self.orgs])


def simulate(cfg: SimulationConfig, out_dir: Path | None = None) -> VerificationReport:
    """Run the consortium, unlearn, retrain without the forgotten data, and compare.

    Adapters go to ``out_dir`` when given (kept), else to a temp folder removed afterwards.
    """
    if out_dir is not None:
        return _simulate(cfg, Path(out_dir))
    work = Path(tempfile.mkdtemp(prefix="ledgerlora-sim-"))
    try:
        return _simulate(cfg, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _simulate(cfg: SimulationConfig, work: Path) -> VerificationReport:
    orgs = cfg.org_names
    if cfg.unlearn not in orgs:
        raise LearningError(
            f"cannot unlearn {cfg.unlearn!r}: it is not among the {cfg.orgs} simulated orgs {orgs}; "
            "pick one of them or raise --orgs"
        )
    work.mkdir(parents=True, exist_ok=True)
    data: dict[str, OrgData] = {
        o: load_org_data(o, max_train=cfg.max_train, max_val=cfg.max_val, max_heldout=cfg.mia_samples, seed=cfg.seed)
        for o in orgs
    }
    texts = {o: d.train for o, d in data.items()}
    forget = cfg.unlearn
    joins = {forget: cfg.join_round}
    tc = cfg.train
    log.info("simulating %s: orgs=%s rounds=%d mode=%s", cfg.model, orgs, cfg.rounds, cfg.mode)

    # ---- the federation as it happened -------------------------------------------------------
    sharded: ShardedAdapter | None = None
    removed: list[str] = []
    if cfg.unlearn_samples:
        removed = _pick_removed(data[forget], cfg.unlearn_samples)
        sharded = train_sharded(
            cfg.model, texts[forget], tc, work / "run" / f"{forget}-shards",
            shards=cfg.shards, rounds=cfg.rounds, progress=cfg.progress,
        )
        others = {o: t for o, t in texts.items() if o != forget}
        history = run_rounds(
            cfg.model, others, tc, cfg.rounds, work / "run", mode=cfg.mode, joins=joins,
            fixed_adapters={forget: (sharded.merged, sharded.num_samples)}, progress=cfg.progress,
        )
    else:
        history = run_rounds(
            cfg.model, texts, tc, cfg.rounds, work / "run", mode=cfg.mode, joins=joins, progress=cfg.progress
        )
    final = history[-1]
    contributions: dict[str, float] = {}
    if cfg.score and cfg.mode == "isolated" and len(final.adapters) > 1:
        val_all = [t for o in orgs for t in data[o].val[: cfg.score_val]]
        started = time.perf_counter()
        contributions = score_contributions(
            cfg.model, final.adapters, final.weights, val_all, seq_len=tc.seq_len, batch_size=cfg.eval_batch
        )
        log.info("scored %d contributions in %.1f s", len(contributions), time.perf_counter() - started)

    log.info("federation trained in %.1f s (%d rounds)", sum(r.train_seconds for r in history), len(history))
    # ---- unlearning ----------------------------------------------------------------------------
    started = time.perf_counter()
    if cfg.unlearn_samples:
        assert sharded is not None
        result = unlearn_samples(
            cfg.model, sharded, removed, tc, work / "unlearn" / f"{forget}-shards",
            rounds=cfg.rounds, progress=cfg.progress,
        )
        adapters = {**final.adapters, forget: result.merged}
        weights = {**final.weights, forget: float(sharded.num_samples - len(removed))}
        from orchestrator.learning.aggregate import merge_adapters

        unlearned = merge_adapters(
            [adapters[o] for o in sorted(adapters)], [weights[o] for o in sorted(adapters)],
            work / "unlearn" / "merged",
        )
    elif cfg.mode == "isolated":
        unlearned = unlearn_org_isolated(final.adapters, final.weights, forget, work / "unlearn" / "merged")
    else:
        result = unlearn_org_collaborative(
            cfg.model, history, texts, forget, work / "unlearn", joins=joins, progress=cfg.progress
        )
        unlearned = result.merged
    unlearn_seconds = time.perf_counter() - started

    # ---- independent retrain without the forgotten data (the baseline) -------------------------
    started = time.perf_counter()
    if cfg.unlearn_samples:
        kept = [t for t in texts[forget] if t not in set(removed)]
        retrained_org = train_sharded(
            cfg.model, kept, tc, work / "retrain" / f"{forget}-shards",
            shards=cfg.shards, rounds=cfg.rounds, progress=cfg.progress,
        )
        others = {o: t for o, t in texts.items() if o != forget}
        # The other orgs never saw the removed samples: their adapters are reused as they are.
        retrain_history = run_rounds(
            cfg.model, {}, tc, cfg.rounds, work / "retrain", mode="isolated", joins=joins,
            fixed_adapters={
                **{o: (final.adapters[o], len(others[o])) for o in others},
                forget: (retrained_org.merged, retrained_org.num_samples),
            },
        )
    else:
        remaining = {o: t for o, t in texts.items() if o != forget}
        retrain_history = run_rounds(
            cfg.model, remaining, tc, cfg.rounds, work / "retrain", mode=cfg.mode, progress=cfg.progress
        )
    retrained = retrain_history[-1].merged
    retrain_seconds = time.perf_counter() - started
    log.info("unlearned in %.2f s; independent retrain took %.1f s", unlearn_seconds, retrain_seconds)

    # ---- verification --------------------------------------------------------------------------
    forgotten = removed if removed else data[forget].train[: cfg.mia_samples]
    sets = EvalSets(
        val={o: data[o].val for o in orgs},
        forgotten=forgotten,
        heldout=data[forget].heldout,
        canaries=data[forget].canaries,
    )
    report = build_report(
        cfg.model,
        mode=cfg.mode,
        kind="samples" if cfg.unlearn_samples else "org",
        forget=forget,
        orgs=orgs,
        before=final.merged,
        after=unlearned,
        retrain=retrained,
        sets=sets,
        unlearn_seconds=unlearn_seconds,
        retrain_seconds=retrain_seconds,
        removed_samples=len(removed) if removed else len(texts[forget]),
        seq_len=tc.seq_len,
        batch_size=cfg.eval_batch,
        contributions=contributions,
        settings=_settings(cfg),
    )
    return report


def _pick_removed(org: OrgData, k: int) -> list[str]:
    """The samples a data subject asks to remove: the canaries first (memorisation shows), then
    the first training texts."""
    if k > len(org.train) - 1:
        raise LearningError(
            f"cannot unlearn {k} samples of {org.name!r}: it has only {len(org.train)} training samples"
        )
    chosen = [c for c in org.canaries if c in org.train][:k]
    chosen += [t for t in org.train if t not in chosen][: k - len(chosen)]
    return chosen


def _settings(cfg: SimulationConfig) -> dict[str, Any]:
    out = {k: v for k, v in cfg.__dict__.items() if k not in ("train", "progress")}
    out["train"] = cfg.train.to_dict()
    return out
