"""The embedded blockstore: IPFS blocks as files under a data directory, no daemon to run.

Layout under ``root``::

    blocks/<2 hex>/<64 hex>   one file per block, named by its sha2-256 digest (sharded so
                              that no folder holds more than ~1/256 of the blocks)
    pins.json                 the recursive pins (CID strings), rewritten atomically
    tmp/                      staging for adds and imports in progress
    lock                      flock(2) guard for the operations that change pins or blocks

Why it is shaped this way:

* Blocks are keyed by digest only, like Kubo's blockstore: ``Qm...`` and ``bafy...`` of the
  same DAG are one block, and a raw leaf imported from a CAR file shares the key space.
* Every write is temp file + ``os.replace``, so a reader never sees half a block; every read
  re-hashes, so a flipped bit on disk surfaces as :class:`CorruptBlockError` naming the CID and
  file, never as wrong adapter weights.
* ``add_*`` and ``import_car`` write into a private staging folder and only move blocks into
  ``blocks/`` (and pin the root) once the whole DAG is complete and verified, under the lock.
  A failure at any point removes the staging folder and any block it had already moved, so
  nothing partial is left; ``gc`` cannot race with a commit because it takes the same lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from orchestrator.storage.base import Store
from orchestrator.storage.car import read_car, write_car
from orchestrator.storage.cid import import_stream
from orchestrator.storage.codec import Cid, parse_cid
from orchestrator.storage.errors import (
    CarFormatError,
    CidMismatchError,
    CorruptBlockError,
    MissingBlockError,
    NotFoundError,
    PayloadTooLargeError,
    StorageError,
)
from orchestrator.storage.unixfs import block_links, child_sizes, decode_file_block

log = logging.getLogger(__name__)

_PINS_VERSION = 1
_Getter = Callable[[Cid], bytes]


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class EmbeddedStore(Store):
    """On-disk blockstore implementing :class:`Store`, plus block-level put/get and CAR I/O."""

    def __init__(self, root: os.PathLike[str] | str) -> None:
        self.root = Path(root).expanduser()
        self.blocks_dir = self.root / "blocks"
        self.tmp_dir = self.root / "tmp"
        self.pins_path = self.root / "pins.json"
        try:
            self.blocks_dir.mkdir(parents=True, exist_ok=True)
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the blockstore at {self.root}: {exc}") from None

    def __repr__(self) -> str:
        return f"EmbeddedStore({str(self.root)!r})"

    # ------------------------------------------------------------------ locking / paths
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.root / "lock", "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _block_path(self, digest: bytes) -> Path:
        hexd = digest.hex()
        return self.blocks_dir / hexd[:2] / hexd

    # ------------------------------------------------------------------ blocks
    def has_block(self, cid: str | Cid) -> bool:
        return self._block_path(parse_cid(cid).digest).is_file()

    def get_block(self, cid: str | Cid) -> bytes:
        """The block's bytes, re-hashed against ``cid``."""
        c = parse_cid(cid)
        path = self._block_path(c.digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise MissingBlockError(f"block {c} is not in the blockstore at {self.root}") from None
        if hashlib.sha256(data).digest() != c.digest:
            raise CorruptBlockError(
                f"block {c} in {path} is corrupt: its {len(data)} bytes do not hash to the CID; "
                "delete the file and fetch or import the content again"
            )
        return data

    def put_block(self, data: bytes, cid: str | Cid | None = None) -> str:
        """Store one block; if ``cid`` is given the data must hash to it. Not pinned."""
        digest = hashlib.sha256(data).digest()
        c = parse_cid(cid) if cid is not None else None
        if c is not None and c.digest != digest:
            raise CidMismatchError(f"block announced as {c} hashes to a different digest")
        c = c or Cid(1, 0x55, digest)
        path = self._block_path(digest)
        if not self._intact(path, digest):  # absent, or corrupt: (re)write it
            self._write_atomic(path, (data,))
        return str(c)

    @staticmethod
    def _intact(path: Path, digest: bytes) -> bool:
        """True when ``path`` holds a block hashing to ``digest`` (re-adding repairs a bad one)."""
        try:
            return hashlib.sha256(path.read_bytes()).digest() == digest
        except FileNotFoundError:
            return False

    def _write_atomic(self, path: Path, parts: Sequence[bytes | memoryview]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(tmp, "wb") as fh:
                for part in parts:
                    fh.write(part)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    # ------------------------------------------------------------------ pins
    def _read_pins(self) -> set[str]:
        try:
            doc = json.loads(self.pins_path.read_text())
        except FileNotFoundError:
            return set()
        except (OSError, ValueError) as exc:
            raise CorruptBlockError(
                f"pin list {self.pins_path} is unreadable ({exc}); restore it or delete it and "
                "pin your content again"
            ) from None
        return set(doc.get("pins", []))

    def _write_pins(self, pins: set[str]) -> None:
        body = json.dumps({"version": _PINS_VERSION, "pins": sorted(pins)}, indent=1).encode()
        tmp = self.pins_path.with_name(f".pins.{uuid.uuid4().hex}.tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.pins_path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.root)

    def pins(self) -> list[str]:
        """The recursively pinned root CIDs (canonical form: CIDv0 for dag-pb)."""
        return sorted(self._read_pins())

    def pin(self, cid: str) -> None:
        c = parse_cid(cid).canonical()
        with self._locked():
            self._check_complete(c, self.get_block)  # every block present and intact
            pins = self._read_pins()
            if str(c) not in pins:
                self._write_pins(pins | {str(c)})

    def unpin(self, cid: str) -> None:
        c = parse_cid(cid).canonical()
        with self._locked():
            pins = self._read_pins()
            if str(c) not in pins:
                raise NotFoundError(f"{c} is not pinned in {self.root}; nothing to unpin")
            self._write_pins(pins - {str(c)})

    # ------------------------------------------------------------------ DAG walks
    @staticmethod
    def _walk_dag(root: Cid, get: _Getter) -> Iterator[tuple[Cid, bytes]]:
        """Depth-first pre-order (CAR order), each block once. Generator: caller iterates."""
        seen: set[bytes] = set()
        stack = [root]
        while stack:
            c = stack.pop()
            if c.digest in seen:
                continue
            seen.add(c.digest)
            block = get(c)
            yield c, block
            stack.extend(reversed(block_links(block, c)))

    def _check_complete(self, root: Cid, get: _Getter) -> int:
        return sum(1 for _ in self._walk_dag(root, get))

    # ------------------------------------------------------------------ files
    def add_bytes(self, data: bytes) -> str:
        return self._add_stream(io.BytesIO(data), "bytes")

    def add_file(self, path: os.PathLike[str] | str) -> str:
        p = Path(path)
        try:
            fh = open(p, "rb")
        except FileNotFoundError:
            raise NotFoundError(f"file {p} does not exist; nothing to add") from None
        except IsADirectoryError:
            raise NotFoundError(f"{p} is a directory; only single files can be added") from None
        with fh:
            return self._add_stream(fh, str(p))

    def _add_stream(self, stream: io.BufferedIOBase | io.BytesIO, label: str) -> str:
        staging = self.tmp_dir / f"add-{uuid.uuid4().hex}"
        staging.mkdir()
        try:

            def sink(digest: bytes, parts: Sequence[bytes | memoryview]) -> None:
                target = staging / digest.hex()
                if not target.exists():
                    with open(target, "wb") as fh:
                        for part in parts:
                            fh.write(part)

            root, _ = import_stream(stream, sink)  # type: ignore[arg-type]
            self._commit(staging, [root])
            return str(root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _commit(self, staging: Path, roots: list[Cid]) -> None:
        """Move staged blocks into the store and pin ``roots``, all or nothing."""
        moved: list[Path] = []
        with self._locked():
            try:
                for entry in os.scandir(staging):
                    digest = bytes.fromhex(entry.name)
                    target = self._block_path(digest)
                    if self._intact(target, digest):
                        continue
                    target.parent.mkdir(exist_ok=True)
                    os.replace(entry.path, target)
                    moved.append(target)
                pins = self._read_pins()
                self._write_pins(pins | {str(r.canonical()) for r in roots})
            except BaseException:
                for target in moved:
                    target.unlink(missing_ok=True)
                raise

    def _iter_file(self, cid: Cid, max_bytes: int | None = None) -> Iterator[bytes]:
        """Stream a UnixFS file, checking each child's length against its parent's blocksizes."""
        root_block = self.get_block(cid)
        _, _, declared = decode_file_block(root_block, cid)
        if max_bytes is not None and declared > max_bytes:
            raise PayloadTooLargeError(
                f"{cid} declares {declared} bytes, over the limit of {max_bytes} bytes; refused "
                "before loading"
            )
        total = 0
        # stack of (cid, expected length or None, preloaded block)
        stack: list[tuple[Cid, int | None, bytes | None]] = [(cid, declared, root_block)]
        while stack:
            c, expected, block = stack.pop()
            if block is None:
                block = self.get_block(c)
            data, links, node_size = decode_file_block(block, c)
            if expected is not None and node_size != expected:
                raise CorruptBlockError(
                    f"block {c} holds {node_size} bytes of the file but its parent says {expected}"
                )
            if data:
                total += len(data)
                if max_bytes is not None and total > max_bytes:
                    raise PayloadTooLargeError(
                        f"{cid} is larger than the limit of {max_bytes} bytes"
                    )
                yield data
            if links:
                sizes = child_sizes(block, c)
                for link, size in reversed(list(zip(links, sizes))):
                    stack.append((link.cid, size, None))
        if total != declared:
            raise CorruptBlockError(f"{cid} declares {declared} bytes but its blocks hold {total}")

    def cat(self, cid: str, max_bytes: int | None = None) -> bytes:
        return b"".join(self._iter_file(parse_cid(cid), max_bytes))

    def get_file(self, cid: str, dest_path: os.PathLike[str] | str) -> Path:
        dest = Path(dest_path)
        c = parse_cid(cid)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
        try:
            with open(tmp, "wb") as fh:
                for piece in self._iter_file(c):
                    fh.write(piece)
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return dest

    def has(self, cid: str) -> bool:
        try:
            self._check_complete(parse_cid(cid), self.get_block)
        except MissingBlockError:
            return False
        return True

    # ------------------------------------------------------------------ gc
    def _reachable(self, roots: Iterable[Cid]) -> tuple[set[bytes], dict[str, str]]:
        """Digests reachable from ``roots`` through intact blocks, and {root: problem} for damaged DAGs."""
        keep: set[bytes] = set()
        damaged: dict[str, str] = {}
        for root in roots:
            stack = [root]
            while stack:
                c = stack.pop()
                if c.digest in keep:
                    continue
                try:
                    block = self.get_block(c)
                except (MissingBlockError, CorruptBlockError) as exc:
                    damaged.setdefault(str(root), f"{type(exc).__name__}: {exc}")
                    continue
                keep.add(c.digest)
                stack.extend(block_links(block, c))
        return keep, damaged

    def verify(self, root: str | None = None, *, repair: bool = False) -> dict[str, str]:
        """Re-hash stored blocks: every block, or the DAG of ``root``; returns {cid or file: problem}.

        ``repair`` deletes corrupt blocks so that re-adding or importing the content (or a
        refetch from a peer) writes them again; missing blocks are only reported.
        """
        problems: dict[str, str] = {}
        with self._locked():
            if root is not None:
                _, damaged = self._reachable([parse_cid(root)])
                problems.update(damaged)
            for shard in os.scandir(self.blocks_dir):
                if not shard.is_dir():
                    continue
                for entry in os.scandir(shard.path):
                    try:
                        digest = bytes.fromhex(entry.name)
                    except ValueError:
                        continue  # temp files and foreign files
                    if self._intact(Path(entry.path), digest):
                        continue
                    problems[str(Cid(1, 0x55, digest))] = f"corrupt block file {entry.path}"
                    if repair:
                        os.unlink(entry.path)
        return problems

    def gc(self) -> int:
        """Delete blocks no pin reaches; a damaged pinned DAG does not stop it (see ``verify``).

        Blocks reachable from a pin through intact blocks are kept; corrupt blocks are deleted
        (they are useless; re-adding the content writes them again). Damaged pins are logged.
        """
        removed = 0
        with self._locked():
            keep, damaged = self._reachable(Cid.parse(pin) for pin in self._read_pins())
            for pin, problem in sorted(damaged.items()):
                log.warning("gc: pinned %s is damaged (%s); re-add or import it to repair", pin, problem)
            for shard in os.scandir(self.blocks_dir):
                if not shard.is_dir():
                    continue
                for entry in os.scandir(shard.path):
                    name = entry.name
                    if name.startswith("."):  # an interrupted write's temp file
                        os.unlink(entry.path)
                        continue
                    try:
                        digest = bytes.fromhex(name)
                    except ValueError:
                        continue  # not ours: leave foreign files alone
                    if digest not in keep:
                        os.unlink(entry.path)
                        removed += 1
            # staging left behind by a killed process (commits hold the lock, so none is live
            # except adds still importing; only remove those older than an hour)
            for entry in os.scandir(self.tmp_dir):
                if time.time() - entry.stat().st_mtime > 3600:
                    shutil.rmtree(entry.path, ignore_errors=True)
        return removed

    def block_count(self) -> int:
        """How many blocks are stored (tests and ``ipfs gc`` reporting use it)."""
        return sum(
            1
            for shard in os.scandir(self.blocks_dir)
            if shard.is_dir()
            for e in os.scandir(shard.path)
            if not e.name.startswith(".")
        )

    # ------------------------------------------------------------------ CAR
    def export_car(self, cid: str, path: os.PathLike[str] | str) -> Path:
        c = parse_cid(cid)
        dest = Path(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
        try:
            with open(tmp, "wb") as fh:
                write_car(fh, [c], self._walk_dag(c, self.get_block))
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return dest

    def import_car(self, path: os.PathLike[str] | str) -> list[str]:
        p = Path(path)
        staging = self.tmp_dir / f"car-{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            try:
                fh = open(p, "rb")
            except FileNotFoundError:
                raise NotFoundError(f"CAR file {p} does not exist") from None
            with fh:
                roots, sections = read_car(fh, str(p))
                if not roots:
                    raise CarFormatError(f"{p}: the CAR header names no root; nothing to pin")
                for c, block in sections:
                    target = staging / c.digest.hex()
                    if not target.exists():
                        target.write_bytes(block)

            def get(c: Cid) -> bytes:
                staged = staging / c.digest.hex()
                if staged.exists():
                    return staged.read_bytes()  # hashed while reading the CAR
                try:
                    return self.get_block(c)
                except MissingBlockError:
                    raise MissingBlockError(
                        f"{p}: block {c} is linked from the DAG but is neither in the CAR file "
                        f"nor in the store; nothing was imported"
                    ) from None

            for root in roots:
                self._check_complete(root, get)
            self._commit(staging, roots)
            return [str(r) for r in roots]
        finally:
            shutil.rmtree(staging, ignore_errors=True)
