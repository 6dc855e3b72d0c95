"""``python -m orchestrator split-train`` end to end: one server process per replica, one
process per client, the learning layer's tiny model and BBC data, a JSON report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def _cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_split_train_hierarchical_writes_a_report_with_synced_replicas(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    proc = _cli(
        "split-train",
        "--model",
        "tiny",
        "--clients",
        "2",
        "--mode",
        "hierarchical",
        "--replicas",
        "2",
        "--sync-every",
        "1",
        "--steps",
        "3",
        "--seq-len",
        "32",
        "--json",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())

    assert report["mode"] == "hierarchical" and report["replicas"] == 2
    assert report["client_errors"] == {}
    assert all(len(v) == 3 for v in report["losses"].values())
    servers = report["server"]
    assert [s["syncs"] for s in servers] == [3, 3]
    # right after the last sync both replicas hold the same LoRA weights
    assert servers[0]["lora_sha256"] == servers[1]["lora_sha256"]
    # each replica served its own client group: one batched pass per step
    assert [s["forward_passes"] for s in servers] == [3, 3]
    assert report["bytes_on_wire"]["client_to_server"] > 0
    eq = report["equivalence"]
    assert eq["passed"] and eq["split_vs_unsplit"]["max_grad_abs_diff"] <= 1e-5
    assert report["centralized"]["final_loss_rel_diff"] < 0.02
    assert 0 < report["encryption"]["overhead_fraction"] < 1
    assert "split-train hierarchical: 2 clients, 3 steps" in proc.stdout


def test_split_train_rejects_bad_flags_with_a_clear_message() -> None:
    proc = _cli("split-train", "--clients", "2", "--mode", "hierarchical", "--replicas", "3")
    assert proc.returncode == 1
    assert "replicas <= clients, got replicas=3 for 2 clients" in proc.stderr
