"""Content-addressed storage the way IPFS does it: Kubo-identical CIDs, an embedded blockstore
with CAR import/export, a Kubo backend, and encrypted packaging of LoRA adapters.

No torch import anywhere in this package: adapters are validated with numpy.

Choosing a backend (:func:`open_store`):

* ``api`` argument or ``ORCH_IPFS_API`` set (e.g. ``/ip4/127.0.0.1/tcp/5001/http``) -> a Kubo
  node or pinning gateway exposing the Kubo RPC API (:class:`KuboStore`);
* otherwise the embedded blockstore (:class:`EmbeddedStore`) under ``data_dir``, else
  ``ORCH_IPFS_DIR``, else ``$ORCH_CACHE_DIR/ipfs`` (default ``~/.cache/ledgerlora/ipfs``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from orchestrator.storage.base import Store
from orchestrator.storage.cid import bytes32_to_cid, cid_to_bytes32, compute_cid
from orchestrator.storage.codec import Cid
from orchestrator.storage.embedded import EmbeddedStore
from orchestrator.storage.errors import (
    AdapterValidationError,
    BindingMismatchError,
    CarFormatError,
    CidMismatchError,
    CorruptBlockError,
    DecryptionError,
    InvalidCidError,
    KuboError,
    MissingBlockError,
    NotFoundError,
    PayloadTooLargeError,
    StorageError,
)

__all__ = [
    "Store",
    "EmbeddedStore",
    "KuboStore",
    "open_store",
    "default_data_dir",
    "compute_cid",
    "cid_to_bytes32",
    "bytes32_to_cid",
    "Cid",
    "StorageError",
    "InvalidCidError",
    "CidMismatchError",
    "CorruptBlockError",
    "MissingBlockError",
    "CarFormatError",
    "DecryptionError",
    "BindingMismatchError",
    "AdapterValidationError",
    "PayloadTooLargeError",
    "NotFoundError",
    "KuboError",
    # from orchestrator.storage.adapters, imported on first use (cryptography, numpy):
    "AdapterLimits",
    "generate_keypair",
    "pack_adapter",
    "unpack_adapter",
    "seal",
    "open_sealed",
    "store_adapter",
    "fetch_adapter",
    "validate_adapter",
    "submission_context",
]

_LAZY_ADAPTERS = {
    "AdapterLimits",
    "generate_keypair",
    "pack_adapter",
    "unpack_adapter",
    "seal",
    "open_sealed",
    "store_adapter",
    "fetch_adapter",
    "validate_adapter",
    "submission_context",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY_ADAPTERS:
        from orchestrator.storage import adapters

        return getattr(adapters, name)
    if name == "KuboStore":
        from orchestrator.storage.kubo import KuboStore

        return KuboStore
    raise AttributeError(f"module 'orchestrator.storage' has no attribute {name!r}")


def default_data_dir() -> Path:
    """Where the embedded store lives when nothing else is configured."""
    if os.environ.get("ORCH_IPFS_DIR"):
        return Path(os.environ["ORCH_IPFS_DIR"]).expanduser()
    cache = os.environ.get("ORCH_CACHE_DIR") or "~/.cache/ledgerlora"
    return Path(cache).expanduser() / "ipfs"


def open_store(data_dir: Path | str | None = None, api: str | None = None) -> Store:
    """The configured store: Kubo if ``api`` or ``ORCH_IPFS_API`` is set, else the embedded one.

    The environment variable wins over ``data_dir`` so that a deployment can move every daemon
    to a Kubo node or pinning service without touching their configuration files.
    """
    if api is None:
        api = os.environ.get("ORCH_IPFS_API") or None
    if api:
        from orchestrator.storage.kubo import KuboStore

        return KuboStore(api)
    return EmbeddedStore(Path(data_dir) if data_dir is not None else default_data_dir())
