"""Rounds of federated training in one process: isolated, collaborative, grouped and sharded
(SISA) orgs.

This is the learning loop the daemons run distributed (each org trains its own part); here it
runs in-process for the simulator, the unlearning replay and the retrain baselines.  Everything
that decides a result is derived from (org name, round index, config): never from an org's
position in a list, so leaving an org out leaves everyone else's computation unchanged.  Each org
trains with its own seed (``cfg.for_round(r).for_org(org)``: its own LoRA initialisation and
data order).

Grouped collaboration is SISA over organisations: the orgs are split into G fixed groups;
inside a group the orgs collaborate (each starts every round from the group's FedAvg of the
previous round, the first round from a shared initial adapter seeded by the group's label);
across groups the group adapters are stacked exactly.  Forgetting an org replays only its
group, from the round it joined, and the result is bit-identical to a federation in which it
never took part.  G = 1 is plain collaborative FedAvg, G = K is isolated training.
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
from orchestrator.learning.train import initial_adapter, train_adapter

MODES = ("isolated", "collaborative", "grouped")


def assign_groups(orgs: Sequence[str], groups: int) -> dict[str, int]:
    """Org -> group, round-robin over the sorted names (group sizes differ by at most one).

    The assignment is fixed when the consortium forms and kept when an org leaves: the retrain
    baseline and the replay both use the remaining orgs' original groups.
    """
    names = sorted(set(orgs))
    if not 1 <= groups <= max(1, len(names)):
        raise LearningError(f"groups must be in 1..{len(names)} (one org per group at most); got {groups}")
    return {org: i % groups for i, org in enumerate(names)}


def group_label(group: int) -> str:
    return f"group-{group}"


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
    group_merged: dict[int, Path] = field(default_factory=dict)  # grouped mode: FedAvg per group
    group_weights: dict[int, float] = field(default_factory=dict)
    trainings: int = 0  # org trainings run in this round (the unit of unlearning cost)


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
    groups: Mapping[str, int] | None = None,
    start_groups: Mapping[int, Path] | None = None,
    progress: bool = False,
) -> list[RoundRecord]:
    """Run rounds ``start_round .. rounds-1`` and return their records.

    - isolated: each org continues its own adapter; merged = exact stack, weights = samples.
    - collaborative: each org starts from the previous merged adapter (the first round from a
      shared initial adapter); merged = FedAvg.
    - grouped: ``groups`` maps org -> group; collaborative inside a group, exact stack of the
      group adapters (weighted by the group's samples) across groups.
    ``joins[org]`` is the first round the org takes part in (default 0).
    ``start_adapters`` / ``start_merged`` / ``start_groups`` resume from a checkpoint
    (rollback-and-replay).  ``fixed_adapters`` are already-trained org adapters (path, samples)
    merged as they are (SISA orgs, whose shards are trained by :func:`train_sharded`).
    """
    if mode not in MODES:
        raise LearningError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if rounds < 1:
        raise LearningError(f"rounds must be >= 1; got {rounds}")
    joins = dict(joins or {})
    fixed = dict(fixed_adapters or {})
    if mode != "isolated" and fixed:
        raise LearningError("sharded (sample-level) orgs are supported in isolated mode only")
    orgs = sorted(set(org_texts) | set(fixed))
    if not orgs:
        raise LearningError("no organisations to train")
    if mode == "grouped":
        if groups is None:
            raise LearningError("mode 'grouped' needs groups (org -> group); see assign_groups")
        missing = [o for o in orgs if o not in groups]
        if missing:
            raise LearningError(f"no group given for org(s) {missing}")
        group_of = {o: int(groups[o]) for o in orgs}
    else:
        group_of = {o: 0 for o in orgs}
    latest: dict[str, Path] = dict(start_adapters or {})
    group_prev: dict[int, Path] = dict(start_groups or {})
    if mode == "collaborative" and start_merged is not None:
        group_prev[0] = start_merged
    group_weight: dict[int, float] = {}
    merged_prev = start_merged
    records: list[RoundRecord] = []
    for r in range(start_round, rounds):
        round_cfg = cfg.for_round(r)
        round_dir = Path(work_dir) / f"round{r}"
        participants = [o for o in orgs if joins.get(o, 0) <= r]
        adapters: dict[str, Path] = {}
        weights: dict[str, float] = {}
        started = time.perf_counter()
        trainings = 0
        for org in participants:
            if org in fixed:
                adapters[org], weights[org] = fixed[org][0], float(fixed[org][1])
                continue
            if mode == "isolated":
                init = latest.get(org)
            else:
                g = group_of[org]
                if g not in group_prev:  # the group's first round: a shared, seeded start
                    group_prev[g] = initial_adapter(
                        model_spec, round_cfg.for_org(group_label(g)), round_dir / f"{group_label(g)}-init"
                    )
                init = group_prev[g]
            target = round_dir / org
            train_adapter(
                model_spec, org_texts[org], round_cfg.for_org(org), target, init_adapter=init, progress=progress
            )
            trainings += 1
            adapters[org] = target
            weights[org] = float(len(org_texts[org]))
        seconds = time.perf_counter() - started
        if not adapters and mode == "isolated" and not latest:
            raise LearningError(f"round {r} has no participants (joins={joins})")
        group_merged: dict[int, Path] = {}
        if mode == "isolated":
            latest.update(adapters)
            members = sorted(latest)  # an org that skipped a round still counts with its adapter
            weights = {o: weights.get(o, _samples(latest[o], org_texts, fixed, o)) for o in members}
            adapters = {o: latest[o] for o in members}
            merged = _merge(adapters, weights, round_dir / "merged", "stack")
        else:
            for g in sorted({group_of[o] for o in adapters}):
                members = {o: adapters[o] for o in adapters if group_of[o] == g}
                group_weight[g] = sum(weights[o] for o in members)
                group_prev[g] = _merge(members, weights, round_dir / f"{group_label(g)}-merged", "fedavg")
                group_merged[g] = group_prev[g]
            if not group_weight:
                raise LearningError(f"round {r} has no participants (joins={joins})")
            if mode == "collaborative":
                merged = group_prev[0]
            else:
                ids = sorted(group_weight)
                merged = merge_adapters(
                    [group_prev[g] for g in ids], [group_weight[g] for g in ids], round_dir / "merged", method="stack"
                )
        records.append(RoundRecord(
            r, round_cfg, adapters, weights, merged, merged_prev, seconds,
            group_merged=dict(group_prev) if mode == "grouped" else group_merged,
            group_weights=dict(group_weight), trainings=trainings,
        ))
        merged_prev = merged
    return records


def _merge(adapters: Mapping[str, Path], weights: Mapping[str, float], out: Path, method: str) -> Path:
    names = sorted(adapters)
    return merge_adapters([adapters[o] for o in names], [weights[o] for o in names], out, method=method)


def _samples(
    path: Path, org_texts: Mapping[str, Sequence[str]], fixed: Mapping[str, tuple[Path, int]], org: str
) -> float:
    if org in fixed:
        return float(fixed[org][1])
    return float(len(org_texts[org]))
