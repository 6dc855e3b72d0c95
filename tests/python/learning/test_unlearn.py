"""Exact unlearning: every path is compared with an independent run that never saw the data."""

from __future__ import annotations

import pytest

from orchestrator.errors import LearningError
from orchestrator.learning.adapters import adapter_sha256
from orchestrator.learning.federation import run_rounds, split_shards, train_sharded
from orchestrator.learning.unlearn import unlearn_org_collaborative, unlearn_org_isolated, unlearn_samples


@pytest.fixture(scope="module")
def texts(orgs):  # type: ignore[no-untyped-def]
    return {o: d.train for o, d in orgs.items()}


def test_isolated_unlearned_hash_equals_independent_retrain(tiny, cfg, texts, tmp_path) -> None:  # type: ignore[no-untyped-def]
    history = run_rounds(tiny, texts, cfg, 2, tmp_path / "run", mode="isolated")
    final = history[-1]
    unlearned = unlearn_org_isolated(final.adapters, final.weights, "sport", tmp_path / "unlearned")
    without = {o: t for o, t in texts.items() if o != "sport"}
    retrained = run_rounds(tiny, without, cfg, 2, tmp_path / "retrain", mode="isolated")[-1].merged
    assert adapter_sha256(unlearned) == adapter_sha256(retrained)
    assert adapter_sha256(unlearned) != adapter_sha256(final.merged)


def test_collaborative_rollback_and_replay_equals_a_run_without_the_org(tiny, cfg, texts, tmp_path) -> None:  # type: ignore[no-untyped-def]
    joins = {"sport": 1}  # sport first contributes in round 1: rollback to round 0's merged model
    history = run_rounds(tiny, texts, cfg, 3, tmp_path / "run", mode="collaborative", joins=joins)
    assert "sport" not in history[0].adapters and "sport" in history[1].adapters
    result = unlearn_org_collaborative(tiny, history, texts, "sport", tmp_path / "replay", joins=joins)
    assert result.replayed_rounds == [1, 2]
    without = {o: t for o, t in texts.items() if o != "sport"}
    clean = run_rounds(tiny, without, cfg, 3, tmp_path / "clean", mode="collaborative")
    assert adapter_sha256(result.merged) == adapter_sha256(clean[-1].merged)
    assert adapter_sha256(history[0].merged) == adapter_sha256(clean[0].merged)  # round 0 was reused


def test_sample_unlearning_retrains_only_affected_shards_and_equals_retrain(tiny, cfg, texts, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = texts["sport"]
    sharded = train_sharded(tiny, data, cfg, tmp_path / "shards", shards=4)
    remove = [data[0], data[5]]
    affected = {sharded.shard_of(t) for t in remove}
    result = unlearn_samples(tiny, sharded, remove, cfg, tmp_path / "unlearn")
    assert result.sharded is not None
    assert set(result.sharded.retrained_shards) == affected
    for s in set(range(4)) - affected:
        assert result.sharded.shard_dirs[s] == sharded.shard_dirs[s]  # reused, not retrained
    kept = [t for t in data if t not in remove]
    retrained = train_sharded(tiny, kept, cfg, tmp_path / "retrain", shards=4)
    assert adapter_sha256(result.merged) == adapter_sha256(retrained.merged)
    assert all(t not in s for s in result.sharded.shard_texts for t in remove)


def test_shard_assignment_is_stable_when_samples_are_removed(texts) -> None:  # type: ignore[no-untyped-def]
    data = texts["politics"]
    before = split_shards(data, 4)
    after = split_shards(data[3:], 4)
    for s in range(4):
        assert [t for t in before[s] if t in data[3:]] == after[s]


def test_unlearning_what_never_contributed_is_a_clear_error(tiny, cfg, texts, tmp_path) -> None:  # type: ignore[no-untyped-def]
    history = run_rounds(tiny, {"business": texts["business"]}, cfg, 1, tmp_path / "run")
    with pytest.raises(LearningError, match="'tech' never contributed"):
        unlearn_org_isolated(history[0].adapters, history[0].weights, "tech", tmp_path / "x")
    with pytest.raises(LearningError, match="'tech' never contributed"):
        unlearn_org_collaborative(tiny, history, texts, "tech", tmp_path / "y")
    sharded = train_sharded(tiny, texts["sport"], cfg, tmp_path / "s", shards=2)
    with pytest.raises(LearningError, match="never contributed"):
        unlearn_samples(tiny, sharded, ["A sentence that was never in the training data at all."], cfg, tmp_path / "z")
