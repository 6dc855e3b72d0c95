"""The one retry helper of the chain layer.

Only transport failures are retried (refused connections, timeouts, HTTP 429/5xx); a revert or
a validation error is an answer, not a glitch, and retrying it would only repeat it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import requests

from orchestrator.chain.errors import ChainConnectionError
from orchestrator.redact import redact

log = logging.getLogger(__name__)

T = TypeVar("T")

_RETRYABLE_HTTP_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})

#: Called with ``what`` before each retry (orchestrator.observability counts them).
RETRY_LISTENERS: list[Callable[[str], None]] = []


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying: the endpoint may answer next time."""
    if isinstance(exc, requests.HTTPError):
        status = exc.response.status_code if exc.response is not None else None
        return status in _RETRYABLE_HTTP_STATUS
    return isinstance(
        exc,
        (
            requests.ConnectionError,
            requests.Timeout,
            ConnectionError,  # builtin: refused/reset/aborted
            TimeoutError,
            ChainConnectionError,
        ),
    )


def retry(
    fn: Callable[[], T],
    attempts: int = 5,
    backoff: float = 0.5,
    *,
    max_backoff: float = 8.0,
    what: str = "chain request",
    is_retryable: Callable[[BaseException], bool] = is_transient,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn`` until it succeeds, retrying transient errors with exponential backoff.

    Waits ``backoff * 2**i`` seconds (capped at ``max_backoff``) after the i-th failure. After
    the last attempt the transient error is re-raised as :class:`ChainConnectionError` (so
    callers catch one type); any non-transient error propagates immediately and unchanged.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    if backoff < 0:
        raise ValueError(f"backoff must be >= 0, got {backoff}")
    last: BaseException | None = None
    for i in range(attempts):
        try:
            return fn()
        except Exception as exc:  # filtered right below; non-transient errors re-raised
            if not is_retryable(exc):
                raise
            last = exc
            if i + 1 < attempts:
                delay = min(max_backoff, backoff * (2**i))
                # debug: callers log the outcome once (a daemon logs one line per outage)
                log.debug("%s failed (%s: %s); retry %d/%d in %.2fs", redact(what), type(exc).__name__,
                            redact(exc), i + 1, attempts - 1, delay)
                for listener in RETRY_LISTENERS:
                    listener(what)
                sleep(delay)
    assert last is not None
    if isinstance(last, ChainConnectionError):
        raise last
    raise ChainConnectionError(
        redact(f"{what} failed after {attempts} attempts: {type(last).__name__}: {last}")
    ) from last
