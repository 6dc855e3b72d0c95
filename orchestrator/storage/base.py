"""The interface every content store implements (embedded blockstore, Kubo node).

Daemons hold a :class:`Store` and never care which backend is behind it: CIDs are the same
(Kubo's ``ipfs add`` defaults) so content added through one is addressable through the other.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path

from orchestrator.storage.errors import StorageError


class Store(ABC):
    """Content-addressed file storage with pinning. All CIDs returned are CIDv0 strings."""

    @abstractmethod
    def add_bytes(self, data: bytes) -> str:
        """Store ``data`` as one UnixFS file, pin it, return its CIDv0."""

    @abstractmethod
    def add_file(self, path: os.PathLike[str] | str) -> str:
        """Store the file at ``path`` (streamed), pin it, return its CIDv0."""

    @abstractmethod
    def cat(self, cid: str, max_bytes: int | None = None) -> bytes:
        """The file's bytes, verified against ``cid``.

        ``max_bytes`` refuses (PayloadTooLargeError) content whose declared size is larger,
        before loading it, so that a hostile CID cannot exhaust memory.
        """

    @abstractmethod
    def get_file(self, cid: str, dest_path: os.PathLike[str] | str) -> Path:
        """Write the file to ``dest_path`` (atomically: temp file then rename)."""

    @abstractmethod
    def has(self, cid: str) -> bool:
        """Whether the whole DAG under ``cid`` is available from this store without fetching."""

    @abstractmethod
    def pin(self, cid: str) -> None:
        """Protect the DAG under ``cid`` (recursively) from garbage collection."""

    @abstractmethod
    def unpin(self, cid: str) -> None:
        """Remove the recursive pin on ``cid``; its blocks go at the next :meth:`gc`."""

    @abstractmethod
    def gc(self) -> int:
        """Delete unpinned blocks; return how many were removed."""

    def export_car(self, cid: str, path: os.PathLike[str] | str) -> Path:
        """Write the DAG under ``cid`` as a CARv1 file (``ipfs dag import`` reads it)."""
        raise StorageError(f"{type(self).__name__} cannot export CAR files")

    def import_car(self, path: os.PathLike[str] | str) -> list[str]:
        """Load a CAR file, pin its roots, return them."""
        raise StorageError(f"{type(self).__name__} cannot import CAR files")
