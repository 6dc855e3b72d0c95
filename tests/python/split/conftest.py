"""Fixtures for split learning: the tiny model on disk and real server processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from split_helpers import tiny_config


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import LlamaForCausalLM

    out = tmp_path_factory.mktemp("split-tiny")
    torch.manual_seed(0)
    LlamaForCausalLM(tiny_config()).save_pretrained(out)
    return out


@pytest.fixture
def server_factory() -> Iterator[Callable[..., Any]]:
    """Start real server processes; every one is stopped at the end of the test."""
    from orchestrator.split.server import ServerConfig, ServerProcess

    started: list[ServerProcess] = []

    def start(**kwargs: Any) -> ServerProcess:
        srv = ServerProcess(ServerConfig(**kwargs))
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()
