"""CARv1 (Content Addressable aRchive) reading and writing, compatible with ``ipfs dag import``.

Layout (https://ipld.io/specs/transport/car/carv1/): ``varint(len) dag-cbor({"roots": [CID...],
"version": 1})`` then sections ``varint(len(cid)+len(block)) cid block``. A CIDv0 is written
in its binary form (the bare multihash), as go-car does. Reading also accepts a CARv2 file
(what ``ipfs dag export`` may be asked to produce elsewhere) by unwrapping its inner CARv1
payload; the index is ignored.

The dag-cbor needed for the header is a handful of major types, so it is decoded here with a
strict, bounded parser instead of a CBOR dependency.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

from orchestrator.storage.codec import Cid, decode_varint, encode_varint
from orchestrator.storage.errors import CarFormatError, CidMismatchError, InvalidCidError

MAX_HEADER_BYTES = 1 << 20
# Kubo refuses blocks over 2 MiB (bitswap's limit is 2 MiB too); a section a little larger
# than that is not a block anyone could have produced with ipfs add.
MAX_SECTION_BYTES = (2 << 20) + 128
_CARV2_PRAGMA = bytes.fromhex("0aa16776657273696f6e02")


# --------------------------------------------------------------------------- dag-cbor subset
def _cbor_head(major: int, value: int) -> bytes:
    if value < 24:
        return bytes([(major << 5) | value])
    for info, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
        if value < (1 << (8 * struct.calcsize(fmt))):
            return bytes([(major << 5) | info]) + struct.pack(fmt, value)
    raise ValueError("CBOR value too large")  # pragma: no cover


def encode_header(roots: list[Cid]) -> bytes:
    """dag-cbor ``{"roots": [...], "version": 1}`` (keys in dag-cbor's length-first order)."""
    out = bytearray(_cbor_head(5, 2))
    out += _cbor_head(3, 5) + b"roots" + _cbor_head(4, len(roots))
    for root in roots:
        raw = b"\x00" + root.to_bytes()  # tag 42: identity multibase prefix + binary CID
        out += b"\xd8\x2a" + _cbor_head(2, len(raw)) + raw
    out += _cbor_head(3, 7) + b"version" + _cbor_head(0, 1)
    return bytes(out)


class _CborReader:
    """Strict decoder for the dag-cbor subset a CAR header uses; any surprise is an error."""

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise ValueError("header CBOR is truncated")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def _arg(self, info: int) -> int:
        if info < 24:
            return info
        sizes = {24: 1, 25: 2, 26: 4, 27: 8}
        if info not in sizes:
            raise ValueError(f"CBOR additional info {info} (indefinite length?) is not dag-cbor")
        return int.from_bytes(self._take(sizes[info]), "big")

    def item(self, depth: int = 0) -> Any:
        if depth > 16:
            raise ValueError("header CBOR nested too deeply")
        initial = self._take(1)[0]
        major, info = initial >> 5, initial & 0x1F
        if major == 7:
            simple = {20: False, 21: True, 22: None}
            if info not in simple:
                raise ValueError(f"CBOR simple/float value {info} is not expected in a CAR header")
            return simple[info]
        arg = self._arg(info)
        if major == 0:
            return arg
        if major == 1:
            return -1 - arg
        if major == 2:
            return self._take(arg)
        if major == 3:
            return self._take(arg).decode("utf-8")
        if major == 4:
            if arg > 1024:
                raise ValueError(f"header array of {arg} items is implausible")
            return [self.item(depth + 1) for _ in range(arg)]
        if major == 5:
            if arg > 64:
                raise ValueError(f"header map of {arg} entries is implausible")
            out = {}
            for _ in range(arg):
                key = self.item(depth + 1)
                if not isinstance(key, str):
                    raise ValueError("dag-cbor map keys must be strings")
                out[key] = self.item(depth + 1)
            return out
        # major 6: tag
        value = self.item(depth + 1)
        if arg != 42 or not isinstance(value, bytes) or not value.startswith(b"\x00"):
            raise ValueError(f"CBOR tag {arg} is not a CID link (tag 42)")
        return Cid.from_bytes(value[1:], what="CAR root")


def decode_header(raw: bytes, source: str) -> tuple[int, list[Cid]]:
    try:
        reader = _CborReader(raw)
        header = reader.item()
        if reader.pos != len(raw):
            raise ValueError(f"{len(raw) - reader.pos} bytes after the header map")
    except (ValueError, UnicodeDecodeError, InvalidCidError) as exc:
        raise CarFormatError(f"{source}: bad CAR header: {exc}") from None
    if not isinstance(header, dict) or "version" not in header:
        raise CarFormatError(f"{source}: bad CAR header: not a map with a 'version' key")
    version = header["version"]
    if version != 1:
        raise CarFormatError(
            f"{source}: CAR version {version!r} is not supported (1, or 2 wrapping 1)"
        )
    roots = header.get("roots")
    if not isinstance(roots, list) or not all(isinstance(r, Cid) for r in roots):
        raise CarFormatError(f"{source}: bad CAR header: 'roots' must be a list of CIDs")
    return version, roots


# --------------------------------------------------------------------------- reading
def _read_exact(stream: BinaryIO, n: int, source: str, what: str) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise CarFormatError(f"{source}: truncated {what}: expected {n} bytes, got {len(data)}")
    return data


def _read_varint(stream: BinaryIO, source: str, what: str) -> int | None:
    """Read a varint from a stream; None at a clean EOF before its first byte."""
    raw = bytearray()
    while True:
        b = stream.read(1)
        if not b:
            if raw:
                raise CarFormatError(f"{source}: truncated varint in {what}")
            return None
        raw += b
        if not b[0] & 0x80:
            break
        if len(raw) > 9:
            raise CarFormatError(f"{source}: varint in {what} is longer than 64 bits")
    try:
        return decode_varint(bytes(raw))[0]
    except ValueError as exc:
        raise CarFormatError(f"{source}: bad varint in {what}: {exc}") from None


class _Limited:
    """A read-only window of ``size`` bytes over a stream (the CARv1 payload inside a CARv2)."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self._stream, self._left = stream, size

    def read(self, n: int = -1) -> bytes:
        n = self._left if n < 0 else min(n, self._left)
        data = self._stream.read(n)
        self._left -= len(data)
        return data


def read_car(
    stream: BinaryIO, source: str = "CAR"
) -> tuple[list[Cid], Iterator[tuple[Cid, bytes]]]:
    """Parse the header now; return the roots and a lazy iterator of verified (CID, block).

    Every block is re-hashed: a block that does not match its section's CID raises
    :class:`CidMismatchError` naming the CID and the section's byte offset.
    """
    length = _read_varint(stream, source, "header length")
    if length is None or length == 0:
        raise CarFormatError(f"{source}: empty file, no CAR header")
    if length > MAX_HEADER_BYTES:
        raise CarFormatError(f"{source}: header length {length} is implausible (not a CAR file?)")
    raw = _read_exact(stream, length, source, "header")
    if encode_varint(length) + raw == _CARV2_PRAGMA:
        fixed = _read_exact(stream, 40, source, "CARv2 header")
        data_offset, data_size = struct.unpack("<QQ", fixed[16:32])
        skip = data_offset - len(_CARV2_PRAGMA) - 40
        if skip < 0:
            raise CarFormatError(
                f"{source}: CARv2 data offset {data_offset} points into its header"
            )
        _read_exact(stream, skip, source, "CARv2 padding")
        return read_car(_Limited(stream, data_size), source)  # type: ignore[arg-type]
    _, roots = decode_header(raw, source)
    return roots, _iter_sections(stream, source, len(encode_varint(length)) + length)


def _iter_sections(stream: BinaryIO, source: str, offset: int) -> Iterator[tuple[Cid, bytes]]:
    while True:
        start = offset
        length = _read_varint(stream, source, f"section at byte {start}")
        if length is None:
            return
        if length == 0 or length > MAX_SECTION_BYTES:
            raise CarFormatError(
                f"{source}: section at byte {start} has implausible length {length}"
            )
        body = _read_exact(stream, length, source, f"section at byte {start}")
        offset = start + len(encode_varint(length)) + length
        try:
            cid, pos = Cid.read(body, 0, what=f"{source} section at byte {start}")
        except InvalidCidError as exc:
            raise CarFormatError(str(exc)) from None
        block = body[pos:]
        if hashlib.sha256(block).digest() != cid.digest:
            raise CidMismatchError(
                f"{source}: block {cid} (section at byte {start}) does not hash to its CID; "
                "the CAR file is corrupt"
            )
        yield cid, block


# --------------------------------------------------------------------------- writing
def write_car(stream: BinaryIO, roots: list[Cid], blocks: Iterable[tuple[Cid, bytes]]) -> int:
    """Write a CARv1; return the number of blocks written."""
    header = encode_header(roots)
    stream.write(encode_varint(len(header)) + header)
    count = 0
    for cid, block in blocks:
        raw = cid.to_bytes()
        stream.write(encode_varint(len(raw) + len(block)))
        stream.write(raw)
        stream.write(block)
        count += 1
    return count
