"""connect(), funded accounts, chain time and the in-process EVM's fork."""

from __future__ import annotations

import time

import pytest
from eth_utils import keccak
from web3 import Web3

from orchestrator.chain import (
    Artifact,
    ChainConnectionError,
    Transactor,
    advance_time,
    connect,
    derive_account,
    funded_accounts,
    mine,
)
from orchestrator.chain.anvil import free_port
from orchestrator.chain.connection import DEFAULT_INPROCESS_CHAIN_ID
from orchestrator.errors import ConfigError


def test_two_in_process_chains_are_independent_and_keep_their_chain_ids(probe_artifact: Artifact) -> None:
    private, public = connect(chain_id=1337), connect(chain_id=11155111)
    assert (private.eth.chain_id, public.eth.chain_id) == (1337, 11155111)

    (account,) = funded_accounts(private, 1)
    receipt_contract = Transactor(private, account).deploy(probe_artifact)

    # The transaction was signed for 1337 and exists only on the private chain.
    assert len(private.eth.get_code(receipt_contract.address)) > 0
    assert len(public.eth.get_code(receipt_contract.address)) == 0
    assert public.eth.get_balance(account.address) == 0
    tx = private.eth.get_transaction(private.eth.get_block(private.eth.block_number)["transactions"][0])
    assert tx["chainId"] == 1337


def test_default_in_process_chain_id_is_the_documented_one() -> None:
    assert connect().eth.chain_id == DEFAULT_INPROCESS_CHAIN_ID == 1337


def test_in_process_evm_runs_cancun_opcodes_push0_mcopy_and_transient_storage(
    probe_artifact: Artifact, w3: Web3, transactor: Transactor, build_dir
) -> None:
    import json

    opcodes = json.loads((build_dir / "ChainProbe.json").read_text())["opcodes"].split()
    # The artifact really uses the Cancun opcodes (solc with evm_version cancun) ...
    assert {"PUSH0", "MCOPY", "TSTORE", "TLOAD"} <= set(opcodes)
    probe = transactor.deploy(probe_artifact)
    # ... and py-evm executes them with the right results.
    assert probe.functions.transientEcho(123456789).call() == 123456789
    assert probe.functions.doubled(b"\x01\x02\x03").call() == b"\x01\x02\x03\x01\x02\x03"
    receipt = transactor.transact(probe.functions.transientEcho(7))
    assert receipt["status"] == 1


def test_funded_accounts_are_deterministic_local_keys_with_the_requested_balance() -> None:
    a = connect()
    b = connect()
    first = funded_accounts(a, 3, amount_wei=5 * 10**18)
    second = funded_accounts(b, 3, amount_wei=5 * 10**18)
    assert [x.address for x in first] == [x.address for x in second]
    # Derived independently: keccak("seed:index") as the private key.
    assert first[1].key == keccak(text="ledgerlora-dev:1")
    assert derive_account(2).address == first[2].address
    assert all(a.eth.get_balance(x.address) == 5 * 10**18 for x in first)
    assert len({x.address for x in first}) == 3
    # Topping up again does not add more than what is missing.
    funded_accounts(a, 3, amount_wei=5 * 10**18)
    assert all(a.eth.get_balance(x.address) == 5 * 10**18 for x in first)


def test_advance_time_moves_the_latest_block_timestamp_forward_by_at_least_the_seconds(w3: Web3) -> None:
    before = w3.eth.get_block("latest")["timestamp"]
    after = advance_time(w3, 7 * 24 * 3600)
    assert after >= before + 7 * 24 * 3600
    assert w3.eth.get_block("latest")["timestamp"] == after


def test_mine_adds_exactly_n_blocks(w3: Web3) -> None:
    start = w3.eth.block_number
    assert mine(w3, 5) == start + 5
    assert w3.eth.block_number == start + 5


def test_unreachable_endpoint_is_retried_then_fails_naming_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    t0 = time.monotonic()
    with pytest.raises(ChainConnectionError) as info:
        connect(url, attempts=3, backoff=0.05, timeout=1.0)
    message = str(info.value)
    assert url in message and "after 3 attempts" in message and "ORCH_RPC_URL" in message
    assert time.monotonic() - t0 >= 0.05 + 0.1  # the two backoff sleeps happened


def test_non_http_url_is_a_config_error_naming_the_value() -> None:
    with pytest.raises(ConfigError, match="ws://localhost:8546"):
        connect("ws://localhost:8546")


def test_connect_from_env_reads_orch_rpc_url_and_chain_id(anvil) -> None:
    from orchestrator.chain import connect_from_env, is_in_process

    in_process = connect_from_env({"ORCH_RPC_URL": "", "ORCH_CHAIN_ID": "77"})
    assert is_in_process(in_process) and in_process.eth.chain_id == 77
    remote = connect_from_env({"ORCH_RPC_URL": anvil.url})
    assert not is_in_process(remote) and remote.eth.chain_id == anvil.chain_id
    with pytest.raises(ConfigError, match="ORCH_CHAIN_ID='abc'"):
        connect_from_env({"ORCH_CHAIN_ID": "abc"})
