"""LoRA adapters as stored content: deterministic packing, sealing for recipients, validation.

The path of an adapter::

    folder (peft save_pretrained) --pack_adapter--> bytes --seal--> blob --Store.add_bytes--> CID
    CID --Store.cat + CID check--> blob --open_sealed--> bytes --unpack + validate--> folder

Why each step looks the way it does:

* Packing keeps only ``adapter_config.json`` (re-serialised with sorted keys, the way peft
  writes it) and ``adapter_model.safetensors`` (byte for byte) in a small length-prefixed
  container, so the same adapter always gives the same bytes and hence the same CID. README.md
  and anything else in the folder (model cards, optimizer state) are not part of the adapter.
* Sealing is AES-256-GCM under one content key, wrapped per recipient with X25519 ECDH (a fresh
  ephemeral key each) + HKDF-SHA256 + AES-GCM. The whole header (mode, nonce, recipients,
  ephemeral keys, wrapped keys) is the content cipher's associated data, so a swapped or
  stripped recipient entry is detected, not just a flipped ciphertext bit.
* A submitted adapter's header carries its binding (:func:`submission_context`: chain, Rounds
  contract, round, submitting org), authenticated with the rest of the header. The aggregator
  opens a submission with the binding it expects from the chain (``expect_context``), so a blob
  copied by another org, or replayed into another round or deployment, is refused
  (:class:`BindingMismatchError`) even though its CID is valid; the copier cannot re-seal it
  for itself because it cannot decrypt it.
* ``deterministic=True`` is convergent encryption: keys and nonces derive from
  sha256(payload), so anyone who holds the same inputs rebuilds the same blob and CID (the
  aggregator's merged model is re-derivable by every member). Trade-off, documented in
  docs/STORAGE.md: equal plaintexts give equal blobs, and someone who can guess the whole
  plaintext can confirm the guess.
* Validation runs on what was fetched before it is handed to peft: a malicious or broken
  submission must fail here with a message, not inside torch.load or as NaN weights in a merge.
  Tensors are read with numpy from the safetensors layout (numpy has no bfloat16, so the
  header is parsed here; ``safetensors.safe_open`` then double-checks the same file).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import struct
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from orchestrator.storage.base import Store
from orchestrator.storage.cid import compute_cid
from orchestrator.storage.codec import parse_cid
from orchestrator.storage.errors import (
    AdapterValidationError,
    BindingMismatchError,
    CidMismatchError,
    DecryptionError,
    InvalidKeyError,
    NotFoundError,
    PayloadTooLargeError,
    StorageError,
)

__all__ = [
    "AdapterLimits",
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "generate_keypair",
    "public_key",
    "pack_adapter",
    "unpack_adapter",
    "seal",
    "open_sealed",
    "sealed_recipients",
    "sealed_context",
    "submission_context",
    "store_adapter",
    "fetch_adapter",
    "validate_adapter",
]

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
PACK_MAGIC = b"LLADAPT"
PACK_VERSION = 1
SEAL_MAGIC = b"LLSEAL"
SEAL_VERSION = 2  # 2 added the authenticated binding context; 1 is still read (no context)
MODE_RANDOM = 0
MODE_CONVERGENT = 1
_NONCE = 12
_KEY = 32
_WRAPPED = _KEY + 16
_ZERO_NONCE = b"\0" * _NONCE  # each wrapping key encrypts exactly one message (see _wrap_key)
_ADDRESS = re.compile(r"^0x[0-9a-f]{40}$")
# Room for the seal header on top of the packed adapter when a fetch checks sizes up front.
_SEAL_OVERHEAD_PER_RECIPIENT = 1 + 42 + 32 + _WRAPPED
_MAX_RECIPIENTS = 1024
_MAX_CONTEXT = 1024


@dataclass(frozen=True)
class AdapterLimits:
    """Bounds a fetched adapter must respect before it is written out or loaded."""

    max_bytes: int = field(
        default=256 * 1024 * 1024,
        metadata={"help": "largest packed adapter (config + safetensors), in bytes"},
    )
    max_tensors: int = field(
        default=20_000, metadata={"help": "most tensors in adapter_model.safetensors"}
    )
    max_recipients: int = field(
        default=256, metadata={"help": "most recipients a sealed adapter may name"}
    )

    def __post_init__(self) -> None:
        if not isinstance(self.max_bytes, int) or self.max_bytes <= 0:
            raise ValueError(f"max_bytes must be a positive integer, got {self.max_bytes!r}")
        if not isinstance(self.max_tensors, int) or self.max_tensors <= 0:
            raise ValueError(f"max_tensors must be a positive integer, got {self.max_tensors!r}")
        if (
            not isinstance(self.max_recipients, int)
            or not 0 < self.max_recipients <= _MAX_RECIPIENTS
        ):
            raise ValueError(
                f"max_recipients must be in 1..{_MAX_RECIPIENTS}, got {self.max_recipients!r}"
            )

    @property
    def max_sealed_bytes(self) -> int:
        """Largest sealed blob a fetch accepts: the packed limit plus header room."""
        return self.max_bytes + 64 + self.max_recipients * _SEAL_OVERHEAD_PER_RECIPIENT


# =========================================================================== keys
def generate_keypair() -> tuple[bytes, bytes]:
    """A fresh X25519 key pair as (raw private 32 B, raw public 32 B).

    The public key is what ``Membership.join`` registers as the org's bytes32.
    """
    private = X25519PrivateKey.generate()
    return private.private_bytes_raw(), private.public_key().public_bytes_raw()


def public_key(private_key: bytes) -> bytes:
    """The raw X25519 public key that belongs to ``private_key``."""
    return _private(private_key).public_key().public_bytes_raw()


def _raw32(key: bytes | str, what: str) -> bytes:
    if isinstance(key, str):
        text = key[2:] if key.startswith("0x") else key
        try:
            key = bytes.fromhex(text)
        except ValueError:
            raise InvalidKeyError(f"{what} {key!r} is not hex") from None
    if not isinstance(key, (bytes, bytearray, memoryview)) or len(key) != _KEY:
        size = len(key) if isinstance(key, (bytes, bytearray, memoryview)) else type(key).__name__
        raise InvalidKeyError(f"{what} must be 32 raw bytes (X25519), got {size}")
    return bytes(key)


def _private(key: bytes | str) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(_raw32(key, "private key"))


def _recipient_id(rid: str) -> str:
    if not isinstance(rid, str) or not _ADDRESS.match(rid.lower()):
        raise InvalidKeyError(
            f"recipient id {rid!r} must be a 0x-prefixed 20-byte address (it is lower-cased)"
        )
    return rid.lower()


def _hkdf(material: bytes, info: bytes, length: int = _KEY) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(material)


# =========================================================================== packing
def _canonical_config(raw: bytes, source: str) -> tuple[bytes, dict[str, Any]]:
    try:
        config = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AdapterValidationError(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise AdapterValidationError(
            f"{source} must hold a JSON object, not {type(config).__name__}"
        )
    # Same form as peft's own save_pretrained (indent 2, sorted keys), so usually byte-identical.
    return json.dumps(config, indent=2, sort_keys=True).encode("utf-8"), config


def pack_adapter(folder: os.PathLike[str] | str) -> bytes:
    """The adapter in ``folder`` as one deterministic byte string.

    Format (all integers big-endian)::

        b"LLADAPT" u8 version=1 u32 n_entries
        n_entries x ( u16 name_len, name (utf-8), u64 data_len, data )

    with exactly two entries in this order: ``adapter_config.json`` (canonical JSON) and
    ``adapter_model.safetensors`` (verbatim).
    """
    root = Path(folder)
    if not root.is_dir():
        raise NotFoundError(f"adapter folder {root} does not exist")
    config_path, weights_path = root / CONFIG_NAME, root / WEIGHTS_NAME
    if not config_path.is_file():
        raise NotFoundError(f"{config_path} is missing: not a peft adapter folder")
    if not weights_path.is_file():
        hint = (
            " (found adapter_model.bin: save with safe_serialization=True)"
            if (root / "adapter_model.bin").exists()
            else ""
        )
        raise NotFoundError(f"{weights_path} is missing{hint}")
    config_bytes, _ = _canonical_config(config_path.read_bytes(), str(config_path))
    return _pack_entries([(CONFIG_NAME, config_bytes), (WEIGHTS_NAME, weights_path.read_bytes())])


def _pack_entries(entries: list[tuple[str, bytes]]) -> bytes:
    out = bytearray(PACK_MAGIC + bytes([PACK_VERSION]) + struct.pack(">I", len(entries)))
    for name, data in entries:
        raw = name.encode("utf-8")
        out += struct.pack(">H", len(raw)) + raw + struct.pack(">Q", len(data))
        out += data
    return bytes(out)


def _unpack_entries(data: bytes, max_bytes: int | None = None) -> dict[str, bytes]:
    if max_bytes is not None and len(data) > max_bytes:
        raise PayloadTooLargeError(
            f"packed adapter is {len(data)} bytes, over the limit of {max_bytes} bytes"
        )
    head = len(PACK_MAGIC) + 1 + 4
    if len(data) < head or not data.startswith(PACK_MAGIC):
        raise AdapterValidationError("not a packed adapter: the LLADAPT magic is missing")
    if data[len(PACK_MAGIC)] != PACK_VERSION:
        raise AdapterValidationError(
            f"packed adapter format version {data[len(PACK_MAGIC)]} is not supported (1)"
        )
    (count,) = struct.unpack_from(">I", data, len(PACK_MAGIC) + 1)
    expected = [CONFIG_NAME, WEIGHTS_NAME]
    if count != len(expected):
        raise AdapterValidationError(f"packed adapter has {count} entries; expected {expected}")
    pos = head
    entries: dict[str, bytes] = {}
    for want in expected:
        try:
            (name_len,) = struct.unpack_from(">H", data, pos)
            name = data[pos + 2 : pos + 2 + name_len].decode("utf-8")
            pos += 2 + name_len
            (length,) = struct.unpack_from(">Q", data, pos)
            pos += 8
        except (struct.error, UnicodeDecodeError):
            raise AdapterValidationError("packed adapter is truncated in an entry header") from None
        if name != want:
            raise AdapterValidationError(
                f"packed adapter entry {name!r} where {want!r} was expected"
            )
        if pos + length > len(data):
            raise AdapterValidationError(
                f"packed adapter entry {name!r} claims {length} bytes but only "
                f"{len(data) - pos} remain (truncated)"
            )
        entries[name] = data[pos : pos + length]
        pos += length
    if pos != len(data):
        raise AdapterValidationError(f"packed adapter has {len(data) - pos} trailing bytes")
    return entries


def unpack_adapter(data: bytes, dest: os.PathLike[str] | str) -> Path:
    """Write a packed adapter into the folder ``dest`` (created; must be empty or absent).

    The folder appears complete or not at all (written beside it, then renamed).
    """
    entries = _unpack_entries(data)
    return _materialise(entries, Path(dest), limits=None)


def _materialise(entries: dict[str, bytes], dest: Path, limits: AdapterLimits | None) -> Path:
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise StorageError(f"destination {dest} exists and is not an empty folder; choose another")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
    tmp.mkdir()
    try:
        for name, blob in entries.items():
            (tmp / name).write_bytes(blob)
        if limits is not None:
            validate_adapter(tmp, limits, label=str(dest))
        if dest.exists():
            dest.rmdir()
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


# =========================================================================== sealing
def _wrap_key(shared: bytes, eph_pub: bytes, recipient_pub: bytes, rid: bytes) -> AESGCM:
    """The AES-GCM key that wraps the content key for one recipient.

    It is unique per (ephemeral key, recipient), so a fixed nonce is safe: in random mode it
    encrypts one message ever; in convergent mode it re-encrypts the same content key.
    """
    info = b"ledgerlora/seal/v1/wrap" + eph_pub + recipient_pub + rid
    return AESGCM(_hkdf(shared, info))


def submission_context(chain_id: int, rounds_address: str, round_id: int, org: str) -> bytes:
    """The binding of a submitted adapter: which deployment, round and org it was sealed for.

    It goes into the sealed header (authenticated data), so the aggregator, which knows from
    the chain who submitted a CID in which round, detects a blob copied from another org.
    """
    if int(chain_id) <= 0 or int(round_id) <= 0:
        raise ValueError(f"chain id and round id must be positive, got {chain_id}, {round_id}")
    return (f"ledgerlora/submission/v1:{int(chain_id)}:{_recipient_id(rounds_address)}:"
            f"{int(round_id)}:{_recipient_id(org)}").encode("ascii")


def seal(payload: bytes, recipients: Mapping[str, bytes], *, deterministic: bool = False,
         context: bytes = b"") -> bytes:
    """Encrypt ``payload`` so that each recipient (0x address -> X25519 public key) can open it.

    Format (integers big-endian)::

        header = b"LLSEAL" u8 version=2 u8 mode (0 random, 1 convergent) nonce[12]
                 u16 context_len, context,
                 u16 n, n x ( u8 id_len, id (ascii), ephemeral_pub[32], wrapped_key[48] )
        blob   = header || AES-256-GCM(content_key, nonce, payload, aad=header)

    ``context`` (e.g. :func:`submission_context`) is authenticated, not secret. Recipients are
    sorted by id, so the same inputs in deterministic mode give the same bytes.
    """
    if not recipients:
        raise InvalidKeyError("seal needs at least one recipient; nobody could open the blob")
    if len(recipients) > _MAX_RECIPIENTS:
        raise InvalidKeyError(
            f"{len(recipients)} recipients is over the limit of {_MAX_RECIPIENTS}"
        )
    if len(context) > _MAX_CONTEXT:
        raise ValueError(f"seal context is {len(context)} bytes, over the limit of {_MAX_CONTEXT}")
    ids: dict[str, bytes] = {}
    for rid, pub in recipients.items():
        norm = _recipient_id(rid)
        if norm in ids:
            raise InvalidKeyError(f"recipient {norm} is listed twice (ids are case-insensitive)")
        ids[norm] = _raw32(pub, f"public key of {norm}")
    if deterministic:
        digest = hashlib.sha256(bytes(context) + b"\0" + payload if context else payload).digest()
        material = _hkdf(digest, b"ledgerlora/seal/v1/content", _KEY + _NONCE)
        content_key, nonce = material[:_KEY], material[_KEY:]
    else:
        digest = b""
        content_key, nonce = AESGCM.generate_key(bit_length=256), os.urandom(_NONCE)
    header = bytearray(
        SEAL_MAGIC + bytes([SEAL_VERSION, MODE_CONVERGENT if deterministic else MODE_RANDOM])
    )
    header += nonce + struct.pack(">H", len(context)) + bytes(context) + struct.pack(">H", len(ids))
    for rid in sorted(ids):
        pub = ids[rid]
        if deterministic:
            eph = X25519PrivateKey.from_private_bytes(
                _hkdf(digest + pub, b"ledgerlora/seal/v1/ephemeral")
            )
        else:
            eph = X25519PrivateKey.generate()
        eph_pub = eph.public_key().public_bytes_raw()
        try:
            shared = eph.exchange(X25519PublicKey.from_public_bytes(pub))
        except ValueError:
            raise InvalidKeyError(f"public key of {rid} is a low-order point; refused") from None
        rid_raw = rid.encode("ascii")
        wrapped = _wrap_key(shared, eph_pub, pub, rid_raw).encrypt(_ZERO_NONCE, content_key, None)
        header += bytes([len(rid_raw)]) + rid_raw + eph_pub + wrapped
    header_bytes = bytes(header)
    return header_bytes + AESGCM(content_key).encrypt(nonce, payload, header_bytes)


@dataclass(frozen=True)
class _SealHeader:
    mode: int
    nonce: bytes
    entries: dict[str, tuple[bytes, bytes]]  # id -> (ephemeral pub, wrapped key)
    length: int
    context: bytes = b""


def _parse_seal_header(blob: bytes) -> _SealHeader:
    fixed = len(SEAL_MAGIC) + 2 + _NONCE + 2
    if len(blob) < fixed or not blob.startswith(SEAL_MAGIC):
        raise DecryptionError("not a sealed blob: the LLSEAL magic is missing")
    version, mode = blob[len(SEAL_MAGIC)], blob[len(SEAL_MAGIC) + 1]
    if version not in (1, SEAL_VERSION):
        raise DecryptionError(f"sealed blob format version {version} is not supported (1, 2)")
    if mode not in (MODE_RANDOM, MODE_CONVERGENT):
        raise DecryptionError(f"sealed blob mode {mode} is unknown (tampered header?)")
    pos = len(SEAL_MAGIC) + 2
    nonce = blob[pos : pos + _NONCE]
    pos += _NONCE
    context = b""
    if version >= 2:
        (context_len,) = struct.unpack_from(">H", blob, pos)
        pos += 2
        if context_len > _MAX_CONTEXT or pos + context_len + 2 > len(blob):
            raise DecryptionError("sealed blob header is truncated (context)")
        context = blob[pos : pos + context_len]
        pos += context_len
    (count,) = struct.unpack_from(">H", blob, pos)
    pos += 2
    entries: dict[str, tuple[bytes, bytes]] = {}
    for _ in range(count):
        if pos >= len(blob):
            raise DecryptionError("sealed blob header is truncated")
        id_len = blob[pos]
        end = pos + 1 + id_len + _KEY + _WRAPPED
        if end > len(blob):
            raise DecryptionError("sealed blob header is truncated")
        rid = blob[pos + 1 : pos + 1 + id_len].decode("ascii", errors="replace")
        eph = blob[pos + 1 + id_len : pos + 1 + id_len + _KEY]
        entries[rid] = (eph, blob[pos + 1 + id_len + _KEY : end])
        pos = end
    if len(blob) - pos < 16:
        raise DecryptionError("sealed blob is truncated: no room for the authentication tag")
    return _SealHeader(mode, nonce, entries, pos, bytes(context))


def sealed_recipients(blob: bytes) -> list[str]:
    """The recipient ids a sealed blob names (no key needed)."""
    return sorted(_parse_seal_header(blob).entries)


def sealed_context(blob: bytes) -> bytes:
    """The binding context a sealed blob claims (unauthenticated until it is opened)."""
    return _parse_seal_header(blob).context


def open_sealed(blob: bytes, recipient_id: str, private_key: bytes, *,
                expect_context: bytes | None = None) -> bytes:
    """Decrypt a :func:`seal` blob as ``recipient_id`` holding ``private_key``.

    With ``expect_context`` the blob must have been sealed with exactly that binding; a blob
    sealed for another org, round or deployment raises :class:`BindingMismatchError`.
    """
    rid = _recipient_id(recipient_id)
    priv = _private(private_key)
    header = _parse_seal_header(blob)
    if rid not in header.entries:
        raise DecryptionError(
            f"{rid} is not a recipient of this blob (recipients: {', '.join(sorted(header.entries))})"
        )
    eph_pub, wrapped = header.entries[rid]
    own_pub = priv.public_key().public_bytes_raw()
    try:
        shared = priv.exchange(X25519PublicKey.from_public_bytes(eph_pub))
        content_key = _wrap_key(shared, eph_pub, own_pub, rid.encode("ascii")).decrypt(
            _ZERO_NONCE, wrapped, None
        )
    except (InvalidTag, ValueError):
        raise DecryptionError(
            f"cannot unwrap the content key for {rid}: wrong private key, or the recipient "
            "entry was tampered with"
        ) from None
    head = blob[: header.length]
    try:
        payload = AESGCM(content_key).decrypt(header.nonce, blob[header.length :], head)
    except InvalidTag:
        raise DecryptionError(
            f"sealed blob failed authentication for {rid}: the ciphertext or its header was "
            "tampered with"
        ) from None
    # The context is authentic now (it is part of the AAD that just verified).
    if expect_context is not None and header.context != bytes(expect_context):
        raise BindingMismatchError(
            f"sealed blob is bound to {header.context.decode('ascii', 'replace') or 'nothing'!r}, "
            f"not to {bytes(expect_context).decode('ascii', 'replace')!r}: a copied or replayed "
            "submission; reject it"
        )
    return payload


# =========================================================================== validation
_DTYPES: dict[str, tuple[str, int]] = {
    "F16": ("<f2", 2),
    "BF16": ("<u2", 2),
    "F32": ("<f4", 4),
    "F64": ("<f8", 8),
}
_TENSOR_NAME = re.compile(r"^(?P<module>.+)\.lora_(?P<ab>[AB])\.weight$")
_PEFT_PREFIX = "base_model.model."


def _parse_safetensors(
    data: bytes, source: str, limits: AdapterLimits
) -> dict[str, tuple[str, list[int], int, int]]:
    """Header of a safetensors buffer: name -> (dtype, shape, start, end) within the data area."""
    if len(data) < 8:
        raise AdapterValidationError(f"{source} is truncated: no safetensors header")
    (n,) = struct.unpack_from("<Q", data, 0)
    if n > len(data) - 8 or n > 100_000_000:
        raise AdapterValidationError(f"{source}: safetensors header length {n} exceeds the file")
    try:
        header = json.loads(data[8 : 8 + n])
    except (ValueError, UnicodeDecodeError) as exc:
        raise AdapterValidationError(f"{source}: safetensors header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise AdapterValidationError(f"{source}: safetensors header is not a JSON object")
    header.pop("__metadata__", None)
    if len(header) > limits.max_tensors:
        raise AdapterValidationError(
            f"{source} holds {len(header)} tensors, over the limit of {limits.max_tensors}"
        )
    body = len(data) - 8 - n
    out: dict[str, tuple[str, list[int], int, int]] = {}
    spans = []
    for name, info in header.items():
        try:
            dtype, shape, (start, end) = info["dtype"], info["shape"], info["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise AdapterValidationError(
                f"{source}: tensor {name!r} has a malformed header entry"
            ) from None
        if dtype not in _DTYPES:
            raise AdapterValidationError(
                f"{source}: tensor {name!r} has dtype {dtype}; LoRA weights must be F16/BF16/F32/F64"
            )
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise AdapterValidationError(
                f"{source}: tensor {name!r} has a malformed shape {shape!r}"
            )
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start <= end <= body):
            raise AdapterValidationError(
                f"{source}: tensor {name!r} data offsets [{start}, {end}] lie outside the file"
            )
        if end - start != math.prod(shape) * _DTYPES[dtype][1]:
            raise AdapterValidationError(
                f"{source}: tensor {name!r} has {end - start} bytes for shape {shape} {dtype}"
            )
        spans.append((start, end, name))
        out[name] = (dtype, shape, 8 + n + start, 8 + n + end)
    spans.sort()
    cursor = 0
    for start, end, name in spans:
        if start != cursor:
            raise AdapterValidationError(f"{source}: tensor {name!r} overlaps or leaves a gap")
        cursor = end
    if cursor != body:
        raise AdapterValidationError(f"{source}: {body - cursor} bytes after the last tensor")
    return out


def _as_float(data: bytes, dtype: str, start: int, end: int) -> np.ndarray:
    np_dtype, _ = _DTYPES[dtype]
    arr = np.frombuffer(
        data, dtype=np_dtype, count=(end - start) // _DTYPES[dtype][1], offset=start
    )
    if dtype == "BF16":  # bfloat16 is the top half of a float32
        return (arr.astype(np.uint32) << 16).view(np.float32)
    return arr


def _rank_for(module_key: str, r: int, rank_pattern: Mapping[str, int], source: str) -> int:
    for pattern, rank in rank_pattern.items():
        try:
            if re.fullmatch(rf"(?:.*\.)?(?:{pattern})", module_key):
                return rank
        except re.error as exc:
            raise AdapterValidationError(
                f"{source}: rank_pattern key {pattern!r} is not a regex: {exc}"
            ) from None
    return r


def _targets(module_key: str, target_modules: str | list[str]) -> bool:
    if isinstance(target_modules, str):
        return re.fullmatch(target_modules, module_key) is not None
    return any(module_key == t or module_key.endswith("." + t) for t in target_modules)


def _validate_config(
    config: dict[str, Any], source: str
) -> tuple[int, str | list[str], dict[str, int]]:
    if config.get("peft_type") != "LORA":
        raise AdapterValidationError(
            f"{source}: peft_type is {config.get('peft_type')!r}, expected 'LORA'"
        )
    r = config.get("r")
    if not isinstance(r, int) or isinstance(r, bool) or r <= 0:
        raise AdapterValidationError(f"{source}: r must be a positive integer, got {r!r}")
    targets = config.get("target_modules")
    if isinstance(targets, str):
        try:
            re.compile(targets)
        except re.error as exc:
            raise AdapterValidationError(
                f"{source}: target_modules regex {targets!r}: {exc}"
            ) from None
    elif not (
        isinstance(targets, list) and targets and all(isinstance(t, str) and t for t in targets)
    ):
        raise AdapterValidationError(
            f"{source}: target_modules must be a non-empty list of module names or a regex, got {targets!r}"
        )
    rank_pattern = config.get("rank_pattern") or {}
    if not isinstance(rank_pattern, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v > 0
        for k, v in rank_pattern.items()
    ):
        raise AdapterValidationError(
            f"{source}: rank_pattern must map patterns to positive ints, got {rank_pattern!r}"
        )
    return r, targets, rank_pattern


def _validate_bytes(
    config_raw: bytes, weights: bytes, limits: AdapterLimits, label: str
) -> set[str]:
    """All checks of :func:`validate_adapter` on the two files' bytes; returns tensor names."""
    total = len(config_raw) + len(weights)
    if total > limits.max_bytes:
        raise PayloadTooLargeError(
            f"adapter {label} is {total} bytes, over the limit of {limits.max_bytes} bytes"
        )
    _, config = _canonical_config(config_raw, f"{label}/{CONFIG_NAME}")
    r, targets, rank_pattern = _validate_config(config, f"{label}/{CONFIG_NAME}")
    source = f"{label}/{WEIGHTS_NAME}"
    tensors = _parse_safetensors(weights, source, limits)
    if not tensors:
        raise AdapterValidationError(f"{source} holds no tensors")
    seen: dict[str, set[str]] = {}
    for name, (dtype, shape, start, end) in sorted(tensors.items()):
        m = _TENSOR_NAME.match(name)
        if m is None:
            raise AdapterValidationError(
                f"{source}: tensor {name!r} is not a lora_A/lora_B weight (other trainable "
                "modules are not accepted)"
            )
        module = m["module"]
        key = module[len(_PEFT_PREFIX) :] if module.startswith(_PEFT_PREFIX) else module
        if not _targets(key, targets):
            raise AdapterValidationError(
                f"{source}: tensor {name!r} belongs to module {key!r}, which target_modules "
                f"{targets!r} does not name"
            )
        rank = _rank_for(key, r, rank_pattern, source)
        if len(shape) < 2:
            raise AdapterValidationError(
                f"{source}: tensor {name!r} has shape {shape}; LoRA weights are matrices"
            )
        axis = 0 if m["ab"] == "A" else 1
        if shape[axis] != rank:
            raise AdapterValidationError(
                f"{source}: tensor {name!r} has shape {shape} but the config gives rank {rank} "
                f"(expected shape[{axis}] == {rank})"
            )
        values = _as_float(weights, dtype, start, end)
        if not np.isfinite(values).all():
            bad = int(values.size - np.count_nonzero(np.isfinite(values)))
            raise AdapterValidationError(
                f"{source}: tensor {name!r} has {bad} NaN or infinite values"
            )
        seen.setdefault(module, set()).add(m["ab"])
    for module, parts in sorted(seen.items()):
        if parts != {"A", "B"}:
            missing = "lora_B" if "A" in parts else "lora_A"
            raise AdapterValidationError(f"{source}: module {module!r} has no {missing} weight")
    return set(tensors)


def validate_adapter(
    folder: os.PathLike[str] | str, limits: AdapterLimits | None = None, *, label: str | None = None
) -> None:
    """Raise :class:`AdapterValidationError` (or PayloadTooLargeError) unless ``folder`` holds a
    LoRA adapter that is safe to load: config parses (peft_type LORA, r > 0, target_modules),
    every tensor is the lora_A/lora_B weight of a targeted module with the configured rank
    (``rank_pattern`` honoured), every value is finite, and the total size is within limits.
    """
    limits = limits or AdapterLimits()
    root = Path(folder)
    label = label or str(root)
    config_path, weights_path = root / CONFIG_NAME, root / WEIGHTS_NAME
    for path in (config_path, weights_path):
        if not path.is_file():
            raise NotFoundError(f"{path} is missing: not a peft adapter folder")
    size = config_path.stat().st_size + weights_path.stat().st_size
    if size > limits.max_bytes:
        raise PayloadTooLargeError(
            f"adapter {label} is {size} bytes, over the limit of {limits.max_bytes} bytes"
        )
    expected = _validate_bytes(config_path.read_bytes(), weights_path.read_bytes(), limits, label)
    # The reference parser must agree, since peft will use it to load the folder.
    from safetensors import safe_open

    try:
        with safe_open(str(weights_path), framework="numpy") as fh:
            names = set(fh.keys())
    except Exception as exc:  # safetensors raises its own SafetensorError
        raise AdapterValidationError(
            f"{label}/{WEIGHTS_NAME}: safetensors refuses it: {exc}"
        ) from None
    if names != expected:
        raise AdapterValidationError(
            f"{label}/{WEIGHTS_NAME}: tensor names disagree with safetensors"
        )


# =========================================================================== store round trip
def store_adapter(
    store: Store,
    folder: os.PathLike[str] | str,
    recipients: Mapping[str, bytes],
    *,
    deterministic: bool = False,
    limits: AdapterLimits | None = None,
    context: bytes = b"",
) -> str:
    """Validate, pack, seal (bound to ``context``) and add the adapter; return the blob's CIDv0."""
    validate_adapter(folder, limits)
    blob = seal(pack_adapter(folder), recipients, deterministic=deterministic, context=context)
    return store.add_bytes(blob)


def fetch_adapter(
    store: Store,
    cid: str,
    recipient_id: str,
    private_key: bytes,
    dest: os.PathLike[str] | str,
    limits: AdapterLimits | None = None,
    *,
    expect_context: bytes | None = None,
) -> Path:
    """Fetch, verify, decrypt, unpack and validate an adapter into ``dest``; return ``dest``.

    ``expect_context``: the binding the blob must carry (see :func:`open_sealed`).

    ``dest`` must be absent or an empty folder; it appears only once everything passed, and a
    failure leaves nothing behind. The result loads with ``PeftModel.from_pretrained``.
    """
    limits = limits or AdapterLimits()
    c = parse_cid(cid)
    blob = store.cat(str(c), max_bytes=limits.max_sealed_bytes)
    if len(blob) > limits.max_sealed_bytes:
        raise PayloadTooLargeError(
            f"{c} is {len(blob)} bytes, over the limit of {limits.max_sealed_bytes}"
        )
    actual = compute_cid(blob)
    if actual != str(c.as_version(0)):
        raise CidMismatchError(f"content fetched for {c} hashes to {actual}; refusing it")
    named = len(_parse_seal_header(blob).entries)
    if named > limits.max_recipients:
        raise PayloadTooLargeError(
            f"{c} names {named} recipients, over the limit of {limits.max_recipients}"
        )
    payload = open_sealed(blob, recipient_id, private_key, expect_context=expect_context)
    entries = _unpack_entries(payload, max_bytes=limits.max_bytes)
    return _materialise(entries, Path(dest), limits)
