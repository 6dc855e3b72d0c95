"""Faults the daemons must survive: a tampered adapter, duplicate deliveries, reverting transactions.

All on real parts (in-process chain, embedded store, tiny model); the 'malicious org' is an
ordinary member that stores garbage and submits its CID from its own wallet.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from orchestrator.chain.errors import ContractRevertError
from orchestrator.chain.submissions import reader_for
from orchestrator.daemons.consortium import send
from orchestrator.daemons.demo import DemoConfig, Setup, build_setup, drive
from orchestrator.errors import DaemonError
from orchestrator.storage import adapters as sealed
from orchestrator.storage.cid import cid_to_bytes32

ROUND_OPEN, ROUND_FINALIZED = 1, 3


@pytest.fixture()
def setup(tmp_path: Path) -> Setup:
    # business and entertainment run trainer daemons; politics is played by hand.
    cfg = DemoConfig(model="tiny", orgs=3, rounds=1, unlearn="politics", out=tmp_path, steps=4)
    return build_setup(cfg, tmp_path / "state", trainer_names=["business", "entertainment"])


def _open_round(setup: Setup) -> int:
    setup.aggregator.tick()  # opens round 1
    rounds = setup.consortium.protocol.contract("Rounds")
    assert rounds.functions.getRound(1).call()[0] == ROUND_OPEN
    return 1


def test_tampered_adapter_is_rejected_on_chain_and_the_round_still_finalizes(setup: Setup) -> None:
    cons = setup.consortium
    rounds = cons.protocol.contract("Rounds")
    round_id = _open_round(setup)
    # A real adapter from an honest trainer, then the attacker flips one ciphertext byte.
    for t in setup.trainers.values():
        t.tick()
    honest_cid = reader_for(cons.protocol).get(round_id, cons.orgs["business"].address).cid
    blob = bytearray(cons.store.cat(honest_cid))
    blob[-10] ^= 0xFF
    bad_cid = cons.store.add_bytes(bytes(blob))
    politics = cons.orgs["politics"]
    send(cons.private, politics.account, rounds.functions.submitUpdate(
        round_id, cid_to_bytes32(bad_cid), 10, hashlib.sha256(b"commitment").digest()))

    drive([setup.aggregator], lambda: rounds.functions.getRound(round_id).call()[0] == ROUND_FINALIZED, max_ticks=5)

    assert rounds.functions.isRejected(round_id, politics.address).call()
    rejected = rounds.events.SubmissionRejected().get_logs(from_block=0, argument_filters={"roundId": round_id})
    assert [ev["args"]["org"] for ev in rejected] == [politics.address]
    inputs = [a for a in setup.aggregator.actions if a["action"] == "finalized"]
    assert inputs and inputs[0]["rejected"] == [politics.address]
    assert "DecryptionError" in next(a for a in setup.aggregator.actions if a["action"] == "rejected")["reason"]


def test_a_duplicate_round_opened_delivery_submits_once(setup: Setup) -> None:
    cons = setup.consortium
    rounds = cons.protocol.contract("Rounds")
    round_id = _open_round(setup)
    trainer = setup.trainers["business"]
    events = trainer.scanner.poll()
    opened = next(e for e in events if e.name == "RoundOpened")
    trainer.on_round_opened(opened)
    trainer.on_round_opened(opened)  # delivered again (e.g. crash before mark_processed)
    trainer.tick()  # and once more through the scanner
    logs = rounds.events.UpdateSubmitted().get_logs(from_block=0, argument_filters={"roundId": round_id})
    assert [ev["args"]["org"] for ev in logs] == [cons.orgs["business"].address]
    assert [a["action"] for a in trainer.actions].count("submitted") == 1


def test_a_reverting_action_is_decoded_dead_lettered_and_does_not_loop(setup: Setup) -> None:
    cons = setup.consortium
    rounds = cons.protocol.contract("Rounds")
    round_id = _open_round(setup)
    # business is removed by governance after the round opened: its trainer's submission reverts.
    removed = setup.trainers["business"]
    membership = cons.protocol.contract("Membership")
    send(cons.private, cons.governor.account, membership.functions.removeMember(removed.node.address, b"\x02" * 32))
    with pytest.raises(ContractRevertError) as info:
        send(cons.private, removed.node.account, rounds.functions.submitUpdate(
            round_id, b"\x01" * 32, 1, b"\x01" * 32))
    assert info.value.error_name == "RoundsNotMember"
    for _ in range(4):
        removed.tick()
    failures = [a for a in removed.actions if a["action"] == "failed"]
    assert len(failures) == removed.scanner.max_attempts  # tried, then dead-lettered: no crash loop
    assert all("RoundsNotMember" in f["error"] for f in failures)
    assert len(removed.scanner.dead_letters()) == 1
    assert not rounds.functions.hasSubmitted(round_id, removed.node.address).call()


def test_circuit_breaker_stops_a_daemon_that_keeps_failing(setup: Setup) -> None:
    from orchestrator.storage.kubo import KuboStore

    _open_round(setup)
    trainer = setup.trainers["entertainment"]
    trainer.max_consecutive_failures = 2
    trainer.node.store = KuboStore("/ip4/127.0.0.1/tcp/9/http", timeout=2)  # a real, persistent fault
    trainer.tick()
    with pytest.raises(DaemonError, match="2 consecutive failures"):
        trainer.tick()


def test_adapters_are_readable_only_by_the_aggregator_and_the_org(setup: Setup) -> None:
    cons = setup.consortium
    round_id = _open_round(setup)
    setup.trainers["business"].tick()
    cid = reader_for(cons.protocol).get(round_id, cons.orgs["business"].address).cid
    blob = cons.store.cat(cid)
    assert sorted(sealed.sealed_recipients(blob)) == sorted(
        [cons.aggregator.address.lower(), cons.orgs["business"].address.lower()])
    other = cons.orgs["entertainment"]
    with pytest.raises(Exception) as info:
        sealed.open_sealed(blob, other.address.lower(), other.enc_private)
    assert type(info.value).__name__ in ("DecryptionError", "StorageError")


def test_an_unreachable_store_loses_no_work_and_the_round_resumes_when_it_is_back(setup: Setup) -> None:
    from orchestrator.storage.kubo import KuboStore

    cons = setup.consortium
    rounds = cons.protocol.contract("Rounds")
    round_id = _open_round(setup)
    trainer = setup.trainers["business"]
    working = trainer.node.store
    trainer.node.store = KuboStore("/ip4/127.0.0.1/tcp/9/http", timeout=2)  # nothing listens on port 9
    trainer.tick()
    failure = [a for a in trainer.actions if a["action"] == "failed"]
    assert len(failure) == 1 and "127.0.0.1" in failure[0]["error"]
    assert not rounds.functions.hasSubmitted(round_id, cons.orgs["business"].address).call()
    assert not trainer.scanner.dead_letters()  # still pending, not given up
    trainer.node.store = working  # the node is reachable again
    trainer.tick()
    assert rounds.functions.hasSubmitted(round_id, cons.orgs["business"].address).call()
