"""Shared fixtures for the storage tests: seeded files, the ``ipfs_cid`` oracle, a fresh store.

The oracle is the independent Rust tool from Debian's ``ipfs-cid`` package (installed by
``make setup``); it prints ``{"CIDv0": ..., "CIDv1": ...}`` for a file.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.storage.embedded import EmbeddedStore

ORACLE = shutil.which("ipfs_cid") or "/usr/bin/ipfs_cid"


@pytest.fixture(autouse=True)
def _isolated_storage_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test may touch ~/.cache or a developer's Kubo node by accident."""
    monkeypatch.delenv("ORCH_IPFS_API", raising=False)
    monkeypatch.setenv("ORCH_IPFS_DIR", str(tmp_path / "env-ipfs"))
    monkeypatch.setenv("ORCH_CACHE_DIR", str(tmp_path / "env-cache"))


@pytest.fixture
def oracle() -> Callable[[Path], dict[str, str]]:
    if not os.access(ORACLE, os.X_OK):
        pytest.skip(
            f"the CID oracle {ORACLE} is not installed (apt-get install ipfs-cid; make setup)"
        )

    def run(path: Path) -> dict[str, str]:
        out = subprocess.run([ORACLE, str(path)], capture_output=True, text=True, check=True)
        return json.loads(out.stdout)

    return run


@pytest.fixture
def make_file(tmp_path: Path) -> Callable[[int, int], Path]:
    """A file of ``size`` seeded random bytes (same seed, same content, on every machine)."""

    def make(size: int, seed: int = 0) -> Path:
        path = tmp_path / f"random-{size}-{seed}.bin"
        if not path.exists():
            path.write_bytes(random.Random(seed).randbytes(size))
        return path

    return make


@pytest.fixture
def store(tmp_path: Path) -> EmbeddedStore:
    return EmbeddedStore(tmp_path / "store")
