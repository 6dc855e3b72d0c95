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


def test_grouped_unlearning_replays_only_the_group_and_equals_a_run_without_the_org(tiny, cfg, texts, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from orchestrator.learning.federation import assign_groups
    from orchestrator.learning.unlearn import unlearn_org_grouped

    groups = assign_groups(texts, 2)
    assert groups == {"business": 0, "politics": 1, "sport": 0}
    history = run_rounds(tiny, texts, cfg, 1, tmp_path / "run", mode="grouped", groups=groups)
    result = unlearn_org_grouped(tiny, history, texts, "sport", groups, tmp_path / "unlearn")
    assert result.replayed_rounds == [0] and result.trainings == 1  # business alone
    without = {o: t for o, t in texts.items() if o != "sport"}
    kept = {o: g for o, g in groups.items() if o != "sport"}
    clean = run_rounds(tiny, without, cfg, 1, tmp_path / "clean", mode="grouped", groups=kept)
    assert adapter_sha256(result.merged) == adapter_sha256(clean[-1].merged)
    assert adapter_sha256(result.merged) != adapter_sha256(history[-1].merged)
    # politics' group was not replayed: its adapter is the one trained in the federation
    assert adapter_sha256(history[-1].group_merged[1]) == adapter_sha256(clean[-1].group_merged[1])
    assert sum(r.trainings for r in clean) == 2


def test_each_org_trains_with_its_own_seed(tiny, cfg, texts, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from orchestrator.learning.config import TrainConfig

    assert TrainConfig(seed=5).for_org("sport").seed == TrainConfig(seed=5).for_org("SPORT").seed
    assert TrainConfig(seed=5).for_org("sport").seed != TrainConfig(seed=5).for_org("tech").seed
    same = texts["sport"]
    history = run_rounds(tiny, {"a": same, "b": same}, cfg, 1, tmp_path / "run")
    # same data, same round: only the org's own seed (init and data order) tells them apart
    assert adapter_sha256(history[0].adapters["a"]) != adapter_sha256(history[0].adapters["b"])


def test_samples_api_retrains_affected_shards_and_commits_to_the_kept_data(tiny, cfg, texts, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from orchestrator.learning.unlearn import retrain_without_samples, train_org_sisa
    from orchestrator.merkle import data_commitment

    data = texts["sport"]
    first = train_org_sisa(tiny, data, cfg, tmp_path / "state", shards=4)
    assert first.data_commitment == data_commitment(data) and first.retrained_shards == [0, 1, 2, 3]
    remove = [data[1]]
    new = retrain_without_samples(tiny, tmp_path / "state", remove, cfg)
    kept = [t for t in data if t not in remove]
    assert new.data_commitment == data_commitment(kept) and new.num_samples == len(kept)
    assert len(new.retrained_shards) == 1 and new.trainings == 1
    changed = [i for i, (a, b) in enumerate(zip(first.shard_commitments, new.shard_commitments, strict=True)) if a != b]
    assert changed == new.retrained_shards  # only the retrained shard's commitment moved
    scratch = train_org_sisa(tiny, kept, cfg, tmp_path / "scratch", shards=4)
    assert adapter_sha256(new.adapter) == adapter_sha256(scratch.adapter)
    with pytest.raises(LearningError, match="never contributed"):
        retrain_without_samples(tiny, tmp_path / "state", remove, cfg)  # already removed
