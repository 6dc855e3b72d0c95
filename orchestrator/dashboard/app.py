"""The FastAPI application: six server-rendered pages, local static files, health endpoints.

Every page first brings the indexer up to date (one ``eth_blockNumber`` when nothing is new),
then renders from the index, a few view calls and the IPFS documents the chain points to.
Only GET routes exist: there is nothing to click that could change the chain.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from orchestrator.dashboard import charts
from orchestrator.dashboard.data import ChainView

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
TOKEN = 10**18

PAGES = (
    ("overview", "/", "Overview"),
    ("members", "/members", "Members"),
    ("rounds", "/rounds", "Rounds"),
    ("lineage", "/lineage", "Model lineage"),
    ("unlearning", "/unlearning", "Unlearning"),
    ("anchors", "/anchors", "Anchors"),
)


def lls(wei: Any, digits: int = 2) -> str:
    """Token wei as LLS with thousands separators (exact value stays in data-value)."""
    if wei is None:
        return "–"
    value = int(wei)
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), TOKEN)
    frac_text = f"{frac * 10**digits // TOKEN:0{digits}d}" if digits else ""
    return f"{sign}{whole:,}" + (f".{frac_text}" if digits else "") + " LLS"


def short(value: Any, keep: int = 8) -> str:
    text = str(value or "")
    return text if len(text) <= 2 * keep + 1 else f"{text[:keep]}…{text[-keep + 2:]}"


def utc(ts: Any) -> str:
    if ts is None:
        return "–"
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: Any) -> str:
    if seconds is None:
        return "–"
    s = int(seconds)
    sign = "-" if s < 0 else ""
    s = abs(s)
    days, rest = divmod(s, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    if days or hours:
        parts.append(f"{hours}h")
    if days or hours or minutes:
        parts.append(f"{minutes}m")
    if not days:
        parts.append(f"{secs}s")
    return sign + " ".join(parts)


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def create_app(view: ChainView, *, title: str = "LedgerLoRA consortium") -> FastAPI:
    """The dashboard for ``view``; serve it with uvicorn (see :mod:`orchestrator.dashboard.server`)."""
    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    env = templates.env
    env.filters.update(lls=lls, short=short, utc=utc, duration=duration, fmt=fmt)
    env.globals.update(PAGES=PAGES, title=title)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.state.view = view

    def refresh() -> None:
        try:
            view.indexer.sync()
        except Exception as exc:  # a node that does not answer: render a clear error page
            log.warning("dashboard: cannot reach the chain: %s", exc)
            raise HTTPException(503, f"the chain does not answer ({type(exc).__name__}: {exc}); "
                                     "check --rpc-url and try again") from exc

    def page(request: Request, name: str, active: str, **context: Any) -> HTMLResponse:
        started = time.perf_counter()
        response = templates.TemplateResponse(request, name, {
            "active": active, "chain_id": view.chain_id, "head": view.head(),
            "indexed": view.indexer.count(), "now": view.chain_time(),
            "render_ms": None, **context})
        response.headers["X-Render-Ms"] = f"{(time.perf_counter() - started) * 1000:.1f}"
        return response

    pages = APIRouter(dependencies=[Depends(refresh)])  # every page syncs the index first

    @pages.get("/", response_class=HTMLResponse)
    def overview(request: Request) -> HTMLResponse:
        data = view.overview()
        return page(request, "overview.html", "overview", o=data, chart=charts.rounds_chart(data["rounds"][-50:]))

    @pages.get("/members", response_class=HTMLResponse)
    def members(request: Request) -> HTMLResponse:
        return page(request, "members.html", "members", members=view.members())

    @pages.get("/rounds", response_class=HTMLResponse)
    def rounds(request: Request) -> HTMLResponse:
        data = view.rounds()
        return page(request, "rounds.html", "rounds", rounds=data[::-1], chart=charts.rounds_chart(data[-200:]))

    @pages.get("/rounds/{round_id}", response_class=HTMLResponse)
    def one_round(request: Request, round_id: int) -> HTMLResponse:
        data = view.round(round_id)
        if data is None:
            raise HTTPException(404, f"round {round_id} was never opened on this chain")
        return page(request, "round.html", "rounds", r=data)

    @pages.get("/lineage", response_class=HTMLResponse)
    def lineage(request: Request) -> HTMLResponse:
        data = view.lineage()
        return page(request, "lineage.html", "lineage", l=data, graph=charts.lineage_graph(data["versions"]))

    @pages.get("/unlearning", response_class=HTMLResponse)
    def unlearning(request: Request) -> HTMLResponse:
        data = view.requests()
        plots = {r["id"]: charts.perplexity_chart(r["perplexity"]) for r in data if r["perplexity"]}
        return page(request, "unlearning.html", "unlearning", requests=data, plots=plots)

    @pages.get("/anchors", response_class=HTMLResponse)
    def anchors(request: Request, tx: str | None = None, log_index: int | None = None) -> HTMLResponse:
        check = view.check_record(tx.strip(), int(log_index or 0)) if tx else None
        return page(request, "anchors.html", "anchors", anchors=view.anchors(), check=check,
                    records=view.recent_records(), has_anchor=view.anchor is not None)

    app.include_router(pages)

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        try:
            view.indexer.sync()
        except Exception as exc:
            return JSONResponse({"status": "unavailable", "error": f"{type(exc).__name__}: {exc}"}, 503)
        return JSONResponse({"status": "ok", "indexed_events": view.indexer.count(), "lag_blocks": view.indexer.lag()})

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> HTMLResponse:
        return templates.TemplateResponse(request, "error.html", {
            "active": "", "status": exc.status_code, "detail": exc.detail, "chain_id": view.chain_id,
            "head": None, "indexed": None, "now": None}, status_code=exc.status_code)

    return app
