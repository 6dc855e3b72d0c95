"""Small wire-format primitives: unsigned varints, base58btc, base32, CID parsing and printing.

Written here instead of pulling in py-multiformats/py-cid: the subset IPFS file storage needs is
a few dozen lines, and owning it keeps the dependency set (which must resolve next to brownie)
unchanged. Only what Kubo's ``ipfs add`` produces is supported: sha2-256 multihashes with the
dag-pb or raw codec, CIDv0 (base58btc ``Qm...``) and CIDv1 in base32 (``b...``).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from orchestrator.storage.errors import InvalidCidError

SHA2_256 = 0x12
SHA2_256_LEN = 32
DAG_PB = 0x70
RAW = 0x55
_CODEC_NAMES = {DAG_PB: "dag-pb", RAW: "raw"}

_B58_ALPHABET = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}


# --------------------------------------------------------------------------- varints
def encode_varint(value: int) -> bytes:
    """Unsigned LEB128, as used by protobuf, multiformats and CAR section lengths."""
    if value < 0:
        raise ValueError(f"varint must be non-negative, got {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(buf: bytes | memoryview, pos: int = 0) -> tuple[int, int]:
    """Decode an unsigned varint at ``pos``; return ``(value, next_pos)``.

    Raises ``ValueError`` on truncation or on values over 64 bits, which callers turn into the
    error of their own format (corrupt block, bad CAR, bad CID).
    """
    result = 0
    shift = 0
    n = len(buf)
    while True:
        if pos >= n:
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if byte == 0 and shift:
                raise ValueError("varint is not minimally encoded")
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 64 bits")


# --------------------------------------------------------------------------- bases
def b58encode(data: bytes) -> str:
    """base58btc (Bitcoin alphabet), as used by CIDv0."""
    zeros = len(data) - len(data.lstrip(b"\0"))
    num = int.from_bytes(data, "big")
    out = bytearray()
    while num:
        num, rem = divmod(num, 58)
        out.append(_B58_ALPHABET[rem])
    out.extend(b"1" * zeros)
    out.reverse()
    return out.decode("ascii")


def b58decode(text: str) -> bytes:
    num = 0
    raw = text.encode("ascii", errors="replace")
    for ch in raw:
        try:
            num = num * 58 + _B58_INDEX[ch]
        except KeyError:
            raise ValueError(f"character {chr(ch)!r} is not base58btc") from None
    zeros = len(raw) - len(raw.lstrip(b"1"))
    body = num.to_bytes((num.bit_length() + 7) // 8, "big") if num else b""
    return b"\0" * zeros + body


def b32encode_lower(data: bytes) -> str:
    """RFC 4648 base32, lower case, no padding: the multibase ``b`` prefix form."""
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def b32decode_lower(text: str) -> bytes:
    if text != text.lower():
        raise ValueError("multibase 'b' is lower-case base32")
    padded = text.upper() + "=" * (-len(text) % 8)
    return base64.b32decode(padded)


# --------------------------------------------------------------------------- CIDs
@dataclass(frozen=True)
class Cid:
    """A parsed CID restricted to sha2-256 multihashes.

    ``digest`` is what the contracts store as bytes32; ``codec`` tells a reader how to decode
    the block (dag-pb node or raw bytes). Equality is on (version, codec, digest).
    """

    version: int
    codec: int
    digest: bytes

    def __post_init__(self) -> None:
        if self.version not in (0, 1):
            raise InvalidCidError(f"CID version {self.version} is not supported (0 or 1)")
        if self.version == 0 and self.codec != DAG_PB:
            raise InvalidCidError("a CIDv0 is always dag-pb")
        if self.codec not in _CODEC_NAMES:
            raise InvalidCidError(
                f"CID codec 0x{self.codec:x} is not supported (dag-pb 0x70 or raw 0x55)"
            )
        if len(self.digest) != SHA2_256_LEN:
            raise InvalidCidError(f"sha2-256 digest must be 32 bytes, got {len(self.digest)}")

    @property
    def multihash(self) -> bytes:
        return bytes((SHA2_256, SHA2_256_LEN)) + self.digest

    def to_bytes(self) -> bytes:
        """Binary form, as in dag-pb links and CAR sections (v0: the bare multihash)."""
        if self.version == 0:
            return self.multihash
        return encode_varint(1) + encode_varint(self.codec) + self.multihash

    def __str__(self) -> str:
        if self.version == 0:
            return b58encode(self.multihash)
        return "b" + b32encode_lower(self.to_bytes())

    @property
    def codec_name(self) -> str:
        return _CODEC_NAMES[self.codec]

    def canonical(self) -> Cid:
        """The CIDv0 for dag-pb content, else itself: one name per block for pins and keys."""
        if self.codec == DAG_PB:
            return Cid(0, DAG_PB, self.digest)
        return self

    def as_version(self, version: int) -> Cid:
        if version == 0:
            if self.codec != DAG_PB:
                raise InvalidCidError(
                    f"{self} uses codec {self.codec_name}; only dag-pb has a CIDv0"
                )
            return Cid(0, DAG_PB, self.digest)
        return Cid(1, self.codec, self.digest)

    @classmethod
    def parse(cls, text: str) -> Cid:
        """Parse a CIDv0 (``Qm...``) or a base32 CIDv1 (``b...``)."""
        if not isinstance(text, str) or not text:
            raise InvalidCidError(f"{text!r} is not a CID: expected a non-empty string")
        text = text.strip()
        if len(text) == 46 and text.startswith("Qm"):
            try:
                raw = b58decode(text)
            except ValueError as exc:
                raise InvalidCidError(f"{text!r} is not a CIDv0: {exc}") from None
            return cls.from_bytes(raw, what=text)
        if text.startswith("b"):
            try:
                raw = b32decode_lower(text[1:])
            except (ValueError, Exception) as exc:  # binascii.Error is a ValueError
                raise InvalidCidError(f"{text!r} is not a base32 CIDv1: {exc}") from None
            return cls.from_bytes(raw, what=text)
        raise InvalidCidError(
            f"{text!r} is not a supported CID: use a CIDv0 (Qm..., 46 characters) or a "
            "base32 CIDv1 (bafy... / bafk...)"
        )

    @classmethod
    def from_bytes(cls, raw: bytes, what: str | None = None) -> Cid:
        cid, end = cls.read(raw, 0, what=what)
        if end != len(raw):
            raise InvalidCidError(
                f"{what or raw.hex()}: {len(raw) - end} trailing bytes after the CID"
            )
        return cid

    @classmethod
    def read(cls, buf: bytes | memoryview, pos: int, what: str | None = None) -> tuple[Cid, int]:
        """Read one binary CID at ``pos`` (as in a dag-pb link or CAR section)."""
        label = what or "binary CID"
        try:
            if len(buf) - pos >= 2 and buf[pos] == SHA2_256 and buf[pos + 1] == SHA2_256_LEN:
                end = pos + 2 + SHA2_256_LEN
                if end > len(buf):
                    raise ValueError("truncated multihash")
                return cls(0, DAG_PB, bytes(buf[pos + 2 : end])), end
            version, pos = decode_varint(buf, pos)
            if version != 1:
                raise ValueError(f"CID version {version} is not supported")
            codec, pos = decode_varint(buf, pos)
            code, pos = decode_varint(buf, pos)
            length, pos = decode_varint(buf, pos)
            if code != SHA2_256 or length != SHA2_256_LEN:
                raise ValueError(
                    f"multihash 0x{code:x}/{length} is not supported (only sha2-256/32)"
                )
            end = pos + length
            if end > len(buf):
                raise ValueError("truncated multihash")
            return cls(1, codec, bytes(buf[pos:end])), end
        except ValueError as exc:
            raise InvalidCidError(f"{label}: {exc}") from None


def parse_cid(cid: str | Cid) -> Cid:
    """Accept a CID string or an already-parsed :class:`Cid`."""
    return cid if isinstance(cid, Cid) else Cid.parse(cid)
