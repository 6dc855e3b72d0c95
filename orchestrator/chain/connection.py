"""Connections to an EVM chain: a new in-process py-evm chain, or any JSON-RPC endpoint.

The in-process chain is the embedded default (no process to start). It is made to behave like
a node as far as the rest of the orchestrator can tell:

* a configurable chain id (eth-tester hard-codes 131277322940537 in both the py-evm chain class
  and the ``eth_chainId`` endpoint; both are overridden per instance, so a private and a public
  chain can live side by side in one process with different ids);
* reverts in ``eth_call`` / ``eth_estimateGas`` raise web3's ``ContractLogicError`` family with
  the raw revert data in ``.data``, exactly as over JSON-RPC (eth-tester raises its own
  ``TransactionFailed`` with the data printed into the message);
* requests are serialised with a lock, because eth-tester is not thread-safe and daemons run in
  threads.

The backend's genesis fork is Prague (eth-tester 0.13 default), so solc's ``cancun`` output
(PUSH0, MCOPY, TSTORE/TLOAD) runs; ``tests/python/chain`` proves it with ChainProbe.
"""

from __future__ import annotations

import ast
import logging
import os
import threading
from collections.abc import Callable
from typing import Any, cast

import requests
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3 import EthereumTesterProvider, HTTPProvider, Web3
from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError, Web3Exception
from web3.middleware import ExtraDataToPOAMiddleware
from web3.providers.rpc.utils import ExceptionRetryConfiguration
from web3.types import RPCEndpoint

from orchestrator.chain.errors import ChainConnectionError, ChainError
from orchestrator.chain.retry import retry
from orchestrator.errors import ConfigError
from orchestrator.redact import redact

log = logging.getLogger(__name__)

#: Chain id of an in-process chain when none is given (the usual local-dev id, as ganache).
DEFAULT_INPROCESS_CHAIN_ID = 1337
#: ETH given to each account by :func:`funded_accounts` unless told otherwise.
DEFAULT_FUNDING_WEI = 100 * 10**18
#: Seed of the deterministic keys of :func:`funded_accounts`. Test keys, never for real funds.
DEFAULT_ACCOUNT_SEED = "ledgerlora-dev"

_ERROR_STRING_SELECTOR = bytes.fromhex("08c379a0")
_REVERT_PREFIX = "execution reverted: "


# --------------------------------------------------------------------------------------------
# in-process chain
# --------------------------------------------------------------------------------------------


def _revert_data_from_tester_message(message: str) -> bytes | None:
    """Recover the raw revert data from an eth-tester ``TransactionFailed`` message.

    eth-tester prints custom-error data as a Python bytes literal and decodes ``Error(string)``
    to its reason; both are turned back into the ABI-encoded bytes a node would return.
    Returns ``None`` when the failure was not a revert (e.g. an invalid opcode).
    """
    if not message.startswith(_REVERT_PREFIX):
        return None
    rest = message[len(_REVERT_PREFIX):]
    if rest.startswith(("b'", 'b"')):
        try:
            value = ast.literal_eval(rest)
        except (ValueError, SyntaxError):
            value = None
        if isinstance(value, bytes):
            return value
    return _ERROR_STRING_SELECTOR + abi_encode(["string"], [rest])


def _raise_like_a_node(exc: Exception) -> None:
    """Re-raise an eth-tester revert as the web3 exception a JSON-RPC node would produce."""
    from eth_tester.exceptions import TransactionFailed

    if not isinstance(exc, TransactionFailed):
        raise exc
    data = _revert_data_from_tester_message(str(exc.args[0]) if exc.args else "")
    if data is None:
        raise exc
    hex_data = "0x" + data.hex()
    if data[:4] == _ERROR_STRING_SELECTOR:
        raise ContractLogicError(str(exc.args[0]), data=hex_data) from exc
    if data[:4] == bytes.fromhex("4e487b71"):
        raise ContractPanicError(f"execution reverted: panic {data[4:].hex()}", data=hex_data) from exc
    raise ContractCustomError(hex_data, data=hex_data) from exc


def _node_like_endpoint(inner: Callable[..., Any]) -> Callable[..., Any]:
    def endpoint(*args: Any, **kwargs: Any) -> Any:
        try:
            return inner(*args, **kwargs)
        except ContractLogicError:
            raise
        except Exception as exc:  # only TransactionFailed is translated, the rest re-raised
            _raise_like_a_node(exc)
            raise

    return endpoint


class _LockedTesterProvider(EthereumTesterProvider):
    """EthereumTesterProvider whose requests run one at a time (eth-tester is not thread-safe)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.RLock()

    def make_request(self, method: RPCEndpoint, params: Any) -> Any:
        with self._lock:
            return super().make_request(method, params)


def _in_process(chain_id: int) -> Web3:
    from eth_tester import EthereumTester, PyEVMBackend
    from web3.providers.eth_tester.defaults import API_ENDPOINTS, static_return

    backend = PyEVMBackend()
    chain_cls = type(backend.chain)
    # chain_id is a class attribute of a class eth-tester defines inside a function; a
    # subclass per chain keeps the id also across revert_to_snapshot (it rebuilds the chain
    # with a classmethod).
    backend.chain.__class__ = type(f"LedgerLoRAChain{chain_id}", (chain_cls,), {"chain_id": chain_id})
    endpoints = {namespace: dict(methods) for namespace, methods in API_ENDPOINTS.items()}
    endpoints["eth"]["chainId"] = static_return(chain_id)
    for method in ("call", "estimateGas"):
        endpoints["eth"][method] = _node_like_endpoint(endpoints["eth"][method])
    tester = EthereumTester(backend)
    return Web3(_LockedTesterProvider(tester, api_endpoints=endpoints))


def is_in_process(w3: Web3) -> bool:
    """True when ``w3`` talks to an in-process eth-tester chain."""
    return isinstance(w3.provider, EthereumTesterProvider)


def _tester(w3: Web3) -> Any:
    return cast(EthereumTesterProvider, w3.provider).ethereum_tester


# --------------------------------------------------------------------------------------------
# JSON-RPC
# --------------------------------------------------------------------------------------------


def _json_rpc(url: str, *, timeout: float, attempts: int, backoff: float) -> Web3:
    # Our own retry covers the first contact (so an unreachable URL fails with one clear
    # message); afterwards web3's retry of idempotent reads is switched back on. Messages name
    # the endpoint only as redact(url): no credentials from the URL ever reach a log or error.
    shown = redact(url)
    provider = HTTPProvider(url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None)
    # web3's validation middleware asks eth_chainId before every eth_call, eth_estimateGas and
    # transaction (one extra round trip each); an endpoint's chain id does not change, so that
    # one answer is cached for this connection (only eth_chainId: nothing else is cached).
    provider.cacheable_requests = {RPCEndpoint("eth_chainId")}
    provider.cache_allowed_requests = True
    w3 = Web3(provider)
    # geth/Besu clique/QBFT networks put >32 bytes in extraData; harmless elsewhere.
    w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
    try:
        retry(lambda: w3.eth.chain_id, attempts=attempts, backoff=backoff, what=f"eth_chainId at {shown}")
    except ChainConnectionError as exc:
        raise ChainConnectionError(
            f"cannot reach the JSON-RPC endpoint {shown} after {attempts} attempts "
            f"({redact(repr(exc.__cause__))}). "
            "Check that the node is running and listening on that host and port, that the URL "
            "(ORCH_RPC_URL) has the right scheme (http:// or https://), and that no firewall or "
            "proxy blocks it."
        ) from None
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        reason = exc.response.reason if exc.response is not None else ""
        hint = ("check the credentials in ORCH_RPC_URL or the provider's API key" if status in (401, 403)
                else "check the URL's path (e.g. a missing /rpc or project id)" if status == 404
                else "the endpoint refused the JSON-RPC request")
        raise ChainConnectionError(
            f"the JSON-RPC endpoint {shown} answered HTTP {status} {reason}: {hint}") from None
    except (ValueError, Web3Exception) as exc:  # not JSON, not JSON-RPC
        raise ChainConnectionError(
            f"the endpoint {shown} did not answer eth_chainId as a JSON-RPC node "
            f"({type(exc).__name__}: {redact(exc)}); is it an Ethereum node's RPC URL?") from None
    provider.exception_retry_configuration = ExceptionRetryConfiguration(
        errors=(requests.ConnectionError, requests.Timeout), retries=3, backoff_factor=0.2
    )
    return w3


def connect(
    rpc_url: str | None = None,
    *,
    chain_id: int | None = None,
    timeout: float = 10.0,
    attempts: int = 5,
    backoff: float = 0.5,
) -> Web3:
    """Connect to a chain.

    ``rpc_url=None`` creates a NEW in-process py-evm chain with ``chain_id`` (default
    :data:`DEFAULT_INPROCESS_CHAIN_ID`); every call gives an independent chain. A URL gives an
    HTTP JSON-RPC connection with ``timeout`` seconds per request; an unreachable endpoint is
    retried ``attempts`` times with exponential ``backoff`` and then raises
    :class:`ChainConnectionError`. For a URL, ``chain_id`` (when given) is checked against the
    node's, so a daemon cannot sign for the wrong network.
    """
    if chain_id is not None and chain_id <= 0:
        raise ConfigError(f"chain_id must be a positive integer, got {chain_id}")
    if rpc_url is None:
        return _in_process(chain_id or DEFAULT_INPROCESS_CHAIN_ID)
    if not rpc_url.startswith(("http://", "https://")):
        raise ConfigError(
            f"RPC URL {redact(rpc_url)!r} is not an http(s) URL; give e.g. http://127.0.0.1:8545 "
            "(websocket and IPC endpoints are not supported)"
        )
    w3 = _json_rpc(rpc_url, timeout=timeout, attempts=attempts, backoff=backoff)
    if chain_id is not None and w3.eth.chain_id != chain_id:
        raise ChainError(
            f"the node at {redact(rpc_url)} serves chain id {w3.eth.chain_id}, expected {chain_id}; "
            "check ORCH_RPC_URL / ORCH_CHAIN_ID"
        )
    return w3


def connect_from_env(env: dict[str, str] | None = None) -> Web3:
    """:func:`connect` configured by ``ORCH_RPC_URL`` (unset/empty: in-process) and ``ORCH_CHAIN_ID``."""
    env = dict(os.environ if env is None else env)
    url = env.get("ORCH_RPC_URL") or None
    raw_id = env.get("ORCH_CHAIN_ID") or None
    chain_id: int | None = None
    if raw_id is not None:
        try:
            chain_id = int(raw_id, 0)
        except ValueError:
            raise ConfigError(f"ORCH_CHAIN_ID={raw_id!r} is not an integer") from None
    return connect(url, chain_id=chain_id)


# --------------------------------------------------------------------------------------------
# accounts and time
# --------------------------------------------------------------------------------------------


def derive_account(index: int, seed: str = DEFAULT_ACCOUNT_SEED) -> LocalAccount:
    """The deterministic test key number ``index`` of ``seed`` (keccak of "seed:index")."""
    if index < 0:
        raise ValueError(f"account index must be >= 0, got {index}")
    return cast(LocalAccount, Account.from_key(keccak(text=f"{seed}:{index}")))


def funded_accounts(
    w3: Web3,
    n: int,
    *,
    seed: str = DEFAULT_ACCOUNT_SEED,
    start: int = 0,
    amount_wei: int = DEFAULT_FUNDING_WEI,
) -> list[LocalAccount]:
    """``n`` local accounts derived from ``seed``, each topped up to ``amount_wei``.

    Why local keys rather than the node's unlocked accounts: daemons then sign exactly as they
    would on a real network. The ETH comes from the node's first unlocked account (eth-tester's
    or anvil's dev accounts). The same seed gives the same keys on every chain, so e.g. one
    relayer address can hold funds on both the private and the public chain.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    accounts = [derive_account(start + i, seed) for i in range(n)]
    if n == 0:
        return accounts
    try:
        faucet = w3.eth.accounts[0]
    except (IndexError, ValueError) as exc:
        raise ChainError(
            "the node has no unlocked account to fund test accounts from; fund them yourself "
            "or use a dev node (in-process chain, anvil)"
        ) from exc
    hashes = []
    for account in accounts:
        missing = amount_wei - w3.eth.get_balance(account.address)
        if missing > 0:
            hashes.append(w3.eth.send_transaction({"from": faucet, "to": account.address, "value": missing}))
    for tx_hash in hashes:
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.05)
        if receipt["status"] != 1:
            raise ChainError(f"funding transaction {tx_hash.hex()} failed")
    return accounts


def mine(w3: Web3, n: int = 1) -> int:
    """Mine ``n`` empty blocks; returns the new head block number."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if is_in_process(w3):
        _tester(w3).mine_blocks(n)
    else:
        for _ in range(n):
            w3.provider.make_request(RPCEndpoint("evm_mine"), [])
    return int(w3.eth.block_number)


def advance_time(w3: Web3, seconds: int) -> int:
    """Move chain time forward by ``seconds`` and mine a block; returns its timestamp.

    Afterwards the latest block's timestamp is at least the previous one plus ``seconds``, so a
    deadline ``seconds`` away has passed for the next transaction.
    """
    if seconds < 0:
        raise ValueError(f"seconds must be >= 0, got {seconds}")
    latest = int(w3.eth.get_block("latest")["timestamp"])
    if is_in_process(w3):
        # eth-tester mines the travelled-to block one second early; ask for one more.
        _tester(w3).time_travel(latest + seconds + 1)
    else:
        w3.provider.make_request(RPCEndpoint("evm_increaseTime"), [seconds])
        w3.provider.make_request(RPCEndpoint("evm_mine"), [])
    return int(w3.eth.get_block("latest")["timestamp"])


def snapshot(w3: Web3) -> Any:
    """Take a chain snapshot (test helper; ``evm_snapshot`` on dev nodes)."""
    if is_in_process(w3):
        return _tester(w3).take_snapshot()
    return _rpc_result(w3, "evm_snapshot", [])


def revert_to(w3: Web3, snapshot_id: Any) -> None:
    """Revert to a snapshot: every later block is dropped (how tests make a real reorg)."""
    if is_in_process(w3):
        _tester(w3).revert_to_snapshot(snapshot_id)
        return
    if _rpc_result(w3, "evm_revert", [snapshot_id]) is not True:
        raise ChainError(f"evm_revert({snapshot_id!r}) was refused by the node")


def _rpc_result(w3: Web3, method: str, params: list[Any]) -> Any:
    response = w3.provider.make_request(RPCEndpoint(method), params)
    if "error" in response:
        raise ChainError(f"{method} failed: {response['error']}")
    return response["result"]
