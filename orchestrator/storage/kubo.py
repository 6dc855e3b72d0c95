"""A Kubo (go-ipfs) node as a :class:`Store`, through ipfshttpclient 0.7.0.

``ipfshttpclient.connect()`` refuses every daemon from Kubo 0.8 on (its version window ends at
0.8.0; py-ipfs-http-client issues #250, #310, #319). The endpoints we use (``add``, ``cat``,
``pin/add``, ``pin/rm``, ``repo/gc``, ``dag/export``, ``dag/import``, ``version``) are unchanged
in current Kubo, so the client object is built directly, which skips ``assert_version``.

Every ``add`` is sent with the importer settings that make Kubo's CID equal to
:func:`compute_cid` (CIDv0, ``size-262144`` chunker, no raw leaves), and the CID Kubo answers
is checked against one computed locally: a node configured differently (for example
``Import.UnixFSFileMaxLinks`` changed, or the ``unixfs-v1-2025`` profile) is reported instead of
silently putting a different CID on chain. ``cat`` results are re-imported locally and compared
too, so a misbehaving gateway cannot hand back other bytes.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from orchestrator.storage.base import Store
from orchestrator.storage.cid import compute_cid
from orchestrator.storage.codec import DAG_PB, parse_cid
from orchestrator.storage.errors import (
    CidMismatchError,
    KuboError,
    NotFoundError,
    PayloadTooLargeError,
)

DEFAULT_API = "/ip4/127.0.0.1/tcp/5001/http"
ADD_OPTIONS: dict[str, Any] = {
    "cid_version": 0,
    "chunker": "size-262144",
    "raw_leaves": False,
    "pin": True,
}


class KuboStore(Store):
    """Store backed by a Kubo RPC API (``/ip4/.../tcp/5001/http`` multiaddr or URL)."""

    def __init__(
        self,
        api: str = DEFAULT_API,
        timeout: float = 120.0,
        *,
        auth: tuple[str, str] | None = None,
        bearer_token: str | None = None,
    ) -> None:
        """``auth`` (HTTP basic) or ``bearer_token`` for a node or pinning service behind
        authentication; by default taken from ``ORCH_IPFS_API_AUTH`` ("user:password") and
        ``ORCH_IPFS_API_TOKEN``."""
        self.api = api
        if auth is None and os.environ.get("ORCH_IPFS_API_AUTH"):
            user, sep, password = os.environ["ORCH_IPFS_API_AUTH"].partition(":")
            if not sep:
                raise KuboError("ORCH_IPFS_API_AUTH must be 'user:password'")
            auth = (user, password)
        bearer_token = bearer_token or os.environ.get("ORCH_IPFS_API_TOKEN") or None
        headers = {"Authorization": f"Bearer {bearer_token}"} if bearer_token else {}
        try:
            import ipfshttpclient  # lazy: importing it costs ~0.1 s and pulls multiaddr
        except ImportError as exc:  # pragma: no cover - pinned in requirements
            raise KuboError(f"ipfshttpclient is not installed ({exc}); run `make setup`") from None
        self._errors = ipfshttpclient.exceptions
        try:
            # Not ipfshttpclient.connect(): that asserts 0.5 <= version < 0.8 and fails on Kubo.
            self.client = ipfshttpclient.Client(api, timeout=timeout, auth=auth, headers=headers)
        except self._errors.Error as exc:
            raise KuboError(f"cannot use Kubo API address {api!r}: {exc}") from None

    def __repr__(self) -> str:
        return f"KuboStore({self.api!r})"

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except self._errors.ConnectionError as exc:
            raise KuboError(
                f"no Kubo daemon answers at {self.api} ({what}): start one with `ipfs daemon` "
                f"or unset ORCH_IPFS_API to use the embedded store ({exc})"
            ) from None
        except self._errors.Error as exc:
            raise KuboError(f"Kubo at {self.api} failed to {what}: {exc}") from None

    def version(self) -> str:
        """The daemon's version string (also a cheap liveness probe)."""
        return str(self._call("report its version", self.client.version)["Version"])

    # ------------------------------------------------------------------ Store
    def _check(self, got: str, expected: str, what: str) -> str:
        if got != expected:
            raise CidMismatchError(
                f"Kubo at {self.api} stored {what} as {got} but Kubo's ipfs add defaults give "
                f"{expected}; check the node's Import.* settings (chunker, max links, CID version)"
            )
        return got

    def add_bytes(self, data: bytes) -> str:
        expected = compute_cid(data)
        got = self._call("add bytes", self.client.add, io.BytesIO(data), **ADD_OPTIONS)
        return self._check(str(got["Hash"]), expected, f"{len(data)} bytes")

    def add_file(self, path: os.PathLike[str] | str) -> str:
        p = Path(path)
        if not p.is_file():
            raise NotFoundError(f"file {p} does not exist or is not a regular file; nothing to add")
        expected = compute_cid(p)
        got = self._call(f"add {p}", self.client.add, str(p), **ADD_OPTIONS)
        return self._check(str(got["Hash"]), expected, str(p))

    def cat(self, cid: str, max_bytes: int | None = None) -> bytes:
        c = parse_cid(cid)
        kwargs = {} if max_bytes is None else {"length": max_bytes + 1}
        data: bytes = self._call(f"cat {c}", self.client.cat, str(c), **kwargs)
        if max_bytes is not None and len(data) > max_bytes:
            raise PayloadTooLargeError(f"{c} is larger than the limit of {max_bytes} bytes")
        if c.codec == DAG_PB and compute_cid(data) != str(c.as_version(0)):
            raise CidMismatchError(
                f"Kubo at {self.api} returned {len(data)} bytes for {c} that do not re-import to "
                "that CID with ipfs add defaults (tampered, or added with other settings)"
            )
        return data

    def get_file(self, cid: str, dest_path: os.PathLike[str] | str) -> Path:
        dest = Path(dest_path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.part")
        try:
            tmp.write_bytes(self.cat(cid))
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return dest

    def has(self, cid: str) -> bool:
        c = parse_cid(cid)
        try:
            self.client.pin.ls(str(c), type="recursive")
        except self._errors.ConnectionError as exc:
            raise KuboError(f"no Kubo daemon answers at {self.api}: {exc}") from None
        except self._errors.Error:
            return False
        return True

    def pin(self, cid: str) -> None:
        self._call(f"pin {cid}", self.client.pin.add, str(parse_cid(cid)))

    def unpin(self, cid: str) -> None:
        self._call(f"unpin {cid}", self.client.pin.rm, str(parse_cid(cid)))

    def gc(self) -> int:
        result = self._call("run repo gc", self.client.repo.gc)
        return sum(1 for item in result or [] if isinstance(item, dict) and "Key" in item)

    def export_car(self, cid: str, path: os.PathLike[str] | str) -> Path:
        dest = Path(path)
        data = self._call(f"export {cid}", self.client.dag.export, str(parse_cid(cid)))
        dest.write_bytes(data)
        return dest

    def import_car(self, path: os.PathLike[str] | str) -> list[str]:
        p = Path(path)
        if not p.is_file():
            raise NotFoundError(f"CAR file {p} does not exist")
        result = self._call(f"import {p}", self.client.dag.imprt, str(p))
        items = result if isinstance(result, list) else [result]
        return [str(i["Root"]["Cid"]["/"]) for i in items if isinstance(i, dict) and "Root" in i]
