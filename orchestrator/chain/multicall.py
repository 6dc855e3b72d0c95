"""Batched view calls through Multicall3: many contract reads in one ``eth_call``.

A daemon that reads a round's state for N organisations makes O(N) JSON-RPC round trips with
plain ``fn.call()``; :func:`batch_call` makes ceil(N / ``chunk``) of them, every read of a chunk
answered from the same block. Where the protocol's manifest lists a ``Multicall3`` (the deploy
scripts deploy contracts/Multicall3.sol on local chains) that one is used; else the canonical
Multicall3 at :data:`CANONICAL_ADDRESS` if the chain has code there; else the reads fall back to
one call each (same results, more round trips).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from hexbytes import HexBytes
from web3 import Web3

from orchestrator.chain.errors import ChainError

CANONICAL_ADDRESS = "0xcA11bde05977b3631167028862bE2a173976CA11"

#: The ``aggregate3`` entry of Multicall3's ABI (same on the canonical and the local contract).
AGGREGATE3_ABI = [{
    "type": "function", "name": "aggregate3", "stateMutability": "payable",
    "inputs": [{"name": "calls", "type": "tuple[]", "components": [
        {"name": "target", "type": "address"}, {"name": "allowFailure", "type": "bool"},
        {"name": "callData", "type": "bytes"}]}],
    "outputs": [{"name": "returnData", "type": "tuple[]", "components": [
        {"name": "success", "type": "bool"}, {"name": "returnData", "type": "bytes"}]}],
}]

_resolved: dict[tuple[int, str], str | None] = {}


def multicall_address(w3: Web3, protocol: Any = None) -> str | None:
    """The Multicall3 to use on ``w3``'s chain, or None when there is none (cached per chain)."""
    manifest = getattr(protocol, "manifest", None)
    if manifest is not None and "Multicall3" in manifest.contracts:
        return str(manifest.contracts["Multicall3"].address)
    key = (id(w3), "canonical")
    if key not in _resolved:
        code = w3.eth.get_code(Web3.to_checksum_address(CANONICAL_ADDRESS))
        _resolved[key] = CANONICAL_ADDRESS if len(code) > 0 else None
    return _resolved[key]


#: 4-byte selector of ``aggregate3((address,bool,bytes)[])``
AGGREGATE3_SELECTOR = bytes.fromhex("82ad56cb")


@functools.lru_cache(maxsize=512)
def _codec_of(abi_json: str) -> tuple[bytes, tuple[str, ...], tuple[str, ...]]:
    """(selector, input types, output types) of one function ABI entry (cached: the encoding
    through web3's normalisers costs ~2 ms a call, most of a large batch's time)."""
    from eth_utils.abi import collapse_if_tuple, function_abi_to_4byte_selector

    abi = json.loads(abi_json)
    return (function_abi_to_4byte_selector(abi), tuple(collapse_if_tuple(i) for i in abi.get("inputs", [])),
            tuple(collapse_if_tuple(o) for o in abi.get("outputs", [])))


def _codec(fn: Any) -> tuple[bytes, tuple[str, ...], tuple[str, ...]]:
    return _codec_of(json.dumps(fn.abi, sort_keys=True))


def calldata(fn: Any) -> bytes:
    """The call data of a bound contract function (``contract.functions.f(args)``)."""
    if getattr(fn, "kwargs", None):  # keyword arguments: let web3 order them
        return bytes(HexBytes(fn._encode_transaction_data()))
    selector, types, _ = _codec(fn)
    return selector + abi_encode(list(types), list(fn.args))


def _decode(fn: Any, data: bytes) -> Any:
    types = _codec(fn)[2]
    values = [_checksummed(t, v) for t, v in zip(types, abi_decode(list(types), data), strict=True)]
    return values[0] if len(values) == 1 else values


def _checksummed(abi_type: str, value: Any) -> Any:
    """Addresses as web3's ``call()`` returns them (checksummed), also inside arrays and tuples."""
    if abi_type == "address":
        return Web3.to_checksum_address(value)
    if abi_type.endswith("]"):
        inner = abi_type[: abi_type.rindex("[")]
        return [_checksummed(inner, v) for v in value]
    if abi_type.startswith("("):
        return tuple(_checksummed(t, v) for t, v in zip(_tuple_types(abi_type), value, strict=True))
    return value


def _tuple_types(abi_type: str) -> list[str]:
    """The component types of a tuple type string such as ``(address,(uint256,bool)[],bytes)``."""
    parts, depth, current = [], 0, ""
    for ch in abi_type[1:-1]:
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        current += ch
    return [*parts, current] if current else parts


def batch_call(w3: Web3, fns: Sequence[Any], *, protocol: Any = None, chunk: int = 400,
               block: int | str = "latest") -> list[Any]:
    """The results of the bound view calls ``fns`` (``contract.functions.f(args)``), in order.

    Exactly what ``[fn.call() for fn in fns]`` returns, in fewer round trips. A failing call
    raises :class:`ChainError` naming it. The call data is encoded with eth-abi directly (web3's
    per-call normalisation would cost more than the round trips it saves).
    """
    fns = list(fns)
    if not fns:
        return []
    address = multicall_address(w3, protocol)
    if address is None:
        return [fn.call(block_identifier=block) for fn in fns]
    target = Web3.to_checksum_address(address)
    results: list[Any] = []
    for start in range(0, len(fns), chunk):
        part = fns[start : start + chunk]
        calls = [(fn.address, True, calldata(fn)) for fn in part]
        raw = w3.eth.call({"to": target, "data": AGGREGATE3_SELECTOR + abi_encode(["(address,bool,bytes)[]"], [calls])},
                          block_identifier=block)
        (answers,) = abi_decode(["(bool,bytes)[]"], bytes(raw))
        for fn, (ok, data) in zip(part, answers, strict=True):
            if not ok:
                raise ChainError(f"batched call {fn.fn_name}{tuple(fn.args)} on {fn.address} reverted")
            results.append(_decode(fn, bytes(data)))
    return results
