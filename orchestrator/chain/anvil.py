"""A local anvil node as a context manager (tests, the demo, multi-process runs).

The process runs in its own session (process group) and the whole group is terminated on exit,
also when the ``with`` body raises, so neither anvil nor the npm wrapper is ever leaked.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import requests

from orchestrator.chain.errors import ChainError

log = logging.getLogger(__name__)

_REPO_ROOT = Path(__file__).resolve().parents[2]


def find_anvil() -> Path:
    """The anvil executable: ``$ORCH_ANVIL``, the native binary of the npm package, its
    ``node_modules/.bin`` wrapper, or ``anvil`` on PATH."""
    override = os.environ.get("ORCH_ANVIL")
    if override:
        path = Path(override).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ChainError(f"ORCH_ANVIL={override} is not an executable file")
        return path
    native = sorted((_REPO_ROOT / "node_modules" / "@foundry-rs").glob("anvil-*/bin/anvil"))
    candidates = [*native, _REPO_ROOT / "node_modules" / ".bin" / "anvil"]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    on_path = shutil.which("anvil")
    if on_path:
        return Path(on_path)
    raise ChainError(
        "anvil not found: run `make setup` (installs @foundry-rs/anvil into node_modules) "
        "or set ORCH_ANVIL to the executable"
    )


def free_port() -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AnvilProcess:
    """``with AnvilProcess() as node: connect(node.url)``.

    ``block_time=None`` mines on every transaction (automine); a number mines every that many
    seconds. ``start_timeout`` bounds the wait for the first answer to ``eth_chainId``.
    """

    def __init__(
        self,
        port: int | None = None,
        block_time: float | None = None,
        chain_id: int = 31337,
        *,
        accounts: int = 10,
        start_timeout: float = 30.0,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        if chain_id <= 0:
            raise ValueError(f"chain_id must be positive, got {chain_id}")
        if block_time is not None and block_time <= 0:
            raise ValueError(f"block_time must be > 0 seconds or None, got {block_time}")
        self.port = port
        self.block_time = block_time
        self.chain_id = chain_id
        self.accounts = accounts
        self.start_timeout = start_timeout
        self.extra_args = extra_args
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: tempfile._TemporaryFileWrapper[bytes] | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise ChainError("AnvilProcess is not started; use it as a context manager")
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> AnvilProcess:
        if self._proc is not None:
            raise ChainError("AnvilProcess already started")
        exe = find_anvil()
        if self.port is None:
            self.port = free_port()
        args = [str(exe), "--host", "127.0.0.1", "--port", str(self.port),
                "--chain-id", str(self.chain_id), "--accounts", str(self.accounts)]
        if self.block_time is not None:
            args += ["--block-time", str(self.block_time)]
        args += list(self.extra_args)
        self._log = tempfile.NamedTemporaryFile(prefix="anvil-", suffix=".log")
        log.info("starting %s", " ".join(args))
        self._proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        payload = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise ChainError(
                    f"anvil exited with status {self._proc.returncode} before answering on "
                    f"{self.url}: {self._log_tail()}"
                )
            try:
                answer = requests.post(self.url, json=payload, timeout=1.0).json()
                if int(answer["result"], 16) == self.chain_id:
                    return
            except (requests.RequestException, ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                raise ChainError(
                    f"anvil did not answer on {self.url} within {self.start_timeout:.0f}s: {self._log_tail()}"
                )
            time.sleep(0.05)

    def _log_tail(self, n: int = 800) -> str:
        if self._log is None:
            return ""
        try:
            self._log.flush()
            text = Path(self._log.name).read_bytes()[-n:].decode(errors="replace").strip()
        except OSError:
            return ""
        return text or "(no output)"

    def stop(self) -> None:
        """Terminate the process group (SIGTERM, then SIGKILL after 5 s) and reap it."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> AnvilProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
