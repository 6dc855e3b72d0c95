"""Running the dashboard: build the read-only view from a manifest, serve it with uvicorn."""

from __future__ import annotations

import logging
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from orchestrator.chain.contracts import Protocol
from orchestrator.chain.errors import StateMismatchError
from orchestrator.dashboard.app import create_app
from orchestrator.dashboard.data import ChainView
from orchestrator.indexer import Indexer
from orchestrator.storage.base import Store

log = logging.getLogger(__name__)


def build_view(protocol: Protocol, state_dir: Path, store: Store | None = None, anchor: Protocol | None = None,
               *, rpc_url: str = "RPC_URL", manifest_path: str = "MANIFEST", confirmations: int = 0) -> ChainView:
    """Index ``protocol`` (and ``anchor``) into ``state_dir/index-<chainid>.sqlite``; wrap it in a view.

    The index is derived data: when it belongs to another deployment (a chain reset or a
    redeploy with the same chain id) it is set aside as ``*.stale`` and built again.
    """
    path = Path(state_dir) / f"index-{int(protocol.w3.eth.chain_id)}.sqlite"
    indexer = Indexer(protocol, path, anchor=anchor, confirmations=confirmations)
    started = time.perf_counter()
    try:
        indexed = indexer.sync()
    except StateMismatchError as exc:
        indexer.close()
        log.warning("dashboard: %s; rebuilding the index", exc)
        for suffix in ("", "-wal", "-shm"):
            old = path.with_name(path.name + suffix)
            if old.exists():
                old.replace(old.with_name(old.name + ".stale"))
        indexer = Indexer(protocol, path, anchor=anchor, confirmations=confirmations)
        indexed = indexer.sync()
    log.info("indexed %d events in %.1f s", indexed, time.perf_counter() - started)
    return ChainView(protocol, indexer, store, anchor, rpc_url=rpc_url, manifest_path=manifest_path)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class DashboardServer:
    """uvicorn serving ``create_app(view)`` in a background thread; ``port=0`` picks a free one."""

    def __init__(self, view: ChainView, host: str = "127.0.0.1", port: int = 8700, *, poll_interval: float = 2.0) -> None:
        self.view = view
        self.host = host
        self.port = port or free_port(host)
        config = uvicorn.Config(create_app(view), host=host, port=self.port, log_level="warning",
                                access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._server.run, name="dashboard", daemon=True)
        self._poller = threading.Thread(target=self._poll, args=(poll_interval,), name="indexer", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def _poll(self, interval: float) -> None:
        """Keep the index warm between page views (pages also sync on every request)."""
        while not self._stop.wait(interval):
            try:
                self.view.indexer.sync()
            except Exception as exc:  # the node may be restarting: log and try again
                log.warning("indexer: sync failed: %s", exc)

    def start(self, timeout: float = 15.0) -> DashboardServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                from orchestrator.errors import ConfigError

                raise ConfigError(f"the dashboard could not listen on {self.host}:{self.port} "
                                  "(port in use?); pick another --port")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the dashboard did not start within {timeout} s")
            time.sleep(0.05)
        self._poller.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.should_exit = True
        self._thread.join(timeout=10)
        if self._poller.is_alive():
            self._poller.join(timeout=10)

    def wait(self) -> None:
        """Block until Ctrl-C (or :meth:`stop` from another thread)."""
        try:
            while self._thread.is_alive():
                self._thread.join(timeout=0.5)
        except KeyboardInterrupt:
            pass

    def __enter__(self) -> DashboardServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def view_of_consortium(consortium: Any, state_dir: Path) -> ChainView:
    """A view of an in-process consortium (``demo --serve``, the browser tests, the screenshots)."""
    return build_view(consortium.protocol, state_dir, consortium.store, consortium.anchor,
                      rpc_url="http://127.0.0.1:8545", manifest_path="deployments/1337.json")


def serve(view: ChainView, host: str = "127.0.0.1", port: int = 8700) -> None:
    """Print the dashboard's address and serve until Ctrl-C; "started"/"stopped" logged at INFO."""
    server = DashboardServer(view, host, port).start()
    log.info("dashboard started on %s", server.url, extra={"daemon": "dashboard", "event": "started"})
    print(f"dashboard: {server.url} (Ctrl-C to stop)", flush=True)
    try:
        server.wait()
    finally:
        server.stop()
        view.indexer.close()
        log.info("dashboard stopped", extra={"daemon": "dashboard", "event": "stopped"})


def serve_consortium(consortium: Any, state_dir: Path, port: int = 8700, host: str = "127.0.0.1") -> None:
    """``demo --serve``: the dashboard of the demo's in-process chains until Ctrl-C.

    The demo's chains live in memory and are new every run, so the index starts empty too.
    """
    shutil.rmtree(state_dir, ignore_errors=True)
    serve(view_of_consortium(consortium, state_dir), host, port)
