"""Daemons as separate OS processes: how the consortium runs for real (one process per role).

Used by ``brownie run scripts/demo.py``, the multi-process tests and the overhead benchmark.
Keys travel to the child only through its environment (``ORCH_PRIVATE_KEY``, ``ORCH_ENC_KEY``),
never on its command line, where ``ps`` would show them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.errors import DaemonError


@dataclass
class DaemonProcess:
    role: str
    name: str
    args: list[str]
    env: dict[str, str]
    state_dir: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return self.state_dir / f"{self.name}.log"

    def start(self) -> DaemonProcess:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "daemon", "--role", self.role,
             "--state-dir", str(self.state_dir), *self.args],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: the hard crash a restart must survive."""
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


def spawn(role: str, name: str, rpc_url: str, manifest: Path, private_key: str, state_dir: Path,
          args: Sequence[str] = (), *, enc_key: bytes | None = None, ipfs_dir: Path | None = None,
          extra_env: dict[str, str] | None = None) -> DaemonProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    env.update({"ORCH_RPC_URL": rpc_url, "ORCH_PRIVATE_KEY": private_key, "PYTHONUNBUFFERED": "1"})
    if "ORCH_CACHE_DIR" in os.environ:
        env["ORCH_CACHE_DIR"] = os.environ["ORCH_CACHE_DIR"]
    if enc_key is not None:
        env["ORCH_ENC_KEY"] = enc_key.hex()
    if ipfs_dir is not None:
        env["ORCH_IPFS_DIR"] = str(ipfs_dir)
    env.update(extra_env or {})
    return DaemonProcess(role, name, ["--manifest", str(manifest), *args], env, state_dir).start()


def wait_for(condition: Callable[[], bool], timeout: float, what: str,
             processes: Sequence[DaemonProcess] = (), interval: float = 0.5) -> float:
    """Poll ``condition`` until true; on timeout or a dead daemon, fail with the daemons' logs."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        dead = [p for p in processes if p.proc is not None and not p.alive()]
        if dead:
            raise DaemonError(f"while waiting for {what}: daemon {dead[0].name} exited "
                              f"(code {dead[0].proc.returncode if dead[0].proc else '?'}):\n{dead[0].log_tail()}")
        time.sleep(interval)
    logs = "\n".join(f"--- {p.name} ---\n{p.log_tail(1500)}" for p in processes)
    raise DaemonError(f"timed out after {timeout:.0f} s waiting for {what}\n{logs}")
