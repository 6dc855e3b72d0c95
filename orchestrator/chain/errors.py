"""Errors of the chain layer: every one is a :class:`~orchestrator.errors.ChainError`.

Daemons catch ``ChainError`` for "the chain did not do what I asked" and the narrower classes
when they can act on the difference (a revert is final, a connection error is worth a retry,
a tripped circuit breaker means a person has to look).
"""

from __future__ import annotations

from typing import Any

from orchestrator.errors import ChainError


class ChainConnectionError(ChainError):
    """The JSON-RPC endpoint could not be reached or answered with a transport error."""


class ArtifactError(ChainError):
    """A build artifact or deployment manifest is missing or malformed."""


class SignerError(ChainError):
    """No signing key could be loaded (missing variable, unreadable keystore, wrong password)."""


class NonceError(ChainError):
    """The account's nonce could not be brought back in line with the chain after resyncing."""


class TransactionTimeoutError(ChainError):
    """A transaction was sent but no receipt arrived within the timeout."""


class ContractRevertError(ChainError):
    """A contract call reverted, either when estimating gas or in a mined transaction.

    ``error_name`` / ``error_args`` / ``selector`` are decoded from the custom errors of every
    build artifact (plus the built-in ``Error(string)`` and ``Panic(uint256)``), so a daemon can
    branch on ``exc.error_name == "RoundsAlreadySubmitted"`` instead of parsing strings.
    ``error_name`` is ``None`` when the revert carried no data or an unknown selector.
    """

    def __init__(
        self,
        message: str,
        *,
        error_name: str | None,
        error_args: dict[str, Any],
        selector: bytes | None,
        data: bytes,
        function: str,
        tx_hash: str | None = None,
    ) -> None:
        super().__init__(message)
        self.error_name = error_name
        self.error_args = error_args
        self.selector = selector
        self.data = data
        self.function = function
        self.tx_hash = tx_hash


class StateMismatchError(ChainError):
    """A daemon's state directory belongs to another chain or deployment (reset, redeploy)."""


class ScannerHaltedError(ChainError):
    """The event scanner's circuit breaker tripped after too many consecutive handler failures."""


__all__ = [
    "ArtifactError",
    "ChainConnectionError",
    "ChainError",
    "ContractRevertError",
    "NonceError",
    "ScannerHaltedError",
    "SignerError",
    "StateMismatchError",
    "TransactionTimeoutError",
]
