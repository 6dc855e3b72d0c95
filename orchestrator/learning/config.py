"""The round configuration every org trains with (published by the aggregator as JSON on IPFS).

No torch import: the daemons build and publish configs without loading a model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TrainConfig:
    """LoRA training hyper-parameters; identical configs + data give identical adapters on CPU."""

    rank: int = field(default=8, metadata={"help": "LoRA rank r of each adapted matrix"})
    alpha: float = field(default=16.0, metadata={"help": "LoRA alpha; peft scales B A by alpha / r"})
    target_modules: tuple[str, ...] = field(
        default=("q_proj", "v_proj"), metadata={"help": "names of the Linear layers that get adapters"}
    )
    steps: int = field(default=8, metadata={"help": "optimizer steps per training call (one round)"})
    batch_size: int = field(default=4, metadata={"help": "sequences per step"})
    seq_len: int = field(default=64, metadata={"help": "tokens per sequence (longer texts are truncated)"})
    lr: float = field(default=2e-3, metadata={"help": "AdamW learning rate (constant)"})
    seed: int = field(default=0, metadata={"help": "seeds LoRA init and the data order"})
    dropout: float = field(default=0.0, metadata={"help": "LoRA dropout; 0 keeps training RNG-free"})

    def __post_init__(self) -> None:
        # Tuples survive a JSON round trip as lists; normalise so equality and hashing work.
        object.__setattr__(self, "target_modules", tuple(self.target_modules))
        checks: list[tuple[str, Any, bool]] = [
            ("rank", self.rank, isinstance(self.rank, int) and self.rank >= 1),
            ("alpha", self.alpha, isinstance(self.alpha, int | float) and math.isfinite(self.alpha) and self.alpha > 0),
            ("steps", self.steps, isinstance(self.steps, int) and self.steps >= 1),
            ("batch_size", self.batch_size, isinstance(self.batch_size, int) and self.batch_size >= 1),
            ("seq_len", self.seq_len, isinstance(self.seq_len, int) and 2 <= self.seq_len <= 8192),
            ("lr", self.lr, isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0),
            ("seed", self.seed, isinstance(self.seed, int) and 0 <= self.seed < 2**63),
            ("dropout", self.dropout, isinstance(self.dropout, int | float) and 0.0 <= self.dropout < 1.0),
            (
                "target_modules",
                self.target_modules,
                bool(self.target_modules) and all(isinstance(m, str) and m for m in self.target_modules),
            ),
        ]
        for name, value, ok in checks:
            if not ok:
                raise ValueError(f"TrainConfig.{name} is invalid: {value!r} ({_HELP[name]})")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["target_modules"] = list(self.target_modules)
        return data

    def to_json(self) -> str:
        """Canonical JSON (sorted keys): the same config always gives the same bytes and CID."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"TrainConfig has no field(s) {unknown}; known fields: {sorted(known)}")
        return cls(**dict(data))

    @classmethod
    def from_json(cls, text: str | bytes) -> TrainConfig:
        return cls.from_dict(json.loads(text))

    def for_round(self, round_index: int) -> TrainConfig:
        """The config of round ``round_index`` (0-based): a fresh data order per round.

        The seed depends on the round only, never on which orgs take part, so removing an org
        leaves everyone else's training unchanged (the basis of exact unlearning).
        """
        return dataclasses.replace(self, seed=self.seed + 1000 * round_index)

    def for_org(self, org: str) -> TrainConfig:
        """The config of one org: its own seed (LoRA initialisation and data order).

        The offset depends on the org's name only (a SHA-256, never Python's salted ``hash``),
        so removing another org changes nothing here.  Used as ``cfg.for_round(r).for_org(o)``.
        """
        return dataclasses.replace(self, seed=(self.seed + org_seed_offset(org)) % 2**63)


def org_seed_offset(org: str) -> int:
    """A 32-bit seed offset derived from an org's name (topic, address, group label)."""
    return int.from_bytes(hashlib.sha256(f"ledgerlora-org|{org.lower()}".encode()).digest()[:4], "big")


_HELP = {f.name: f.metadata["help"] for f in dataclasses.fields(TrainConfig)}
