"""Poisoning on the tiny model: one of five orgs submits a x100 scaled, sign-flipped or random
adapter; the norm-bounded robust merge keeps every honest topic within 5% of its clean merge,
the coordinate-wise ones do against the x100 update, and the aggregator's report flags the
attacker in every case (docs/LEARNING.md has the full table)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.learning.config import TrainConfig
from orchestrator.learning.data import TOPICS, load_org_data
from orchestrator.learning.poison import ATTACKS, poisoning_experiment
from orchestrator.learning.train import train_adapter


@pytest.mark.slow
def test_robust_merge_resists_and_flags_each_poisoned_adapter(tiny, tmp_path: Path) -> None:
    cfg = TrainConfig(steps=20, lr=5e-3, seq_len=48, batch_size=4)
    data = {o: load_org_data(o, max_train=24, max_val=4, num_canaries=0) for o in TOPICS}
    adapters = {
        o: train_adapter(tiny, d.train, cfg.for_org(o), tmp_path / o, progress=False).adapter_dir
        for o, d in data.items()
    }
    result = poisoning_experiment(
        tiny, adapters, {o: 24.0 for o in TOPICS}, {o: d.val for o, d in data.items()}, tmp_path / "work",
        attacker="tech", seq_len=48,
    )
    rows = result["rows"]
    for method in ("median", "trimmed_mean", "clipped_mean"):
        assert rows[f"clean/{method}"]["flagged"] == [], method
        for attack in ATTACKS:
            row = rows[f"{attack}/{method}"]
            assert row["flagged"] == ["tech"], (attack, method, row["mean_cosine"], row["norm"])
            if method == "clipped_mean" or attack == "scaled":
                assert row["honest_within_5pct_of_clean"], (attack, method, row["honest_change_vs_clean_same_method"])
    # The plain weighted merge is not robust: the x100 update wrecks the honest topics.
    assert not rows["scaled/stack"]["honest_within_5pct_of_clean"]
