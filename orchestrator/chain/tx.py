"""Sending transactions: local signing, nonces, gas, fees, retries and decoded reverts.

One :class:`Transactor` per signing account and chain. It is thread-safe: nonces are handed
out under a lock (and the signed transaction is sent under the same lock so the node sees them
in order); waiting for receipts happens outside it, so several threads can have transactions
in flight at once.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from eth_abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.exceptions import ContractLogicError, TimeExhausted, TransactionNotFound, Web3Exception
from web3.types import TxParams, TxReceipt

from orchestrator.chain.artifacts import (
    DEFAULT_BUILD_DIR,
    Artifact,
    ErrorSpec,
    contract_name,
    error_selectors,
    register_contract_name,
)
from orchestrator.chain.connection import _revert_data_from_tester_message
from orchestrator.chain.errors import (
    ChainError,
    ContractRevertError,
    NonceError,
    TransactionTimeoutError,
)
from orchestrator.chain.retry import retry

log = logging.getLogger(__name__)

__all__ = ["RevertDecoder", "Transactor", "revert_data", "retry"]

_NONCE_ERROR = re.compile(
    r"nonce too (low|high)|invalid transaction nonce|already known|known transaction|"
    r"replacement transaction underpriced|nonce.*(lower|higher) than",
    re.IGNORECASE,
)
_PANIC_CODES = {
    0x01: "assert failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division or modulo by zero",
    0x21: "invalid enum value",
    0x22: "bad storage byte array encoding",
    0x31: "pop on empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory",
    0x51: "call to an uninitialised function pointer",
}


# --------------------------------------------------------------------------------------------
# revert decoding
# --------------------------------------------------------------------------------------------


def revert_data(exc: BaseException) -> bytes | None:
    """The raw revert data carried by a web3 or eth-tester exception, if any."""
    data = getattr(exc, "data", None)
    if isinstance(exc, ContractLogicError) and isinstance(data, str | bytes):
        return bytes(HexBytes(data))
    if type(exc).__name__ == "TransactionFailed" and exc.args:
        return _revert_data_from_tester_message(str(exc.args[0]))
    return None


def _is_revert(exc: BaseException) -> bool:
    return isinstance(exc, ContractLogicError) or type(exc).__name__ == "TransactionFailed"


def _fmt(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if isinstance(value, str):
        return value if value.startswith("0x") else repr(value)
    return str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str) and len(value) == 42 and value.startswith("0x"):
        try:
            return to_checksum_address(value)
        except ValueError:
            return value
    return value


class RevertDecoder:
    """Turns revert data into ``(error name, {arg: value}, selector)`` using known error ABIs."""

    def __init__(self, selectors: Mapping[bytes, ErrorSpec]) -> None:
        self.selectors = dict(selectors)

    @classmethod
    def from_build_dir(cls, build_dir: Path = DEFAULT_BUILD_DIR) -> RevertDecoder:
        return cls(error_selectors(build_dir))

    def decode(self, data: bytes | None) -> tuple[str | None, dict[str, Any], bytes | None]:
        if not data or len(data) < 4:
            return None, {}, None
        selector = bytes(data[:4])
        spec = self.selectors.get(selector)
        if spec is None:
            return None, {}, selector
        try:
            values = abi_decode(list(spec.types), bytes(data[4:]))
        except (DecodingError, ValueError, OverflowError):
            return spec.name, {}, selector
        return spec.name, {n: _plain(v) for n, v in zip(spec.arg_names, values)}, selector

    def describe(self, data: bytes | None) -> str:
        """``RoundsAlreadySubmitted(roundId=3, org=0x..)`` or a plain description."""
        name, args, selector = self.decode(data)
        if selector is None:
            return "no revert reason"
        if name is None:
            return f"unknown error 0x{selector.hex()} (data 0x{bytes(data or b'').hex()})"
        if name == "Error":
            return f"Error({args.get('reason', '')!r})"
        if name == "Panic" and "code" in args:
            code = int(args["code"])
            return f"Panic(0x{code:02x}: {_PANIC_CODES.get(code, 'unknown panic code')})"
        return f"{name}(" + ", ".join(f"{k}={_fmt(v)}" for k, v in args.items()) + ")"

    def error(
        self, function: str, data: bytes | None, *, tx_hash: str | None = None, note: str = ""
    ) -> ContractRevertError:
        name, args, selector = self.decode(data)
        where = f" in transaction {tx_hash}" if tx_hash else ""
        message = f"{function} reverted{where}: {self.describe(data)}{note}"
        return ContractRevertError(
            message,
            error_name=name,
            error_args=args,
            selector=selector,
            data=bytes(data or b""),
            function=function,
            tx_hash=tx_hash,
        )


# --------------------------------------------------------------------------------------------
# the transactor
# --------------------------------------------------------------------------------------------


class Transactor:
    """Signs and sends transactions for one local account on one chain."""

    def __init__(
        self,
        w3: Web3,
        account: LocalAccount,
        *,
        build_dir: Path = DEFAULT_BUILD_DIR,
        decoder: RevertDecoder | None = None,
        gas_margin: float = 1.2,
        receipt_timeout: float = 120.0,
        poll_latency: float = 0.05,
        attempts: int = 5,
        backoff: float = 0.5,
        nonce_resyncs: int = 3,
    ) -> None:
        if gas_margin < 1.0:
            raise ValueError(f"gas_margin must be >= 1.0, got {gas_margin}")
        if receipt_timeout <= 0:
            raise ValueError(f"receipt_timeout must be > 0, got {receipt_timeout}")
        self.w3 = w3
        self.account = account
        self.decoder = decoder or RevertDecoder.from_build_dir(build_dir)
        self.gas_margin = gas_margin
        self.receipt_timeout = receipt_timeout
        self.poll_latency = poll_latency
        self.attempts = attempts
        self.backoff = backoff
        self.nonce_resyncs = nonce_resyncs
        self._lock = threading.Lock()
        self._nonce: int | None = None
        self._chain_id: int | None = None

    # -- small helpers ---------------------------------------------------------------------

    @property
    def address(self) -> str:
        return str(self.account.address)

    def _retry(self, fn: Any, what: str) -> Any:
        return retry(fn, self.attempts, self.backoff, what=what)

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(self._retry(lambda: self.w3.eth.chain_id, "eth_chainId"))
        return self._chain_id

    def resync_nonce(self) -> int:
        """Forget the local nonce and take the chain's pending transaction count."""
        self._nonce = int(
            self._retry(lambda: self.w3.eth.get_transaction_count(self.account.address, "pending"),
                        "eth_getTransactionCount")
        )
        return self._nonce

    def fee_fields(self) -> dict[str, int]:
        """EIP-1559 fields when the chain has a base fee, else a legacy gas price."""
        block = self._retry(lambda: self.w3.eth.get_block("latest"), "eth_getBlockByNumber")
        base_fee = block.get("baseFeePerGas")
        if base_fee is None:
            return {"gasPrice": int(self._retry(lambda: self.w3.eth.gas_price, "eth_gasPrice"))}
        try:
            tip = int(self.w3.eth.max_priority_fee)
        except (Web3Exception, ValueError, NotImplementedError):
            tip = 10**9  # 1 gwei when the node has no eth_maxPriorityFeePerGas
        return {"maxFeePerGas": 2 * int(base_fee) + tip, "maxPriorityFeePerGas": tip}

    def _label(self, fn: ContractFunction | ContractConstructor, name: str | None) -> str:
        if name is not None:
            return name
        address = getattr(fn, "address", None)
        contract = (contract_name(self.w3, address) if address else None) or address or "contract"
        return f"{contract}.{getattr(fn, 'fn_name', 'call')}"

    # -- public API ------------------------------------------------------------------------

    def estimate_gas(self, fn: ContractFunction | ContractConstructor, *, value: int = 0,
                     label: str | None = None) -> int:
        """Gas estimate with the margin applied; a revert raises :class:`ContractRevertError`."""
        label = self._label(fn, label)
        params: TxParams = {"from": self.account.address, "value": value}  # type: ignore[typeddict-item]
        try:
            estimate = int(self._retry(lambda: fn.estimate_gas(params), f"estimate gas of {label}"))
        except ChainError:
            raise
        except Exception as exc:  # translated: a revert is decoded, anything else named
            if _is_revert(exc):
                raise self.decoder.error(label, revert_data(exc)) from None
            raise ChainError(f"{label}: gas estimation failed for sender {self.address}: "
                             f"{type(exc).__name__}: {exc} (check the account's ETH balance and "
                             "the call's arguments)") from exc
        block_limit = int(self.w3.eth.get_block("latest")["gasLimit"])
        return min(int(estimate * self.gas_margin) + 5_000, block_limit)

    def transact(
        self,
        fn: ContractFunction,
        *,
        value: int = 0,
        gas: int | None = None,
        label: str | None = None,
    ) -> TxReceipt:
        """Estimate, sign, send and wait; returns the receipt of a successful transaction.

        Raises :class:`ContractRevertError` (decoded) if the call reverts at estimation or in the
        mined transaction, :class:`TransactionTimeoutError` if no receipt arrives in time,
        :class:`~orchestrator.chain.errors.ChainConnectionError` after retries of transport errors.
        """
        label = self._label(fn, label)
        gas = gas if gas is not None else self.estimate_gas(fn, value=value, label=label)
        base: dict[str, Any] = {"from": self.account.address, "value": value, "gas": gas}

        def build(nonce: int) -> dict[str, Any]:
            return dict(fn.build_transaction(cast(TxParams, {**base, **self.fee_fields(),
                                                             "nonce": nonce, "chainId": self.chain_id})))

        return self._send_and_wait(build, label)

    def send(self, to: str, *, value: int = 0, data: bytes = b"", gas: int | None = None) -> TxReceipt:
        """A plain transaction (e.g. an ETH transfer) through the same nonce and fee path."""
        to = to_checksum_address(to)
        label = f"transfer to {to}"
        params = {"from": self.account.address, "to": to, "value": value, "data": data}
        if gas is None:
            gas = int(self._retry(lambda: self.w3.eth.estimate_gas(cast(TxParams, params)), label))
            gas = int(gas * self.gas_margin) + 5_000

        def build(nonce: int) -> dict[str, Any]:
            tx = {**params, "gas": gas, "nonce": nonce, "chainId": self.chain_id, **self.fee_fields()}
            tx.pop("from")
            return tx

        return self._send_and_wait(build, label)

    def deploy_with_receipt(self, artifact: Artifact, *args: Any, value: int = 0) -> tuple[Contract, TxReceipt]:
        """Deploy ``artifact`` with constructor ``args``; returns the contract and the receipt."""
        if not artifact.deployable:
            raise ChainError(f"{artifact.name} has no creation bytecode (an interface or abstract contract?)")
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        ctor = factory.constructor(*args)
        label = f"{artifact.name}.constructor"
        gas = self.estimate_gas(ctor, value=value, label=label)
        base = {"from": self.account.address, "value": value, "gas": gas}

        def build(nonce: int) -> dict[str, Any]:
            return dict(ctor.build_transaction(cast(TxParams, {**base, **self.fee_fields(),
                                                               "nonce": nonce, "chainId": self.chain_id})))

        receipt = self._send_and_wait(build, label)
        address = receipt["contractAddress"]
        if address is None:
            raise ChainError(f"deploying {artifact.name}: the receipt has no contract address")
        register_contract_name(self.w3, address, artifact.name)
        contract = self.w3.eth.contract(address=address, abi=artifact.abi)
        log.info("deployed %s at %s (block %d)", artifact.name, address, receipt["blockNumber"])
        return contract, receipt

    def deploy(self, artifact: Artifact, *args: Any, value: int = 0) -> Contract:
        """Deploy ``artifact`` with constructor ``args``; returns the web3 contract."""
        return self.deploy_with_receipt(artifact, *args, value=value)[0]

    # -- internals -------------------------------------------------------------------------

    def _send_signed(self, build: Any, label: str) -> tuple[HexBytes, dict[str, Any]]:
        """Allocate a nonce, sign and send under the lock; resync the nonce on nonce errors."""
        with self._lock:
            resyncs = 0
            while True:
                if self._nonce is None:
                    self.resync_nonce()
                nonce = cast(int, self._nonce)
                tx = build(nonce)
                signed = self.account.sign_transaction(tx)
                tx_hash = HexBytes(signed.hash)
                try:
                    self._retry(lambda: self.w3.eth.send_raw_transaction(signed.raw_transaction),
                                f"send {label}")
                except ChainError:
                    raise
                except Exception as exc:  # nonce errors are handled, the rest named and raised
                    if not _NONCE_ERROR.search(str(exc)):
                        raise ChainError(
                            f"{label}: the node rejected the transaction from {self.address} "
                            f"(nonce {nonce}): {type(exc).__name__}: {exc}; check the account's ETH "
                            "balance and the fee settings"
                        ) from exc
                    if self._is_known(tx_hash):
                        # A retried send of a transaction that had in fact arrived.
                        break
                    resyncs += 1
                    if resyncs > self.nonce_resyncs:
                        raise NonceError(
                            f"{label}: nonce {nonce} of {self.address} rejected ({exc}) and still "
                            f"wrong after {self.nonce_resyncs} resyncs; is another process sending "
                            "from this account at the same time?"
                        ) from exc
                    old = nonce
                    new = self.resync_nonce()
                    log.warning("%s: nonce %d rejected (%s); resynced to %d", label, old, exc, new)
                    continue
                break
            self._nonce = nonce + 1
            log.debug("sent %s nonce=%d tx=%s", label, nonce, tx_hash.to_0x_hex())
            return tx_hash, tx

    def _is_known(self, tx_hash: HexBytes) -> bool:
        try:
            self.w3.eth.get_transaction(tx_hash)
        except (TransactionNotFound, Web3Exception, ValueError):
            return False
        return True

    def _send_and_wait(self, build: Any, label: str) -> TxReceipt:
        tx_hash, tx = self._send_signed(build, label)
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(
                tx_hash, timeout=self.receipt_timeout, poll_latency=self.poll_latency
            )
        except TimeExhausted:
            # Whether it is still pending or was dropped, the chain's pending count is right now.
            with self._lock:
                self._nonce = None
            raise TransactionTimeoutError(
                f"{label}: no receipt for {tx_hash.to_0x_hex()} after {self.receipt_timeout:.0f}s; "
                "the transaction may still be mined (check the node's mempool and the gas price)"
            ) from None
        if receipt["status"] != 1:
            raise self._mined_revert(tx, receipt, label, tx_hash.to_0x_hex())
        return receipt

    def _mined_revert(self, tx: Mapping[str, Any], receipt: TxReceipt, label: str, tx_hash: str
                      ) -> ContractRevertError:
        """Decode why a mined transaction failed by replaying it against the block's state."""
        call: dict[str, Any] = {"from": self.account.address, "value": tx.get("value", 0),
                                "data": tx.get("data", b""), "gas": tx["gas"]}
        if tx.get("to"):
            call["to"] = tx["to"]
        data: bytes | None = None
        note = ""
        try:
            self.w3.eth.call(cast(TxParams, call), block_identifier=receipt["blockNumber"])
            note = " (status 0; replaying it did not revert"
            if receipt["gasUsed"] >= tx["gas"]:
                note += f"; it used all {tx['gas']} gas: out of gas?"
            note += ")"
        except Exception as exc:  # the replay's revert is what we are after
            if not _is_revert(exc):
                raise
            data = revert_data(exc)
        return self.decoder.error(label, data, tx_hash=tx_hash, note=note)
