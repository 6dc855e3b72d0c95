"""Batched view calls through Multicall3: many contract reads in one ``eth_call``.

A daemon that reads a round's state for N organisations makes O(N) JSON-RPC round trips with
plain ``fn.call()``; :func:`batch_call` makes ceil(N / ``chunk``) of them, every read of a chunk
answered from the same block. Where the protocol's manifest lists a ``Multicall3`` (the deploy
scripts deploy contracts/Multicall3.sol on local chains) that one is used; else the canonical
Multicall3 at :data:`CANONICAL_ADDRESS` if the chain has code there; else the reads fall back to
one call each (same results, more round trips).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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


def _output_types(fn: Any) -> list[str]:
    from eth_utils.abi import get_abi_output_types

    return list(get_abi_output_types(fn.abi))


def _decode(w3: Web3, fn: Any, data: bytes) -> Any:
    types = _output_types(fn)
    values = w3.codec.decode(types, data)
    return values[0] if len(values) == 1 else list(values)


def batch_call(w3: Web3, fns: Sequence[Any], *, protocol: Any = None, chunk: int = 400,
               block: int | str = "latest") -> list[Any]:
    """The results of the bound view calls ``fns`` (``contract.functions.f(args)``), in order.

    Exactly what ``[fn.call() for fn in fns]`` returns, in fewer round trips. A failing call
    raises :class:`ChainError` naming it.
    """
    fns = list(fns)
    if not fns:
        return []
    address = multicall_address(w3, protocol)
    if address is None:
        return [fn.call(block_identifier=block) for fn in fns]
    multicall = w3.eth.contract(address=Web3.to_checksum_address(address), abi=AGGREGATE3_ABI)
    results: list[Any] = []
    for start in range(0, len(fns), chunk):
        part = fns[start : start + chunk]
        calls = [(fn.address, True, fn._encode_transaction_data()) for fn in part]
        answers = multicall.functions.aggregate3(calls).call(block_identifier=block)
        for fn, (ok, data) in zip(part, answers, strict=True):
            if not ok:
                raise ChainError(f"batched call {fn.fn_name}{tuple(fn.args)} on {fn.address} reverted")
            results.append(_decode(w3, fn, bytes(data)))
    return results
