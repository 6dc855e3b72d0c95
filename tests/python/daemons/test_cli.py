"""The `deploy` and `daemon` commands as a user runs them: real processes, real anvil."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.chain.anvil import AnvilProcess
from orchestrator.chain.artifacts import Manifest
from orchestrator.chain.connection import connect, funded_accounts
from orchestrator.chain.contracts import Protocol

ROOT = Path(__file__).resolve().parents[3]


def _run(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")} | env
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=ROOT, env=full,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_deploy_command_writes_a_manifest_the_daemons_can_load(tmp_path: Path) -> None:
    with AnvilProcess() as node:
        w3 = connect(node.url)
        deployer, aggregator, org = funded_accounts(w3, 3)
        out = _run(["deploy", "--rpc-url", node.url, "--dev", "--aggregator", aggregator.address, "--org", org.address,
                    "--out-dir", str(tmp_path)], {"ORCH_PRIVATE_KEY": deployer.key.hex()})
        assert out.returncode == 0, out.stderr
        assert deployer.key.hex()[2:] not in out.stdout + out.stderr  # the key is never printed
        manifest = Manifest.read(tmp_path / f"{w3.eth.chain_id}.json")
        protocol = Protocol.from_manifest(w3, manifest)
        membership = protocol.contract("Membership")
        role = membership.functions.AGGREGATOR_ROLE().call()
        assert membership.functions.hasRole(role, aggregator.address).call()
        assert protocol.contract("LedgerToken").functions.balanceOf(org.address).call() > 0


def test_daemon_against_an_unreachable_rpc_fails_with_a_clear_message(tmp_path: Path) -> None:
    out = _run(["daemon", "--role", "trainer", "--org", "sport", "--rpc-url", "http://127.0.0.1:9",
                "--state-dir", str(tmp_path)], {"ORCH_PRIVATE_KEY": "0x" + "11" * 32}, timeout=180)
    assert out.returncode == 1
    assert "http://127.0.0.1:9" in out.stderr
    assert "Traceback" not in out.stderr


def test_daemon_without_a_signing_key_says_which_variables_to_set(tmp_path: Path) -> None:
    with AnvilProcess() as node:
        out = _run(["daemon", "--role", "aggregator", "--rpc-url", node.url, "--state-dir", str(tmp_path)], {})
        missing_manifest = _run(["daemon", "--role", "trainer", "--rpc-url", node.url, "--state-dir", str(tmp_path),
                       "--manifest", str(tmp_path / "missing.json")], {"ORCH_PRIVATE_KEY": "0x" + "11" * 32})
    assert out.returncode == 1
    assert "ORCH_PRIVATE_KEY" in out.stderr and "ORCH_KEYSTORE" in out.stderr
    assert missing_manifest.returncode == 1
    assert "missing.json" in missing_manifest.stderr


def test_daemon_without_an_rpc_url_says_how_to_give_one(tmp_path: Path) -> None:
    out = _run(["daemon", "--role", "trainer", "--state-dir", str(tmp_path)], {"ORCH_RPC_URL": ""})
    assert out.returncode == 1
    assert "--rpc-url" in out.stderr
