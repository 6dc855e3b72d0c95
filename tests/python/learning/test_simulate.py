"""End to end through the CLI on the tiny model: the forgetting criteria of issue 4."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.cli import main


def _run(tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / "report.json"
    rc = main(["simulate", "--model", "tiny", "--no-progress", "--json", str(out), *extra])
    assert rc == 0
    assert out.with_suffix(".png").stat().st_size > 1000
    return json.loads(out.read_text())


def test_isolated_org_unlearning_forgets_like_a_retrain(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = _run(tmp_path, "--orgs", "3", "--rounds", "1", "--unlearn", "politics", "--max-train", "48",
                "--mia-samples", "24", "--steps", "30", "--retrain-seeds", "3", "--max-val", "4")
    assert data["models"] == ["base", "before", "after", "retrain_seed0", "retrain_seed7919", "retrain_seed15838"]
    assert data["unlearned_sha256"] == data["retrained_sha256"]["retrain_seed0"]
    assert len(set(data["retrained_sha256"].values())) == 3  # three really different retrains
    att = data["attack"]
    assert att["members"] == 24 and att["nonmembers"] == 24
    auc = {m: v["auc"] for m, v in att["per_model"].items()}
    # The calibrated attack sees the training before unlearning, and nothing after.
    assert auc["before"] > att["retrain_spread"]["max"] and auc["before"] > 0.7
    assert att["retrain_spread"]["min"] <= auc["after"] <= att["retrain_spread"]["max"]
    lo, hi = att["per_model"]["before"]["ci95"]
    assert lo < auc["before"] < hi
    ex = data["canaries"]["exposure_bits"]
    assert data["canaries"]["reps"] == [1, 4, 16] and data["canaries"]["candidates"] == 1000
    assert ex["before"]["16"] > data["canaries"]["retrain_spread"]["16"]["max"]
    ppl = data["perplexity"]
    sp = ppl["politics"]["retrain_spread"]
    assert sp["min"] <= ppl["politics"]["after"] <= sp["max"]
    assert ppl["politics"]["retrain_spread"]["n"] == 3
    assert data["cost"] == {"unlearn_trainings": 0, "retrain_trainings": 2}
    assert set(data["contributions"]) == set(data["orgs"])
    assert data["checks"]["unlearned_equals_same_seed_retrain"] and data["checks"]["after_auc_inside_retrain_spread"]
    assert data["provenance"]["device"] == "cpu" and data["provenance"]["torch"]


def test_identical_runs_give_identical_metrics_hashes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    args = ("--orgs", "2", "--rounds", "1", "--unlearn", "business", "--max-train", "30", "--max-val", "2",
            "--mia-samples", "6", "--steps", "4", "--retrain-seeds", "1", "--canary-reps", "2", "--no-score")
    first, second = _run(tmp_path / "a", *args), _run(tmp_path / "b", *args)
    assert first["metrics_sha256"] == second["metrics_sha256"]
    assert "wall" in first["seconds"]  # wall times are reported, not hashed


def test_collaborative_grouped_and_sample_level_runs_match_their_retrains(tmp_path) -> None:  # type: ignore[no-untyped-def]
    collab = _run(tmp_path / "c", "--orgs", "3", "--rounds", "2", "--mode", "collaborative", "--join-round", "1",
                  "--unlearn", "politics", "--steps", "10", "--retrain-seeds", "1", "--mia-samples", "8")
    assert collab["unlearned_sha256"] == collab["retrained_sha256"]["retrain_seed0"]
    assert collab["cost"] == {"unlearn_trainings": 2, "retrain_trainings": 4}  # replayed round 1 only
    grouped = _run(tmp_path / "g", "--orgs", "3", "--rounds", "1", "--mode", "grouped", "--groups", "2",
                   "--unlearn", "politics", "--steps", "6", "--retrain-seeds", "1", "--mia-samples", "8")
    assert grouped["unlearned_sha256"] == grouped["retrained_sha256"]["retrain_seed0"]
    # groups {business, politics} and {entertainment}: only business replays
    assert grouped["cost"] == {"unlearn_trainings": 1, "retrain_trainings": 2}
    samples = _run(tmp_path / "s", "--orgs", "2", "--rounds", "1", "--unlearn", "business", "--max-train", "50",
                   "--unlearn-samples", "12", "--shards", "4", "--steps", "12", "--retrain-seeds", "2",
                   "--mia-samples", "12", "--no-score")
    assert samples["kind"] == "samples" and samples["removed_samples"] == 12 + 3
    assert samples["unlearned_sha256"] == samples["retrained_sha256"]["retrain_seed0"]
    assert samples["attack"]["members_are"] == "removed articles" and samples["attack"]["members"] == 12
    # The canaries were removed with the articles: their exposure drops to the retrains' level.
    ex = samples["canaries"]["exposure_bits"]
    assert ex["after"]["16"] <= samples["canaries"]["retrain_spread"]["16"]["max"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--orgs", "2", "--unlearn", "tech"], "not among the 2 simulated orgs"),
        (["--model", "/no/such/folder"], "unknown model '/no/such/folder'"),
        (["--mode", "collaborative", "--unlearn-samples", "2"], "needs --mode isolated"),
        (["--mode", "grouped", "--groups", "9", "--orgs", "3", "--unlearn", "business"], "groups must be in 1..3"),
        (["--canary-reps", "1,x"], "--canary-reps must be comma-separated integers"),
    ],
)
def test_bad_simulate_input_is_a_clear_error(tmp_path, capsys, args, message) -> None:  # type: ignore[no-untyped-def]
    rc = main(["simulate", "--no-progress", "--json", str(tmp_path / "r.json"), "--model", "tiny", *args])
    assert rc == 1
    assert message in capsys.readouterr().err
