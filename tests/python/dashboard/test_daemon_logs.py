"""A daemon as its own OS process on anvil with ``--log-format json --metrics-port``.

The relayer (the one role that needs no model) runs from the real CLI; the test scrapes its
endpoint while it anchors, makes the chain move, sees the counters move, stops it with SIGTERM
and reads its log file: one JSON object per line, "started" and "stopped" at INFO.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.chain.anvil import AnvilProcess, find_anvil
from orchestrator.chain.connection import connect, funded_accounts
from orchestrator.chain.errors import ChainError
from orchestrator.chain.tx import Transactor
from orchestrator.daemons.consortium import deploy_consortium
from orchestrator.daemons.processes import spawn, wait_for
from orchestrator.dashboard.server import free_port
from orchestrator.storage.embedded import EmbeddedStore


@pytest.fixture()
def anvil() -> Iterator[AnvilProcess]:
    try:
        find_anvil()
    except ChainError as exc:
        pytest.skip(f"anvil is not installed ({exc}); `make setup` installs it from npm")
    with AnvilProcess() as node:
        yield node


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def _counter(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def test_relayer_process_serves_metrics_and_writes_json_logs(anvil: AnvilProcess, tmp_path: Path) -> None:
    node = anvil
    w3 = connect(node.url)
    accounts = funded_accounts(w3, 5)
    cons = deploy_consortium(w3, w3, accounts, ["business", "sport"], EmbeddedStore(tmp_path / "ipfs"))
    manifest = cons.protocol.manifest.write(tmp_path / "deployments" / f"{cons.protocol.manifest.chain_id}.json")
    anchor_manifest = cons.anchor.manifest.write(tmp_path / "anchor.json")
    port = free_port()
    metrics = f"http://127.0.0.1:{port}"
    proc = spawn("relayer", "relayer", node.url, manifest, cons.relayer.account.key.hex(), tmp_path / "relayer",
                 ["--public-rpc-url", node.url, "--anchor-manifest", str(anchor_manifest), "--interval", "0.3",
                  "--log-format", "json", "--metrics-port", str(port)], ipfs_dir=tmp_path / "ipfs")
    try:
        wait_for(lambda: _counter(_get(metrics + "/metrics")[1], "ledgerlora_anchors_posted_total") >= 1,
                 120, "the relayer's first anchor", [proc])
        assert _get(metrics + "/readyz")[0] == 200
        assert _get(metrics + "/healthz")[0] == 200
        first = _get(metrics + "/metrics")[1]
        # New records on the private chain: an org stakes more; the relayer anchors them.
        org = cons.orgs["sport"]
        token, staking = cons.protocol.contract("LedgerToken"), cons.protocol.contract("Staking")
        tx = Transactor(w3, org.account)
        tx.transact(token.functions.approve(staking.address, 10**18))
        tx.transact(staking.functions.stake(10**18))
        wait_for(lambda: _counter(_get(metrics + "/metrics")[1], "ledgerlora_anchors_posted_total") >= 2,
                 60, "the relayer's second anchor", [proc])
        second = _get(metrics + "/metrics")[1]
        for name in ("ledgerlora_gas_used_total", "ledgerlora_gas_spent_wei_total",
                     "ledgerlora_transactions_total"):
            assert _counter(second, name) > _counter(first, name) > 0, name
        assert 'ledgerlora_daemon_up{daemon="relayer",role="relayer"} 1.0' in second
    finally:
        proc.stop()
    assert proc.proc is not None and proc.proc.returncode == 0, proc.log_tail()

    lines = [line for line in proc.log_path.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    for rec in records:
        assert {"time", "level", "daemon", "event", "round", "org", "tx_hash", "duration", "message"} <= set(rec)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", rec["time"])
    events = [(r["event"], r["level"], r["daemon"]) for r in records]
    assert ("started", "INFO", "relayer") in events
    assert ("stopped", "INFO", "relayer") in events
    assert [e for e, _, _ in events].index("started") < [e for e, _, _ in events].index("stopped")
    txs = [r for r in records if r["event"] == "transaction"]
    assert len(txs) >= 2 and all(re.fullmatch(r"0x[0-9a-f]{64}", r["tx_hash"]) for r in txs)
    assert {r["daemon"] for r in txs} == {"relayer"}  # its public-chain transactions are labelled too
    assert all(isinstance(r["duration"], float) and r["duration"] >= 0 for r in txs)
    assert any(r["event"] == "anchored" for r in records)
    assert "\r" not in proc.log_path.read_text()  # no progress bar in a log file
