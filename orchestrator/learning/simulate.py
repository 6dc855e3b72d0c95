"""The whole learning loop in one process (no chain, no IPFS): train, merge, score, unlearn,
retrain the baseline independently over several seeds, verify.  Backs
``python -m orchestrator simulate``.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from orchestrator.errors import LearningError
from orchestrator.learning.config import TrainConfig
from orchestrator.learning.data import TOPICS, OrgData, load_org_data
from orchestrator.learning.evaluate import score_contributions
from orchestrator.learning.federation import MODES, ShardedAdapter, assign_groups, run_rounds, train_sharded
from orchestrator.learning.unlearn import (
    unlearn_org_collaborative,
    unlearn_org_grouped,
    unlearn_org_isolated,
    unlearn_samples,
)
from orchestrator.learning.verify import EvalSets, VerificationReport, build_report

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimulationConfig:
    """One simulated consortium; defaults fit SmolLM2 on 2 CPU cores in under 10 minutes."""

    model: str = "smollm2"
    orgs: int = 5
    rounds: int = 2
    mode: str = "isolated"
    groups: int = 2  # grouped mode: number of groups G
    unlearn: str = "sport"
    unlearn_samples: int = 0  # > 0: remove this many articles of `unlearn` (and its canaries)
    shards: int = 4
    join_round: int = 0  # the round in which the forgotten org first contributes
    max_train: int = 32
    max_val: int = 8
    mia_samples: int = 16  # members and non-members of the membership attack (>= 100 for evidence)
    canary_reps: tuple[int, ...] = (1, 4, 16)
    retrain_seeds: int = 3  # independent retrains without the forgotten data (the yardstick)
    score_val: int = 4  # validation texts per org for the leave-one-out scores (K+1 evaluations)
    eval_batch: int = 8
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0
    score: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "canary_reps", tuple(int(r) for r in self.canary_reps))
        if not 1 <= self.orgs <= len(TOPICS):
            raise ValueError(f"orgs must be in 1..{len(TOPICS)} (one per BBC topic); got {self.orgs}")
        if self.rounds < 1:
            raise ValueError(f"rounds must be >= 1; got {self.rounds}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}; got {self.mode!r}")
        if self.mode == "grouped" and not 1 <= self.groups <= self.orgs:
            raise ValueError(f"groups must be in 1..{self.orgs} (the number of orgs); got {self.groups}")
        if self.unlearn_samples < 0:
            raise ValueError(f"unlearn_samples must be >= 0; got {self.unlearn_samples}")
        if self.unlearn_samples and self.mode != "isolated":
            raise ValueError("sample-level unlearning (--unlearn-samples) needs --mode isolated")
        if self.shards < 1:
            raise ValueError(f"shards must be >= 1; got {self.shards}")
        if not 0 <= self.join_round < self.rounds:
            raise ValueError(f"join_round must be in 0..{self.rounds - 1}; got {self.join_round}")
        for name in ("max_train", "max_val", "mia_samples", "eval_batch", "score_val", "retrain_seeds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        if any(r < 1 for r in self.canary_reps):
            raise ValueError(f"canary repetitions must be >= 1; got {list(self.canary_reps)}")

    @property
    def org_names(self) -> list[str]:
        return list(TOPICS[: self.orgs])

    def seed_offsets(self) -> list[int]:
        """Training seeds of the retrains: the run's own seed first, then fresh ones."""
        return [self.train.seed + 7919 * i for i in range(self.retrain_seeds)]


def simulate(cfg: SimulationConfig, out_dir: Path | None = None) -> VerificationReport:
    """Run the consortium, unlearn, retrain without the forgotten data over several seeds, and
    compare.  Adapters go to ``out_dir`` when given (kept), else to a temp folder removed
    afterwards.
    """
    if out_dir is not None:
        return _simulate(cfg, Path(out_dir))
    work = Path(tempfile.mkdtemp(prefix="ledgerlora-sim-"))
    try:
        return _simulate(cfg, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _load(cfg: SimulationConfig) -> dict[str, OrgData]:
    return {
        o: load_org_data(
            o, max_train=cfg.max_train, max_val=cfg.max_val, max_heldout=cfg.mia_samples, seed=cfg.seed,
            canary_reps=cfg.canary_reps if o == cfg.unlearn else (),
        )
        for o in cfg.org_names
    }


def _simulate(cfg: SimulationConfig, work: Path) -> VerificationReport:
    orgs = cfg.org_names
    if cfg.unlearn not in orgs:
        raise LearningError(
            f"cannot unlearn {cfg.unlearn!r}: it is not among the {cfg.orgs} simulated orgs {orgs}; "
            "pick one of them or raise --orgs"
        )
    work.mkdir(parents=True, exist_ok=True)
    data = _load(cfg)
    texts = {o: d.train for o, d in data.items()}
    forget = cfg.unlearn
    joins = {forget: cfg.join_round}
    groups = assign_groups(orgs, cfg.groups) if cfg.mode == "grouped" else None
    tc = cfg.train
    log.info("simulating %s: orgs=%s rounds=%d mode=%s", cfg.model, orgs, cfg.rounds, cfg.mode)
    seconds: dict[str, float] = {}

    # ---- the federation as it happened -------------------------------------------------------
    started = time.perf_counter()
    sharded: ShardedAdapter | None = None
    removed: list[str] = []
    if cfg.unlearn_samples:
        removed = _pick_removed(data[forget], cfg.unlearn_samples)
        sharded = train_sharded(
            cfg.model, texts[forget], tc.for_org(forget), work / "run" / f"{forget}-shards",
            shards=cfg.shards, rounds=cfg.rounds, progress=cfg.progress,
        )
        others = {o: t for o, t in texts.items() if o != forget}
        history = run_rounds(
            cfg.model, others, tc, cfg.rounds, work / "run", mode=cfg.mode, joins=joins,
            fixed_adapters={forget: (sharded.merged, sharded.num_samples)}, progress=cfg.progress,
        )
    else:
        history = run_rounds(
            cfg.model, texts, tc, cfg.rounds, work / "run", mode=cfg.mode, joins=joins, groups=groups,
            progress=cfg.progress,
        )
    seconds["train"] = time.perf_counter() - started
    final = history[-1]
    contributions: dict[str, float] = {}
    if cfg.score and cfg.mode == "isolated" and len(final.adapters) > 1:
        val_all = [t for o in orgs for t in data[o].val[: cfg.score_val]]
        contributions = score_contributions(
            cfg.model, final.adapters, final.weights, val_all, seq_len=tc.seq_len, batch_size=cfg.eval_batch
        )

    # ---- unlearning ----------------------------------------------------------------------------
    started = time.perf_counter()
    trainings = 0
    if cfg.unlearn_samples:
        assert sharded is not None
        result = unlearn_samples(
            cfg.model, sharded, removed, tc.for_org(forget), work / "unlearn" / f"{forget}-shards",
            rounds=cfg.rounds, progress=cfg.progress,
        )
        trainings = result.trainings
        assert result.sharded is not None
        unlearned = _stack_with(final.adapters, final.weights, forget, result.merged,
                                result.sharded.num_samples, work / "unlearn" / "merged")
    elif cfg.mode == "isolated":
        unlearned = unlearn_org_isolated(final.adapters, final.weights, forget, work / "unlearn" / "merged")
    elif cfg.mode == "grouped":
        assert groups is not None
        result = unlearn_org_grouped(
            cfg.model, history, texts, forget, groups, work / "unlearn", joins=joins, progress=cfg.progress
        )
        unlearned, trainings = result.merged, result.trainings
    else:
        result = unlearn_org_collaborative(
            cfg.model, history, texts, forget, work / "unlearn", joins=joins, progress=cfg.progress
        )
        unlearned, trainings = result.merged, result.trainings
    seconds["unlearn"] = time.perf_counter() - started

    # ---- independent retrains without the forgotten data (the yardstick) -----------------------
    retrains: dict[int, Path] = {}
    retrain_trainings = 0
    for i, seed in enumerate(cfg.seed_offsets()):
        started = time.perf_counter()
        seed_cfg = replace(tc, seed=seed)
        out = work / f"retrain-seed{seed}"
        if cfg.unlearn_samples:
            kept = [t for t in texts[forget] if t not in set(removed)]
            org = train_sharded(
                cfg.model, kept, seed_cfg.for_org(forget), out / f"{forget}-shards",
                shards=cfg.shards, rounds=cfg.rounds, progress=cfg.progress,
            )
            # The other orgs never saw the removed samples: their adapters are reused as they are.
            retrains[seed] = _stack_with(final.adapters, final.weights, forget, org.merged, org.num_samples, out / "merged")
            n = cfg.rounds * sum(1 for t in org.shard_texts if t)
        else:
            remaining = {o: t for o, t in texts.items() if o != forget}
            kept_groups = {o: g for o, g in (groups or {}).items() if o != forget}
            history_r = run_rounds(
                cfg.model, remaining, seed_cfg, cfg.rounds, out, mode=cfg.mode, groups=kept_groups or None,
                progress=cfg.progress,
            )
            retrains[seed] = history_r[-1].merged
            n = sum(r.trainings for r in history_r)
        if i == 0:
            seconds["retrain"] = time.perf_counter() - started
            retrain_trainings = n
    log.info("unlearned in %.2f s; one independent retrain took %.1f s", seconds["unlearn"], seconds["retrain"])

    # ---- verification --------------------------------------------------------------------------
    held = data[forget].heldout + data[forget].unused
    articles = [t for t in removed if t not in set(data[forget].canaries)] if removed else data[forget].articles
    sets = EvalSets(
        val={o: data[o].val for o in orgs},
        members=articles[: cfg.mia_samples],
        nonmembers=held[: cfg.mia_samples],
        canaries=data[forget].canaries,
        canary_reps=data[forget].canary_reps,
    )
    started = time.perf_counter()
    report = build_report(
        cfg.model,
        mode=cfg.mode,
        kind="samples" if cfg.unlearn_samples else "org",
        forget=forget,
        orgs=orgs,
        before=final.merged,
        after=unlearned,
        retrains=retrains,
        sets=sets,
        removed_samples=len(set(removed)) if removed else len(set(texts[forget])),
        seq_len=tc.seq_len,
        batch_size=cfg.eval_batch,
        seconds=seconds,
        cost={"unlearn_trainings": trainings, "retrain_trainings": retrain_trainings},
        contributions=contributions,
        settings=_settings(cfg),
        canary_reps=data[forget].canary_reps,
    )
    report.seconds["evaluate"] = time.perf_counter() - started
    return report


def _stack_with(
    adapters: dict[str, Path], weights: dict[str, float], org: str, adapter: Path, samples: int, out: Path
) -> Path:
    """The isolated merge with ``org``'s adapter (and sample count) replaced."""
    from orchestrator.learning.aggregate import merge_adapters

    both = {**adapters, org: adapter}
    w = {**weights, org: float(samples)}
    return merge_adapters([both[o] for o in sorted(both)], [w[o] for o in sorted(both)], out)


def _pick_removed(org: OrgData, k: int) -> list[str]:
    """The samples a data subject asks to remove: its canaries (every copy) and its first ``k``
    articles."""
    articles = org.articles
    if k > len(articles) - 1:
        raise LearningError(
            f"cannot unlearn {k} samples of {org.name!r}: it has only {len(articles)} training articles"
        )
    return list(org.canaries) + articles[:k]


def _settings(cfg: SimulationConfig) -> dict[str, Any]:
    out = {k: v for k, v in cfg.__dict__.items() if k not in ("train", "progress")}
    out["canary_reps"] = list(cfg.canary_reps)
    out["train"] = cfg.train.to_dict()
    return out
