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
    data = _run(tmp_path, "--orgs", "5", "--rounds", "2", "--unlearn", "sport")
    assert data["unlearned_sha256"] == data["retrained_sha256"]
    ppl = data["perplexity"]
    # The forgotten topic's perplexity: back at the retrain baseline, and worse than before.
    assert abs(ppl["sport"]["after"] / ppl["sport"]["retrain"] - 1) <= 0.10
    assert ppl["sport"]["after"] > ppl["sport"]["before"]
    assert abs(data["mia_auc"]["after"] - data["mia_auc"]["retrain"]) <= 0.05
    for org in ("business", "entertainment", "politics", "tech"):
        assert abs(ppl[org]["after"] / ppl[org]["before"] - 1) < 0.05, org
    assert data["seconds"]["retrain"] > 10 * data["seconds"]["unlearn"]
    assert set(data["contributions"]) == set(data["orgs"])
    assert all(data["checks"].values())


def test_collaborative_and_sample_level_runs_match_their_retrains(tmp_path) -> None:  # type: ignore[no-untyped-def]
    collab = _run(tmp_path / "c", "--orgs", "3", "--rounds", "2", "--mode", "collaborative", "--join-round", "1",
                  "--unlearn", "politics", "--steps", "10")
    assert collab["unlearned_sha256"] == collab["retrained_sha256"]
    samples = _run(tmp_path / "s", "--orgs", "2", "--rounds", "1", "--unlearn", "business",
                   "--unlearn-samples", "3", "--shards", "4", "--steps", "12")
    assert samples["kind"] == "samples" and samples["removed_samples"] == 3
    assert samples["unlearned_sha256"] == samples["retrained_sha256"]
    # The canaries were among the removed samples: unlearning raises their loss.
    assert samples["canary_loss"]["after"] > samples["canary_loss"]["before"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--orgs", "2", "--unlearn", "tech"], "not among the 2 simulated orgs"),
        (["--model", "/no/such/folder"], "unknown model '/no/such/folder'"),
        (["--mode", "collaborative", "--unlearn-samples", "2"], "needs --mode isolated"),
    ],
)
def test_bad_simulate_input_is_a_clear_error(tmp_path, capsys, args, message) -> None:  # type: ignore[no-untyped-def]
    rc = main(["simulate", "--no-progress", "--json", str(tmp_path / "r.json"), "--model", "tiny", *args])
    assert rc == 1
    assert message in capsys.readouterr().err
