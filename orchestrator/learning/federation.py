"""Rounds of federated training in one process: isolated, collaborative and sharded (SISA) orgs.

This is the learning loop the daemons run distributed (each org trains its own part); here it
runs in-process for the simulator, the unlearning replay and the retrain baselines.  Everything
that decides a result is derived from (org name, round index, config): never from an org's
position in a list, so leaving an org out leaves everyone else's computation unchanged.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from orchestrator.errors import LearningError
from orchestrator.learning.aggregate import merge_adapters
from orchestrator.learning.config import TrainConfig
from orchestrator.learning.train import train_adapter

MODES = ("isolated", "collaborative")


@dataclass
class RoundRecord:
    """One finished round: who trained what, the weights, and the merged adapter (the lineage)."""

    index: int
    cfg: TrainConfig
    adapters: dict[str, Path]
    weights: dict[str, float]
    merged: Path
    parent: Path | None = None
    train_seconds: float = 0.0


@dataclass
class ShardedAdapter:
    """An org's SISA state: one adapter per shard (per round), merged into one org adapter."""

    shard_texts: list[list[str]]
    shard_dirs: list[Path]  # the final-round adapter of each shard
    merged: Path
    num_samples: int
    train_seconds: float = 0.0
    retrained_shards: list[int] = field(default_factory=list)

    def shard_of(self, text: str) -> int | None:
        for i, texts in enumerate(self.shard_texts):
            if text in texts:
                return i
        return None


def shard_index(text: str, shards: int) -> int:
    """Stable shard of a sample: removing one sample never moves another to a different shard."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") % shards


def split_shards(texts: Sequence[str], shards: int) -> list[list[str]]:
    if shards < 1:
        raise LearningError(f"shards must be >= 1; got {shards}")
    out: list[list[str]] = [[] for _ in range(shards)]
    for text in texts:
        out[shard_index(text, shards)].append(text)
    return out


def shard_config(cfg: TrainConfig, shards: int, shard: int) -> TrainConfig:
    """A shard trains 1/S of the steps (same epochs over 1/S of the data) with its own seed."""
    return replace(cfg, steps=max(1, math.ceil(cfg.steps / shards)), seed=cfg.seed + 7919 * shard)


def train_sharded(
    model_spec: str,
    texts: Sequence[str],
    cfg: TrainConfig,
    out_dir: Path,
    *,
    shards: int = 4,
    rounds: int = 1,
    progress: bool = False,
    only: Sequence[int] | None = None,
    previous: ShardedAdapter | None = None,
) -> ShardedAdapter:
    """Train one adapter per shard for ``rounds`` rounds and stack them into one org adapter.

    ``only`` + ``previous``: retrain just those shards and reuse ``previous``'s other shards
    (what sample-level unlearning does).  An empty shard is skipped (it has nothing to learn).
    """
    out_dir = Path(out_dir)
    parts = split_shards(texts, shards)
    if not any(parts):
        raise LearningError("train_sharded got no texts")
    todo = set(range(shards)) if only is None else set(only)
    if only is not None and previous is None:
        raise LearningError("train_sharded(only=...) needs the previous ShardedAdapter to reuse")
    dirs: list[Path | None] = []
    started = time.perf_counter()
    for s, shard_texts in enumerate(parts):
        if s not in todo:
            assert previous is not None
            dirs.append(previous.shard_dirs[s] if previous.shard_texts[s] else None)
            continue
        if not shard_texts:
            dirs.append(None)
            continue
        init: Path | None = None
        for r in range(rounds):
            target = out_dir / f"shard{s}" / f"round{r}"
            train_adapter(
                model_spec,
                shard_texts,
                shard_config(cfg.for_round(r), shards, s),
                target,
                init_adapter=init,
                progress=progress,
            )
            init = target
        dirs.append(init)
    seconds = time.perf_counter() - started
    present = [(d, len(t)) for d, t in zip(dirs, parts, strict=True) if d is not None]
    merged = merge_adapters([d for d, _ in present], [n for _, n in present], out_dir / "merged")
    return ShardedAdapter(
        shard_texts=parts,
        shard_dirs=[d if d is not None else Path() for d in dirs],
        merged=merged,
        num_samples=len(texts),
        train_seconds=seconds,
        retrained_shards=sorted(todo),
    )


def run_rounds(
    model_spec: str,
    org_texts: Mapping[str, Sequence[str]],
    cfg: TrainConfig,
    rounds: int,
    work_dir: Path,
    *,
    mode: str = "isolated",
    joins: Mapping[str, int] | None = None,
    start_round: int = 0,
    start_adapters: Mapping[str, Path] | None = None,
    start_merged: Path | None = None,
    fixed_adapters: Mapping[str, tuple[Path, int]] | None = None,
    progress: bool = False,
) -> list[RoundRecord]:
    """Run rounds ``start_round .. rounds-1`` and return their records.

    - isolated: each org continues its own adapter; merged = exact stack, weights = samples.
    - collaborative: each org starts from the previous merged adapter; merged = FedAvg.
    ``joins[org]`` is the first round the org takes part in (default 0).
    ``start_adapters`` / ``start_merged`` resume from a checkpoint (rollback-and-replay).
    ``fixed_adapters`` are already-trained org adapters (path, samples) merged as they are
    (SISA orgs, whose shards are trained by :func:`train_sharded`).
    """
    if mode not in MODES:
        raise LearningError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if rounds < 1:
        raise LearningError(f"rounds must be >= 1; got {rounds}")
    joins = dict(joins or {})
    fixed = dict(fixed_adapters or {})
    if mode == "collaborative" and fixed:
        raise LearningError("sharded (sample-level) orgs are supported in isolated mode only")
    orgs = sorted(set(org_texts) | set(fixed))
    if not orgs:
        raise LearningError("no organisations to train")
    latest: dict[str, Path] = dict(start_adapters or {})
    merged_prev = start_merged
    records: list[RoundRecord] = []
    for r in range(start_round, rounds):
        round_cfg = cfg.for_round(r)
        participants = [o for o in orgs if joins.get(o, 0) <= r]
        adapters: dict[str, Path] = {}
        weights: dict[str, float] = {}
        started = time.perf_counter()
        for org in participants:
            if org in fixed:
                adapters[org], weights[org] = fixed[org][0], float(fixed[org][1])
                continue
            init = latest.get(org) if mode == "isolated" else merged_prev
            target = Path(work_dir) / f"round{r}" / org
            train_adapter(model_spec, org_texts[org], round_cfg, target, init_adapter=init, progress=progress)
            adapters[org] = target
            weights[org] = float(len(org_texts[org]))
        seconds = time.perf_counter() - started
        if mode == "isolated":
            latest.update(adapters)
            members = sorted(latest)  # an org that skipped a round still counts with its adapter
            weights = {o: weights.get(o, _samples(latest[o], org_texts, fixed, o)) for o in members}
            adapters = {o: latest[o] for o in members}
        if not adapters:
            raise LearningError(f"round {r} has no participants (joins={joins})")
        method = "stack" if mode == "isolated" else "fedavg"
        merged = merge_adapters(
            [adapters[o] for o in sorted(adapters)],
            [weights[o] for o in sorted(adapters)],
            Path(work_dir) / f"round{r}" / "merged",
            method=method,
        )
        records.append(RoundRecord(r, round_cfg, adapters, weights, merged, merged_prev, seconds))
        merged_prev = merged
    return records


def _samples(
    path: Path, org_texts: Mapping[str, Sequence[str]], fixed: Mapping[str, tuple[Path, int]], org: str
) -> float:
    if org in fixed:
        return float(fixed[org][1])
    return float(len(org_texts[org]))
