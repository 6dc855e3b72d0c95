"""The daemons on protocol v2, across layers: what the contracts alone cannot guarantee.

Real parts throughout (in-process py-evm chain with the compiled contracts, embedded store, the
tiny model): finding 2's off-chain half (a Round-scope removal keeps the org's later, descendant
adapters out of every later merge), finding 4's (a copied sealed blob is rejected), a
Samples-scope request answered by the org's own trainer and completed by the executor, and an
empty round cancelled and the next one opened.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.chain.connection import advance_time
from orchestrator.chain.errors import ContractRevertError
from orchestrator.chain.submissions import reader_for
from orchestrator.daemons import modelbook
from orchestrator.daemons.consortium import request_unlearning, send
from orchestrator.daemons.demo import DemoConfig, Setup, build_setup, drive
from orchestrator.daemons.trainer import TrainerDaemon
from orchestrator.daemons.unlearner import REQ_COMPLETED, SCOPE_ROUND
from orchestrator.learning.federation import shard_index
from orchestrator.merkle import data_commitment
from orchestrator.storage.cid import bytes32_to_cid, cid_to_bytes32

ROUND_OPEN, ROUND_CLOSED, ROUND_FINALIZED, ROUND_CANCELLED = 1, 2, 3, 4


def _setup(tmp_path: Path, *, rounds: int, trainers: list[str], orgs: int = 2, steps: int = 2) -> Setup:
    cfg = DemoConfig(model="tiny", orgs=orgs, rounds=rounds, unlearn="business", out=tmp_path, steps=steps)
    return build_setup(cfg, tmp_path / "state", trainer_names=trainers)


def _finalized(setup: Setup, round_id: int) -> bool:
    rounds = setup.consortium.protocol.contract("Rounds")
    return rounds.functions.roundCount().call() >= round_id and \
        rounds.functions.getRound(round_id).call()[0] == ROUND_FINALIZED


def _report(setup: Setup, round_id: int) -> dict:
    rounds = setup.consortium.protocol.contract("Rounds")
    fin = rounds.events.RoundFinalized().get_logs(from_block=0, argument_filters={"roundId": round_id})[0]["args"]
    return json.loads(setup.consortium.store.cat(bytes32_to_cid(bytes(fin["metricsHash"]))))


@pytest.mark.slow
def test_finding2_round_scope_unlearning_excludes_later_descendant_adapters(tmp_path: Path) -> None:
    """Business's round-2 adapter continues its round-1 adapter: removing round 1 removes both,
    on chain and in the receipt's merge and in the next round's merge (on v1 round 2 came back)."""
    setup = _setup(tmp_path, rounds=3, trainers=["business", "entertainment"])
    cons = setup.consortium
    business = cons.orgs["business"]
    registry = cons.protocol.contract("ContributionRegistry")
    setup.aggregator.plan = replace(setup.aggregator.plan, rounds=2)
    drive(setup.daemons, lambda: _finalized(setup, 2), max_ticks=60)
    before = {i.org: i.round for i in modelbook.current_inputs(setup.aggregator.node)}
    assert before[business.address] == 2  # its latest adapter, a descendant of round 1's

    request_id = request_unlearning(cons.private, cons.protocol, business.account, business.address,
                                    SCOPE_ROUND, (1).to_bytes(32, "big"))
    unlearning = cons.protocol.contract("Unlearning")
    drive([setup.unlearner], lambda: unlearning.functions.getRequest(request_id).call()[2] == REQ_COMPLETED,
          max_ticks=5)

    assert registry.functions.isRevoked(1, business.address).call()
    assert registry.functions.isRevoked(2, business.address).call()  # the descendant, on chain
    receipt = [a for a in setup.unlearner.actions if a["action"] == "unlearned"][0]
    doc = json.loads(cons.store.cat(receipt["report_cid"]))
    assert {(r["org"], r["round"]) for r in doc["removed"]} == {(business.address, 1), (business.address, 2)}
    assert [i["org"] for i in doc["inputs"]] == [cons.orgs["entertainment"].address]
    assert business.address not in {i.org for i in modelbook.current_inputs(setup.aggregator.node)}

    # The next round: business trains again from the base model; its old adapters stay out.
    setup.aggregator.plan = replace(setup.aggregator.plan, rounds=3)
    drive(setup.daemons, lambda: _finalized(setup, 3), max_ticks=60)
    merged = {(i["org"], i["round"]) for i in _report(setup, 3)["inputs"]}
    assert (business.address, 3) in merged
    assert not merged & {(business.address, 1), (business.address, 2)}


def test_finding2_a_submission_made_before_a_removal_of_an_earlier_round_is_a_descendant() -> None:
    """Off-chain lineage rule, on its own: even a round the chain did not list stays out."""
    from orchestrator.chain.submissions import Submission

    def sub(round_id: int, block: int) -> Submission:
        return Submission(round_id, "0x" + "aa" * 20, bytes([round_id]) * 32, 10, b"\x01" * 32, block, 0, "0x")

    subs = [sub(1, 10), sub(2, 20), sub(3, 40)]
    none = {"is_rejected": lambda r: False, "is_revoked": lambda r: False}
    assert modelbook.latest_live(subs, **none).round_id == 3
    # Round 2 removed at block 30: round 3 (block 40) was trained afterwards, round 2 is out.
    assert modelbook.latest_live(subs, **none, removals=[(2, 30)]).round_id == 3
    # Round 2 removed at block 50: round 3 (block 40) descends from it; round 1 is an ancestor.
    assert modelbook.latest_live(subs, **none, removals=[(2, 50)]).round_id == 1
    assert modelbook.latest_live(subs, **none, removals=[(1, 50)]) is None
    rejected = {"is_rejected": lambda r: r == 3, "is_revoked": lambda r: False}
    assert modelbook.latest_live(subs, **rejected).round_id == 2


def test_finding4_copied_blob_is_rejected_and_the_copier_earns_nothing(tmp_path: Path) -> None:
    setup = _setup(tmp_path, rounds=1, trainers=["business"])
    cons = setup.consortium
    rounds = cons.protocol.contract("Rounds")
    victim, copier = cons.orgs["business"], cons.orgs["entertainment"]
    setup.aggregator.tick()  # opens round 1
    setup.trainers["business"].tick()  # the victim trains, seals for (round 1, itself), submits
    stolen = reader_for(cons.protocol).get(1, victim.address)
    # v2 lets two orgs submit the same CID (uniqueness is per org), so the copy lands.
    send(cons.private, copier.account, rounds.functions.submitUpdate(
        1, stolen.adapter_cid, stolen.num_samples, hashlib.sha256(b"copied").digest()))

    drive([setup.aggregator], lambda: _finalized(setup, 1), max_ticks=5)

    assert rounds.functions.isRejected(1, copier.address).call()
    assert not rounds.functions.isRejected(1, victim.address).call()
    rejected = [a for a in setup.aggregator.actions if a["action"] == "rejected"]
    assert [r["org"] for r in rejected] == [copier.address]
    assert "BindingMismatchError" in rejected[0]["reason"]
    report = _report(setup, 1)
    assert [i["org"] for i in report["inputs"]] == [victim.address]
    assert {r["org"] for r in report["rewards"]} <= {victim.address}
    with pytest.raises(ContractRevertError) as info:
        send(cons.private, copier.account, rounds.functions.claimReward(1, 1, []))
    assert info.value.error_name == "RoundsSubmissionRejected"


def test_samples_scope_request_is_answered_by_the_orgs_trainer_and_completed(tmp_path: Path) -> None:
    setup = _setup(tmp_path, rounds=1, trainers=["entertainment"])
    cons = setup.consortium
    business = cons.orgs["business"]
    sisa = TrainerDaemon(cons.node(business, tmp_path / "state" / "org-business-sisa"), "business",
                         setup.data["business"].train, setup.data["business"].commitment(),
                         business.enc_private, shards=2)
    daemons = [setup.aggregator, sisa, setup.trainers["entertainment"], setup.unlearner]
    drive(daemons, lambda: _finalized(setup, 1), max_ticks=30)
    original = reader_for(cons.protocol).get(1, business.address)
    token = cons.protocol.contract("LedgerToken")
    unlearning = cons.protocol.contract("Unlearning")
    balance = token.functions.balanceOf(business.address).call()

    forget = setup.data["business"].train[:2]
    request_id = sisa.request_sample_removal(forget)
    drive(daemons, lambda: unlearning.functions.getRequest(request_id).call()[2] == REQ_COMPLETED, max_ticks=6)

    replaced = reader_for(cons.protocol).get(1, business.address)
    assert replaced.kind == "replaced" and replaced.request_id == request_id
    assert replaced.adapter_cid != original.adapter_cid
    remaining = [t for t in setup.data["business"].train if t not in forget]
    assert replaced.data_commitment == data_commitment(remaining) != original.data_commitment
    assert replaced.num_samples == len(remaining)
    action = next(a for a in sisa.actions if a["action"] == "replaced")
    assert action["retrained_shards"] == sorted({shard_index(t, 2) for t in forget})  # only those shards
    # The receipt's model is the re-merge of the current inputs, which hold the replacement.
    request = unlearning.functions.getRequest(request_id).call()
    inputs = modelbook.current_inputs(setup.aggregator.node)
    assert (business.address, bytes32_to_cid(replaced.adapter_cid)) in {(i.org, i.adapter_cid) for i in inputs}
    audit = modelbook.rederive(setup.aggregator.node, inputs,
                               modelbook.merge_recipients(setup.aggregator.node, cons.aggregator_keys()),
                               cons.aggregator.enc_private, tmp_path / "audit")
    assert cid_to_bytes32(audit.cid) == bytes(request[6])
    assert token.functions.balanceOf(business.address).call() == balance  # bond refunded on completion
    assert set(forget).isdisjoint(sisa.texts)  # and never trained on again


def test_an_empty_round_is_cancelled_and_the_next_one_opened(tmp_path: Path) -> None:
    setup = _setup(tmp_path, rounds=1, trainers=[])
    cons = setup.consortium
    rounds = cons.protocol.contract("Rounds")
    pool = rounds.functions.rewardPool().call()
    setup.aggregator.tick()  # opens round 1 (reserves its budget)
    assert rounds.functions.getRound(1).call()[0] == ROUND_OPEN
    assert rounds.functions.rewardPool().call() == pool - setup.aggregator.plan.reward_budget
    advance_time(cons.private, setup.aggregator.plan.duration_s + 1)
    setup.aggregator.tick()  # deadline passed with no submission: cancel
    assert rounds.functions.getRound(1).call()[0] == ROUND_CANCELLED
    assert rounds.functions.rewardPool().call() == pool
    setup.aggregator.tick()  # a cancelled round does not count: the plan's one round opens now
    assert rounds.functions.roundCount().call() == 2
    assert rounds.functions.getRound(2).call()[0] == ROUND_OPEN
    assert [a["action"] for a in setup.aggregator.actions] == ["opened", "cancelled", "opened"]
