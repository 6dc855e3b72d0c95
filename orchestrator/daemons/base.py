"""What every daemon shares: its node (chain, wallet, store, state folder) and its event loop.

A daemon declares which contract events it reacts to and a handler per event name. ``tick()``
polls the event scanner once, runs the handlers in chain order and then the daemon's periodic
work (closing a round at its deadline, anchoring a block range). Handlers are idempotent by
construction: each first reads the chain state it would change (``hasSubmitted``,
``getRound().state``, ``getRequest().state``) and returns if the action already happened, so a
daemon killed between sending a transaction and recording the event as processed does not act
twice when restarted. The scanner's processed-set makes duplicate deliveries harmless as well.

A handler failure is logged with the decoded revert, counted, and the event retried on the next
tick; after ``max_consecutive_failures`` failures in a row the daemon stops on purpose (circuit
breaker) instead of hammering the chain. Two kinds of trouble are not failures:

* an RPC outage (:func:`is_outage`: the node refuses, times out or answers HTTP errors) anywhere
  in a tick: the daemon logs one line when the outage starts and one when it ends, polls again
  with exponential backoff (``outage_backoff``) for as long as it lasts, and resumes from its
  persisted cursor; nothing is counted or dead-lettered;
* :class:`RetryLater` from a handler (a local fault such as a corrupt block in the daemon's own
  store): the event stays pending and is retried after a per-event exponential backoff
  (``retry_backoff``), in order, without counting towards the breaker or the dead letters.

Events the scanner set aside after ``max_attempts`` failures are retried with backoff by the
scanner itself, and all of them once when a daemon process starts (``run_forever``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from eth_account.signers.local import LocalAccount
from web3 import Web3

from orchestrator import observability as obs
from orchestrator.chain.contracts import Protocol
from orchestrator.chain.errors import ChainConnectionError, ContractRevertError
from orchestrator.chain.scanner import Event, EventScanner
from orchestrator.chain.tx import Transactor
from orchestrator.errors import DaemonError, OrchestratorError, StorageError
from orchestrator.redact import install_log_redaction, redact
from orchestrator.storage.base import Store

log = logging.getLogger(__name__)

Handler = Callable[[Event], None]


class RetryLater(DaemonError):
    """A handler could not act because of a local, passing fault; retry the event later."""


def is_outage(exc: BaseException) -> bool:
    """True when ``exc`` means the chain's RPC endpoint did not answer (not a revert, not a bug)."""
    if isinstance(exc, StorageError):  # an IPFS endpoint speaks HTTP too; that is the store's fault
        return False
    return isinstance(exc, ChainConnectionError | requests.RequestException | ConnectionError | TimeoutError)


@dataclass
class Node:
    """One organisation's (or the aggregator's) view of the consortium."""

    w3: Web3
    protocol: Protocol
    account: LocalAccount
    store: Store
    state_dir: Path
    confirmations: int = 0
    transactor: Transactor = field(init=False)
    label: str = field(default="", init=False)  # the daemon acting through this node (metrics, logs)

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.transactor = Transactor(self.w3, self.account)

    @property
    def address(self) -> str:
        return str(self.account.address)

    def contract(self, name: str) -> Any:
        return self.protocol.contract(name)

    def send(self, fn: Any) -> Any:
        started = time.perf_counter()
        receipt = self.transactor.transact(fn)
        seconds, who, function = time.perf_counter() - started, self.label or self.address, getattr(fn, "fn_name", "tx")
        obs.on_transaction(who, function, receipt, seconds)
        tx_hash = bytes(receipt["transactionHash"]).hex()
        log.info("%s: %s mined in block %d, gas %d", who, function, receipt["blockNumber"], receipt["gasUsed"],
                 extra=obs.fields(daemon=who, event="transaction", tx_hash="0x" + tx_hash.removeprefix("0x"),
                                  duration=round(seconds, 4), function=function))
        return receipt


class Daemon:
    """Base class: subclasses set ``role`` and implement ``subscriptions`` and ``handlers``."""

    role = "daemon"
    max_consecutive_failures = 5
    #: (first, largest) seconds between polls while the RPC endpoint is unreachable.
    outage_backoff: tuple[float, float] = (1.0, 30.0)
    #: (first, largest) seconds before an event deferred with RetryLater is tried again.
    retry_backoff: tuple[float, float] = (2.0, 120.0)

    def __init__(self, node: Node, name: str | None = None) -> None:
        install_log_redaction()  # process-wide: no URL credential in any log line of a daemon process
        self.node = node
        self.name = name or f"{self.role}-{node.address[2:10].lower()}"
        self.log = logging.getLogger(f"orchestrator.daemons.{self.role}")
        subscriptions = self.subscriptions()
        self.scanner = (
            EventScanner(
                node.w3,
                subscriptions,
                state_db=node.state_dir / f"{self.name}.sqlite",
                name=self.name,
                confirmations=node.confirmations,
                start_block=node.protocol.manifest.first_block,
                deployment={n: r.address for n, r in node.protocol.manifest.contracts.items()},
            )
            if subscriptions
            else None
        )
        for other in [node, *vars(self).values()]:  # e.g. the relayer's public-chain node too
            if isinstance(other, Node) and not other.label:
                other.label = self.name
        self.failures = 0
        self.failures_total = 0
        self.actions: list[dict[str, Any]] = []
        self._event: Event | None = None  # the event being handled (for metrics)
        self.outage_since: float | None = None  # monotonic time the current RPC outage began
        self._outage_wait = 0.0
        self._deferred: dict[tuple[str, int], tuple[float, float]] = {}  # event key -> (retry at, delay)

    # -- to override ----------------------------------------------------------------------
    def subscriptions(self) -> list[tuple[Any, str]]:
        raise NotImplementedError

    def handlers(self) -> Mapping[str, Handler]:
        raise NotImplementedError

    def periodic(self) -> None:
        """Work that does not wait for an event (deadline checks, anchoring)."""

    # -- loop -----------------------------------------------------------------------------
    def record(self, action: str, **fields: Any) -> None:
        if action == "unlearned" and self._event is not None:  # chain seconds from the request to its receipt
            w3 = self.node.w3
            fields["request_to_receipt"] = int(w3.eth.get_block("latest")["timestamp"]) - int(
                w3.eth.get_block(self._event.block)["timestamp"])
        entry = {"daemon": self.name, "action": action, "time": time.time(), **fields}
        self.actions.append(entry)
        obs.on_action(self.name, action, fields)
        self.log.info("%s: %s%s", self.name, action, "".join(f" {k}={v}" for k, v in fields.items()),
                      extra=obs.fields(daemon=self.name, event=action, round=fields.get("round"),
                                       org=fields.get("org"), duration=fields.get("seconds")))

    def tick(self) -> int:
        """Poll once and handle new events in chain order; return how many were handled.

        After a failure the rest of the batch waits for the next tick (a handler never sees a
        later event before an earlier one); the scanner keeps the failed event pending, counts
        its attempts and dead-letters it after its limit. Raises DaemonError when tripped. An
        RPC outage ends the tick quietly (see :meth:`_outage`).
        """
        try:
            events = self.scanner.poll() if self.scanner is not None else []
        except Exception as exc:  # only outages are swallowed; anything else propagates
            obs.on_poll_failed(self.name)
            if not is_outage(exc):
                raise
            self._outage(exc)
            return 0
        self._reachable()
        obs.on_poll(self.name, *(self.scanner.position() if self.scanner is not None else (None, None)))
        handlers = self.handlers()
        handled = 0
        for event in events:
            retry_at = self._deferred.get(event.key, (0.0, 0.0))[0]
            if retry_at > time.monotonic():
                break  # a deferred event holds back the ones after it (chain order)
            handler = handlers.get(event.name)
            try:
                if handler is not None:
                    self._event = event
                    handler(event)
            except RetryLater as exc:
                self._defer(event, exc)
                break
            except Exception as exc:  # classified below; bugs propagate
                if is_outage(exc):
                    self._outage(exc)
                    return handled
                if not isinstance(exc, OrchestratorError | OSError | ValueError):
                    raise
                dead = self.scanner.record_failure(event, exc) if self.scanner is not None else False
                obs.on_failure(self.name, event.name, set_aside=dead)
                self._fail(event, exc)
                if dead:
                    continue
                break
            self._deferred.pop(event.key, None)
            if self.scanner is not None:
                self.scanner.mark_processed(event)
            obs.on_handled(self.name, event.name)
            self.failures = 0
            handled += 1
        self._event = None
        try:
            self.periodic()
        except Exception as exc:  # classified below; bugs propagate
            if is_outage(exc):
                self._outage(exc)
            elif isinstance(exc, OrchestratorError | OSError | ValueError):
                obs.on_failure(self.name, None)
                self._fail(None, exc)
            else:
                raise
        return handled

    def _outage(self, exc: BaseException) -> None:
        """The RPC endpoint did not answer: log once, back off, keep everything pending."""
        first, largest = self.outage_backoff
        if self.outage_since is None:
            self.outage_since = time.monotonic()
            self._outage_wait = first
            self.log.error("%s: RPC endpoint unreachable (%s: %s); polling again with backoff up to %.0fs, "
                           "nothing is lost", self.name, type(exc).__name__, redact(exc), largest)
            self.record("rpc-unreachable", error=redact(f"{type(exc).__name__}: {exc}"))
        else:
            self._outage_wait = min(largest, self._outage_wait * 2)

    def _reachable(self) -> None:
        if self.outage_since is None:
            return
        seconds = time.monotonic() - self.outage_since
        self.outage_since = None
        cursor = self.scanner.cursor() if self.scanner is not None else None
        where = f"from block {cursor[0] + 1}" if cursor else "from its start block"
        self.log.warning("%s: RPC endpoint reachable again after %.1fs; resuming %s", self.name, seconds, where)
        self.record("rpc-reachable", outage_seconds=round(seconds, 3))

    def _defer(self, event: Event, exc: RetryLater) -> None:
        first, largest = self.retry_backoff
        delay = min(largest, self._deferred[event.key][1] * 2) if event.key in self._deferred else first
        self._deferred[event.key] = (time.monotonic() + delay, max(delay, 1e-3))
        self.log.warning("%s: %s (block %d) deferred %.0fs: %s", self.name, event.name, event.block, delay, exc)
        self.record("deferred", on=f"{event.name} (block {event.block}, tx {event.tx_hash})", error=str(exc),
                    retry_in=delay)

    def wait_seconds(self, poll_interval: float) -> float:
        """How long ``run_forever`` sleeps after a tick that handled nothing."""
        return self._outage_wait if self.outage_since is not None else poll_interval

    def _fail(self, event: Event | None, exc: Exception) -> None:
        self.failures += 1
        self.failures_total += 1
        what = f"{event.name} (block {event.block}, tx {event.tx_hash})" if event else "periodic work"
        if isinstance(exc, ContractRevertError):
            self.log.error("%s: handling %s: transaction reverted: %s", self.name, what, exc)
        else:
            self.log.error("%s: handling %s failed: %s", self.name, what, exc)
        self.record("failed", on=what, error=f"{type(exc).__name__}: {exc}")
        if self.failures >= self.max_consecutive_failures:
            obs.on_tripped(self.name, f"{self.failures} consecutive failures; last: {exc}")
            raise DaemonError(
                f"{self.name} stopped after {self.failures} consecutive failures; last: {exc}. "
                "Fix the cause and restart; the daemon resumes from its persisted cursor."
            ) from exc

    def run_forever(self, stop: threading.Event | None = None, poll_interval: float = 0.5) -> None:
        stop = stop or threading.Event()
        obs.on_start(self.name, self.role)
        self.log.info("%s started as %s", self.name, self.node.address,
                      extra=obs.fields(daemon=self.name, event="started"))
        try:
            if self.scanner is not None:
                requeued = self.scanner.requeue_dead_letters()
                if requeued:
                    self.log.warning("%s: retrying %d set-aside event(s) on start", self.name, len(requeued))
            while not stop.is_set():
                handled = self.tick()
                if not handled:
                    stop.wait(self.wait_seconds(poll_interval))
        finally:
            obs.on_stop(self.name, self.role)
            self.log.info("%s stopped", self.name, extra=obs.fields(daemon=self.name, event="stopped"))
