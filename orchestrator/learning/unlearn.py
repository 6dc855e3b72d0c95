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
    trainings: int = 0  # org (or shard) trainings the unlearning ran: its cost


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
    first = _first_round(history, forget)
    by_index = {rec.index: rec for rec in history}
    checkpoint = by_index[first - 1].merged if first - 1 in by_index else None
    rounds = max(by_index) + 1
    base_cfg = _base_config(history)
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
    return UnlearnResult(
        replay[-1].merged, seconds, [r.index for r in replay], history=replay,
        trainings=sum(r.trainings for r in replay),
    )


def _base_config(history: Sequence[RoundRecord]) -> TrainConfig:
    if history[0].index != 0:
        raise LearningError("history must start at round 0 to derive the round configs")
    cfg = history[0].cfg
    return TrainConfig.from_dict({**cfg.to_dict(), "seed": cfg.seed})


def _first_round(history: Sequence[RoundRecord], forget: str) -> int:
    if not history:
        raise LearningError("no round history to roll back")
    first = next((rec.index for rec in history if forget in rec.adapters), None)
    if first is None:
        raise LearningError(
            f"org {forget!r} never contributed in rounds {[r.index for r in history]}; nothing to unlearn"
        )
    return first


def unlearn_org_grouped(
    model_spec: str,
    history: Sequence[RoundRecord],
    org_texts: Mapping[str, Sequence[str]],
    forget: str,
    groups: Mapping[str, int],
    out_dir: Path,
    *,
    joins: Mapping[str, int] | None = None,
    progress: bool = False,
) -> UnlearnResult:
    """Grouped collaboration: replay only ``forget``'s group from the round it joined (from the
    group's checkpoint), then re-stack every group's latest adapter.  Bit-identical to a grouped
    federation without ``forget`` (same groups for everyone else)."""
    first = _first_round(history, forget)
    if forget not in groups:
        raise LearningError(f"org {forget!r} has no group in {dict(groups)}")
    g = int(groups[forget])
    by_index = {rec.index: rec for rec in history}
    rounds = max(by_index) + 1
    members = {o: t for o, t in org_texts.items() if o != forget and groups.get(o) == g}
    checkpoint = by_index[first - 1].group_merged.get(g) if first - 1 in by_index else None
    started = time.perf_counter()
    replay: list[RoundRecord] = []
    if members and any((joins or {}).get(o, 0) < rounds for o in members):
        replay = run_rounds(
            model_spec, members, _base_config(history), rounds, Path(out_dir) / "replay", mode="grouped",
            groups={o: g for o in members}, joins=joins, start_round=first,
            start_groups={g: checkpoint} if checkpoint is not None else None, progress=progress,
        )
    final = history[-1]
    adapters = {h: p for h, p in final.group_merged.items() if h != g}
    weights = {h: w for h, w in final.group_weights.items() if h != g}
    if replay and g in replay[-1].group_merged:
        adapters[g], weights[g] = replay[-1].group_merged[g], replay[-1].group_weights[g]
    if not adapters:
        raise LearningError(f"org {forget!r} was the only contributor; unlearning it leaves the base model")
    ids = sorted(adapters)
    merged = merge_adapters([adapters[h] for h in ids], [weights[h] for h in ids], Path(out_dir) / "merged")
    seconds = time.perf_counter() - started
    return UnlearnResult(
        merged, seconds, [r.index for r in replay], history=replay, trainings=sum(r.trainings for r in replay)
    )


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
    return UnlearnResult(new.merged, seconds, [], sharded=new, trainings=len(affected) * rounds)


def _original_order(sharded: ShardedAdapter) -> list[str]:
    # Shards preserve relative order; the original interleaving is not needed for training
    # (each shard sees only its own texts in order), so shard-major order is enough.
    return [t for texts in sharded.shard_texts for t in texts]


# ---------------------------------------------------------------------------------------------
# The learning API for Samples-scope requests (what an org's trainer calls; issue 10 section 5)
# ---------------------------------------------------------------------------------------------

SISA_STATE = "sisa.json"


@dataclass
class SamplesReplacement:
    """What an org submits to replace its contribution after removing samples.

    ``adapter``: the org's new (stacked SISA) adapter; ``data_commitment``: the Merkle root
    (orchestrator.merkle.data_commitment) over the kept samples, in their original order, so it
    provably excludes the removed samples' leaves; ``shard_commitments``: one root per shard (a
    shard-level commitment: only the retrained shards' roots change); ``state``: the SISA state
    folder to pass as ``state`` to the next request.
    """

    adapter: Path
    data_commitment: bytes
    num_samples: int
    shard_commitments: list[bytes]
    retrained_shards: list[int]
    trainings: int
    state: Path


def save_sisa_state(sharded: ShardedAdapter, texts: Sequence[str], folder: Path) -> Path:
    """Persist an org's SISA state (its samples in order, shard adapters) under ``folder``."""
    import json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {
        "texts": list(texts),
        "shards": len(sharded.shard_texts),
        "shard_dirs": [str(d) if str(d) not in ("", ".") else "" for d in sharded.shard_dirs],
        "merged": str(sharded.merged),
    }
    tmp = folder / f".{SISA_STATE}.tmp"
    tmp.write_text(json.dumps(state, sort_keys=True))
    tmp.replace(folder / SISA_STATE)
    return folder


def load_sisa_state(folder: Path) -> tuple[ShardedAdapter, list[str]]:
    import json

    from orchestrator.learning.federation import split_shards

    path = Path(folder) / SISA_STATE
    if not path.is_file():
        raise LearningError(f"{folder} holds no SISA state ({SISA_STATE}); train with train_org_sisa first")
    state = json.loads(path.read_text())
    texts = list(state["texts"])
    sharded = ShardedAdapter(
        shard_texts=split_shards(texts, int(state["shards"])),
        shard_dirs=[Path(d) if d else Path() for d in state["shard_dirs"]],
        merged=Path(state["merged"]),
        num_samples=len(texts),
    )
    return sharded, texts


def train_org_sisa(
    model_spec: str, texts: Sequence[str], cfg: TrainConfig, state: Path, *, shards: int = 4, rounds: int = 1,
    progress: bool = False,
) -> SamplesReplacement:
    """An org's first SISA training: one adapter per shard, stacked; the state is kept in ``state``."""
    from orchestrator.merkle import data_commitment

    from orchestrator.learning.federation import split_shards

    sharded = train_sharded(model_spec, texts, cfg, Path(state) / "gen0", shards=shards, rounds=rounds, progress=progress)
    save_sisa_state(sharded, texts, Path(state))
    parts = split_shards(texts, shards)
    return SamplesReplacement(
        adapter=sharded.merged, data_commitment=data_commitment(list(texts)), num_samples=len(texts),
        shard_commitments=[data_commitment(p) if p else bytes(32) for p in parts],
        retrained_shards=list(range(shards)), trainings=shards * rounds, state=Path(state),
    )


def retrain_without_samples(
    model_spec: str, state: Path, remove: Sequence[str], cfg: TrainConfig, *, rounds: int = 1,
    progress: bool = False,
) -> SamplesReplacement:
    """Answer a Samples-scope request: retrain only the SISA shards that held ``remove``.

    Reads the org's SISA state from ``state`` (written by :func:`train_org_sisa` or a previous
    call), writes the new generation next to it and updates the state.  The new adapter is
    bit-identical to a SISA training on the kept samples from scratch (same config, CPU).
    Raises ``LearningError`` if a sample was never part of the org's data.
    """
    from orchestrator.merkle import data_commitment

    from orchestrator.learning.federation import split_shards

    sharded, texts = load_sisa_state(Path(state))
    generation = 1 + sum(1 for p in Path(state).glob("gen*") if p.is_dir())
    result = unlearn_samples(
        model_spec, sharded, remove, cfg, Path(state) / f"gen{generation}", rounds=rounds, progress=progress
    )
    assert result.sharded is not None
    removing = set(remove)
    kept = [t for t in texts if t not in removing]
    save_sisa_state(result.sharded, kept, Path(state))
    parts = split_shards(kept, len(sharded.shard_texts))
    return SamplesReplacement(
        adapter=result.merged, data_commitment=data_commitment(kept), num_samples=len(kept),
        shard_commitments=[data_commitment(p) if p else bytes(32) for p in parts],
        retrained_shards=list(result.sharded.retrained_shards), trainings=result.trainings, state=Path(state),
    )
