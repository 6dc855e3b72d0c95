"""Transactor: deploy, transact, fees, nonces under concurrency and drift, decoded reverts."""

from __future__ import annotations

import logging
import threading

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract

from orchestrator.chain import (
    ChainConnectionError,
    ContractRevertError,
    Transactor,
    retry,
)

TAG = bytes(range(32))


def test_deploy_and_transact_emit_the_event_with_its_fields(
    w3: Web3, transactor: Transactor, probe: Contract, accounts: list[LocalAccount]
) -> None:
    assert probe.functions.owner().call() == accounts[0].address
    receipt = transactor.transact(probe.functions.ping(42, TAG))
    assert receipt["status"] == 1
    (event,) = probe.events.Pinged().process_receipt(receipt)
    assert (event["args"]["id"], event["args"]["sender"], event["args"]["tag"]) == (42, accounts[0].address, TAG)
    assert probe.functions.pings().call() == 1


def test_transactions_are_eip1559_when_the_chain_has_a_base_fee(w3: Web3, transactor: Transactor, probe: Contract) -> None:
    receipt = transactor.transact(probe.functions.ping(1, TAG))
    tx = w3.eth.get_transaction(receipt["transactionHash"])
    assert w3.eth.get_block("latest").get("baseFeePerGas") is not None
    assert tx["type"] == 2 and tx["maxFeePerGas"] >= tx["maxPriorityFeePerGas"] > 0
    # Gas limit = estimate plus margin, and the transaction fit in it.
    assert receipt["gasUsed"] < tx["gas"]


def test_custom_error_at_estimation_is_decoded_with_named_args(transactor: Transactor, probe: Contract) -> None:
    before = transactor.w3.eth.get_transaction_count(transactor.address)
    with pytest.raises(ContractRevertError) as info:
        transactor.transact(probe.functions.reject(3, TAG))
    err = info.value
    assert err.error_name == "ChainProbeRejected"
    assert err.error_args == {"id": 3, "tag": TAG}
    assert err.selector == bytes.fromhex(Web3.keccak(text="ChainProbeRejected(uint256,bytes32)").hex()[:8])
    assert str(err) == f"ChainProbe.reject reverted: ChainProbeRejected(id=3, tag=0x{TAG.hex()})"
    assert err.tx_hash is None
    # Nothing was sent: a revert at estimation costs no nonce.
    assert transactor.w3.eth.get_transaction_count(transactor.address) == before


def test_revert_in_a_mined_transaction_is_decoded_from_a_replay(transactor: Transactor, probe: Contract) -> None:
    with pytest.raises(ContractRevertError) as info:
        transactor.transact(probe.functions.reject(9, TAG), gas=100_000)  # skip estimation: it gets mined
    err = info.value
    assert err.error_name == "ChainProbeRejected" and err.error_args == {"id": 9, "tag": TAG}
    receipt = transactor.w3.eth.get_transaction_receipt(err.tx_hash)
    assert receipt["status"] == 0
    assert f"in transaction {err.tx_hash}" in str(err)


def test_access_control_revert_names_the_caller(w3: Web3, probe: Contract, accounts: list[LocalAccount], build_dir) -> None:
    stranger = Transactor(w3, accounts[1], build_dir=build_dir)
    with pytest.raises(ContractRevertError) as info:
        stranger.transact(probe.functions.setValue(5))
    assert info.value.error_name == "ChainProbeNotOwner"
    assert info.value.error_args == {"caller": accounts[1].address}
    assert probe.functions.value().call() == 0


def test_builtin_error_string_and_panic_are_decoded(transactor: Transactor, probe: Contract) -> None:
    with pytest.raises(ContractRevertError) as info:
        transactor.transact(probe.functions.rejectWithReason("not today"))
    assert (info.value.error_name, info.value.error_args) == ("Error", {"reason": "not today"})
    with pytest.raises(ContractRevertError) as info:
        transactor.transact(probe.functions.divide(1, 0))
    assert (info.value.error_name, info.value.error_args) == ("Panic", {"code": 0x12})
    assert "division or modulo by zero" in str(info.value)


def test_concurrent_sends_from_threads_get_consecutive_nonces_and_all_land(
    w3: Web3, transactor: Transactor, probe: Contract
) -> None:
    start = w3.eth.get_transaction_count(transactor.address)
    receipts: list = []
    errors: list = []

    def worker(k: int) -> None:
        try:
            for i in range(3):
                receipts.append(transactor.transact(probe.functions.ping(100 * k + i, TAG)))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    nonces = sorted(w3.eth.get_transaction(r["transactionHash"])["nonce"] for r in receipts)
    assert nonces == list(range(start, start + 12))
    assert probe.functions.pings().call() == 12


def test_nonce_drift_from_another_sender_is_resynced(
    w3: Web3, probe: Contract, accounts: list[LocalAccount], build_dir, caplog: pytest.LogCaptureFixture
) -> None:
    first = Transactor(w3, accounts[0], build_dir=build_dir)
    second = Transactor(w3, accounts[0], build_dir=build_dir)  # same key, e.g. a restarted daemon
    first.transact(probe.functions.ping(1, TAG))
    second.transact(probe.functions.ping(2, TAG))  # first's local nonce is now stale
    with caplog.at_level(logging.WARNING, logger="orchestrator.chain.tx"):
        receipt = first.transact(probe.functions.ping(3, TAG))
    assert receipt["status"] == 1
    assert any("resynced" in r.getMessage() for r in caplog.records)
    assert probe.functions.pings().call() == 3


def test_send_transfers_eth_through_the_same_nonce_path(w3: Web3, transactor: Transactor, accounts) -> None:
    before = w3.eth.get_balance(accounts[2].address)
    transactor.send(accounts[2].address, value=12345)
    assert w3.eth.get_balance(accounts[2].address) == before + 12345


def test_retry_repeats_transient_errors_with_backoff_then_raises_chain_connection_error() -> None:
    # A plain function stands in for a flaky endpoint: this tests the helper itself.
    calls: list[int] = []
    sleeps: list[float] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionRefusedError("refused")
        return "ok"

    assert retry(flaky, attempts=5, backoff=0.1, sleep=sleeps.append) == "ok"
    assert len(calls) == 3 and sleeps == [0.1, 0.2]

    def down() -> None:
        raise TimeoutError("timed out")

    with pytest.raises(ChainConnectionError, match="after 2 attempts"):
        retry(down, attempts=2, backoff=0.0, sleep=sleeps.append)


def test_retry_does_not_repeat_a_revert(transactor: Transactor, probe: Contract) -> None:
    calls: list[int] = []

    def attempt() -> None:
        calls.append(1)
        transactor.transact(probe.functions.reject(1, TAG))

    with pytest.raises(ContractRevertError):
        retry(attempt, attempts=5, backoff=0.0)
    assert len(calls) == 1


def test_an_unfunded_sender_gets_a_chain_error_naming_the_account(w3: Web3, probe: Contract, build_dir) -> None:
    from orchestrator.chain import ChainError, derive_account

    broke = derive_account(999, seed="nobody-funded-this")
    with pytest.raises(ChainError) as info:
        Transactor(w3, broke, build_dir=build_dir).transact(probe.functions.ping(1, TAG))
    assert broke.address in str(info.value) and "balance" in str(info.value)
    assert not isinstance(info.value, ContractRevertError)
