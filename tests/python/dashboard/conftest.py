"""One live consortium for every dashboard test: the tiny model on two in-process chains.

It is run the way the demo runs it (build_setup + drive: the real daemon classes, real IPFS
blockstore, real contracts), with the Prometheus endpoint up from the start and the dashboard
served by uvicorn on a free port. The metrics test then plays one more round on it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.daemons.demo import DemoConfig, build_setup, drive
from orchestrator.daemons.rewards import rewards_settled
from orchestrator.daemons.unlearner import REQ_COMPLETED, SCOPE_ORG
from orchestrator.dashboard.server import DashboardServer, view_of_consortium
from orchestrator.observability import MetricsServer

from dashboard_helpers import CHROMIUM, CHROMIUM_ARGS, FORGOTTEN, Live


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    out = Path(tmp_path_factory.mktemp("dashboard"))
    cfg = DemoConfig(model="tiny", orgs=3, rounds=2, unlearn=FORGOTTEN, out=out, quiet=True, steps=3)
    setup = build_setup(cfg, out / "state")
    metrics = MetricsServer(0)
    cons = setup.consortium
    rounds = cons.protocol.contract("Rounds")
    drive(setup.daemons, lambda: int(rounds.functions.roundCount().call()) >= cfg.rounds and all(
        rewards_settled(rounds, cons.store, r) for r in range(1, cfg.rounds + 1)))
    # The right to be forgotten, asked from the org's own wallet, answered by the executor daemon.
    unlearning = cons.protocol.contract("Unlearning")
    forgotten = cons.orgs[FORGOTTEN]
    from orchestrator.daemons.consortium import send

    if any(f.get("name") == "requestBond" for f in unlearning.abi):  # protocol v2: the requester's bond
        bond = int(unlearning.functions.requestBond().call())
        send(cons.private, forgotten.account, cons.protocol.contract("LedgerToken").functions.approve(
            unlearning.address, bond))
    receipt = send(cons.private, forgotten.account, unlearning.functions.requestUnlearning(
        forgotten.address, SCOPE_ORG, b"\x00" * 32, b"\x01" * 32))
    request_id = int(unlearning.events.UnlearningRequested().process_receipt(receipt)[0]["args"]["requestId"])
    drive(setup.daemons, lambda: unlearning.functions.getRequest(request_id).call()[2] == REQ_COMPLETED)
    batch = setup.relayer.anchor_once()
    assert batch is not None, "the relayer found nothing to anchor"
    server = DashboardServer(view_of_consortium(cons, out / "index"), port=0).start()
    try:
        yield Live(setup, server, metrics, request_id, batch)
    finally:
        server.stop()
        metrics.close()
        server.view.indexer.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Debian's chromium is not installed at {CHROMIUM} (make setup installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()
