"""The round configuration document the aggregator publishes on IPFS (its CID goes on chain).

It tells every trainer how to train this round and whom to encrypt the adapter for. Because
its CID is in ``RoundOpened``, a trainer can check that the document it fetched is exactly the
one the aggregator committed to; the aggregator's encryption keys travel here rather than in
Membership, because aggregators are not member organisations.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from orchestrator.errors import ConfigError

MODES = ("isolated", "collaborative", "grouped")


@dataclass(frozen=True)
class RoundConfig:
    model: str = "smollm2"
    mode: str = "isolated"
    train: dict[str, Any] = field(default_factory=dict)
    #: checksummed aggregator address -> X25519 public key (hex); adapters are sealed for these.
    aggregator_keys: dict[str, str] = field(default_factory=dict)
    #: grouped mode only: member address (lower-case hex) -> group number, fixed when the
    #: consortium forms (SISA over organisations: FedAvg inside a group, exact stacking across)
    groups: dict[str, int] = field(default_factory=dict)
    #: evaluation settings for scoring and unlearning verification
    eval_seq_len: int = 64
    eval_batch_size: int = 8
    version: int = 1

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"round mode must be one of {MODES}, got {self.mode!r}")
        if not self.aggregator_keys:
            raise ConfigError("a round config needs at least one aggregator encryption key")
        for addr, key in self.aggregator_keys.items():
            if len(bytes.fromhex(key.removeprefix("0x"))) != 32:
                raise ConfigError(f"aggregator key of {addr} must be 32 bytes of hex, got {key!r}")
        self._check_groups()

    def _check_groups(self) -> None:
        if self.mode != "grouped":
            if self.groups:
                raise ConfigError(f"groups are only used in mode 'grouped', but mode is {self.mode!r}; "
                                  "drop the groups or set mode 'grouped'")
            return
        if not self.groups:
            raise ConfigError("mode 'grouped' needs groups: a mapping of member address -> group number")
        for addr, group in self.groups.items():
            if not (isinstance(addr, str) and len(addr) == 42 and addr.startswith("0x") and addr == addr.lower()
                    and all(c in "0123456789abcdef" for c in addr[2:])):
                raise ConfigError(f"group member {addr!r} must be a lower-case 0x-prefixed 20-byte hex address")
            if isinstance(group, bool) or not isinstance(group, int) or group < 0:
                raise ConfigError(f"group of {addr} must be an integer >= 0, got {group!r}")

    def group_of(self, address: str) -> int | None:
        """The group of member ``address`` (grouped mode), or None when it has none."""
        return self.groups.get(address.lower())

    def group_members(self, group: int) -> list[str]:
        """The lower-case addresses of the members of ``group``, sorted."""
        return sorted(a for a, g in self.groups.items() if g == group)

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "round config") -> RoundConfig:
        try:
            raw = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{source} is not valid JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"{source} must be a JSON object, got {type(raw).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = set(raw) - known
        if unknown:
            raise ConfigError(f"{source} has unknown fields {sorted(unknown)}")
        return cls(**raw)

    def recipient_keys(self) -> dict[str, bytes]:
        return {addr.lower(): bytes.fromhex(k.removeprefix("0x")) for addr, k in self.aggregator_keys.items()}
