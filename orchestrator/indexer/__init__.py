"""An event indexer: the protocol's events in SQLite, so the dashboard reads history without RPC.

It reuses the chain layer's :class:`~orchestrator.chain.scanner.EventScanner` (persisted cursor,
chunked ``eth_getLogs``, reorg rewind): every event of the private chain's protocol contracts,
and ``RootAnchored`` of the public anchor when one is given, becomes one row of ``events``
(decoded arguments as JSON, with ``round_id``, ``org`` and ``request_id`` pulled out into indexed
columns) plus the timestamp of its block. Rows are written before the scanner marks the events
processed and keyed by ``(chain, tx_hash, log_index)``, so a crash re-delivers and overwrites,
never duplicates. On a reorg the scanner rewinds its cursor; the indexer then deletes its rows
above the rewind point and forgets them as processed, so the new canonical blocks are indexed
again.
"""

from orchestrator.indexer.store import INDEXED_CONTRACTS, Indexer, IndexedEvent

__all__ = ["INDEXED_CONTRACTS", "IndexedEvent", "Indexer"]
