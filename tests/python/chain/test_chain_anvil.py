"""Against a real anvil process: lifecycle, the JSON-RPC path end to end, and a real reorg."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from web3 import Web3

from orchestrator.chain import (
    AnvilProcess,
    ChainError,
    ContractRevertError,
    EventScanner,
    Protocol,
    ProtocolParams,
    Transactor,
    advance_time,
    connect,
    deploy_protocol,
    funded_accounts,
    load_artifact,
    mine,
    revert_to,
    snapshot,
)

TAG = b"\x22" * 32


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie would still answer kill(0); AnvilProcess reaps, so this is a live process.
    return True


def test_anvil_process_answers_then_is_gone_also_after_an_exception() -> None:
    with AnvilProcess(chain_id=4321) as node:
        pid = node.pid
        assert pid is not None and _alive(pid)
        assert Web3(Web3.HTTPProvider(node.url)).eth.chain_id == 4321
    assert not _alive(pid)

    with pytest.raises(RuntimeError, match="boom"):
        with AnvilProcess() as node:
            pid = node.pid
            raise RuntimeError("boom")
    assert pid is not None and not _alive(pid)


def test_connect_checks_the_expected_chain_id(anvil: AnvilProcess) -> None:
    with pytest.raises(ChainError, match="serves chain id 31337, expected 1"):
        connect(anvil.url, chain_id=1)
    assert connect(anvil.url, chain_id=31337).eth.chain_id == 31337


def test_eth_chain_id_is_asked_once_per_connection_not_before_every_call(anvil: AnvilProcess) -> None:
    """web3's validation middleware asks eth_chainId before each eth_call; connect() caches it."""
    w3 = connect(anvil.url)
    sent: list[str] = []
    original = w3.provider._make_request

    def counting(method, data):  # type: ignore[no-untyped-def]  # counts, then really sends
        sent.append(str(method))
        return original(method, data)

    w3.provider._make_request = counting
    for _ in range(3):
        w3.eth.call({"to": w3.eth.accounts[0], "data": b""})
        w3.eth.estimate_gas({"to": w3.eth.accounts[0], "from": w3.eth.accounts[0], "value": 1})
    assert sent.count("eth_call") == 3 and sent.count("eth_estimateGas") == 3
    assert sent.count("eth_chainId") == 0, sent  # answered at connect() and cached since
    assert sent.count("eth_blockNumber") == 0  # nothing else is cached: no stale reads
    assert [w3.eth.block_number for _ in range(2)] and sent.count("eth_blockNumber") == 2


def test_protocol_deploy_transact_revert_and_scan_over_json_rpc(
    anvil: AnvilProcess, build_dir: Path, tmp_path: Path
) -> None:
    w3 = connect(anvil.url)
    deployer, org = funded_accounts(w3, 2, seed="anvil-flow")
    gov = Transactor(w3, deployer, build_dir=build_dir)
    manifest = deploy_protocol(w3, gov, ProtocolParams(orgs=[org.address], network="anvil"), build_dir=build_dir)
    p = Protocol.from_manifest(w3, manifest, build_dir)
    scanner = EventScanner(w3, [(p.Membership, "MemberJoined"), (p.Rounds, "UpdateSubmitted")],
                           tmp_path / "scan.db", "aggregator", start_block=manifest.first_block)

    tx = Transactor(w3, org, build_dir=build_dir)
    min_stake = manifest.params["min_stake"]
    tx.transact(p.LedgerToken.functions.approve(p.Staking.address, min_stake))
    tx.transact(p.Staking.functions.stake(min_stake))
    tx.transact(p.Membership.functions.join(b"\x07" * 32, "ipfs://org"))
    deadline = w3.eth.get_block("latest")["timestamp"] + 600
    gov.transact(p.Rounds.functions.openRound(b"\x01" * 32, deadline, 10**18, 1000))
    tx.transact(p.Rounds.functions.submitUpdate(1, b"\x02" * 32, 5, b"\x03" * 32))
    with pytest.raises(ContractRevertError) as info:
        tx.transact(p.Rounds.functions.submitUpdate(1, b"\x04" * 32, 5, b"\x03" * 32))
    assert str(info.value) == f"Rounds.submitUpdate reverted: RoundsAlreadySubmitted(roundId=1, org={org.address})"

    events = scanner.poll()
    assert [(e.contract, e.name) for e in events] == [("Membership", "MemberJoined"), ("Rounds", "UpdateSubmitted")]
    assert events[0].args["org"] == org.address and events[0].args["metadataURI"] == "ipfs://org"
    assert events[1].args == {"roundId": 1, "org": org.address, "adapterCid": b"\x02" * 32,
                              "numSamples": 5, "dataCommitment": b"\x03" * 32}

    before = w3.eth.get_block("latest")["timestamp"]
    assert advance_time(w3, 1000) >= before + 1000


def test_reorg_via_evm_revert_rescans_without_duplicates_or_orphans(
    anvil: AnvilProcess, build_dir: Path, tmp_path: Path
) -> None:
    w3 = connect(anvil.url)
    (account,) = funded_accounts(w3, 1, seed="anvil-reorg")
    tx = Transactor(w3, account, build_dir=build_dir)
    probe = tx.deploy(load_artifact("ChainProbe", build_dir))
    start = w3.eth.block_number
    scanner = EventScanner(w3, [(probe, "Pinged")], tmp_path / "scan.db", "reorg", reorg_depth=5,
                           start_block=start)

    fork_point = snapshot(w3)
    for i in (1, 2):
        tx.transact(probe.functions.ping(i, TAG))
    first = scanner.poll()
    assert [e.args["id"] for e in first] == [1, 2]
    scanner.mark_processed(first[0])  # 1 handled, 2 still pending when the reorg hits
    old_cursor = scanner.cursor()

    revert_to(w3, fork_point)  # blocks with pings 1 and 2 are gone
    tx.resync_nonce()
    for i in (11, 12, 13):  # the new branch is longer than the old one
        tx.transact(probe.functions.ping(i, TAG))
    assert w3.eth.get_block(old_cursor[0])["hash"].to_0x_hex() != old_cursor[1]

    second = scanner.poll()
    assert [e.args["id"] for e in second] == [11, 12, 13]  # no orphaned 2, no duplicate 1
    assert scanner.stats.reorgs == 1
    for event in second:
        scanner.mark_processed(event)
    mine(w3, 2)
    assert scanner.poll() == []


def test_receipt_timeout_on_a_slow_chain_then_the_nonce_continues_after_the_pending_one(build_dir: Path) -> None:
    from orchestrator.chain import TransactionTimeoutError

    with AnvilProcess(block_time=2) as node:  # interval mining: receipts take up to 2 s
        w3 = connect(node.url)
        (account,) = funded_accounts(w3, 1, seed="anvil-slow")
        impatient = Transactor(w3, account, build_dir=build_dir, receipt_timeout=0.2)
        with pytest.raises(TransactionTimeoutError, match="no receipt for 0x"):
            impatient.send(account.address, value=1)
        impatient.receipt_timeout = 30
        receipt = impatient.send(account.address, value=2)  # resynced from the pending count
        assert receipt["status"] == 1
        nonces = [w3.eth.get_transaction(h)["nonce"]
                  for b in range(1, w3.eth.block_number + 1)
                  for h in w3.eth.get_block(b)["transactions"]
                  if w3.eth.get_transaction(h)["from"] == account.address]
        assert nonces == [0, 1]
