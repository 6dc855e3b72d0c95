"""Metrics, health endpoints and structured logs for every daemon (and the dashboard).

Three things an operator ships:

* **Prometheus metrics** (prometheus-client) in :data:`REGISTRY`: rounds opened and finalized,
  submissions, rejections by reason, handler failures, events set aside (dead-lettered), scanner
  lag in blocks, transactions and gas spent, RPC retries, transaction latency and the time from
  an unlearning request to its receipt. The daemons feed them through the small hooks below
  (:func:`on_action`, :func:`on_poll`, :func:`on_failure`, :func:`on_transaction`), called from
  ``orchestrator/daemons/base.py``; the chain layer's retry helper calls :func:`on_rpc_retry`.
* **Health**: :class:`MetricsServer` serves ``/metrics``, ``/healthz`` (the process runs and no
  daemon has tripped its circuit breaker) and ``/readyz`` (every daemon has polled the chain
  successfully and its last poll succeeded).
* **Logs**: :func:`configure_logging` installs either today's human format or ``json``: one JSON
  object per line with ``time``, ``level``, ``logger``, ``daemon``, ``event``, ``round``,
  ``org``, ``tx_hash``, ``duration`` (when the record carries them) and ``message``.

Nothing here imports web3, torch or the daemons: the hooks take plain values.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import ProcessCollector

#: The registry every LedgerLoRA metric lives in (served by :class:`MetricsServer`).
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)

_NS = "ledgerlora"
ROUNDS_OPENED = Counter("rounds_opened", "Rounds this process opened on chain", ["daemon"],
                        namespace=_NS, registry=REGISTRY)
ROUNDS_FINALIZED = Counter("rounds_finalized", "Rounds this process finalized on chain", ["daemon"],
                           namespace=_NS, registry=REGISTRY)
SUBMISSIONS = Counter("submissions", "Adapter updates this process submitted", ["daemon"],
                      namespace=_NS, registry=REGISTRY)
REJECTIONS = Counter("rejections", "Submissions this process rejected on chain, by reason (error type)",
                     ["daemon", "reason"], namespace=_NS, registry=REGISTRY)
REWARDS_CLAIMED = Counter("rewards_claimed", "Reward claims this process sent", ["daemon"],
                          namespace=_NS, registry=REGISTRY)
UNLEARNINGS = Counter("unlearnings_completed", "Unlearning requests this process completed with a receipt",
                      ["daemon"], namespace=_NS, registry=REGISTRY)
ANCHORS = Counter("anchors_posted", "Anchor roots this process posted on the public chain", ["daemon"],
                  namespace=_NS, registry=REGISTRY)
EVENTS_HANDLED = Counter("events_handled", "Contract events handled, by event name", ["daemon", "event"],
                         namespace=_NS, registry=REGISTRY)
HANDLER_FAILURES = Counter("handler_failures", "Failed handler runs (and failed periodic work), by event",
                           ["daemon", "event"], namespace=_NS, registry=REGISTRY)
SET_ASIDE = Counter("events_set_aside", "Events given up on after their retry limit (dead-lettered)",
                    ["daemon"], namespace=_NS, registry=REGISTRY)
SCANNER_LAG = Gauge("scanner_lag_blocks", "Blocks between the chain head and the scanner's cursor",
                    ["daemon"], namespace=_NS, registry=REGISTRY)
SCANNER_CURSOR = Gauge("scanner_cursor_block", "Highest block whose logs the scanner has fetched",
                       ["daemon"], namespace=_NS, registry=REGISTRY)
TRANSACTIONS = Counter("transactions", "Transactions mined, by contract function", ["daemon", "function"],
                       namespace=_NS, registry=REGISTRY)
GAS_USED = Counter("gas_used", "Gas used by mined transactions", ["daemon"], namespace=_NS, registry=REGISTRY)
GAS_SPENT = Counter("gas_spent_wei", "Fees paid (gasUsed x effectiveGasPrice), in wei", ["daemon"],
                    namespace=_NS, registry=REGISTRY)
TX_SECONDS = Histogram("transaction_seconds", "Seconds from signing a transaction to its receipt",
                       ["daemon"], namespace=_NS, registry=REGISTRY,
                       buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120))
RPC_RETRIES = Counter("rpc_retries", "JSON-RPC calls retried after a transient failure, by method",
                      ["method"], namespace=_NS, registry=REGISTRY)
REQUEST_TO_RECEIPT = Histogram(
    "unlearning_request_to_receipt_seconds",
    "Chain seconds from an unlearning request's block to the block of its receipt",
    ["daemon"], namespace=_NS, registry=REGISTRY,
    buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 3 * 24 * 3600))
DAEMON_UP = Gauge("daemon_up", "1 while the daemon's loop runs, 0 once it stopped", ["daemon", "role"],
                  namespace=_NS, registry=REGISTRY)


# --------------------------------------------------------------------------------------------
# health
# --------------------------------------------------------------------------------------------


class Health:
    """What ``/healthz`` and ``/readyz`` answer, per daemon of this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._polled: dict[str, bool] = {}  # daemon -> its last poll succeeded
        self._tripped: dict[str, str] = {}  # daemon -> why it stopped
        self._extra_checks: dict[str, Any] = {}

    def register(self, daemon: str) -> None:
        with self._lock:
            self._polled.setdefault(daemon, False)

    def polled(self, daemon: str, ok: bool) -> None:
        with self._lock:
            self._polled[daemon] = ok

    def tripped(self, daemon: str, why: str) -> None:
        with self._lock:
            self._tripped[daemon] = why

    def add_check(self, name: str, check: Any) -> None:
        """``check()`` -> (ok, detail); consulted by ``/readyz`` (e.g. the dashboard's indexer)."""
        with self._lock:
            self._extra_checks[name] = check

    def reset(self) -> None:
        with self._lock:
            self._polled.clear()
            self._tripped.clear()
            self._extra_checks.clear()

    def live(self) -> tuple[bool, dict[str, Any]]:
        with self._lock:
            return not self._tripped, {"tripped": dict(self._tripped)}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        with self._lock:
            polled, tripped, checks = dict(self._polled), dict(self._tripped), dict(self._extra_checks)
        detail: dict[str, Any] = {"daemons": {d: ("stopped: " + tripped[d]) if d in tripped else
                                              ("ok" if ok else "not polled yet") for d, ok in polled.items()}}
        ok = bool(polled or checks) and not tripped and all(polled.values())
        for name, check in checks.items():
            good, why = check()
            detail[name] = why
            ok = ok and good
        return ok, detail


HEALTH = Health()


# --------------------------------------------------------------------------------------------
# hooks the daemons call (plain values in, no chain objects kept)
# --------------------------------------------------------------------------------------------


def _reason_label(reason: object) -> str:
    """A bounded label for a rejection reason: the error type in ``"Type: message"``."""
    text = str(reason or "unknown")
    head = text.split(":", 1)[0].strip()
    return head if head and len(head) <= 64 and " " not in head else "other"


def on_start(daemon: str, role: str) -> None:
    install_retry_listener()
    HEALTH.register(daemon)
    DAEMON_UP.labels(daemon, role).set(1)


def on_stop(daemon: str, role: str) -> None:
    DAEMON_UP.labels(daemon, role).set(0)


def on_action(daemon: str, action: str, fields: Mapping[str, Any]) -> None:
    """Count what a daemon did (``Daemon.record``)."""
    if action == "opened":
        ROUNDS_OPENED.labels(daemon).inc()
    elif action == "finalized":
        ROUNDS_FINALIZED.labels(daemon).inc()
    elif action == "submitted":
        SUBMISSIONS.labels(daemon).inc()
    elif action == "rejected":
        REJECTIONS.labels(daemon, _reason_label(fields.get("reason"))).inc()
    elif action == "claimed":
        REWARDS_CLAIMED.labels(daemon).inc()
    elif action == "unlearned":
        UNLEARNINGS.labels(daemon).inc()
        if fields.get("request_to_receipt") is not None:
            REQUEST_TO_RECEIPT.labels(daemon).observe(float(fields["request_to_receipt"]))
    elif action == "anchored":
        ANCHORS.labels(daemon).inc()


def on_poll(daemon: str, head: int | None, cursor: int | None) -> None:
    """After a successful poll: scanner lag and readiness."""
    install_retry_listener()
    HEALTH.polled(daemon, True)
    if head is not None and cursor is not None:
        SCANNER_LAG.labels(daemon).set(max(0, head - cursor))
        SCANNER_CURSOR.labels(daemon).set(cursor)


def on_poll_failed(daemon: str) -> None:
    HEALTH.polled(daemon, False)


def on_handled(daemon: str, event: str) -> None:
    EVENTS_HANDLED.labels(daemon, event).inc()


def on_failure(daemon: str, event: str | None, set_aside: bool = False) -> None:
    HANDLER_FAILURES.labels(daemon, event or "periodic").inc()
    if set_aside:
        SET_ASIDE.labels(daemon).inc()


def on_tripped(daemon: str, why: str) -> None:
    HEALTH.tripped(daemon, why)


def on_transaction(daemon: str, function: str, receipt: Mapping[str, Any], seconds: float) -> None:
    gas = int(receipt.get("gasUsed", 0) or 0)
    price = int(receipt.get("effectiveGasPrice", 0) or 0)
    TRANSACTIONS.labels(daemon, function).inc()
    GAS_USED.labels(daemon).inc(gas)
    GAS_SPENT.labels(daemon).inc(gas * price)
    TX_SECONDS.labels(daemon).observe(seconds)


def on_rpc_retry(what: str) -> None:
    """A transient RPC failure is being retried; ``what`` like ``eth_getLogs(5..9)``."""
    RPC_RETRIES.labels(what.split("(", 1)[0].strip()[:64] or "rpc").inc()


def sample(name: str, labels: Mapping[str, str] | None = None) -> float:
    """Current value of one metric sample (0.0 when it has not been touched): for tests and tools."""
    value = REGISTRY.get_sample_value(name, dict(labels or {}))
    return float(value) if value is not None else 0.0


_retry_listener_installed = False


def install_retry_listener() -> None:
    """Count the chain layer's RPC retries (done on first use, so ``--help`` never imports web3)."""
    global _retry_listener_installed
    if _retry_listener_installed:
        return
    import importlib

    chain_retry = importlib.import_module("orchestrator.chain.retry")  # the package re-exports retry()
    if on_rpc_retry not in chain_retry.RETRY_LISTENERS:
        chain_retry.RETRY_LISTENERS.append(on_rpc_retry)
    _retry_listener_installed = True


# --------------------------------------------------------------------------------------------
# the endpoint
# --------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server_version = "ledgerlora-metrics"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
        elif path in ("/healthz", "/readyz"):
            ok, detail = HEALTH.live() if path == "/healthz" else HEALTH.ready()
            body = json.dumps({"status": "ok" if ok else "unavailable", **detail}, sort_keys=True).encode()
            self._send(200 if ok else 503, body, "application/json")
        else:
            self._send(404, b"not found: try /metrics, /healthz or /readyz\n", "text/plain")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
        logging.getLogger("orchestrator.metrics").debug("%s " + format, self.address_string(), *args)


class MetricsServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` on ``host:port`` in a daemon thread.

    ``port=0`` picks a free port (see :attr:`port`). Use as a context manager or call
    :meth:`close`.
    """

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"--metrics-port must be between 0 and 65535, got {port}")
        try:
            self._server = ThreadingHTTPServer((host, port), _Handler)
        except OSError as exc:
            from orchestrator.errors import ConfigError

            raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc}; pick another --metrics-port") from exc
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._server.server_address[0]}:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
# logs
# --------------------------------------------------------------------------------------------

#: Fields a log record may carry (``logger.info(..., extra=fields(...))``), in output order.
LOG_FIELDS = ("daemon", "event", "round", "org", "tx_hash", "duration")
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def fields(**values: Any) -> dict[str, Any]:
    """``extra=`` for a structured log line; ``None`` values are left out."""
    return {k: v for k, v in values.items() if v is not None}


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, the LOG_FIELDS, message."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
        }
        for key in LOG_FIELDS:
            out[key] = _jsonable(getattr(record, key, None))
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key not in out and not key.startswith("_"):
                out[key] = _jsonable(value)
        out["message"] = record.getMessage()
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, separators=(",", ":"))


HUMAN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_FORMATS = ("human", "json")


def configure_logging(log_format: str = "human", level: int = logging.INFO,
                      stream: Any = None) -> logging.Handler:
    """Replace the root logger's handlers with one writing ``log_format`` to ``stream`` (stderr)."""
    if log_format not in LOG_FORMATS:
        from orchestrator.errors import ConfigError

        raise ConfigError(f"--log-format must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(HUMAN_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(min(root.level or level, level) if root.level else level)
    logging.captureWarnings(True)  # library warnings become log records (JSON too), not raw stderr text
    logging.getLogger("orchestrator").setLevel(level)
    return handler


def progress_enabled(stream: Any = None) -> bool:
    """Progress bars only on a terminal, never inside log files or pipes."""
    stream = stream if stream is not None else sys.stderr
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def add_arguments(parser: argparse.ArgumentParser, *, metrics: bool = True) -> None:
    """``--log-format`` (and ``--metrics-port``/``--metrics-host``) for a sub-command."""
    parser.add_argument("--log-format", choices=LOG_FORMATS, default="human",
                        help="human (default) or json: one JSON object per line with time, level, daemon, "
                             "event, round, org, tx_hash, duration, message")
    if metrics:
        parser.add_argument("--metrics-port", type=int, default=None,
                            help="serve Prometheus /metrics, /healthz and /readyz on this port (off by default)")
        parser.add_argument("--metrics-host", default="127.0.0.1",
                            help="address the metrics endpoint binds to (default 127.0.0.1; 0.0.0.0 for a scraper "
                                 "on another machine)")


def start_from_args(args: argparse.Namespace, level: int = logging.INFO) -> MetricsServer | None:
    """Apply ``--log-format`` and start the metrics endpoint when ``--metrics-port`` is given."""
    configure_logging(getattr(args, "log_format", "human"), level)
    install_retry_listener()
    port = getattr(args, "metrics_port", None)
    if port is None:
        return None
    server = MetricsServer(port, getattr(args, "metrics_host", "127.0.0.1"))
    logging.getLogger("orchestrator.metrics").info(
        "metrics on %s/metrics", server.url, extra=fields(event="metrics-started"))
    return server


def summarize(names: Iterable[str]) -> dict[str, float]:
    """Totals of counters (all label sets summed), e.g. for a test or a status line."""
    out: dict[str, float] = {}
    for metric in REGISTRY.collect():
        for s in metric.samples:
            if s.name in names:
                out[s.name] = out.get(s.name, 0.0) + float(s.value)
    return out
