"""A resumable, reorg-aware event scanner with idempotent delivery (the daemons' input).

Structure after web3.py's "event scanner" example (persisted cursor, chunked ``eth_getLogs``,
rescanning recent blocks for reorgs, shrinking the range on errors) and silverback's handler
loop (handlers per event, failures counted, a circuit breaker).

State lives in one SQLite file (WAL mode, synchronous=NORMAL; several scanners may share it, keyed by ``name``):

* ``cursor``     the highest block whose logs have been fetched, and that block's hash;
* ``pending``    fetched logs that are not yet processed (raw log JSON, attempts, last error);
* ``processed``  the ``(tx_hash, log_index)`` set of events a handler has completed;
* ``dead``       events set aside after ``max_attempts`` handler failures; each is moved back to
                 ``pending`` after an exponential backoff (``dead_letter_backoff``; the cause,
                 e.g. a missing stake, may be gone by then), or at once by :meth:`requeue_dead_letters`
                 (``python -m orchestrator daemon dead-letters --requeue``);
* ``binding``    the deployment the state belongs to: chain id, genesis block hash, hash of the
                 start (deployment) block and the contract addresses. A state directory reused
                 after a chain reset or a redeploy is refused with :class:`StateMismatchError`
                 instead of being taken for a reorg (which would silently skip earlier events).

Fetched logs enter ``pending`` in the same SQLite transaction that moves the cursor past their
block, so a crash between two steps can neither lose an event (it stays pending and is
delivered again) nor deliver a processed one twice (the processed set is checked on insert
and on delivery). Delivery is therefore at-least-once for unprocessed events and never again
for processed ones; handlers should still be idempotent for the window between their side
effect and ``mark_processed``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_utils import event_abi_to_log_topic, to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.datastructures import AttributeDict
from web3.exceptions import BlockNotFound

from orchestrator.chain.artifacts import contract_name
from orchestrator.chain.errors import ChainConnectionError, ChainError, ScannerHaltedError, StateMismatchError
from orchestrator.chain.retry import retry

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cursor (
    scanner TEXT PRIMARY KEY, block INTEGER NOT NULL, block_hash TEXT NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS pending (
    scanner TEXT NOT NULL, tx_hash TEXT NOT NULL, log_index INTEGER NOT NULL, block INTEGER NOT NULL,
    log_json TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,
    PRIMARY KEY (scanner, tx_hash, log_index));
CREATE TABLE IF NOT EXISTS processed (
    scanner TEXT NOT NULL, tx_hash TEXT NOT NULL, log_index INTEGER NOT NULL, block INTEGER NOT NULL,
    processed_at REAL NOT NULL, PRIMARY KEY (scanner, tx_hash, log_index));
CREATE TABLE IF NOT EXISTS dead (
    scanner TEXT NOT NULL, tx_hash TEXT NOT NULL, log_index INTEGER NOT NULL, block INTEGER NOT NULL,
    log_json TEXT NOT NULL, attempts INTEGER NOT NULL, last_error TEXT, failed_at REAL NOT NULL,
    PRIMARY KEY (scanner, tx_hash, log_index));
CREATE TABLE IF NOT EXISTS binding (
    scanner TEXT PRIMARY KEY, chain_id INTEGER NOT NULL, genesis_hash TEXT NOT NULL,
    start_block INTEGER NOT NULL, start_hash TEXT NOT NULL, addresses TEXT NOT NULL, bound_at REAL NOT NULL);
"""
#: Columns added after the first release (created on open when missing).
_MIGRATIONS = (
    ("pending", "requeues", "INTEGER NOT NULL DEFAULT 0"),
    ("dead", "requeues", "INTEGER NOT NULL DEFAULT 0"),
    ("dead", "retry_at", "REAL"),
)


@dataclass(frozen=True)
class DeadLetter:
    """An event set aside after repeated handler failures (raw log, no ABI needed to list it)."""

    scanner: str
    tx_hash: str
    log_index: int
    block: int
    address: str
    topic: str
    attempts: int
    requeues: int
    last_error: str
    failed_at: float
    retry_at: float | None

    @property
    def id(self) -> str:
        """Short, stable id for the CLI: the first 10 hex digits of the tx hash and the log index."""
        return f"{self.tx_hash[:10]}:{self.log_index}"

    def matches(self, ident: str) -> bool:
        tx, _, index = ident.partition(":")
        return bool(tx) and self.tx_hash.lower().startswith(tx.lower()) and (not index or index == str(self.log_index))


class DeadLetterStore:
    """The set-aside events of every scanner in one state database, without a chain connection."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self.path = path

    @classmethod
    def open(cls, path: Path) -> DeadLetterStore:
        path = Path(path)
        if not path.is_file():
            raise StateMismatchError(f"no daemon state database at {path}")
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        _migrate(db)
        return cls(db, path)

    def list(self, scanner: str | None = None) -> list[DeadLetter]:
        rows = self._db.execute(
            "SELECT scanner, tx_hash, log_index, block, log_json, attempts, requeues, last_error, failed_at, retry_at "
            "FROM dead WHERE (? IS NULL OR scanner=?) ORDER BY block, log_index", (scanner, scanner)).fetchall()
        out = []
        for name, tx, index, block, log_json, attempts, requeues, error, failed_at, retry_at in rows:
            raw = json.loads(log_json)
            out.append(DeadLetter(name, tx, int(index), int(block), raw["address"], (raw["topics"] or [""])[0],
                                  int(attempts), int(requeues), str(error or ""), float(failed_at),
                                  None if retry_at is None else float(retry_at)))
        return out

    def requeue(self, letters: Sequence[DeadLetter]) -> list[DeadLetter]:
        """Move ``letters`` back to pending (attempts reset); they are delivered on the next poll."""
        with _Transaction(self._db):
            for d in letters:
                self._db.execute(
                    "INSERT OR REPLACE INTO pending(scanner, tx_hash, log_index, block, log_json, attempts, "
                    "last_error, requeues) SELECT scanner, tx_hash, log_index, block, log_json, 0, last_error, "
                    "requeues + 1 FROM dead WHERE scanner=? AND tx_hash=? AND log_index=?",
                    (d.scanner, d.tx_hash, d.log_index))
                self._db.execute("DELETE FROM dead WHERE scanner=? AND tx_hash=? AND log_index=?",
                                 (d.scanner, d.tx_hash, d.log_index))
        return list(letters)

    def close(self) -> None:
        self._db.close()


def _migrate(db: sqlite3.Connection) -> None:
    db.executescript(_SCHEMA)
    for table, column, decl in _MIGRATIONS:
        if column not in {r[1] for r in db.execute(f"PRAGMA table_info({table})")}:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")



@dataclass(frozen=True)
class Event:
    """One decoded contract event, as handed to handlers."""

    block: int
    block_hash: str
    tx_hash: str
    log_index: int
    contract: str  # registered contract name (Protocol / Transactor.deploy) or its address
    address: str
    name: str
    args: dict[str, Any]

    @property
    def key(self) -> tuple[str, int]:
        """Identity of the event in the processed set."""
        return (self.tx_hash, self.log_index)


@dataclass
class ScannerStats:
    """Counters of one scanner instance (since it was created)."""

    log_requests: int = 0
    range_shrinks: int = 0
    reorgs: int = 0
    delivered: int = 0
    handler_failures: int = 0
    dead_lettered: int = 0
    ranges: list[tuple[int, int]] = field(default_factory=list)


def _plain(value: Any) -> Any:
    if isinstance(value, AttributeDict | dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, HexBytes):
        return bytes(value)
    return value


def _hex(value: Any) -> str:
    return HexBytes(value).to_0x_hex()


class EventScanner:
    """Delivers the events ``contract_events`` = [(contract, event name), ...] exactly once each.

    ``confirmations`` keeps the scanner that many blocks behind the head (blocks that deep are
    unlikely to be reorganised); ``reorg_depth`` is how far it rewinds when the block under its
    cursor has changed. ``start_block`` is where a new state starts (a deployment block).
    ``max_attempts`` handler failures dead-letter an event; ``breaker_threshold`` consecutive
    failures stop :meth:`run` with :class:`ScannerHaltedError`. ``dead_letter_backoff`` =
    (first, largest) seconds after which a dead letter is retried (doubling per requeue).
    ``deployment`` (contract name -> address, e.g. the manifest's) is part of the state's binding.
    """

    def __init__(
        self,
        w3: Web3,
        contract_events: Sequence[tuple[Contract, str]],
        state_db: Path,
        name: str,
        confirmations: int = 0,
        chunk_size: int = 1000,
        reorg_depth: int = 10,
        *,
        start_block: int = 0,
        max_attempts: int = 3,
        breaker_threshold: int = 5,
        rpc_attempts: int = 3,
        rpc_backoff: float = 0.25,
        dead_letter_backoff: tuple[float, float] = (60.0, 3600.0),
        deployment: Mapping[str, str] | None = None,
    ) -> None:
        if not contract_events:
            raise ValueError("contract_events is empty: give at least one (contract, event name)")
        for label, val, low in (("confirmations", confirmations, 0), ("chunk_size", chunk_size, 1),
                                ("reorg_depth", reorg_depth, 0), ("start_block", start_block, 0),
                                ("max_attempts", max_attempts, 1), ("breaker_threshold", breaker_threshold, 1)):
            if val < low:
                raise ValueError(f"{label} must be >= {low}, got {val}")
        if not name:
            raise ValueError("scanner name must be non-empty (it keys the state in the database)")
        self.w3 = w3
        self.name = name
        self.confirmations = confirmations
        self.chunk_size = chunk_size
        self.reorg_depth = reorg_depth
        self.start_block = start_block
        self.max_attempts = max_attempts
        self.breaker_threshold = breaker_threshold
        self.rpc_attempts = rpc_attempts
        self.rpc_backoff = rpc_backoff
        self.dead_letter_backoff = dead_letter_backoff
        self.deployment = dict(deployment or {})
        self._bound = False
        self.stats = ScannerStats()
        self._lock = threading.RLock()
        self._chunk = chunk_size
        self.head: int | None = None  # chain head seen by the last poll

        # (address, topic0) -> (contract, event name); an event name may repeat across contracts.
        self._routes: dict[tuple[str, str], tuple[Contract, str]] = {}
        for contract, event_name in contract_events:
            abis = [e for e in contract.abi if e.get("type") == "event" and e.get("name") == event_name]
            if not abis:
                raise ValueError(
                    f"contract at {contract.address} has no event {event_name!r} in its ABI "
                    f"(events: {sorted({e['name'] for e in contract.abi if e.get('type') == 'event'})})"
                )
            for abi in abis:
                topic = "0x" + event_abi_to_log_topic(abi).hex()  # type: ignore[arg-type]
                self._routes[(to_checksum_address(contract.address), topic)] = (contract, event_name)
        self._addresses = sorted({a for a, _ in self._routes})
        self._topics = sorted({t for _, t in self._routes})

        self.state_db = Path(state_db)
        self.state_db.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.state_db, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a commit survives a crash of the process (the restart case); after a
        # power loss the last commits may roll back atomically, which re-delivers (never loses)
        # events, because pending rows and the cursor move in one transaction. FULL would fsync
        # every mark_processed (about 3 ms each here).
        self._db.execute("PRAGMA synchronous=NORMAL")
        _migrate(self._db)
        self._dead = DeadLetterStore(self._db, self.state_db)

    # -- database --------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> EventScanner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tx(self) -> _Transaction:
        return _Transaction(self._db)

    def cursor(self) -> tuple[int, str] | None:
        """``(block, block hash)`` of the last fetched block, or None before the first poll."""
        row = self._db.execute("SELECT block, block_hash FROM cursor WHERE scanner=?", (self.name,)).fetchone()
        return (int(row[0]), str(row[1])) if row else None

    def _set_cursor(self, block: int, block_hash: str) -> None:
        self._db.execute(
            "INSERT INTO cursor(scanner, block, block_hash, updated_at) VALUES (?,?,?,?) "
            "ON CONFLICT(scanner) DO UPDATE SET block=excluded.block, block_hash=excluded.block_hash, "
            "updated_at=excluded.updated_at",
            (self.name, block, block_hash, time.time()),
        )

    def position(self) -> tuple[int | None, int | None]:
        """``(head seen by the last poll, cursor block)``: their difference is the scanner's lag."""
        cursor = self.cursor()
        return self.head, (cursor[0] if cursor else None)

    def is_processed(self, event: Event) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM processed WHERE scanner=? AND tx_hash=? AND log_index=?",
            (self.name, event.tx_hash, event.log_index),
        ).fetchone()
        return row is not None

    def processed_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM processed WHERE scanner=?", (self.name,)).fetchone()[0])

    def dead_letters(self) -> list[tuple[Event, int, str]]:
        """Events given up on: ``(event, attempts, last error)``."""
        rows = self._db.execute(
            "SELECT log_json, attempts, last_error FROM dead WHERE scanner=? ORDER BY block, log_index",
            (self.name,),
        ).fetchall()
        return [(self._decode(json.loads(r[0])), int(r[1]), str(r[2])) for r in rows]

    def set_aside(self) -> list[DeadLetter]:
        """The dead letters of this scanner with their attempts, requeues and next retry time."""
        return self._dead.list(self.name)

    def requeue_dead_letters(self, ident: str | None = None, *, due_only: bool = False) -> list[DeadLetter]:
        """Move set-aside events back to pending: all, the one ``ident`` names, or those due.

        ``due_only`` takes only those whose backoff (``retry_at``) has passed; the daemons call
        it on every poll, and with no argument once when they start.
        """
        with self._lock:
            letters = self._dead.list(self.name)
            if ident is not None:
                letters = [d for d in letters if d.matches(ident)]
            if due_only:
                now = time.time()
                letters = [d for d in letters if d.retry_at is not None and d.retry_at <= now]
            if letters:
                self._dead.requeue(letters)
                log.info("scanner %s: retrying %d set-aside event(s): %s", self.name, len(letters),
                         ", ".join(d.id for d in letters))
            return letters

    # -- deployment binding ------------------------------------------------------------------

    def _binding(self) -> tuple[int, str, int, str, str]:
        chain_id = int(self._rpc(lambda: self.w3.eth.chain_id, "eth_chainId"))
        genesis = self._block_hash(0) or ""
        start = self._block_hash(self.start_block) or ""
        addresses = json.dumps({**{str(k): to_checksum_address(v) for k, v in sorted(self.deployment.items())},
                                "subscribed": self._addresses}, sort_keys=True)
        return chain_id, genesis, self.start_block, start, addresses

    def bind(self) -> None:
        """Check (or, on first use, record) that this state belongs to the chain and deployment."""
        if self._bound:
            return
        current = self._binding()
        with self._lock:
            row = self._db.execute(
                "SELECT chain_id, genesis_hash, start_block, start_hash, addresses FROM binding WHERE scanner=?",
                (self.name,)).fetchone()
            if row is None:
                with self._tx():
                    self._db.execute(
                        "INSERT INTO binding(scanner, chain_id, genesis_hash, start_block, start_hash, addresses, "
                        "bound_at) VALUES (?,?,?,?,?,?,?)", (self.name, *current, time.time()))
            elif tuple(row) != current:
                labels = ("chain id", "genesis block hash", "start block", "start block hash", "contract addresses")
                diff = "; ".join(f"{label} was {_short(old)}, now {_short(new)}"
                                 for label, old, new in zip(labels, row, current) if old != new)
                raise StateMismatchError(
                    f"state {self.state_db} (scanner {self.name}) belongs to another deployment ({diff}): "
                    "after a chain reset or redeploy start the daemon with a new --state-dir (or move this "
                    "one away); nothing was skipped")
        self._bound = True

    # -- chain access ----------------------------------------------------------------------

    def _rpc(self, fn: Callable[[], Any], what: str) -> Any:
        return retry(fn, self.rpc_attempts, self.rpc_backoff, what=what)

    def _block_hash(self, number: int) -> str | None:
        try:
            block = self._rpc(lambda: self.w3.eth.get_block(number), f"eth_getBlockByNumber({number})")
        except BlockNotFound:
            return None
        return _hex(block["hash"])

    def _get_logs(self, start: int, end: int) -> list[Any]:
        self.stats.log_requests += 1
        self.stats.ranges.append((start, end))
        params = {"fromBlock": start, "toBlock": end, "address": self._addresses, "topics": [self._topics]}
        return list(self._rpc(lambda: self.w3.eth.get_logs(params), f"eth_getLogs({start}..{end})"))  # type: ignore[arg-type]

    def _chunks(self, start: int, end: int) -> Iterator[tuple[int, list[Any]]]:
        """``(chunk end, logs)`` over ``start..end``; halves the range when the node refuses it."""
        pos = start
        while pos <= end:
            stop = min(end, pos + self._chunk - 1)
            try:
                logs = self._get_logs(pos, stop)
            except ChainConnectionError:
                raise  # the node is unreachable: shrinking the range will not help
            except Exception as exc:  # too many results / range too large: shrink
                if self._chunk == 1:
                    raise ChainError(
                        f"scanner {self.name}: eth_getLogs for block {pos} failed even for a single "
                        f"block: {type(exc).__name__}: {exc}"
                    ) from exc
                self._chunk = max(1, self._chunk // 2)
                self.stats.range_shrinks += 1
                log.warning("scanner %s: eth_getLogs(%d..%d) failed (%s); retrying with %d-block ranges",
                            self.name, pos, stop, exc, self._chunk)
                continue
            yield stop, logs
            pos = stop + 1
            if self._chunk < self.chunk_size:  # grow back after a success
                self._chunk = min(self.chunk_size, self._chunk * 2)

    # -- decoding --------------------------------------------------------------------------

    @staticmethod
    def _log_to_json(entry: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "address": to_checksum_address(entry["address"]),
            "topics": [_hex(t) for t in entry["topics"]],
            "data": _hex(entry["data"]),
            "blockNumber": int(entry["blockNumber"]),
            "blockHash": _hex(entry["blockHash"]),
            "transactionHash": _hex(entry["transactionHash"]),
            "transactionIndex": int(entry["transactionIndex"]),
            "logIndex": int(entry["logIndex"]),
        }

    def _route(self, raw: Mapping[str, Any]) -> tuple[Contract, str] | None:
        return self._routes.get((raw["address"], raw["topics"][0] if raw["topics"] else ""))

    def _decode(self, raw: Mapping[str, Any]) -> Event:
        route = self._route(raw)
        if route is None:
            raise ChainError(f"scanner {self.name}: no route for log {raw} (state from another configuration?)")
        contract, event_name = route
        entry = AttributeDict({
            **raw,
            "topics": [HexBytes(t) for t in raw["topics"]],
            "data": HexBytes(raw["data"]),
            "blockHash": HexBytes(raw["blockHash"]),
            "transactionHash": HexBytes(raw["transactionHash"]),
        })
        decoded = contract.events[event_name]().process_log(entry)
        return Event(
            block=raw["blockNumber"],
            block_hash=raw["blockHash"],
            tx_hash=raw["transactionHash"],
            log_index=raw["logIndex"],
            contract=contract_name(self.w3, raw["address"]) or raw["address"],
            address=raw["address"],
            name=event_name,
            args=_plain(decoded["args"]),
        )

    # -- polling ---------------------------------------------------------------------------

    def _check_reorg(self, cursor: tuple[int, str] | None, target: int) -> tuple[int, str] | None:
        """Rewind ``reorg_depth`` blocks when the cursor's block is no longer canonical."""
        if cursor is None:
            return None
        block, stored_hash = cursor
        if self._block_hash(block) == stored_hash:
            return cursor
        self.stats.reorgs += 1
        new_block = min(block - self.reorg_depth, target)
        log.warning("scanner %s: block %d changed (reorg); rescanning from block %d",
                    self.name, block, max(new_block + 1, self.start_block))
        with self._tx():
            self._db.execute("DELETE FROM pending WHERE scanner=? AND block>?", (self.name, new_block))
            if new_block < self.start_block:
                self._db.execute("DELETE FROM cursor WHERE scanner=?", (self.name,))
                return None
            new_hash = self._block_hash(new_block)
            if new_hash is None:
                self._db.execute("DELETE FROM cursor WHERE scanner=?", (self.name,))
                return None
            self._set_cursor(new_block, new_hash)
        return (new_block, new_hash)

    def poll(self) -> list[Event]:
        """Fetch new logs up to ``head - confirmations`` and return every unprocessed event.

        The result is in chain order (block, log index) and includes events fetched earlier
        whose handler has not completed yet (they are re-delivered until marked processed or
        dead-lettered).
        """
        self.bind()
        self.requeue_dead_letters(due_only=True)
        with self._lock:
            head = int(self._rpc(lambda: self.w3.eth.block_number, "eth_blockNumber"))
            self.head = head
            target = head - self.confirmations
            cursor = self._check_reorg(self.cursor(), target)
            start = cursor[0] + 1 if cursor else self.start_block
            if target >= start:
                for chunk_end, logs in self._chunks(start, target):
                    chunk_hash = self._block_hash(chunk_end)
                    if chunk_hash is None:  # the head moved back under us; next poll rescans
                        break
                    with self._tx():
                        for entry in logs:
                            raw = self._log_to_json(entry)
                            self._db.execute(
                                "INSERT OR IGNORE INTO pending(scanner, tx_hash, log_index, block, log_json) "
                                "SELECT ?,?,?,?,? WHERE NOT EXISTS (SELECT 1 FROM processed WHERE "
                                "scanner=? AND tx_hash=? AND log_index=?)",
                                (self.name, raw["transactionHash"], raw["logIndex"], raw["blockNumber"],
                                 json.dumps(raw), self.name, raw["transactionHash"], raw["logIndex"]),
                            )
                        self._set_cursor(chunk_end, chunk_hash)
            rows = self._db.execute(
                "SELECT log_json FROM pending WHERE scanner=? AND block<=? ORDER BY block, log_index",
                (self.name, target),
            ).fetchall()
            events = []
            for (log_json,) in rows:
                raw = json.loads(log_json)
                if self._route(raw) is None:
                    # Left by an earlier configuration of this scanner name that subscribed to
                    # more events; nobody asked for it now.
                    log.warning("scanner %s: dropping pending %s/%s, no longer subscribed",
                                self.name, raw["transactionHash"], raw["logIndex"])
                    with self._tx():
                        self._db.execute("DELETE FROM pending WHERE scanner=? AND tx_hash=? AND log_index=?",
                                         (self.name, raw["transactionHash"], raw["logIndex"]))
                    continue
                events.append(self._decode(raw))
            self.stats.delivered += len(events)
            return events

    def mark_processed(self, event: Event) -> None:
        """Record that ``event`` was handled; it will never be delivered again (persisted)."""
        with self._lock, self._tx():
            self._db.execute(
                "INSERT OR IGNORE INTO processed(scanner, tx_hash, log_index, block, processed_at) "
                "VALUES (?,?,?,?,?)",
                (self.name, event.tx_hash, event.log_index, event.block, time.time()),
            )
            self._db.execute("DELETE FROM pending WHERE scanner=? AND tx_hash=? AND log_index=?",
                             (self.name, event.tx_hash, event.log_index))

    def mark_processed_many(self, events: Sequence[Event]) -> None:
        """:meth:`mark_processed` for a batch, in one SQLite transaction (bulk consumers)."""
        with self._lock, self._tx():
            now = time.time()
            self._db.executemany(
                "INSERT OR IGNORE INTO processed(scanner, tx_hash, log_index, block, processed_at) "
                "VALUES (?,?,?,?,?)",
                [(self.name, e.tx_hash, e.log_index, e.block, now) for e in events],
            )
            self._db.executemany("DELETE FROM pending WHERE scanner=? AND tx_hash=? AND log_index=?",
                                 [(self.name, e.tx_hash, e.log_index) for e in events])

    def record_failure(self, event: Event, error: BaseException) -> bool:
        """Count a handler failure; returns True when the event was dead-lettered."""
        message = f"{type(error).__name__}: {error}"[:2000]
        with self._lock, self._tx():
            self.stats.handler_failures += 1
            self._db.execute(
                "UPDATE pending SET attempts=attempts+1, last_error=? WHERE scanner=? AND tx_hash=? AND log_index=?",
                (message, self.name, event.tx_hash, event.log_index),
            )
            row = self._db.execute(
                "SELECT attempts, log_json, requeues FROM pending WHERE scanner=? AND tx_hash=? AND log_index=?",
                (self.name, event.tx_hash, event.log_index),
            ).fetchone()
            if row is None or int(row[0]) < self.max_attempts:
                return False
            first, largest = self.dead_letter_backoff
            now = time.time()
            retry_at = now + min(largest, first * 2 ** int(row[2]))
            self._db.execute(
                "INSERT OR REPLACE INTO dead(scanner, tx_hash, log_index, block, log_json, attempts, "
                "last_error, failed_at, requeues, retry_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (self.name, event.tx_hash, event.log_index, event.block, row[1], int(row[0]), message, now,
                 int(row[2]), retry_at),
            )
            self._db.execute("DELETE FROM pending WHERE scanner=? AND tx_hash=? AND log_index=?",
                             (self.name, event.tx_hash, event.log_index))
            self.stats.dead_lettered += 1
            log.error("scanner %s: set aside %s.%s at block %d tx %s after %d attempts (retried in %.0fs, or "
                      "`daemon dead-letters --requeue`): %s", self.name, event.contract, event.name, event.block,
                      event.tx_hash, row[0], retry_at - now, message)
            return True

    # -- the loop --------------------------------------------------------------------------

    def run(
        self,
        handlers: Mapping[str, Callable[[Event], Any]],
        stop: threading.Event,
        poll_interval: float = 2.0,
    ) -> ScannerStats:
        """Poll and dispatch until ``stop`` is set; returns the counters.

        Handlers are looked up by ``"Contract.Event"`` first, then by ``"Event"``; events with no
        handler are marked processed. Events are handled in chain order: after a failure the
        rest of the batch waits for the next poll (so a handler never sees a later event before
        an earlier one), unless the failure dead-lettered the event. ``breaker_threshold``
        consecutive failures raise :class:`ScannerHaltedError`. A node that does not answer is
        logged and polled again; it does not count as a handler failure.
        """
        consecutive = 0
        while not stop.is_set():
            try:
                events = self.poll()
            except ChainError as exc:
                log.warning("scanner %s: poll failed: %s", self.name, exc)
                stop.wait(poll_interval)
                continue
            for event in events:
                if stop.is_set():
                    break
                handler = handlers.get(f"{event.contract}.{event.name}") or handlers.get(event.name)
                if handler is None:
                    self.mark_processed(event)
                    continue
                try:
                    handler(event)
                except Exception as exc:  # a handler boundary: count, record, keep the daemon up
                    consecutive += 1
                    log.exception("scanner %s: handler for %s.%s failed at block %d (failure %d in a row)",
                                  self.name, event.contract, event.name, event.block, consecutive)
                    dead = self.record_failure(event, exc)
                    if consecutive >= self.breaker_threshold:
                        raise ScannerHaltedError(
                            f"scanner {self.name}: {consecutive} consecutive handler failures, the last "
                            f"on {event.contract}.{event.name} (block {event.block}, tx {event.tx_hash}): "
                            f"{type(exc).__name__}: {exc}; fix the cause and restart (state is kept in "
                            f"{self.state_db})"
                        ) from exc
                    if dead:
                        continue
                    break
                self.mark_processed(event)
                consecutive = 0
            stop.wait(poll_interval)
        return self.stats


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 24 else text[:10] + "..." + text[-6:]


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` on error) on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> sqlite3.Connection:
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
