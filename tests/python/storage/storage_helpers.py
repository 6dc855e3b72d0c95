"""Helpers shared by the storage tests (a uniquely named module, not conftest, so that other
test folders' conftest files cannot shadow it on sys.path)."""

from __future__ import annotations

from orchestrator.storage.embedded import EmbeddedStore


def store_snapshot(store: EmbeddedStore) -> tuple[frozenset[str], frozenset[str], int]:
    """(block files, pins, entries in tmp/): what "nothing partial is left" compares."""
    blocks = frozenset(p.name for p in store.blocks_dir.rglob("*") if p.is_file())
    return blocks, frozenset(store.pins()), len(list(store.tmp_dir.iterdir()))
