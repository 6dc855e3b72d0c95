"""The indexer proper: scanners in, SQLite rows out, simple queries for the dashboard."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from web3 import Web3

from orchestrator import observability as obs
from orchestrator.chain.contracts import ANCHOR_CONTRACT, Protocol
from orchestrator.chain.scanner import Event, EventScanner
from orchestrator.daemons.relayer import ANCHORED_CONTRACTS

log = logging.getLogger(__name__)

#: The private-chain contracts whose every event is indexed: exactly the relayer's anchored set,
#: so each indexed private event is a record the anchors page can check on the public chain.
INDEXED_CONTRACTS: tuple[str, ...] = ANCHORED_CONTRACTS

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    chain INTEGER NOT NULL, block INTEGER NOT NULL, block_hash TEXT NOT NULL, tx_hash TEXT NOT NULL,
    log_index INTEGER NOT NULL, contract TEXT NOT NULL, address TEXT NOT NULL, name TEXT NOT NULL,
    round_id INTEGER, org TEXT, request_id INTEGER, args TEXT NOT NULL, timestamp INTEGER,
    PRIMARY KEY (chain, tx_hash, log_index));
CREATE INDEX IF NOT EXISTS events_name ON events(chain, name, block, log_index);
CREATE INDEX IF NOT EXISTS events_round ON events(round_id);
CREATE INDEX IF NOT EXISTS events_org ON events(org);
CREATE INDEX IF NOT EXISTS events_request ON events(request_id);
CREATE TABLE IF NOT EXISTS blocks (
    chain INTEGER NOT NULL, number INTEGER NOT NULL, hash TEXT NOT NULL, timestamp INTEGER NOT NULL,
    PRIMARY KEY (chain, number));
"""

#: Argument names pulled out into indexed columns (first match wins).
_ROUND_KEYS = ("roundId",)
_ORG_KEYS = ("org", "account")
_REQUEST_KEYS = ("requestId",)


@dataclass(frozen=True)
class IndexedEvent:
    """One row of ``events``."""

    chain: int
    block: int
    tx_hash: str
    log_index: int
    contract: str
    name: str
    args: dict[str, Any]
    timestamp: int | None

    def __getitem__(self, key: str) -> Any:
        return self.args[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.args.get(key, default)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _first(args: dict[str, Any], keys: Iterable[str]) -> Any:
    for key in keys:
        if key in args:
            return args[key]
    return None


class _IndexScanner(EventScanner):
    """The chain layer's scanner, telling the indexer when a reorg rewound its cursor."""

    def __init__(self, *args: Any, on_rewind: Callable[[int], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_rewind = on_rewind

    def _check_reorg(self, cursor: tuple[int, str] | None, target: int) -> tuple[int, str] | None:
        result = super()._check_reorg(cursor, target)
        if cursor is not None and result != cursor:
            rewound_to = result[0] if result is not None else self.start_block - 1
            # Forget the orphaned blocks' events as processed, so their replacements (possibly the
            # same transactions at the same log indices) are delivered and indexed again.
            with self._tx():
                self._db.execute("DELETE FROM processed WHERE scanner=? AND block>?", (self.name, rewound_to))
            self._on_rewind(rewound_to)
        return result


def _all_events(contract: Any) -> list[str]:
    return sorted({e["name"] for e in contract.abi if e.get("type") == "event"})


class Indexer:
    """Index ``protocol``'s events (and ``anchor``'s, on its own chain) into ``db_path``.

    ``sync()`` polls both chains once and returns how many events it indexed; it is safe to call
    from several threads (one at a time runs). Queries read the same file.
    """

    def __init__(
        self,
        protocol: Protocol,
        db_path: Path,
        *,
        anchor: Protocol | None = None,
        confirmations: int = 0,
        chunk_size: int = 1000,
        reorg_depth: int = 10,
    ) -> None:
        self.protocol = protocol
        self.anchor = anchor
        self.db_path = Path(db_path)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self.chain_id = int(protocol.w3.eth.chain_id)
        subs = [(protocol.contract(n), e) for n in INDEXED_CONTRACTS if n in protocol
                for e in _all_events(protocol.contract(n))]
        self.anchor_chain_id: int | None = None
        if anchor is not None and ANCHOR_CONTRACT in anchor:
            self.anchor_chain_id = int(anchor.w3.eth.chain_id)
        same_chain = self.anchor_chain_id == self.chain_id
        if anchor is not None and same_chain:  # the anchor lives on the private chain itself
            subs.append((anchor.contract(ANCHOR_CONTRACT), "RootAnchored"))

        def scanner(w3: Web3, chain: int, contract_events: list[Any], start: int, name: str,
                    deployment: Protocol) -> EventScanner:
            return _IndexScanner(w3, contract_events, self.db_path, name, confirmations, chunk_size, reorg_depth,
                                 start_block=start, on_rewind=lambda block: self._rewind(chain, block),
                                 deployment={n: r.address for n, r in deployment.manifest.contracts.items()})

        self.scanners: list[tuple[Web3, int, EventScanner]] = [(protocol.w3, self.chain_id, scanner(
            protocol.w3, self.chain_id, subs, protocol.manifest.first_block,
            f"index-{self.chain_id}" + ("-with-anchor" if same_chain else ""), protocol))]
        if anchor is not None and self.anchor_chain_id is not None and not same_chain:
            self.scanners.append((anchor.w3, self.anchor_chain_id, scanner(
                anchor.w3, self.anchor_chain_id, [(anchor.contract(ANCHOR_CONTRACT), "RootAnchored")],
                anchor.manifest.first_block, f"index-{self.anchor_chain_id}-anchor", anchor)))
        self.last_sync: float | None = None
        self.last_error: str | None = None

    def close(self) -> None:
        with self._lock:
            for _, _, scanner in self.scanners:
                scanner.close()
            self._db.close()

    def __enter__(self) -> Indexer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ----------------------------------------------------------------------------

    def _rewind(self, chain: int, block: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM events WHERE chain=? AND block>?", (chain, block))
            self._db.execute("DELETE FROM blocks WHERE chain=? AND number>?", (chain, block))
        log.warning("indexer: reorg on chain %d, rows above block %d dropped and re-indexed", chain, block)

    def _timestamp(self, w3: Web3, chain: int, event: Event) -> int:
        row = self._db.execute("SELECT hash, timestamp FROM blocks WHERE chain=? AND number=?",
                               (chain, event.block)).fetchone()
        if row is not None and row[0] == event.block_hash:
            return int(row[1])
        ts = int(w3.eth.get_block(event.block)["timestamp"])
        self._db.execute("INSERT OR REPLACE INTO blocks(chain, number, hash, timestamp) VALUES (?,?,?,?)",
                         (chain, event.block, event.block_hash, ts))
        return ts

    def sync(self) -> int:
        """Poll every chain once; index and mark processed what arrived. Returns the count."""
        total = 0
        with self._lock:
            try:
                for w3, chain, scanner in self.scanners:
                    events = scanner.poll()
                    obs.on_poll(scanner.name, *scanner.position())  # lag gauge and readiness
                    if not events:
                        continue
                    self._db.execute("BEGIN IMMEDIATE")
                    try:
                        for ev in events:
                            args = _jsonable(ev.args)
                            org = _first(args, _ORG_KEYS)
                            self._db.execute(
                                "INSERT OR REPLACE INTO events(chain, block, block_hash, tx_hash, log_index, contract, "
                                "address, name, round_id, org, request_id, args, timestamp) "
                                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                                (chain, ev.block, ev.block_hash, ev.tx_hash, ev.log_index, ev.contract, ev.address,
                                 ev.name, _first(args, _ROUND_KEYS), org.lower() if isinstance(org, str) else None,
                                 _first(args, _REQUEST_KEYS), json.dumps(args), self._timestamp(w3, chain, ev)),
                            )
                        self._db.execute("COMMIT")
                    except BaseException:
                        self._db.execute("ROLLBACK")
                        raise
                    scanner.mark_processed_many(events)
                    total += len(events)
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                raise
            self.last_sync = time.time()
            self.last_error = None
        return total

    # -- reading ----------------------------------------------------------------------------

    def events(
        self,
        name: str | Iterable[str] | None = None,
        *,
        round_id: int | None = None,
        org: str | None = None,
        request_id: int | None = None,
        chain: int | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[IndexedEvent]:
        """Indexed events in chain order (private chain unless ``chain`` says otherwise)."""
        where, params = ["chain=?"], [self.chain_id if chain is None else chain]
        if name is not None:
            names = [name] if isinstance(name, str) else list(name)
            where.append(f"name IN ({','.join('?' * len(names))})")
            params += names
        for column, value in (("round_id", round_id), ("org", org.lower() if org else None),
                              ("request_id", request_id)):
            if value is not None:
                where.append(f"{column}=?")
                params.append(value)
        order = "DESC" if newest_first else "ASC"
        sql = (f"SELECT chain, block, tx_hash, log_index, contract, name, args, timestamp FROM events "
               f"WHERE {' AND '.join(where)} ORDER BY block {order}, log_index {order}")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [IndexedEvent(int(r[0]), int(r[1]), r[2], int(r[3]), r[4], r[5], json.loads(r[6]),
                             None if r[7] is None else int(r[7])) for r in rows]

    def anchor_events(self) -> list[IndexedEvent]:
        if self.anchor_chain_id is None:
            return []
        return self.events("RootAnchored", chain=self.anchor_chain_id)

    def count(self, chain: int | None = None) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM events WHERE chain=?",
                                        (self.chain_id if chain is None else chain,)).fetchone()[0])

    def count_between(self, first_block: int, last_block: int, chain: int | None = None) -> int:
        """Indexed events in blocks ``first_block..last_block``."""
        with self._lock:
            return int(self._db.execute(
                "SELECT COUNT(*) FROM events WHERE chain=? AND block BETWEEN ? AND ?",
                (self.chain_id if chain is None else chain, first_block, last_block)).fetchone()[0])

    def cursors(self) -> dict[int, tuple[int | None, int | None]]:
        """``chain -> (head seen by the last poll, highest indexed block)``."""
        return {chain: scanner.position() for _, chain, scanner in self.scanners}

    def lag(self) -> int:
        """Blocks the private chain's index is behind the head seen at the last sync."""
        head, cursor = self.scanners[0][2].position()
        if head is None:
            return 0
        return max(0, head - (cursor if cursor is not None else self.protocol.manifest.first_block - 1))
