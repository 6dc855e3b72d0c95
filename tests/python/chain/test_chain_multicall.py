"""Batched reads through contracts/Multicall3.sol on the in-process chain."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from orchestrator.chain import load_artifact
from orchestrator.chain.artifacts import ContractRecord
from orchestrator.chain.errors import ChainError
from orchestrator.chain.multicall import batch_call, multicall_address


@pytest.fixture()
def token_and_multicall(transactor, accounts, build_dir):
    token = transactor.deploy(load_artifact("LedgerToken", build_dir), accounts[0].address, 10**24)
    for i, acct in enumerate(accounts[1:], start=1):
        transactor.transact(token.functions.transfer(acct.address, i * 10**18))
    multicall = transactor.deploy(load_artifact("Multicall3", build_dir))
    protocol = SimpleNamespace(manifest=SimpleNamespace(contracts={
        "Multicall3": ContractRecord(address=multicall.address, artifact="Multicall3", block=0)}))
    return token, multicall, protocol


def test_batched_reads_equal_one_call_each_and_come_from_one_eth_call(w3, accounts, token_and_multicall) -> None:
    token, multicall, protocol = token_and_multicall
    fns = [token.functions.balanceOf(a.address) for a in accounts] + [token.functions.totalSupply(),
                                                                      token.functions.name()]
    expected = [fn.call() for fn in fns]
    calls = []
    original = w3.eth.call
    w3.eth.call = lambda *a, **k: calls.append(a) or original(*a, **k)  # count round trips, not a fake
    try:
        got = batch_call(w3, fns, protocol=protocol)
    finally:
        w3.eth.call = original
    assert got == expected
    assert expected[1] == 10**18 and isinstance(expected[-1], str)
    assert len(calls) == 1
    assert multicall_address(w3, protocol) == multicall.address
    assert batch_call(w3, fns, protocol=protocol, chunk=2) == expected


def test_a_reverting_call_in_a_batch_is_named(w3, accounts, token_and_multicall) -> None:
    token, _, protocol = token_and_multicall
    bad = token.functions.transferFrom(accounts[1].address, accounts[2].address, 10**30)
    with pytest.raises(ChainError, match="transferFrom"):
        batch_call(w3, [token.functions.totalSupply(), bad], protocol=protocol)


def test_without_a_multicall_the_reads_fall_back_to_one_call_each(w3, accounts, token_and_multicall) -> None:
    token, _, _ = token_and_multicall
    fns = [token.functions.balanceOf(a.address) for a in accounts]
    assert multicall_address(w3, None) is None  # no code at the canonical address on a fresh chain
    assert batch_call(w3, fns) == [fn.call() for fn in fns]


def test_protocol_views_decode_exactly_as_web3_call_does(w3, accounts, transactor, build_dir) -> None:
    """Addresses (checksummed, as web3 returns them), several outputs, arrays and keyword arguments."""
    from orchestrator.chain.contracts import Protocol, ProtocolParams, deploy_protocol

    manifest = deploy_protocol(w3, transactor, ProtocolParams(orgs=[a.address for a in accounts[1:]]),
                               build_dir=build_dir)
    protocol = Protocol.from_manifest(w3, manifest, build_dir)
    rounds, unlearning, registry, token = (protocol.contract(n) for n in (
        "Rounds", "Unlearning", "ContributionRegistry", "LedgerToken"))
    fns = [rounds.functions.token(), unlearning.functions.defaultAggregator(), rounds.functions.getRound(1),
           rounds.functions.roundTerms(1), rounds.functions.isRejected(1, accounts[1].address),
           rounds.functions.commitmentOf(1, accounts[1].address), registry.functions.revokedRanges(accounts[1].address),
           protocol.contract("Membership").functions.members(), token.functions.balanceOf(account=accounts[1].address)]
    expected = [fn.call() for fn in fns]
    assert batch_call(w3, fns, protocol=protocol) == expected
    assert expected[0] == token.address and expected[1] == accounts[0].address and expected[-1] > 0
