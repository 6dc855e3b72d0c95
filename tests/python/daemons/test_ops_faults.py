"""Faults that used to strand a round or cost an honest org its reward (issue 12), on real parts.

In-process chain, embedded blockstore, tiny model. The RPC outage is a real refused connection
(the daemons' web3 provider pointed at a port nobody listens on), the storage fault a real
corrupt block file in the aggregator's store, the set-aside event a real reverting transaction.
"""

from __future__ import annotations

import logging
from dataclasses import replace
import time
from pathlib import Path

import pytest
from web3 import HTTPProvider

from orchestrator.chain.connection import advance_time, connect, funded_accounts, mine
from orchestrator.chain.contracts import Protocol, ProtocolParams, deploy_protocol
from orchestrator.chain.errors import StateMismatchError
from orchestrator.chain.scanner import EventScanner
from orchestrator.chain.tx import Transactor
from orchestrator.cli import main
from orchestrator.daemons.consortium import Identity, send
from orchestrator.daemons.demo import DemoConfig, Setup, build_setup
from orchestrator.daemons.trainer import TrainerDaemon
from orchestrator.errors import ConfigError
from orchestrator.ops import org
from orchestrator.ops.status import collect, render
from orchestrator.storage.cid import bytes32_to_cid
from orchestrator.storage.codec import parse_cid

ROUND_OPEN, ROUND_CLOSED, ROUND_FINALIZED = 1, 2, 3
SECRET = "s3cr3t-planted"
DEAD_URL = f"http://operator:{SECRET}@127.0.0.1:9/?apikey={SECRET}"  # nothing listens on port 9


@pytest.fixture()
def setup(tmp_path: Path) -> Setup:
    cfg = DemoConfig(model="tiny", orgs=3, rounds=1, unlearn="politics", out=tmp_path, steps=2)
    return build_setup(cfg, tmp_path / "state", trainer_names=["business", "entertainment"])


def _messages(caplog: pytest.LogCaptureFixture, needle: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if needle in r.getMessage()]


def test_an_rpc_outage_of_any_length_is_ridden_out_with_backoff_and_one_line_per_change(
        setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    cons = setup.consortium
    rounds = cons.protocol.contract("Rounds")
    setup.aggregator.tick()  # round 1 opens
    trainer = setup.trainers["business"]
    trainer.outage_backoff = (1.0, 4.0)
    w3 = trainer.node.w3
    working = w3.provider
    caplog.set_level(logging.DEBUG, logger="orchestrator")
    w3.provider = HTTPProvider(DEAD_URL, exception_retry_configuration=None)  # the node goes away
    try:
        waits = []
        for _ in range(4):
            assert trainer.tick() == 0  # before: the poll raised and the daemon died within seconds
            waits.append(trainer.wait_seconds(0.5))
        setup.aggregator.tick()  # its periodic work meets the outage too
    finally:
        w3.provider = working  # ... and comes back
    assert waits == [1.0, 2.0, 4.0, 4.0]  # exponential backoff, capped
    assert len(_messages(caplog, "RPC endpoint unreachable")) == 2  # one per daemon, not one per poll
    trainer.tick()
    assert len(_messages(caplog, "reachable again")) == 1
    assert rounds.functions.hasSubmitted(1, cons.orgs["business"].address).call()  # resumed where it was
    assert not [a for a in trainer.actions if a["action"] == "failed"] and not trainer.scanner.dead_letters()
    assert SECRET not in caplog.text and "operator:" not in caplog.text
    assert all(SECRET not in str(a) for d in (trainer, setup.aggregator) for a in d.actions)


def test_a_set_aside_event_is_listed_and_requeued_by_command_after_the_cause_is_fixed(
        setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    cons = setup.consortium
    rounds = cons.protocol.contract("Rounds")
    setup.aggregator.tick()  # round 1 opens
    # A new org starts its trainer before it has joined: its submission reverts (not a member).
    newcomer = Identity("sport", funded_accounts(cons.private, 1, start=20)[0])
    data = setup.data["business"]
    trainer = TrainerDaemon(cons.node(newcomer, setup.aggregator.node.state_dir.parent / "org-sport"), "sport",
                            data.train[:8], data.commitment(), newcomer.enc_private)
    for _ in range(trainer.scanner.max_attempts):
        trainer.tick()
    assert len(trainer.scanner.dead_letters()) == 1  # set aside, as before ...
    assert not rounds.functions.hasSubmitted(1, newcomer.address).call()

    state = str(trainer.node.state_dir)
    assert main(["daemon", "dead-letters", "--role", "trainer", "--state-dir", state]) == 0
    listing = capsys.readouterr().out
    assert "Rounds.RoundOpened" in listing and "RoundsNotMember" in listing and "1 set-aside event(s)" in listing
    ident = listing.split()[0]
    (shown,) = collect(cons.private, cons.protocol, [trainer.node.state_dir])["set_aside"]  # `status` shows it too
    assert shown["id"] == ident and shown["event"] == "Rounds.RoundOpened"
    send(cons.private, cons.governor.account, cons.protocol.contract("LedgerToken").functions.transfer(
        newcomer.address, cons.protocol.contract("Membership").functions.minStake().call()))
    assert org.ensure_member(trainer.node, newcomer.enc_public, "sport")  # the operator fixes the cause
    assert main(["daemon", "dead-letters", "--role", "trainer", "--state-dir", state, "--requeue", ident]) == 0
    assert f"requeued {ident}" in capsys.readouterr().out
    trainer.tick()  # ... and the daemon, still running, picks it up: not lost for good
    assert rounds.functions.hasSubmitted(1, newcomer.address).call()
    assert not trainer.scanner.dead_letters()


def test_aggregator_waits_for_members_names_the_missing_and_never_rejects_for_its_own_storage_fault(
        setup: Setup, caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    cons = setup.consortium
    rounds = cons.protocol.contract("Rounds")
    agg = setup.aggregator
    agg.retry_backoff = (0.0, 0.0)
    caplog.set_level(logging.INFO, logger="orchestrator")
    agg.plan = replace(agg.plan, status_every_s=0.0, min_members=4)
    agg.tick()  # 3 members, 4 wanted: no round opens (before: a round with whoever was there, even nobody)
    assert int(rounds.functions.roundCount().call()) == 0
    assert _messages(caplog, "waiting for members before opening a round: 3 of at least 4")
    agg.plan = replace(agg.plan, min_members=3)
    agg.tick()  # round 1 opens
    assert int(rounds.functions.roundCount().call()) == 1
    for t in setup.trainers.values():
        t.tick()
    agg.tick()  # politics (no daemon) has not submitted: the aggregator says so
    politics = cons.orgs["politics"].address
    waiting = _messages(caplog, "waiting for 1 of 3")
    assert waiting and politics in waiting[-1] and "(politics)" in waiting[-1]

    business = cons.orgs["business"].address
    cid = bytes32_to_cid(bytes(org.submissions_of(agg.node, business)[1]["adapterCid"]))
    blob = cons.store.cat(cid)
    block = cons.store._block_path(parse_cid(cid).digest)
    block.write_bytes(b"\x00" + block.read_bytes()[1:])  # bit rot in the aggregator's own store

    advance_time(cons.private, 3601)  # the deadline passes: the round closes without politics
    for _ in range(3):
        agg.tick()
    assert rounds.functions.getRound(1).call()[0] == ROUND_CLOSED  # pending, not finalized
    assert not rounds.functions.isRejected(1, business).call()  # before: rejected for ever
    assert [a for a in agg.actions if a["action"] == "deferred"]
    assert not agg.scanner.dead_letters()

    assert cons.store.add_bytes(blob) == cid  # re-adding the content rewrites the bad block
    agg.tick()
    assert rounds.functions.getRound(1).call()[0] == ROUND_FINALIZED
    finalized = next(a for a in agg.actions if a["action"] == "finalized")
    assert finalized["rejected"] == []

    # The everyday commands on the finalized round: claim by hand, decrypt the model, status.
    report, _ = org.finalized_report(agg.node, 1)
    paid = {row["org"] for row in report["rewards"] if int(row["amount"]) > 0}
    trainer = next(t for t in setup.trainers.values() if t.node.address in paid)
    assert org.claimable_rounds(trainer.node) == [1]
    assert org.claim(trainer.node, 1) > 0 and rounds.functions.hasClaimed(1, trainer.node.address).call()
    assert org.claim(trainer.node, 1) == 0 and org.claimable_rounds(trainer.node) == []
    folder = org.decrypt_adapter(cons.store, finalized["model_cid"], business, cons.orgs["business"].enc_private,
                                 tmp_path / "model")
    assert (folder / "adapter_config.json").is_file()
    with pytest.raises(ConfigError, match="--force"):
        org.decrypt_adapter(cons.store, finalized["model_cid"], business, cons.orgs["business"].enc_private, folder)
    snapshot = collect(cons.private, cons.protocol, [])
    assert snapshot["rounds"][0]["state"] == "finalized" and snapshot["model"]["cid"] == finalized["model_cid"]
    assert "latest model: version 1 " + finalized["model_cid"] in render(snapshot)


def _deploy(w3, deployer) -> Protocol:  # type: ignore[no-untyped-def]
    manifest = deploy_protocol(w3, Transactor(w3, deployer), ProtocolParams(aggregators=[deployer.address]))
    return Protocol.from_manifest(w3, manifest)


def test_a_state_directory_of_another_deployment_is_refused_not_taken_for_a_reorg(tmp_path: Path) -> None:
    first = connect(None, chain_id=1337)
    (deployer,) = funded_accounts(first, 1)
    old = _deploy(first, deployer)
    mine(first, 30)  # a long-running consortium: the cursor is far along
    db = tmp_path / "state" / "trainer.sqlite"
    rounds_events = [(old.contract("Rounds"), "RoundOpened")]
    with EventScanner(first, rounds_events, db, "trainer", start_block=old.manifest.first_block,
                      deployment={n: r.address for n, r in old.manifest.contracts.items()}) as scanner:
        scanner.poll()
        assert scanner.cursor()[0] >= 30

    # The chain is reset and the protocol redeployed; the operator reuses the state folder.
    second = connect(None, chain_id=1337)
    funded_accounts(second, 1)
    advance_time(second, 100)
    new = _deploy(second, deployer)
    with EventScanner(second, [(new.contract("Rounds"), "RoundOpened")], db, "trainer",
                      start_block=new.manifest.first_block,
                      deployment={n: r.address for n, r in new.manifest.contracts.items()}) as scanner:
        with pytest.raises(StateMismatchError) as info:
            scanner.poll()  # before: taken for a reorg, earlier events silently skipped
    message = str(info.value)
    assert "\n" not in message and str(db) in message and "--state-dir" in message
    assert "genesis block hash" in message or "start block" in message


def test_set_aside_events_are_retried_by_the_scanner_with_backoff(tmp_path: Path) -> None:
    w3 = connect(None, chain_id=1337)
    (deployer,) = funded_accounts(w3, 1)
    protocol = _deploy(w3, deployer)
    token = protocol.contract("LedgerToken")
    with EventScanner(w3, [(token, "Transfer")], tmp_path / "s.sqlite", "s", start_block=protocol.manifest.first_block,
                      max_attempts=1, dead_letter_backoff=(1000.0, 3600.0)) as scanner:
        event = scanner.poll()[0]
        assert scanner.record_failure(event, ValueError("stake missing"))
        assert event.key not in {e.key for e in scanner.poll()}  # set aside until its backoff passes
        (letter,) = scanner.set_aside()
        assert letter.retry_at - letter.failed_at == pytest.approx(1000)
        scanner._db.execute("UPDATE dead SET retry_at=?", (time.time() - 1,))  # ... which it now has
        assert event.key in {e.key for e in scanner.poll()}  # retried by itself, no restart needed
        assert scanner.record_failure(event, ValueError("stake still missing"))
        (letter,) = scanner.set_aside()
        assert letter.requeues == 1 and letter.retry_at - letter.failed_at == pytest.approx(2000)  # doubled
