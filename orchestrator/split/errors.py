"""Split-learning errors: one subclass per failure a caller must tell apart.

The server maps each to an HTTP status so that a client sees the same class on its side
(``SplitAuthError`` for a wrong key, ``SplitReplayError`` for a replayed message, ...). All are
``SplitError`` so a caller that does not care which can catch the base.
"""

from __future__ import annotations

from orchestrator.errors import SplitError

__all__ = [
    "SplitError",
    "SplitAuthError",
    "SplitReplayError",
    "SplitShapeError",
    "SplitTimeoutError",
    "SplitProtocolError",
    "SplitModelError",
    "error_for_status",
    "status_for_error",
]


class SplitAuthError(SplitError):
    """A message could not be authenticated: wrong key, tampered bytes or an unknown client."""


class SplitReplayError(SplitError):
    """A message carried a counter that was already used or is older than the last one seen."""


class SplitShapeError(SplitError):
    """Tensors that crossed the boundary have the wrong shape, dtype or are missing."""


class SplitTimeoutError(SplitError):
    """A peer did not answer in time; for the server: a client dropped out of a step."""


class SplitProtocolError(SplitError):
    """A message is well-formed and authentic but out of order (wrong step, unregistered, ...)."""


class SplitModelError(SplitError):
    """The model cannot be split as asked (not Llama-like, too few layers, ...)."""


_STATUS: dict[type[SplitError], int] = {
    SplitAuthError: 403,
    SplitReplayError: 409,
    SplitShapeError: 422,
    SplitTimeoutError: 408,
    SplitProtocolError: 400,
    SplitModelError: 500,
}


def status_for_error(exc: SplitError) -> int:
    """HTTP status the server answers with for ``exc`` (500 for the plain base class)."""
    for cls, status in _STATUS.items():
        if isinstance(exc, cls):
            return status
    return 500


def error_for_status(status: int) -> type[SplitError]:
    """Inverse of :func:`status_for_error`, used by the client to re-raise the right class."""
    for cls, code in _STATUS.items():
        if code == status and cls is not SplitModelError:
            return cls
    return SplitError
