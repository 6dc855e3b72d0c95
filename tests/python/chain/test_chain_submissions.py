"""The submission reader: the views Rounds v2 no longer stores, served from events and checked
against the one commitment slot the contract keeps per submission."""

from __future__ import annotations

from pathlib import Path

import pytest
from web3.logs import DISCARD

from orchestrator.chain import Protocol, ProtocolParams, Transactor, connect, deploy_protocol, funded_accounts
from orchestrator.chain.submissions import SubmissionMismatchError, SubmissionReader, submission_commitment

MIN_STAKE = 100 * 10**18
CID_A, CID_B, CID_C = b"\xa1" * 32, b"\xb2" * 32, b"\xc3" * 32
DC = b"\xdc" * 32


@pytest.fixture(scope="module")
def chain(build_dir: Path):
    w3 = connect()
    gov, alice, bob = funded_accounts(w3, 3, seed="submissions")
    manifest = deploy_protocol(w3, Transactor(w3, gov, build_dir=build_dir),
                               ProtocolParams(orgs=[alice.address, bob.address], min_stake=MIN_STAKE),
                               build_dir=build_dir)
    p = Protocol.from_manifest(w3, manifest, build_dir)
    for key, org in ((b"\x0a" * 32, alice), (b"\x0b" * 32, bob)):
        tx = Transactor(w3, org, build_dir=build_dir)
        tx.transact(p.LedgerToken.functions.approve(p.Staking.address, MIN_STAKE))
        tx.transact(p.Staking.functions.stake(MIN_STAKE))
        tx.transact(p.Membership.functions.join(key, "ipfs://org"))
    agg = Transactor(w3, gov, build_dir=build_dir)
    for _ in range(2):
        deadline = w3.eth.get_block("latest")["timestamp"] + 3600
        agg.transact(p.Rounds.functions.openRound(b"\x01" * 32, deadline, 0, 1000))
    a, b = (Transactor(w3, o, build_dir=build_dir) for o in (alice, bob))
    a.transact(p.Rounds.functions.submitUpdate(1, CID_A, 10, DC))
    b.transact(p.Rounds.functions.submitUpdate(1, CID_A, 20, DC))  # same CID, another org: allowed in v2
    a.transact(p.Rounds.functions.submitUpdate(2, CID_B, 30, DC))
    return w3, p, gov, alice, bob, build_dir


def test_reader_serves_cid_count_and_commitment_from_events(chain) -> None:
    w3, p, _, alice, bob, _ = chain
    reader = SubmissionReader(p.Rounds, from_block=p.manifest.first_block)
    sub = reader.get(1, alice.address)
    assert (sub.adapter_cid, sub.num_samples, sub.data_commitment, sub.kind) == (CID_A, 10, DC, "submitted")
    assert sub.commitment == bytes(p.Rounds.functions.commitmentOf(1, alice.address).call())
    assert sub.commitment == bytes(p.Rounds.functions.submissionCommitment(CID_A, 10, DC).call())
    assert [(s.org, s.num_samples) for s in reader.of_round(1)] == sorted(
        [(alice.address, 10), (bob.address, 20)], key=lambda t: t[0].lower())
    assert [s.round_id for s in reader.of_org(alice.address)] == [1, 2]
    assert reader.get(2, bob.address) is None


def test_reader_follows_a_replacement_and_refuses_a_log_the_chain_no_longer_commits_to(chain) -> None:
    w3, p, gov, alice, _, build_dir = chain
    reader = SubmissionReader(p.Rounds, from_block=p.manifest.first_block)
    original = reader.get(2, alice.address)
    a = Transactor(w3, alice, build_dir=build_dir)
    bond = p.Unlearning.functions.requestBond().call()
    a.transact(p.LedgerToken.functions.approve(p.Unlearning.address, bond))
    receipt = a.transact(p.Unlearning.functions.requestUnlearning(alice.address, 2, b"\x55" * 32, b"\x01" * 32))
    request_id = p.Unlearning.events.UnlearningRequested().process_receipt(receipt, errors=DISCARD)[0]["args"]["requestId"]
    a.transact(p.Unlearning.functions.replaceContribution(request_id, 2, CID_C, 29, b"\xee" * 32))

    current = reader.get(2, alice.address)
    assert (current.adapter_cid, current.num_samples, current.kind, current.request_id) == (
        CID_C, 29, "replaced", request_id)
    assert [h.kind for h in reader.history(2, alice.address)] == ["submitted", "replaced"]
    assert submission_commitment(CID_C, 29, b"\xee" * 32) == bytes(p.Rounds.functions.commitmentOf(2, alice.address).call())
    fresh = SubmissionReader(p.Rounds, from_block=p.manifest.first_block)
    with pytest.raises(SubmissionMismatchError, match="round 2"):
        fresh.check(original)  # the superseded log no longer matches what Rounds holds
