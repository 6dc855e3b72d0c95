"""One exception hierarchy for the whole orchestrator.

Every message says what was wrong, with which input, and what to do about it. Layers raise
the subclass of their own concern; the CLI turns any ``OrchestratorError`` into a one-line
message and exit status 1 instead of a traceback.
"""

from __future__ import annotations


class OrchestratorError(Exception):
    """Base of every error the orchestrator raises on purpose."""


class ConfigError(OrchestratorError):
    """A setting, flag or environment variable has an invalid value."""


class ChainError(OrchestratorError):
    """Talking to an EVM chain failed (connection, signing, a reverted transaction)."""


class StorageError(OrchestratorError):
    """Content-addressed storage failed (bad CID, corrupt block, decryption, validation)."""


class LearningError(OrchestratorError):
    """Model loading, training, aggregation or unlearning failed."""


class SplitError(OrchestratorError):
    """The split-learning protocol failed (shapes, keys, replay, a dropped client)."""


class DaemonError(OrchestratorError):
    """A daemon could not act on an event."""
