"""The consortium as separate OS processes on anvil, talking JSON-RPC, sharing only chain and store.

One test also kills a trainer with SIGKILL in the middle of the round and restarts it: the round
must still finish, with exactly one submission from that org (no duplicate, none missing).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.chain.anvil import AnvilProcess, find_anvil
from orchestrator.chain.connection import connect, funded_accounts
from orchestrator.daemons.consortium import Consortium, deploy_consortium
from orchestrator.daemons.processes import spawn, wait_for
from orchestrator.daemons.rewards import rewards_settled
from orchestrator.storage.embedded import EmbeddedStore

ROUND_FINALIZED = 3
ORGS = ["business", "entertainment"]


def _anvil_available() -> bool:
    try:
        find_anvil()
        return True
    except Exception:
        return False


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not _anvil_available(), reason="anvil not installed: run `make setup` (npm @foundry-rs/anvil)"),
]


@pytest.fixture()
def anvil_consortium(tmp_path: Path):
    with AnvilProcess() as node:
        w3 = connect(node.url)
        accounts = funded_accounts(w3, 3 + len(ORGS))
        cons = deploy_consortium(w3, w3, accounts, ORGS, EmbeddedStore(tmp_path / "ipfs"))
        manifest = cons.protocol.manifest.write(tmp_path / "deployments" / f"{cons.protocol.manifest.chain_id}.json")
        yield node.url, manifest, cons, tmp_path


def _start(url: str, manifest: Path, cons: Consortium, tmp: Path, org: str | None = None):
    common = dict(ipfs_dir=tmp / "ipfs")
    if org is None:
        a = cons.aggregator
        return spawn("aggregator", "aggregator", url, manifest, a.account.key.hex(), tmp / "aggregator",
                     ["--model", "tiny", "--rounds", "1", "--steps", "3", "--poll-interval", "0.2"],
                     enc_key=a.enc_private, **common)
    o = cons.orgs[org]
    return spawn("trainer", f"trainer-{org}", url, manifest, o.account.key.hex(), tmp / f"org-{org}",
                 ["--org", org, "--poll-interval", "0.2"], enc_key=o.enc_private, **common)


def _round_finalized_and_claimed(cons: Consortium) -> bool:
    rounds = cons.protocol.contract("Rounds")
    return rounds.functions.roundCount().call() >= 1 and rewards_settled(rounds, cons.store, 1)


def test_separate_daemon_processes_complete_a_round_on_anvil(anvil_consortium) -> None:
    url, manifest, cons, tmp = anvil_consortium
    procs = [_start(url, manifest, cons, tmp)] + [_start(url, manifest, cons, tmp, o) for o in ORGS]
    try:
        wait_for(lambda: _round_finalized_and_claimed(cons), 240, "round 1 finalized and claimed", procs)
    finally:
        for p in procs:
            p.stop()
    rounds = cons.protocol.contract("Rounds")
    subs = rounds.events.UpdateSubmitted().get_logs(from_block=0, argument_filters={"roundId": 1})
    assert sorted(ev["args"]["org"] for ev in subs) == sorted(o.address for o in cons.orgs.values())


def test_a_trainer_killed_mid_round_and_restarted_submits_exactly_once(anvil_consortium) -> None:
    url, manifest, cons, tmp = anvil_consortium
    rounds = cons.protocol.contract("Rounds")
    victim = cons.orgs["business"]
    aggregator = _start(url, manifest, cons, tmp)
    other = _start(url, manifest, cons, tmp, "entertainment")
    trainer = _start(url, manifest, cons, tmp, "business")
    procs = [aggregator, other, trainer]
    try:
        wait_for(lambda: rounds.functions.roundCount().call() >= 1, 120, "round 1 to open", procs)
        # Kill it as soon as it has seen the round (its cursor database exists), before it submits.
        wait_for(lambda: (tmp / "org-business" / "trainer-business.sqlite").exists(), 120,
                 "the trainer to start scanning", procs)
        assert not rounds.functions.hasSubmitted(1, victim.address).call()
        trainer.kill()
        killed_before_submit = not rounds.functions.hasSubmitted(1, victim.address).call()
        restarted = _start(url, manifest, cons, tmp, "business")
        procs = [aggregator, other, restarted]
        wait_for(lambda: _round_finalized_and_claimed(cons), 240, "round 1 finalized and claimed", procs)
    finally:
        for p in procs:
            p.stop()
    subs = rounds.events.UpdateSubmitted().get_logs(from_block=0, argument_filters={"roundId": 1})
    assert [ev["args"]["org"] for ev in subs].count(victim.address) == 1
    assert len(subs) == 2
    claims = rounds.events.RewardClaimed().get_logs(from_block=0, argument_filters={"roundId": 1})
    assert [ev["args"]["org"] for ev in claims].count(victim.address) <= 1  # never twice
    assert killed_before_submit  # the kill really happened mid-round
