"""Shared by the dashboard tests: the live consortium's handle and the browser's settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.daemons.demo import Setup
from orchestrator.dashboard.server import DashboardServer
from orchestrator.observability import MetricsServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
FORGOTTEN = "politics"


@dataclass
class Live:
    """The consortium (setup), its dashboard and its metrics endpoint."""

    setup: Setup
    server: DashboardServer
    metrics: MetricsServer
    request_id: int
    anchor_batch: dict[str, Any]

    @property
    def cons(self) -> Any:
        return self.setup.consortium

    @property
    def url(self) -> str:
        return self.server.url.rstrip("/")
