"""Flower's Deployment Engine on loopback: one SuperLink, one SuperNode per org, ``flwr run``.

Real processes, as a deployment runs them (the tests and ``bench/flower_compare.py`` use it):
``flower-superlink --insecure --disable-runtime-dependency-installation --port P`` (one HTTP port
for the Fleet, Control and Runtime APIs), ``flower-supernode --insecure --superlink
127.0.0.1:P --port Q --node-config FILE`` per org, then ``flwr run APP local --stream``, with a
scratch ``FLWR_HOME`` whose ``config.toml`` names the SuperLink. Each SuperNode gets its org's
keys in its own environment (``ORCH_PRIVATE_KEY``, ``ORCH_ENC_KEY``); the SuperLink gets the
aggregator's, which its ServerApp process inherits. Keys never reach a command line.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.chain.anvil import free_port
from orchestrator.errors import DaemonError

REPO_ROOT = Path(__file__).resolve().parents[2]


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_toml(path: Path, values: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{k} = {_toml_value(v)}\n" for k, v in values.items()))
    return path


def _descendants(roots: set[int]) -> list[int]:
    """Process ids below ``roots`` (read from /proc; empty where there is no /proc)."""
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parent[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    found: list[int] = []
    frontier = set(roots)
    while frontier:
        children = {pid for pid, ppid in parent.items() if ppid in frontier and pid not in found}
        found.extend(sorted(children))
        frontier = children
    return found


@dataclass
class LocalFederation:
    """Start with :meth:`start` (or ``with``); :meth:`run` submits an app and waits for it."""

    work: Path
    nodes: list[tuple[dict[str, Any], dict[str, str]]]  # (node config, extra environment) per SuperNode
    server_env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
        home = self.work / "home"
        bin_dir = str(Path(sys.executable).parent)
        env.update({
            "HOME": str(home), "FLWR_HOME": str(home / ".flwr"), "FLWR_TELEMETRY_ENABLED": "0",
            "FLWR_DISABLE_UPDATE_CHECK": "1", "PYTHONUNBUFFERED": "1",
            "PATH": bin_dir + os.pathsep + env.get("PATH", ""),
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p),
        })
        # HOME is a scratch folder (Flower keeps its state there); the model and data caches stay.
        env["ORCH_CACHE_DIR"] = os.environ.get("ORCH_CACHE_DIR", str(Path("~/.cache/ledgerlora").expanduser()))
        for k in ("ORCH_IPFS_DIR", "ORCH_IPFS_API"):
            if k in os.environ:
                env[k] = os.environ[k]
        return env

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = open(self.work / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=REPO_ROOT)  # the chain layer reads build/contracts from the cwd
        log.close()
        self.procs.append((name, proc))
        return proc

    def start(self) -> LocalFederation:
        self.work.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        env = self.base_env()
        Path(env["FLWR_HOME"]).mkdir(parents=True, exist_ok=True)
        (Path(env["FLWR_HOME"]) / "config.toml").write_text(
            f'[superlink.local]\naddress = "127.0.0.1:{self.port}"\ninsecure = true\n')
        self._spawn("superlink", ["flower-superlink", "--insecure", "--disable-runtime-dependency-installation",
                                  "--port", str(self.port)], env | self.server_env)
        self._wait_port(self.port, 60)
        for i, (node_config, node_env) in enumerate(self.nodes):
            path = write_toml(self.work / f"node-{i}.toml", node_config)
            self._spawn(f"supernode-{i}", ["flower-supernode", "--insecure", "--superlink",
                                           f"127.0.0.1:{self.port}", "--port", str(free_port()),
                                           "--node-config", str(path)], env | node_env)
        return self

    def _wait_port(self, port: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return
            dead = [name for name, proc in self.procs if proc.poll() is not None]
            if dead:
                raise DaemonError(f"{dead[0]} exited while starting:\n{self.logs()}")
            time.sleep(0.2)
        raise DaemonError(f"the SuperLink did not listen on port {port} within {timeout:.0f} s\n{self.logs()}")

    def run(self, app: Path, run_config: dict[str, Any], timeout: float = 600) -> tuple[float, str]:
        """``flwr run APP local --stream``; returns (seconds, its output). Fails with the logs."""
        overrides = write_toml(self.work / "run-config.toml", run_config)
        log_path = self.work / "flwr-run.log"
        started = time.monotonic()
        with open(log_path, "wb") as log:
            try:
                code = subprocess.run(["flwr", "run", str(app), "local", "--stream", "--run-config", str(overrides)],
                                      env=self.base_env(), cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                      timeout=timeout).returncode
            except subprocess.TimeoutExpired as exc:
                raise DaemonError(f"flwr run did not finish within {timeout:.0f} s\n"
                                  f"{log_path.read_text(errors='replace')[-4000:]}\n{self.logs()}") from exc
        seconds = time.monotonic() - started
        out = log_path.read_text(errors="replace")
        if code != 0 or "ERROR" in out:
            raise DaemonError(f"flwr run failed (exit {code}):\n{out[-4000:]}\n{self.logs()}")
        return seconds, out

    def logs(self, n: int = 2500) -> str:
        parts = []
        for name, _ in self.procs:
            try:
                parts.append(f"--- {name} ---\n{(self.work / f'{name}.log').read_text(errors='replace')[-n:]}")
            except OSError:
                pass
        return "\n".join(parts)

    def stop(self) -> None:
        """SIGTERM what we started: each SuperLink/SuperNode's process group and its descendants
        (the SuperLink starts its SuperExec and ServerApp processes in sessions of their own)."""
        family = _descendants({proc.pid for _, proc in self.procs})
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for pid in family:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        for _, proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        for pid in family:  # SuperNodes keep their helpers alive a while after SIGTERM
            if Path(f"/proc/{pid}").exists():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.procs.clear()

    def __enter__(self) -> LocalFederation:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
