"""CIDs exactly as Kubo's ``ipfs add`` computes them, and their bytes32 form for the contracts.

``compute_cid`` streams: whatever the input size, it holds one 256 KiB chunk and at most 174
pending links per tree level. The CIDv1 it returns (``version=1``) names the *same DAG* in
base32 (``bafy...``): the root block is identical, only the CID's framing changes. That is
what ``ipfs_cid`` prints as "CIDv1" and what ``ipfs cid format -v 1 -b base32 <CIDv0>``
gives; it is *not* what ``ipfs add --cid-version 1`` prints, because that flag also switches
Kubo to raw leaves and CIDv1 links (a different DAG). See docs/STORAGE.md.
"""

from __future__ import annotations

import io
import os
from typing import BinaryIO

from orchestrator.storage.codec import DAG_PB, Cid, parse_cid
from orchestrator.storage.errors import InvalidCidError, NotFoundError
from orchestrator.storage.unixfs import BlockSink, FileImporter, iter_chunks

__all__ = ["compute_cid", "import_stream", "cid_to_bytes32", "bytes32_to_cid", "Cid", "parse_cid"]


def import_stream(stream: BinaryIO, sink: BlockSink | None = None) -> tuple[Cid, int]:
    """Run the UnixFS importer over ``stream``; return (root CIDv0, file size).

    ``sink`` receives every block (the embedded store writes them); without one this only
    hashes.
    """
    importer = FileImporter(sink=sink)
    for chunk in iter_chunks(stream):
        importer.add_chunk(chunk)
    digest, size, _ = importer.finish()
    return Cid(0, DAG_PB, digest), size


def compute_cid(
    data: bytes | bytearray | memoryview | BinaryIO | os.PathLike[str] | str, version: int = 0
) -> str:
    """The CID Kubo's ``ipfs add`` (defaults) gives ``data``; ``version=1`` for its base32 v1.

    ``data`` may be bytes, a binary file object (read from its current position to EOF) or a
    path. A ``str`` is taken as a path, never as content, so that text is not silently hashed
    in some encoding.
    """
    if version not in (0, 1):
        raise ValueError(f"version must be 0 or 1, got {version!r}")
    if isinstance(data, (bytes, bytearray, memoryview)):
        cid, _ = import_stream(io.BytesIO(data))
    elif isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        try:
            with open(path, "rb") as fh:
                cid, _ = import_stream(fh)
        except FileNotFoundError:
            raise NotFoundError(f"file {path!r} does not exist; nothing to hash") from None
        except IsADirectoryError:
            raise NotFoundError(
                f"{path!r} is a directory; compute_cid hashes single files only"
            ) from None
    elif hasattr(data, "read"):
        cid, _ = import_stream(data)
    else:
        raise TypeError(
            f"compute_cid needs bytes, a binary file or a path, not {type(data).__name__}"
        )
    return str(cid.as_version(version))


def cid_to_bytes32(cid: str) -> bytes:
    """The 32-byte sha2-256 digest the contracts store for a dag-pb CID (v0 or v1)."""
    parsed = parse_cid(cid)
    if parsed.codec != DAG_PB:
        raise InvalidCidError(
            f"{cid} uses codec {parsed.codec_name}; on chain only dag-pb CIDs are stored "
            "(a bytes32 is read back as a CIDv0)"
        )
    return parsed.digest


def bytes32_to_cid(digest: bytes) -> str:
    """The CIDv0 (``Qm...``) for a bytes32 digest read from a contract."""
    if isinstance(digest, str):
        text = digest[2:] if digest.startswith("0x") else digest
        try:
            digest = bytes.fromhex(text)
        except ValueError:
            raise InvalidCidError(f"{digest!r} is not a hex bytes32") from None
    digest = bytes(digest)
    if len(digest) != 32:
        raise InvalidCidError(f"a bytes32 digest has 32 bytes, got {len(digest)}")
    if digest == b"\0" * 32:
        raise InvalidCidError("bytes32 zero is 'no CID' on chain, not a content address")
    return str(Cid(0, DAG_PB, digest))
