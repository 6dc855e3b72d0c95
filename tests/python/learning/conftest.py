"""Shared fixtures: the real tiny model (built once in ORCH_CACHE_DIR) and small org datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.learning.config import TrainConfig
from orchestrator.learning.data import OrgData, load_org_data

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny() -> str:
    """The model spec every fast test uses (building it once takes ~20 s, then it is cached)."""
    from orchestrator.learning.models import load_model

    load_model("tiny")
    return "tiny"


@pytest.fixture(scope="session")
def cfg() -> TrainConfig:
    """A config under which the tiny model visibly learns in well under a second."""
    return TrainConfig(steps=12, lr=1e-2, seq_len=48, batch_size=4, seed=3)


@pytest.fixture(scope="session")
def orgs() -> dict[str, OrgData]:
    return {o: load_org_data(o, max_train=16, max_val=6, max_heldout=8) for o in ("business", "politics", "sport")}


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path
