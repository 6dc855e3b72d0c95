"""Per-client session encryption for split learning.

Why not reuse the adapter envelopes of ``orchestrator.storage``: those seal one file once for a
recipient; here every activation and gradient of every step is a message in a long-lived,
two-way session that must also refuse replays and reordering. So the scheme is:

* each side holds a static X25519 key pair; the server publishes its public key and a fresh
  random ``session_id`` per server start (GET /hello);
* both sides compute X25519(own private, peer public) and expand it with HKDF-SHA256
  (salt = session id, info binds both public keys and the client id) into two AES-256-GCM keys,
  one per direction, so a reflected message never decrypts;
* every message carries a header (client id, step, kind, direction, counter) that is the GCM
  associated data, and the 96-bit nonce is (direction, counter): a counter is never reused
  under one key, and the receiver rejects any counter not greater than the last one it
  accepted (replay / reorder protection), *after* the tag has verified.

Another client derives a different key from its own private key, so captured traffic of client
A fails authentication under client B's key (``InvalidTag`` -> :class:`SplitAuthError`).
"""

from __future__ import annotations

import json
import struct
import threading
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from orchestrator.split.errors import SplitAuthError, SplitProtocolError, SplitReplayError

MAGIC = b"LLS1"
C2S = 1  # client -> server
S2C = 2  # server -> client
_HKDF_INFO = b"ledgerlora/split/v1"
_MAX_HEADER = 4096


def _pub_bytes(key: X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class KeyPair:
    """A static X25519 identity (a client org or the server)."""

    private: X25519PrivateKey

    @classmethod
    def generate(cls) -> KeyPair:
        return cls(X25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> KeyPair:
        """Deterministic key from 32 bytes: for reproducible runs and tests only."""
        if len(seed) != 32:
            raise ValueError(f"an X25519 seed must be 32 bytes, got {len(seed)}")
        return cls(X25519PrivateKey.from_private_bytes(seed))

    @property
    def public_bytes(self) -> bytes:
        return _pub_bytes(self.private.public_key())

    def private_bytes(self) -> bytes:
        return self.private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )


def derive_session_keys(
    own: KeyPair,
    peer_public: bytes,
    *,
    client_id: str,
    client_public: bytes,
    server_public: bytes,
    session_id: bytes,
) -> tuple[bytes, bytes]:
    """Return ``(key_client_to_server, key_server_to_client)``; both sides get the same pair."""
    if len(peer_public) != 32:
        raise SplitAuthError(f"peer public key must be 32 bytes, got {len(peer_public)}")
    shared = own.private.exchange(X25519PublicKey.from_public_bytes(peer_public))
    info = _HKDF_INFO + b"|" + client_id.encode() + b"|" + client_public + server_public
    okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=session_id, info=info).derive(shared)
    return okm[:32], okm[32:]


@dataclass(frozen=True)
class Header:
    """The authenticated (not secret) part of a message; it is the GCM associated data."""

    client_id: str
    step: int
    kind: str
    direction: int
    counter: int

    def encode(self) -> bytes:
        return json.dumps(
            {
                "c": self.client_id,
                "s": self.step,
                "k": self.kind,
                "d": self.direction,
                "n": self.counter,
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Header:
        try:
            obj = json.loads(raw)
            return cls(
                client_id=str(obj["c"]),
                step=int(obj["s"]),
                kind=str(obj["k"]),
                direction=int(obj["d"]),
                counter=int(obj["n"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise SplitProtocolError(f"malformed message header {raw[:80]!r}: {exc}") from exc


def peek_header(envelope: bytes) -> Header:
    """Read the header without decrypting (the server needs the client id to pick a key)."""
    return _split_envelope(envelope)[0]


def _split_envelope(envelope: bytes) -> tuple[Header, bytes, bytes]:
    if len(envelope) < 8 or envelope[:4] != MAGIC:
        raise SplitProtocolError(
            f"not a split-learning message (starts with {envelope[:8]!r}, expected {MAGIC!r})"
        )
    (hlen,) = struct.unpack(">I", envelope[4:8])
    if hlen > _MAX_HEADER or 8 + hlen > len(envelope):
        raise SplitProtocolError(f"message header length {hlen} is out of range")
    raw = envelope[8 : 8 + hlen]
    return Header.decode(raw), raw, envelope[8 + hlen :]


def _nonce(direction: int, counter: int) -> bytes:
    return struct.pack(">IQ", direction, counter)


class SessionChannel:
    """One end of a client<->server session: seals outgoing, opens incoming messages.

    Thread-safe: the server's handler threads share one channel per client.
    ``crypto_seconds`` accumulates the CPU time (``thread_time``, so waiting for the GIL or the
    core is not counted) spent in AES-GCM, to report the encryption overhead per step.
    """

    def __init__(self, client_id: str, key_c2s: bytes, key_s2c: bytes, *, is_server: bool) -> None:
        self.client_id = client_id
        self._send_dir, self._recv_dir = (S2C, C2S) if is_server else (C2S, S2C)
        keys = {C2S: AESGCM(key_c2s), S2C: AESGCM(key_s2c)}
        self._send = keys[self._send_dir]
        self._recv = keys[self._recv_dir]
        self._send_counter = 0
        self._last_recv = 0  # counters start at 1
        self._lock = threading.Lock()
        self.crypto_seconds = 0.0

    def seal(self, step: int, kind: str, payload: bytes) -> bytes:
        with self._lock:
            self._send_counter += 1
            header = Header(self.client_id, step, kind, self._send_dir, self._send_counter).encode()
            t0 = time.thread_time()
            ct = self._send.encrypt(_nonce(self._send_dir, self._send_counter), payload, header)
            self.crypto_seconds += time.thread_time() - t0
        return MAGIC + struct.pack(">I", len(header)) + header + ct

    def open(self, envelope: bytes, *, kind: str | None = None) -> tuple[Header, bytes]:
        """Authenticate and decrypt; raise on a wrong key, tampering, replay or wrong kind."""
        header, raw_header, body = _split_envelope(envelope)
        if header.client_id != self.client_id:
            raise SplitAuthError(
                f"message is for client {header.client_id!r}, this session is {self.client_id!r}"
            )
        if header.direction != self._recv_dir:
            raise SplitAuthError(
                f"message direction {header.direction} is not {self._recv_dir}: a reflected message?"
            )
        with self._lock:
            t0 = time.thread_time()
            try:
                plain = self._recv.decrypt(
                    _nonce(header.direction, header.counter), body, raw_header
                )
            except InvalidTag as exc:
                raise SplitAuthError(
                    f"message from client {header.client_id!r} (counter {header.counter}) failed "
                    "authentication: wrong session key or tampered bytes"
                ) from exc
            finally:
                self.crypto_seconds += time.thread_time() - t0
            if header.counter <= self._last_recv:
                raise SplitReplayError(
                    f"client {header.client_id!r}: counter {header.counter} is not newer than "
                    f"{self._last_recv}; replayed or reordered message rejected"
                )
            self._last_recv = header.counter
        if kind is not None and header.kind != kind:
            raise SplitProtocolError(f"expected a {kind!r} message, got {header.kind!r}")
        return header, plain
