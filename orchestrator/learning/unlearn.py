"""Exact unlearning: org level (isolated re-merge, collaborative rollback-and-replay) and
sample level (SISA shards).

Each function gives back the new merged adapter; :mod:`orchestrator.learning.verify` builds the
verification report that compares it with an independent retrain.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import LearningError
from orchestrator.learning.aggregate import merge_adapters
from orchestrator.learning.config import TrainConfig
from orchestrator.learning.federation import RoundRecord, ShardedAdapter, run_rounds, train_sharded


@dataclass
class UnlearnResult:
    """The merged adapter after unlearning and what it took."""

    merged: Path
    seconds: float
    replayed_rounds: list[int]
    history: list[RoundRecord] | None = None
    sharded: ShardedAdapter | None = None


def unlearn_org_isolated(
    adapters: Mapping[str, Path], weights: Mapping[str, float], forget: str, out_dir: Path
) -> Path:
    """Re-merge (exact stack) every org's adapter except ``forget``'s.

    Isolated adapters never saw each other, so this is bit-identical to a federation in which
    ``forget`` never took part (same seeds, CPU).  Weights are relative; they are renormalised
    over the remaining orgs exactly as the original merge normalised them.
    """
    if forget not in adapters:
        raise LearningError(
            f"org {forget!r} never contributed to this model (contributors: {sorted(adapters)}); "
            "nothing to unlearn"
        )
    keep = sorted(o for o in adapters if o != forget)
    if not keep:
        raise LearningError(f"org {forget!r} is the only contributor; unlearning it leaves the base model")
    missing = [o for o in keep if o not in weights]
    if missing:
        raise LearningError(f"no weight given for org(s) {missing}")
    return merge_adapters([Path(adapters[o]) for o in keep], [weights[o] for o in keep], Path(out_dir))


def unlearn_org_collaborative(
    model_spec: str,
    history: Sequence[RoundRecord],
    org_texts: Mapping[str, Sequence[str]],
    forget: str,
    work_dir: Path,
    *,
    joins: Mapping[str, int] | None = None,
    progress: bool = False,
) -> UnlearnResult:
    """Roll back to the last merged model before ``forget``'s first contribution and replay the
    later rounds without it (every remaining org retrains those rounds from the checkpoint)."""
    if not history:
        raise LearningError("no round history to roll back")
    first = next((rec.index for rec in history if forget in rec.adapters), None)
    if first is None:
        raise LearningError(
            f"org {forget!r} never contributed in rounds {[r.index for r in history]}; nothing to unlearn"
        )
    by_index = {rec.index: rec for rec in history}
    checkpoint = by_index[first - 1].merged if first - 1 in by_index else None
    rounds = max(by_index) + 1
    cfg = history[0].cfg if history[0].index == 0 else None
    if cfg is None:
        raise LearningError("history must start at round 0 to derive the round configs")
    base_cfg = TrainConfig.from_dict({**cfg.to_dict(), "seed": cfg.seed - 1000 * history[0].index})
    remaining = {o: t for o, t in org_texts.items() if o != forget}
    started = time.perf_counter()
    replay = run_rounds(
        model_spec,
        remaining,
        base_cfg,
        rounds,
        Path(work_dir),
        mode="collaborative",
        joins=joins,
        start_round=first,
        start_merged=checkpoint,
        progress=progress,
    )
    seconds = time.perf_counter() - started
    return UnlearnResult(replay[-1].merged, seconds, [r.index for r in replay], history=replay)


def unlearn_samples(
    model_spec: str,
    sharded: ShardedAdapter,
    remove: Sequence[str],
    cfg: TrainConfig,
    out_dir: Path,
    *,
    rounds: int = 1,
    progress: bool = False,
) -> UnlearnResult:
    """Remove samples from a SISA-trained org: retrain only the shards that held them."""
    if not remove:
        raise LearningError("no samples to unlearn; give at least one")
    affected: set[int] = set()
    for text in remove:
        shard = sharded.shard_of(text)
        if shard is None:
            raise LearningError(
                f"sample {text[:60]!r}... never contributed to this org's adapter; nothing to unlearn"
            )
        affected.add(shard)
    removing = set(remove)
    remaining = [t for texts in sharded.shard_texts for t in texts if t not in removing]
    # Keep the original sample order for the remaining texts (shards are order-preserving).
    order = {t: i for i, t in enumerate(_original_order(sharded))}
    remaining.sort(key=order.__getitem__)
    if not remaining:
        raise LearningError("unlearning these samples leaves the org with no data; unlearn the org instead")
    started = time.perf_counter()
    new = train_sharded(
        model_spec,
        remaining,
        cfg,
        Path(out_dir),
        shards=len(sharded.shard_texts),
        rounds=rounds,
        progress=progress,
        only=sorted(affected),
        previous=sharded,
    )
    seconds = time.perf_counter() - started
    return UnlearnResult(new.merged, seconds, [], sharded=new)


def _original_order(sharded: ShardedAdapter) -> list[str]:
    # Shards preserve relative order; the original interleaving is not needed for training
    # (each shard sees only its own texts in order), so shard-major order is enough.
    return [t for texts in sharded.shard_texts for t in texts]
