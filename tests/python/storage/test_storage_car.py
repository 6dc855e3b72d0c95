"""CARv1 export/import: the format read back by independent parsers, round trips, bad files."""

from __future__ import annotations

import hashlib
import struct

import pytest
from storage_helpers import store_snapshot

from orchestrator.storage.embedded import EmbeddedStore
from orchestrator.storage.errors import (
    CarFormatError,
    CidMismatchError,
    MissingBlockError,
    NotFoundError,
)

KIB = 1024


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _split_car(raw: bytes) -> tuple[bytes, list[bytes]]:
    """Independent minimal CARv1 splitter: (header bytes, [section bodies])."""

    def read_varint(pos: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            b = raw[pos]
            pos += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return value, pos

    n, pos = read_varint(0)
    header = raw[pos : pos + n]
    pos += n
    sections = []
    while pos < len(raw):
        n, pos = read_varint(pos)
        sections.append(raw[pos : pos + n])
        pos += n
    return header, sections


def _join_car(header: bytes, sections: list[bytes]) -> bytes:
    return _varint(len(header)) + header + b"".join(_varint(len(s)) + s for s in sections)


@pytest.fixture
def exported(store: EmbeddedStore, make_file, tmp_path):
    """A 3-block file (2 leaves + root) in ``store`` and its CAR export."""
    path = make_file(300 * KIB, seed=21)
    cid = store.add_file(path)
    car = store.export_car(cid, tmp_path / "file.car")
    return cid, path, car


def test_car_header_decodes_with_cbor2_as_roots_and_version_1(exported):
    cbor2 = pytest.importorskip("cbor2")  # an independent CBOR implementation
    py_cid = pytest.importorskip("cid")
    cid, _, car = exported
    header, _ = _split_car(car.read_bytes())
    decoded = cbor2.loads(header)
    assert decoded["version"] == 1
    (root,) = decoded["roots"]
    assert root.tag == 42 and root.value[0] == 0
    assert str(py_cid.make_cid(0, "dag-pb", root.value[1:])) == cid


def test_car_sections_hold_every_block_once_each_hashing_to_its_cid(exported, store):
    py_cid = pytest.importorskip("cid")
    cid, _, car = exported
    _, sections = _split_car(car.read_bytes())
    assert len(sections) == 3
    seen = set()
    for body in sections:
        # CIDv0 in binary form is the 34-byte multihash (0x12 0x20 + digest)
        assert body[:2] == b"\x12\x20"
        digest, block = body[2:34], body[34:]
        assert hashlib.sha256(block).digest() == digest
        seen.add(str(py_cid.make_cid(0, "dag-pb", body[:34])))
    assert cid in seen and len(seen) == 3
    assert sections[0][2:34] == hashlib.sha256(store.get_block(cid)).digest()  # root first


def test_car_round_trip_into_a_fresh_store_pins_and_serves_the_file(exported, tmp_path):
    cid, path, car = exported
    other = EmbeddedStore(tmp_path / "other")
    assert other.import_car(car) == [cid]
    assert other.pins() == [cid]
    assert other.cat(cid) == path.read_bytes()


def test_carv2_wrapping_a_carv1_is_imported(exported, tmp_path):
    cid, path, car = exported
    inner = car.read_bytes()
    pragma = bytes.fromhex("0aa16776657273696f6e02")
    data_offset = len(pragma) + 40
    v2 = pragma + bytes(16) + struct.pack("<QQQ", data_offset, len(inner), 0) + inner
    (tmp_path / "v2.car").write_bytes(v2)
    other = EmbeddedStore(tmp_path / "other")
    assert other.import_car(tmp_path / "v2.car") == [cid]
    assert other.cat(cid) == path.read_bytes()


@pytest.mark.parametrize(
    "mangle",
    [
        lambda h: b"\xff" + h[1:],  # not a map any more
        lambda h: h.replace(b"version\x01", b"version\x03"),  # version 3
        lambda h: h[:-3],  # truncated CBOR
        lambda h: h.replace(b"roots", b"rooty"),  # no roots key
    ],
    ids=["not-cbor-map", "wrong-version", "truncated-header", "no-roots"],
)
def test_bad_car_header_raises_car_format_and_imports_nothing(exported, tmp_path, mangle):
    _, _, car = exported
    header, sections = _split_car(car.read_bytes())
    bad = tmp_path / "bad.car"
    bad.write_bytes(_join_car(mangle(header), sections))
    target = EmbeddedStore(tmp_path / "target")
    before = store_snapshot(target)
    with pytest.raises(CarFormatError, match="bad.car"):
        target.import_car(bad)
    assert store_snapshot(target) == before


def test_car_missing_a_block_raises_missing_block_and_imports_nothing(exported, tmp_path):
    cid, _, car = exported
    header, sections = _split_car(car.read_bytes())
    bad = tmp_path / "holey.car"
    bad.write_bytes(_join_car(header, sections[:2]))  # drop the last leaf
    target = EmbeddedStore(tmp_path / "target")
    target.add_bytes(b"unrelated content")
    before = store_snapshot(target)
    with pytest.raises(MissingBlockError, match="holey.car"):
        target.import_car(bad)
    assert store_snapshot(target) == before


def test_car_with_tampered_block_raises_cid_mismatch_and_imports_nothing(exported, tmp_path):
    _, _, car = exported
    header, sections = _split_car(car.read_bytes())
    tampered = bytearray(sections[1])
    tampered[-1] ^= 0xFF
    bad = tmp_path / "tampered.car"
    bad.write_bytes(_join_car(header, [sections[0], bytes(tampered), sections[2]]))
    target = EmbeddedStore(tmp_path / "target")
    with pytest.raises(CidMismatchError, match="does not hash"):
        target.import_car(bad)
    assert store_snapshot(target) == (frozenset(), frozenset(), 0)


def test_truncated_car_raises_car_format_and_imports_nothing(exported, tmp_path):
    _, _, car = exported
    bad = tmp_path / "cut.car"
    bad.write_bytes(car.read_bytes()[:-500])
    target = EmbeddedStore(tmp_path / "target")
    with pytest.raises(CarFormatError, match="truncated"):
        target.import_car(bad)
    assert store_snapshot(target) == (frozenset(), frozenset(), 0)


def test_empty_and_missing_car_files(tmp_path):
    target = EmbeddedStore(tmp_path / "target")
    (tmp_path / "empty.car").write_bytes(b"")
    with pytest.raises(CarFormatError, match="empty.car"):
        target.import_car(tmp_path / "empty.car")
    with pytest.raises(NotFoundError, match="nowhere.car"):
        target.import_car(tmp_path / "nowhere.car")
    assert store_snapshot(target) == (frozenset(), frozenset(), 0)


def test_export_of_absent_cid_raises_missing_block_and_writes_no_file(store, tmp_path):
    from orchestrator.storage.cid import compute_cid

    with pytest.raises(MissingBlockError):
        store.export_car(compute_cid(b"absent"), tmp_path / "x.car")
    assert list(tmp_path.glob("*x.car*")) == []
