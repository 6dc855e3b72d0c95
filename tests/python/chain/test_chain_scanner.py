"""EventScanner on the in-process chain: order, chunking, persistence, confirmations, handlers.

The reorg test needs evm_snapshot/evm_revert on a real node and lives in test_anvil.py.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3
from web3.contract import Contract
from web3.middleware.base import Web3Middleware

from orchestrator.chain import (
    Event,
    EventScanner,
    ScannerHaltedError,
    Transactor,
    mine,
)

TAG = b"\x11" * 32


def _scanner(w3: Web3, probe: Contract, db: Path, **kw: Any) -> EventScanner:
    return EventScanner(w3, [(probe, "Pinged"), (probe, "ValueSet")], db, "test", **kw)


def _ping(transactor: Transactor, probe: Contract, *ids: int) -> None:
    for i in ids:
        transactor.transact(probe.functions.ping(i, TAG))


def test_poll_returns_decoded_events_in_chain_order(
    w3: Web3, transactor: Transactor, probe: Contract, tmp_path: Path
) -> None:
    _ping(transactor, probe, 1)
    transactor.transact(probe.functions.setValue(77))
    transactor.transact(probe.functions.pingMany(10, 3, TAG))  # three logs in one transaction
    scanner = _scanner(w3, probe, tmp_path / "s.db")
    events = scanner.poll()
    assert [(e.name, e.args.get("id")) for e in events] == [
        ("Pinged", 1), ("ValueSet", None), ("Pinged", 10), ("Pinged", 11), ("Pinged", 12)]
    assert [(e.block, e.log_index) for e in events] == sorted((e.block, e.log_index) for e in events)
    value_set = events[1]
    assert value_set.contract == "ChainProbe" and value_set.address == probe.address
    assert value_set.args == {"setter": transactor.address, "oldValue": 0, "newValue": 77}
    assert events[0].args == {"id": 1, "sender": transactor.address, "tag": TAG}
    # Not marked processed yet: the same events again.
    assert [e.key for e in scanner.poll()] == [e.key for e in events]


def test_chunking_covers_the_range_exactly_in_chunks_of_at_most_chunk_size(
    w3: Web3, transactor: Transactor, probe: Contract, tmp_path: Path
) -> None:
    start = w3.eth.block_number + 1
    for i in range(5):
        _ping(transactor, probe, i)
        mine(w3, 2)
    head = w3.eth.block_number
    scanner = _scanner(w3, probe, tmp_path / "s.db", chunk_size=4, start_block=start)
    events = scanner.poll()
    assert [e.args["id"] for e in events] == [0, 1, 2, 3, 4]
    ranges = scanner.stats.ranges
    assert ranges[0][0] == start and ranges[-1][1] == head
    assert all(b - a + 1 <= 4 for a, b in ranges)
    assert all(nxt[0] == prev[1] + 1 for prev, nxt in zip(ranges, ranges[1:]))
    assert len(ranges) == -(-(head - start + 1) // 4)
    assert scanner.cursor() == (head, w3.eth.get_block(head)["hash"].to_0x_hex())


class _RangeLimit(Web3Middleware):
    """Fault injection: a node that refuses eth_getLogs over more than 4 blocks (as hosted RPCs
    do with their block-range caps). eth-tester has no such limit, so it is simulated here."""

    def request_processor(self, method: str, params: Any) -> Any:
        if method == "eth_getLogs":
            lo, hi = (int(params[0][k], 0) if isinstance(params[0][k], str) else int(params[0][k])
                      for k in ("fromBlock", "toBlock"))
            if hi - lo + 1 > 4:
                raise ValueError(f"query exceeds max block range 4 ({lo}..{hi})")
        return method, params


def test_range_shrinks_when_the_node_refuses_a_large_range(
    w3: Web3, transactor: Transactor, probe: Contract, tmp_path: Path
) -> None:
    for i in range(6):
        _ping(transactor, probe, i)
        mine(w3, 2)
    w3.middleware_onion.add(_RangeLimit, name="range_limit")
    scanner = _scanner(w3, probe, tmp_path / "s.db", chunk_size=64)
    events = scanner.poll()
    assert [e.args["id"] for e in events] == list(range(6))
    assert scanner.stats.range_shrinks >= 4  # 64 -> 32 -> 16 -> 8 -> 4
    head = w3.eth.block_number
    assert scanner.cursor()[0] == head


def test_a_recreated_scanner_continues_without_duplicates_or_misses(
    w3: Web3, transactor: Transactor, probe: Contract, tmp_path: Path
) -> None:
    db = tmp_path / "state.db"
    _ping(transactor, probe, 1, 2, 3, 4, 5)
    first = _scanner(w3, probe, db)
    seen = first.poll()
    assert [e.args["id"] for e in seen] == [1, 2, 3, 4, 5]
    for event in seen[:3]:
        first.mark_processed(event)
    first.close()  # the daemon stops (or crashes) with 4 and 5 unhandled

    _ping(transactor, probe, 6, 7)
    second = _scanner(w3, probe, db)
    again = second.poll()
    assert [e.args["id"] for e in again] == [4, 5, 6, 7]
    second.mark_processed_many(again)
    assert second.poll() == []
    second.close()

    third = _scanner(w3, probe, db)
    assert third.poll() == []
    assert third.processed_count() == 7
    # A scanner with another name in the same file has its own state.
    other = EventScanner(w3, [(probe, "Pinged")], db, "other")
    assert [e.args["id"] for e in other.poll()] == [1, 2, 3, 4, 5, 6, 7]


def test_confirmations_hold_events_back_until_deep_enough(
    w3: Web3, transactor: Transactor, probe: Contract, tmp_path: Path
) -> None:
    scanner = _scanner(w3, probe, tmp_path / "s.db", confirmations=2)
    _ping(transactor, probe, 1)
    ping_block = w3.eth.block_number
    assert scanner.poll() == []
    mine(w3, 1)
    assert scanner.poll() == []
    mine(w3, 1)
    (event,) = scanner.poll()
    assert event.block == ping_block and w3.eth.block_number - event.block == 2


def test_run_dispatches_by_event_name_and_marks_processed(
    w3: Web3, transactor: Transactor, probe: Contract, tmp_path: Path
) -> None:
    _ping(transactor, probe, 1, 2)
    transactor.transact(probe.functions.setValue(9))
    scanner = _scanner(w3, probe, tmp_path / "s.db")
    stop = threading.Event()
    handled: list[tuple[str, Any]] = []

    def on_ping(e: Event) -> None:
        handled.append(("ping", e.args["id"]))

    def on_value(e: Event) -> None:
        handled.append(("value", e.args["newValue"]))
        stop.set()

    thread = threading.Thread(target=scanner.run, args=({"Pinged": on_ping, "ChainProbe.ValueSet": on_value},
                                                         stop, 0.01))
    thread.start()
    thread.join(timeout=20)
    assert not thread.is_alive()
    assert handled == [("ping", 1), ("ping", 2), ("value", 9)]
    assert scanner.processed_count() == 3 and scanner.poll() == []


def test_failing_handler_is_retried_then_dead_lettered_and_order_is_kept(
    w3: Web3, transactor: Transactor, probe: Contract, tmp_path: Path
) -> None:
    _ping(transactor, probe, 1, 2, 3)
    scanner = _scanner(w3, probe, tmp_path / "s.db", max_attempts=3, breaker_threshold=10)
    stop = threading.Event()
    calls: list[int] = []

    def handler(e: Event) -> None:
        calls.append(e.args["id"])
        if e.args["id"] == 2:
            raise RuntimeError("IPFS unreachable")
        if e.args["id"] == 3:
            stop.set()

    scanner.run({"Pinged": handler}, stop, poll_interval=0)
    # 2 failed three times (one per poll) before 3 was touched; then it was given up on.
    assert calls == [1, 2, 2, 2, 3]
    (dead, attempts, error), = scanner.dead_letters()
    assert dead.args["id"] == 2 and attempts == 3 and "IPFS unreachable" in error
    assert scanner.stats.handler_failures == 3 and scanner.stats.dead_lettered == 1
    assert scanner.poll() == []  # 1 and 3 processed, 2 dead: nothing left


def test_circuit_breaker_stops_the_loop_after_consecutive_failures(
    w3: Web3, transactor: Transactor, probe: Contract, tmp_path: Path
) -> None:
    _ping(transactor, probe, 1)
    scanner = _scanner(w3, probe, tmp_path / "s.db", max_attempts=10, breaker_threshold=3)
    calls: list[int] = []

    def broken(e: Event) -> None:
        calls.append(e.args["id"])
        raise ValueError("bad config")

    with pytest.raises(ScannerHaltedError, match="3 consecutive handler failures"):
        scanner.run({"Pinged": broken}, threading.Event(), poll_interval=0)
    assert calls == [1, 1, 1]
    assert scanner.processed_count() == 0
    assert [e.args["id"] for e in scanner.poll()] == [1]  # still pending for after the fix


def test_unknown_event_name_is_a_clear_error(w3: Web3, probe: Contract, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no event 'Pong'"):
        EventScanner(w3, [(probe, "Pong")], tmp_path / "s.db", "x")


def test_pending_events_of_an_unsubscribed_event_are_dropped_after_reconfiguration(
    w3: Web3, transactor: Transactor, probe: Contract, tmp_path: Path
) -> None:
    db = tmp_path / "s.db"
    _ping(transactor, probe, 1)
    transactor.transact(probe.functions.setValue(3))
    assert [e.name for e in _scanner(w3, probe, db).poll()] == ["Pinged", "ValueSet"]
    narrower = EventScanner(w3, [(probe, "ValueSet")], db, "test")  # same name, fewer events
    assert [e.name for e in narrower.poll()] == ["ValueSet"]
