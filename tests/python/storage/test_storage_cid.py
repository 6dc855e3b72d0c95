"""CIDs: equal to the independent ``ipfs_cid`` oracle, streaming, and the bytes32 conversion."""

from __future__ import annotations

import hashlib
import io
import random
import tracemalloc

import pytest

from orchestrator.storage.cid import bytes32_to_cid, cid_to_bytes32, compute_cid
from orchestrator.storage.codec import Cid
from orchestrator.storage.errors import InvalidCidError, NotFoundError
from orchestrator.storage.unixfs import CHUNK_SIZE, MAX_LINKS, FileImporter

KIB = 1024
MIB = 1024 * KIB


@pytest.mark.parametrize(
    "size",
    [0, 1, 256 * KIB, 256 * KIB + 1, 3 * MIB + 12_345, 8 * MIB],
    ids=["empty", "one-byte", "exactly-256KiB", "256KiB-plus-1", "3MiB-odd", "8MiB"],
)
def test_cid_v0_and_v1_match_ipfs_cid_oracle(size, make_file, oracle):
    path = make_file(size, seed=size)
    expected = oracle(path)
    assert compute_cid(path) == expected["CIDv0"]
    assert compute_cid(path, version=1) == expected["CIDv1"]


def test_file_over_174_chunks_gets_a_two_level_dag_matching_oracle(make_file, oracle):
    # 175 chunks: the first level fills (174 links) and a second level appears.
    path = make_file(MAX_LINKS * CHUNK_SIZE + 1, seed=7)
    assert compute_cid(path) == oracle(path)["CIDv0"]


def test_file_of_exactly_174_chunks_has_a_single_internal_root(make_file, oracle):
    path = make_file(MAX_LINKS * CHUNK_SIZE, seed=8)
    assert compute_cid(path) == oracle(path)["CIDv0"]


def test_v1_is_the_same_dag_as_v0(make_file):
    path = make_file(600 * KIB, seed=3)
    v0, v1 = Cid.parse(compute_cid(path)), Cid.parse(compute_cid(path, version=1))
    assert compute_cid(path, version=1).startswith("bafybei")
    assert (v1.version, v1.codec, v1.digest) == (1, 0x70, v0.digest)


def test_bytes_stream_and_path_inputs_give_the_same_cid(make_file):
    path = make_file(700 * KIB, seed=4)
    data = path.read_bytes()
    with open(path, "rb") as fh:
        from_stream = compute_cid(fh)
    assert compute_cid(data) == from_stream == compute_cid(str(path)) == compute_cid(path)


class _Trickle(io.RawIOBase):
    """A stream that returns at most 1000 bytes per read, as pipes and sockets do."""

    def __init__(self, data: bytes) -> None:
        self._buf = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        chunk = self._buf.read(min(len(b), 1000))
        b[: len(chunk)] = chunk
        return len(chunk)


def test_short_reads_are_completed_to_full_chunks(make_file):
    data = make_file(600 * KIB, seed=5).read_bytes()
    assert compute_cid(_Trickle(data)) == compute_cid(data)


class _Generated(io.RawIOBase):
    """Seeded pseudo-random bytes produced on demand: a large input never held in memory."""

    def __init__(self, size: int, seed: int) -> None:
        self._left = size
        self._rng = random.Random(seed)

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        n = min(len(b), self._left)
        b[:n] = self._rng.randbytes(n)
        self._left -= n
        return n


def test_memory_stays_bounded_by_a_few_chunks_for_a_64MiB_stream():
    tracemalloc.start()
    try:
        compute_cid(_Generated(64 * MIB, seed=11))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # one 256 KiB read buffer, a transient chunk from the generator, link lists: well under 4 MiB
    assert peak < 4 * MIB, f"peak traced memory {peak} bytes"


def test_missing_file_raises_not_found_naming_the_path(tmp_path):
    missing = tmp_path / "nope.bin"
    with pytest.raises(NotFoundError, match="nope.bin"):
        compute_cid(missing)


# ------------------------------------------------------------------ balanced layout, small fan-out
def _pb_varint(n: int) -> bytes:
    out = b""
    while True:
        out += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)])
        n >>= 7
        if not n:
            return out


def _pb_field(number: int, wire: int, value: bytes | int) -> bytes:
    key = _pb_varint(number << 3 | wire)
    if wire == 0:
        return key + _pb_varint(value)  # type: ignore[arg-type]
    return key + _pb_varint(len(value)) + value  # type: ignore[arg-type]


def _reference_balanced(chunks: list[bytes], max_links: int) -> bytes:
    """A direct port of go-unixfs balanced.Layout/fillNodeRec (depth-first), for comparison
    with our level-by-level importer. Returns the root digest."""
    pending = list(chunks)

    def leaf() -> tuple[bytes, int, int]:
        data = pending.pop(0)
        unixfs = (
            _pb_field(1, 0, 2)
            + (_pb_field(2, 2, data) if data else b"")
            + _pb_field(3, 0, len(data))
        )
        block = _pb_field(1, 2, unixfs)
        return hashlib.sha256(block).digest(), len(data), len(block)

    def node(children: list[tuple[bytes, int, int]]) -> tuple[bytes, int, int]:
        links = b"".join(
            _pb_field(
                2, 2, _pb_field(1, 2, b"\x12\x20" + d) + _pb_field(2, 2, b"") + _pb_field(3, 0, t)
            )
            for d, _, t in children
        )
        unixfs = _pb_field(1, 0, 2) + _pb_field(3, 0, sum(c[1] for c in children))
        unixfs += b"".join(_pb_field(4, 0, c[1]) for c in children)
        block = links + _pb_field(1, 2, unixfs)
        return (
            hashlib.sha256(block).digest(),
            sum(c[1] for c in children),
            len(block) + sum(c[2] for c in children),
        )

    def fill(first: tuple[bytes, int, int] | None, depth: int) -> tuple[bytes, int, int]:
        children = [first] if first else []
        while len(children) < max_links and pending:
            children.append(leaf() if depth == 1 else fill(None, depth - 1))
        return node(children)

    root = leaf()
    depth = 1
    while pending:
        root = fill(root, depth)
        depth += 1
    return root[0]


@pytest.mark.parametrize("n_chunks", [1, 2, 3, 4, 9, 10, 27, 28, 40])
def test_level_by_level_importer_equals_go_unixfs_depth_first_layout(n_chunks):
    # Fan-out 3 makes trees of depth 3-4 from a few chunks; the real oracle only ever sees
    # fan-out 174, where depth 3 needs 7.9 GB.
    rng = random.Random(n_chunks)
    chunks = [rng.randbytes(rng.choice([1, 5, 64])) for _ in range(n_chunks)]
    importer = FileImporter(max_links=3)
    for chunk in chunks:
        importer.add_chunk(chunk)
    digest, size, _ = importer.finish()
    assert size == sum(map(len, chunks))
    assert digest == _reference_balanced(chunks, max_links=3)


# ------------------------------------------------------------------ bytes32 <-> CID
def test_bytes32_round_trip_agrees_with_py_cid():
    py_cid = pytest.importorskip("cid")  # independent implementation (py-cid, in the venv)
    digest = hashlib.sha256(b"ledgerlora").digest()
    text = bytes32_to_cid(digest)
    parsed = py_cid.make_cid(text)
    assert parsed.version == 0
    assert bytes(parsed.multihash) == b"\x12\x20" + digest
    assert cid_to_bytes32(text) == digest


def test_cid_to_bytes32_accepts_the_v1_of_the_same_dag(make_file, oracle):
    path = make_file(300 * KIB, seed=9)
    cids = oracle(path)
    assert cid_to_bytes32(cids["CIDv1"]) == cid_to_bytes32(cids["CIDv0"])
    assert bytes32_to_cid(cid_to_bytes32(cids["CIDv1"])) == cids["CIDv0"]


def test_hello_world_digest_is_the_documented_kubo_cid():
    # "hello world\n" -> QmT78z... is Kubo's published example (see docs/TOOLCHAIN.md).
    cid = compute_cid(b"hello world\n")
    assert cid == "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
    assert bytes32_to_cid("0x" + cid_to_bytes32(cid).hex()) == cid


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "hello",
        "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5O0",  # '0' is not base58
        "zb2rhe5P4gXftAwvA4eXQ5HJwsER2owDyS9sKaQRRVQPn93bA",  # base58 multibase, unsupported
        "bafkqaaa",  # identity multihash, unsupported
    ],
)
def test_malformed_cids_raise_invalid_cid_naming_the_input(bad):
    with pytest.raises(InvalidCidError) as info:
        cid_to_bytes32(bad)
    assert bad in str(info.value)


def test_raw_leaf_cid_is_not_storable_as_bytes32():
    raw = str(Cid(1, 0x55, hashlib.sha256(b"x").digest()))
    with pytest.raises(InvalidCidError, match="raw"):
        cid_to_bytes32(raw)


@pytest.mark.parametrize("bad", [b"\x01" * 31, b"\x01" * 33, b"\0" * 32, "0xzz"])
def test_bytes32_of_wrong_size_or_zero_is_refused(bad):
    with pytest.raises(InvalidCidError):
        bytes32_to_cid(bad)
