"""UnixFS v1 files as Kubo's ``ipfs add`` builds them, and the dag-pb decoding to read them back.

Kubo's defaults (``ipfs add`` with no flags, go-unixfs ``balanced`` layout):

* the byte stream is cut into fixed 262,144-byte chunks (the last one shorter; empty input is a
  single empty leaf);
* every chunk becomes a dag-pb node whose Data is a UnixFS ``File`` message carrying the chunk
  and its size (not a raw block: ``--raw-leaves`` is off for CIDv0);
* nodes are grouped 174 links at a time, level by level, until one root remains; each internal
  node is a UnixFS ``File`` with the total ``filesize`` and one ``blocksizes`` entry per child,
  and each link carries the child's CIDv0, an empty name and the cumulative size of the child's
  sub-DAG (``Tsize``).

Grouping level by level with eager flushing is exactly go-unixfs' depth-first ``fillNodeRec``
(every leaf sits at the same depth, every node but the last on each level is full), and it
needs only one pending list of at most 174 links per level: memory stays at one chunk buffer
plus a few KiB whatever the file size.

Encodings are written by hand: dag-pb puts ``Links`` (field 2) before ``Data`` (field 1), each
link is ``Hash`` (1), ``Name`` (2, present and empty) and ``Tsize`` (3); UnixFS is ``Type`` (1),
``Data`` (2, omitted when empty), ``filesize`` (3), ``blocksizes`` (4, one key per value).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from orchestrator.storage.codec import DAG_PB, RAW, Cid, decode_varint, encode_varint
from orchestrator.storage.errors import CorruptBlockError

CHUNK_SIZE = 262_144
MAX_LINKS = 174

UNIXFS_RAW = 0
UNIXFS_DIRECTORY = 1
UNIXFS_FILE = 2

# A sink receives each finished block as (sha2-256 digest, parts whose concatenation is the
# block). Parts avoid copying a 256 KiB chunk just to prepend a few header bytes.
BlockSink = Callable[[bytes, Sequence[bytes | memoryview]], None]


@dataclass
class _Link:
    digest: bytes
    filesize: int
    tsize: int


@dataclass
class FileImporter:
    """Incremental UnixFS importer: feed chunks with :meth:`add_chunk`, then :meth:`finish`.

    The caller chunks (see :func:`iter_chunks`) so that the same importer serves bytes, file
    objects and paths. ``sink`` (optional) receives every block, leaves first, root last.
    """

    sink: BlockSink | None = None
    max_links: int = MAX_LINKS
    _levels: list[list[_Link]] = field(default_factory=list)
    _chunks: int = 0

    def add_chunk(self, chunk: bytes | memoryview) -> None:
        n = len(chunk)
        if n > CHUNK_SIZE:
            raise ValueError(f"chunk of {n} bytes exceeds the {CHUNK_SIZE}-byte chunker size")
        size_v = encode_varint(n)
        if n:
            unixfs_len = 2 + 1 + len(size_v) + n + 1 + len(size_v)
            prefix = b"\x0a" + encode_varint(unixfs_len) + b"\x08\x02\x12" + size_v
        else:
            unixfs_len = 2 + 1 + len(size_v)
            prefix = b"\x0a" + encode_varint(unixfs_len) + b"\x08\x02"
        suffix = b"\x18" + size_v
        h = hashlib.sha256(prefix)
        if n:
            h.update(chunk)
        h.update(suffix)
        digest = h.digest()
        if self.sink is not None:
            self.sink(digest, (prefix, chunk, suffix) if n else (prefix, suffix))
        self._chunks += 1
        self._push(0, _Link(digest, n, len(prefix) + n + len(suffix)))

    def _push(self, level: int, link: _Link) -> None:
        while len(self._levels) <= level:
            self._levels.append([])
        pending = self._levels[level]
        pending.append(link)
        if len(pending) == self.max_links:
            self._levels[level] = []
            self._push(level + 1, self._make_node(pending))

    def _make_node(self, children: list[_Link]) -> _Link:
        block = encode_file_node(children)
        digest = hashlib.sha256(block).digest()
        if self.sink is not None:
            self.sink(digest, (block,))
        return _Link(
            digest,
            sum(c.filesize for c in children),
            len(block) + sum(c.tsize for c in children),
        )

    def finish(self) -> tuple[bytes, int, int]:
        """Close the DAG; return (root digest, file size, cumulative DAG size)."""
        if self._chunks == 0:
            self.add_chunk(b"")
        level = -1
        while level + 1 < len(self._levels):  # _push may add a level on the way up
            level += 1
            pending = self._levels[level]
            if not pending:
                continue
            higher = any(self._levels[j] for j in range(level + 1, len(self._levels)))
            if len(pending) == 1 and not higher:
                root = pending[0]
                return root.digest, root.filesize, root.tsize
            self._levels[level] = []
            self._push(level + 1, self._make_node(pending))
        raise AssertionError("unreachable: importer finished without a root")  # pragma: no cover


def encode_file_node(children: Sequence[_Link]) -> bytes:
    """An internal UnixFS File node linking ``children`` (CIDv0 links, empty names)."""
    out = bytearray()
    for c in children:
        link = b"\x0a\x22\x12\x20" + c.digest + b"\x12\x00\x18" + encode_varint(c.tsize)
        out += b"\x12" + encode_varint(len(link)) + link
    unixfs = bytearray(b"\x08\x02\x18")
    unixfs += encode_varint(sum(c.filesize for c in children))
    for c in children:
        unixfs += b"\x20" + encode_varint(c.filesize)
    out += b"\x0a" + encode_varint(len(unixfs)) + unixfs
    return bytes(out)


def iter_chunks(stream: BinaryIO, chunk_size: int = CHUNK_SIZE) -> Iterator[memoryview]:
    """Yield full ``chunk_size`` chunks (short reads are completed) and a final short one.

    The same buffer is reused between chunks, so a consumer must finish with a chunk before
    asking for the next; that is what keeps memory bounded.
    """
    buf = bytearray(chunk_size)
    view = memoryview(buf)
    readinto = getattr(stream, "readinto", None)
    while True:
        filled = 0
        while filled < chunk_size:
            if readinto is not None:
                got = readinto(view[filled:])
            else:
                data = stream.read(chunk_size - filled)
                got = len(data) if data else 0
                if got:
                    view[filled : filled + got] = data
            if not got:
                break
            filled += got
        if filled:
            yield view[:filled]
        if filled < chunk_size:
            return


# --------------------------------------------------------------------------- decoding
@dataclass
class PBLink:
    cid: Cid
    name: str
    tsize: int | None


@dataclass
class PBNode:
    links: list[PBLink]
    data: bytes | None


@dataclass
class UnixFSData:
    type: int
    data: bytes
    filesize: int | None
    blocksizes: list[int]


def _read_len(buf: bytes, pos: int, what: str) -> tuple[bytes, int]:
    length, pos = decode_varint(buf, pos)
    end = pos + length
    if end > len(buf):
        raise ValueError(f"{what} runs past the end of the block")
    return buf[pos:end], end


def decode_pbnode(block: bytes, cid: Cid | str = "block") -> PBNode:
    """Decode a dag-pb node; raise :class:`CorruptBlockError` naming ``cid`` if malformed."""
    links: list[PBLink] = []
    data: bytes | None = None
    pos = 0
    try:
        while pos < len(block):
            key, pos = decode_varint(block, pos)
            if key == 0x12:
                raw, pos = _read_len(block, pos, "link")
                links.append(_decode_link(raw))
            elif key == 0x0A:
                data, pos = _read_len(block, pos, "data")
            else:
                raise ValueError(f"unexpected protobuf key 0x{key:x} in dag-pb node")
    except (ValueError, CorruptBlockError) as exc:
        raise CorruptBlockError(f"block {cid} is not a valid dag-pb node: {exc}") from None
    return PBNode(links, data)


def _decode_link(raw: bytes) -> PBLink:
    pos = 0
    cid: Cid | None = None
    name = ""
    tsize: int | None = None
    while pos < len(raw):
        key, pos = decode_varint(raw, pos)
        if key == 0x0A:
            value, pos = _read_len(raw, pos, "link hash")
            try:
                cid = Cid.from_bytes(value)
            except Exception as exc:  # InvalidCidError: report as a corrupt block
                raise ValueError(f"link hash: {exc}") from None
        elif key == 0x12:
            value, pos = _read_len(raw, pos, "link name")
            name = value.decode("utf-8", errors="replace")
        elif key == 0x18:
            tsize, pos = decode_varint(raw, pos)
        else:
            raise ValueError(f"unexpected protobuf key 0x{key:x} in dag-pb link")
    if cid is None:
        raise ValueError("link without a hash")
    return PBLink(cid, name, tsize)


def decode_unixfs(data: bytes, cid: Cid | str = "block") -> UnixFSData:
    """Decode the UnixFS message in a dag-pb node's Data field."""
    ftype: int | None = None
    payload = b""
    filesize: int | None = None
    blocksizes: list[int] = []
    pos = 0
    try:
        while pos < len(data):
            key, pos = decode_varint(data, pos)
            field_no, wire = key >> 3, key & 7
            if field_no == 1 and wire == 0:
                ftype, pos = decode_varint(data, pos)
            elif field_no == 2 and wire == 2:
                payload, pos = _read_len(data, pos, "unixfs data")
            elif field_no == 3 and wire == 0:
                filesize, pos = decode_varint(data, pos)
            elif field_no == 4 and wire == 0:
                value, pos = decode_varint(data, pos)
                blocksizes.append(value)
            elif field_no == 4 and wire == 2:  # packed encoding, accepted on read
                packed, pos = _read_len(data, pos, "blocksizes")
                p = 0
                while p < len(packed):
                    value, p = decode_varint(packed, p)
                    blocksizes.append(value)
            elif wire == 0:  # hashType, fanout, mode: not needed to read a file
                _, pos = decode_varint(data, pos)
            elif wire == 2:  # mtime and future fields
                _, pos = _read_len(data, pos, "unixfs field")
            else:
                raise ValueError(f"unexpected protobuf key 0x{key:x} in UnixFS data")
    except ValueError as exc:
        raise CorruptBlockError(f"block {cid} has invalid UnixFS data: {exc}") from None
    if ftype is None:
        raise CorruptBlockError(f"block {cid} has UnixFS data without a type")
    return UnixFSData(ftype, payload, filesize, blocksizes)


def decode_file_block(block: bytes, cid: Cid) -> tuple[bytes, list[PBLink], int]:
    """Return (inline bytes, child links, declared file size) for one block of a UnixFS file.

    Raw-codec blocks (Kubo ``--raw-leaves``) are plain data; dag-pb blocks must be UnixFS
    ``File`` or ``Raw`` nodes. Directories and other types are refused with a clear message.
    """
    if cid.codec == RAW:
        return block, [], len(block)
    if cid.codec != DAG_PB:  # pragma: no cover - Cid only admits the two codecs
        raise CorruptBlockError(f"block {cid}: codec {cid.codec_name} cannot hold a file")
    node = decode_pbnode(block, cid)
    if node.data is None:
        raise CorruptBlockError(f"block {cid} is a dag-pb node without UnixFS data")
    fs = decode_unixfs(node.data, cid)
    if fs.type not in (UNIXFS_FILE, UNIXFS_RAW):
        kind = "a directory" if fs.type == UNIXFS_DIRECTORY else f"UnixFS type {fs.type}"
        raise CorruptBlockError(f"{cid} is {kind}, not a file; only single files are supported")
    if node.links and len(fs.blocksizes) != len(node.links):
        raise CorruptBlockError(
            f"block {cid} has {len(node.links)} links but {len(fs.blocksizes)} blocksizes"
        )
    declared = fs.filesize if fs.filesize is not None else len(fs.data) + sum(fs.blocksizes)
    if declared != len(fs.data) + sum(fs.blocksizes):
        raise CorruptBlockError(
            f"block {cid} declares filesize {declared} but its data and children sum to "
            f"{len(fs.data) + sum(fs.blocksizes)}"
        )
    return fs.data, [link for link in node.links], declared


def child_sizes(block: bytes, cid: Cid) -> list[int]:
    """``blocksizes`` of a file node (empty for leaves): used to check each child's length."""
    if cid.codec == RAW:
        return []
    node = decode_pbnode(block, cid)
    return decode_unixfs(node.data or b"", cid).blocksizes if node.data else []


def block_links(block: bytes, cid: Cid) -> list[Cid]:
    """CIDs a block links to (for DAG walks: pin, gc, CAR export); raw blocks have none."""
    if cid.codec == RAW:
        return []
    return [link.cid for link in decode_pbnode(block, cid).links]
