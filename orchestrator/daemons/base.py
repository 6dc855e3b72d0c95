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
breaker) instead of hammering the chain.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3

from orchestrator import observability as obs
from orchestrator.chain.contracts import Protocol
from orchestrator.chain.errors import ContractRevertError
from orchestrator.chain.scanner import Event, EventScanner
from orchestrator.chain.tx import Transactor
from orchestrator.errors import DaemonError, OrchestratorError
from orchestrator.storage.base import Store

log = logging.getLogger(__name__)

Handler = Callable[[Event], None]


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

    def __init__(self, node: Node, name: str | None = None) -> None:
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
            )
            if subscriptions
            else None
        )
        node.label = self.name
        self.failures = 0
        self.failures_total = 0
        self.actions: list[dict[str, Any]] = []
        self._event: Event | None = None  # the event being handled (for metrics)

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
        its attempts and dead-letters it after its limit. Raises DaemonError when tripped.
        """
        try:
            events = self.scanner.poll() if self.scanner is not None else []
        except Exception:
            obs.on_poll_failed(self.name)
            raise
        obs.on_poll(self.name, *(self.scanner.position() if self.scanner is not None else (None, None)))
        handlers = self.handlers()
        handled = 0
        for event in events:
            handler = handlers.get(event.name)
            try:
                if handler is not None:
                    self._event = event
                    handler(event)
            except (OrchestratorError, OSError, ValueError) as exc:
                dead = self.scanner.record_failure(event, exc) if self.scanner is not None else False
                obs.on_failure(self.name, event.name, set_aside=dead)
                self._fail(event, exc)
                if dead:
                    continue
                break
            if self.scanner is not None:
                self.scanner.mark_processed(event)
            obs.on_handled(self.name, event.name)
            self.failures = 0
            handled += 1
        self._event = None
        try:
            self.periodic()
        except (OrchestratorError, OSError, ValueError) as exc:
            obs.on_failure(self.name, None)
            self._fail(None, exc)
        return handled

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
            while not stop.is_set():
                handled = self.tick()
                if not handled:
                    stop.wait(poll_interval)
        finally:
            obs.on_stop(self.name, self.role)
            self.log.info("%s stopped", self.name, extra=obs.fields(daemon=self.name, event="stopped"))
