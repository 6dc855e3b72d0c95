"""Client-batching maths: several clients' activations in one server pass, and back.

Pure functions without I/O so the equivalence "one batched pass == separate passes" is testable
on its own. Clients are right-padded to the longest sequence with mask 0; because the server's
attention is causal and padding sits on the right, no real token ever attends to padding, so
each client's slice of the batched output equals what a pass of its own would give.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Slot:
    """Where one client's rows sit in the concatenated batch."""

    client_id: str
    start: int
    rows: int
    seq_len: int


def concat_padded(
    client_ids: Sequence[str],
    hiddens: Sequence[torch.Tensor],
    masks: Sequence[torch.Tensor],
    positions: Sequence[torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[Slot]]:
    """Concatenate along the batch dim after right-padding every client to the same length."""
    if not hiddens:
        raise ValueError("concat_padded needs at least one client")
    t_max = max(h.shape[1] for h in hiddens)
    hs, ms, ps, slots = [], [], [], []
    start = 0
    for cid, h, m, p in zip(client_ids, hiddens, masks, positions, strict=True):
        b, t, _ = h.shape
        pad = t_max - t
        hs.append(torch.nn.functional.pad(h, (0, 0, 0, pad)))
        ms.append(torch.nn.functional.pad(m, (0, pad), value=0))
        # padded positions continue the client's last position; they are masked anyway
        ps.append(torch.cat([p, p[:, -1:].expand(b, pad)], dim=1) if pad else p)
        slots.append(Slot(cid, start, b, t))
        start += b
    return torch.cat(hs), torch.cat(ms), torch.cat(ps), slots


def take(batch: torch.Tensor, slot: Slot) -> torch.Tensor:
    """One client's rows and real length out of a concatenated (B, T, ...) tensor."""
    return batch[slot.start : slot.start + slot.rows, : slot.seq_len]


def stitch_grads(
    slots: Sequence[Slot], grads: dict[str, torch.Tensor], like: torch.Tensor
) -> torch.Tensor:
    """Full-batch output gradient from per-client pieces; a missing client contributes zeros."""
    full = torch.zeros_like(like)
    for slot in slots:
        g = grads.get(slot.client_id)
        if g is not None:
            full[slot.start : slot.start + slot.rows, : slot.seq_len] = g
    return full
