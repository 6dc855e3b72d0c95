"""The embedded blockstore: round trips, pins and gc, and every bad input leaving nothing behind."""

from __future__ import annotations

import io
import json
import os

import pytest
from storage_helpers import store_snapshot

from orchestrator.storage import open_store
from orchestrator.storage.cid import compute_cid
from orchestrator.storage.codec import Cid
from orchestrator.storage.embedded import EmbeddedStore
from orchestrator.storage.errors import (
    CorruptBlockError,
    MissingBlockError,
    NotFoundError,
    PayloadTooLargeError,
)

KIB = 1024


def _block_file(store: EmbeddedStore, cid: str | Cid):
    c = Cid.parse(cid) if isinstance(cid, str) else cid
    hexd = c.digest.hex()
    return store.blocks_dir / hexd[:2] / hexd


def _leaf_cids(store: EmbeddedStore, root: str) -> list[Cid]:
    from orchestrator.storage.unixfs import block_links

    return block_links(store.get_block(root), Cid.parse(root))


def test_add_file_returns_the_oracle_cid_and_cat_returns_the_bytes(store, make_file, oracle):
    path = make_file(600 * KIB + 3, seed=1)
    cid = store.add_file(path)
    assert cid == oracle(path)["CIDv0"]
    assert store.cat(cid) == path.read_bytes()
    assert store.cat(compute_cid(path, version=1)) == path.read_bytes()


def test_add_bytes_of_empty_and_one_byte_round_trip(store):
    for data in (b"", b"\x00"):
        cid = store.add_bytes(data)
        assert cid == compute_cid(data)
        assert store.cat(cid) == data


def test_blocks_are_sharded_by_digest_prefix(store, make_file):
    cid = store.add_file(make_file(300 * KIB, seed=2))
    path = _block_file(store, cid)
    assert path.is_file() and path.parent.name == path.name[:2]


def test_get_file_writes_the_content_and_leaves_no_temp_files(store, make_file, tmp_path):
    path = make_file(300 * KIB, seed=3)
    cid = store.add_file(path)
    out = store.get_file(cid, tmp_path / "out" / "copy.bin")
    assert out.read_bytes() == path.read_bytes()
    assert sorted(p.name for p in out.parent.iterdir()) == ["copy.bin"]


def test_pins_persist_across_store_instances(store, make_file):
    cid = store.add_file(make_file(10, seed=4))
    assert EmbeddedStore(store.root).pins() == [cid]
    on_disk = json.loads(store.pins_path.read_text())
    assert on_disk["pins"] == [cid]


def test_gc_removes_exactly_the_unpinned_dag(store, make_file):
    keep = store.add_file(make_file(300 * KIB, seed=5))
    drop = store.add_file(make_file(300 * KIB, seed=6))
    assert store.block_count() == 6  # two files of 2 leaves + 1 root each
    store.unpin(drop)
    assert store.gc() == 3
    assert store.has(keep) and not store.has(drop)
    assert store.cat(keep)


def test_gc_keeps_blocks_shared_with_a_pinned_dag(store):
    chunk = b"s" * (256 * KIB)
    a = store.add_bytes(chunk + b"a")
    b = store.add_bytes(chunk + b"b")  # shares the first leaf with a
    store.unpin(b)
    store.gc()
    assert store.cat(a) == chunk + b"a"


def test_unpin_of_unpinned_cid_raises_not_found(store):
    cid = compute_cid(b"never added")
    with pytest.raises(NotFoundError, match=cid):
        store.unpin(cid)


def test_pin_of_absent_content_raises_missing_block(store):
    cid = compute_cid(b"not here")
    with pytest.raises(MissingBlockError, match=cid):
        store.pin(cid)
    assert store.pins() == []


def test_corrupted_block_raises_corrupt_block_naming_cid_and_file(store, make_file):
    cid = store.add_file(make_file(600 * KIB, seed=7))
    leaf = _leaf_cids(store, cid)[1]
    path = _block_file(store, leaf)
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptBlockError) as info:
        store.cat(cid)
    assert str(leaf) in str(info.value) and str(path) in str(info.value)


def test_truncated_block_raises_corrupt_block(store, make_file):
    cid = store.add_file(make_file(600 * KIB, seed=8))
    path = _block_file(store, _leaf_cids(store, cid)[0])
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CorruptBlockError, match="corrupt"):
        store.cat(cid)


def test_missing_block_raises_missing_block_and_has_is_false(store, make_file, tmp_path):
    cid = store.add_file(make_file(600 * KIB, seed=9))
    leaf = _leaf_cids(store, cid)[2]
    _block_file(store, leaf).unlink()
    assert not store.has(cid)
    with pytest.raises(MissingBlockError, match=str(leaf)):
        store.get_file(cid, tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_cat_refuses_content_over_max_bytes_before_reading_leaves(store, make_file):
    cid = store.add_file(make_file(600 * KIB, seed=10))
    for leaf in _leaf_cids(store, cid):  # only the root remains: the refusal must not need leaves
        _block_file(store, leaf).unlink()
    with pytest.raises(PayloadTooLargeError, match=cid):
        store.cat(cid, max_bytes=100 * KIB)


def test_add_of_missing_file_raises_not_found_and_changes_nothing(store, tmp_path):
    before = store_snapshot(store)
    with pytest.raises(NotFoundError, match="absent.bin"):
        store.add_file(tmp_path / "absent.bin")
    assert store_snapshot(store) == before


class _FailingStream(io.RawIOBase):
    """Fake: a disk/network read error after 700 KiB. A real I/O failure cannot be provoked
    on demand in a test, so this stream raises OSError the way a failing device would."""

    def __init__(self) -> None:
        self._given = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        if self._given >= 700 * KIB:
            raise OSError(5, "Input/output error")
        n = min(len(b), 64 * KIB)
        b[:n] = b"z" * n
        self._given += n
        return n


def test_add_interrupted_by_read_error_leaves_nothing_partial(store):
    store.add_bytes(b"already there")
    before = store_snapshot(store)
    with pytest.raises(OSError):
        store._add_stream(_FailingStream(), "failing stream")
    assert store_snapshot(store) == before


def test_open_store_defaults_to_embedded_under_orch_ipfs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ORCH_IPFS_DIR", str(tmp_path / "configured"))
    s = open_store()
    assert isinstance(s, EmbeddedStore) and s.root == tmp_path / "configured"
    assert open_store(tmp_path / "explicit").root == tmp_path / "explicit"


def test_open_store_uses_orch_cache_dir_when_no_ipfs_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("ORCH_IPFS_DIR")
    monkeypatch.setenv("ORCH_CACHE_DIR", str(tmp_path / "cache"))
    assert open_store().root == tmp_path / "cache" / "ipfs"


def test_open_store_selects_kubo_when_orch_ipfs_api_is_set(monkeypatch, tmp_path):
    from orchestrator.storage.kubo import KuboStore

    monkeypatch.setenv("ORCH_IPFS_API", "/ip4/127.0.0.1/tcp/5001/http")
    s = open_store(tmp_path / "ignored")
    assert isinstance(s, KuboStore) and s.api == "/ip4/127.0.0.1/tcp/5001/http"


def test_writes_are_atomic_no_temp_files_remain_after_adds(store, make_file):
    store.add_file(make_file(900 * KIB, seed=11))
    leftovers = [p for p in store.root.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]
    assert leftovers == [] and list(store.tmp_dir.iterdir()) == []
    assert all(os.path.getsize(p) > 0 for p in store.blocks_dir.rglob("*") if p.is_file())


def test_put_block_refuses_data_that_does_not_hash_to_the_given_cid(store):
    from orchestrator.storage.errors import CidMismatchError

    cid = compute_cid(b"the real content")
    with pytest.raises(CidMismatchError, match=cid):
        store.put_block(b"other bytes", cid)
    assert not store.has_block(cid) and store.block_count() == 0


def test_put_block_then_get_block_round_trips_and_rehashes(store):
    block = b"\x0a\x04\x08\x02\x18\x00"  # the empty UnixFS file node
    cid = store.put_block(block, compute_cid(b""))
    assert store.get_block(cid) == block and store.has_block(cid)
    assert store.cat(cid) == b""
