"""Fixtures for the daemon tests: a whole consortium on the tiny model, run once per module."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.daemons.demo import DemoConfig, DemoResult, run_demo


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    """3 orgs, 2 rounds, 'politics' unlearned: every daemon role on two in-process chains."""
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    out = Path(tmp_path_factory.mktemp("demo"))
    return run_demo(DemoConfig(model="tiny", orgs=3, rounds=2, unlearn="politics", out=out, quiet=True))
