"""The storage layer's errors: one subclass of :class:`StorageError` per kind of bad input.

Callers (daemons, the CLI) catch the specific class to decide what to do: a
:class:`CidMismatchError` or :class:`CorruptBlockError` means "fetch the content again from a
peer", a :class:`DecryptionError` means "wrong key or tampered blob, do not retry", an
:class:`AdapterValidationError` means "the submitter published a bad adapter". Every message
names the CID or file and what was wrong.
"""

from __future__ import annotations

from orchestrator.errors import StorageError

__all__ = [
    "StorageError",
    "InvalidCidError",
    "CidMismatchError",
    "CorruptBlockError",
    "MissingBlockError",
    "CarFormatError",
    "DecryptionError",
    "AdapterValidationError",
    "PayloadTooLargeError",
    "NotFoundError",
    "KuboError",
    "InvalidKeyError",
]


class InvalidCidError(StorageError):
    """A string is not a CID this layer understands (bad base, version, codec or hash)."""


class CidMismatchError(StorageError):
    """Content does not hash to the CID it was announced under."""


class CorruptBlockError(StorageError):
    """A stored or received block is damaged: wrong hash, truncated, or not valid dag-pb/UnixFS."""


class MissingBlockError(StorageError):
    """A block that a DAG links to is not available (not stored, or absent from a CAR file)."""


class CarFormatError(StorageError):
    """A CAR file is malformed: bad header, bad section framing, unsupported version."""


class DecryptionError(StorageError):
    """A sealed blob could not be opened: wrong key, unknown recipient or tampered bytes."""


class BindingMismatchError(DecryptionError):
    """A sealed blob authenticates, but was sealed for another org, round or deployment."""


class AdapterValidationError(StorageError):
    """An adapter folder or packed adapter breaks the rules (config, names, shapes, values)."""


class PayloadTooLargeError(StorageError):
    """Content is larger than the configured limit; it was refused before being loaded."""


class NotFoundError(StorageError):
    """A file, CID or pin that the caller named does not exist."""


class KuboError(StorageError):
    """The Kubo daemon could not be reached or answered with an error."""


class InvalidKeyError(StorageError):
    """A public or private key, or a recipient id, has the wrong form (size, encoding)."""
