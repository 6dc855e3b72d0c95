"""Coalition values for contribution accounting: the validation loss of every sub-merge.

With exact stacking, the model of any coalition S of adapters is a re-merge (no retraining):
``base + sum_{k in S} w_k^S s_k B_k A_k`` with ``w_k^S = n_k / sum_{j in S} n_j`` (sample
weights renormalised inside S, exactly what the aggregator would publish had only S
submitted). All coalitions share the same stacked A; only B's column blocks change. So the
model is loaded once, with every adapter stacked, and each coalition is evaluated by rescaling
its members' column blocks of B by ``w_k^S / w_k`` and zeroing the others' in place (equal to
a fresh re-merge up to float rounding). The value of a coalition is the reduction of mean
next-token loss (nats per token) on the validation texts against the base model.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from orchestrator.errors import LearningError
from orchestrator.learning.adapters import read_adapter
from orchestrator.learning.evaluate import _lora_b_modules, loaded, losses_of, perplexity_from


def coalition_values(
    model_spec: str,
    adapter_dirs: Mapping[str, Path],
    samples: Mapping[str, int],
    val_texts: Sequence[str],
    coalitions: Sequence[frozenset[str]],
    *,
    seq_len: int = 64,
    batch_size: int = 8,
) -> tuple[float, dict[frozenset[str], float]]:
    """(base loss, ``v(S) = loss(base) - loss(merge(S))`` per coalition); ``v(empty) = 0``.

    Losses are mean validation NLL in nats per token; the empty coalition is the base model.
    """
    import torch

    from orchestrator.learning.aggregate import merge_adapters

    orgs = sorted(adapter_dirs, key=str.lower)
    if not orgs:
        raise LearningError("coalition_losses needs at least one adapter")
    bad = [o for o in orgs if int(samples.get(o, 0)) <= 0]
    if bad:
        raise LearningError(f"org(s) {bad} have no positive sample count; every adapter needs its num_samples")
    for c in coalitions:
        unknown = set(c) - set(orgs)
        if unknown:
            raise LearningError(f"coalition {sorted(c)} names org(s) {sorted(unknown)} without an adapter")
    total = sum(int(samples[o]) for o in orgs)
    full_w = {o: int(samples[o]) / total for o in orgs}
    ranks = [read_adapter(Path(adapter_dirs[o])).rank for o in orgs]
    out: dict[frozenset[str], float] = {}
    with tempfile.TemporaryDirectory(prefix="ledgerlora-coalitions-") as tmp:
        merged = merge_adapters([Path(adapter_dirs[o]) for o in orgs], [full_w[o] for o in orgs], Path(tmp) / "all")
        with loaded(model_spec, merged) as (model, tok):
            b_weights = _lora_b_modules(model)
            blocks = []
            offset = 0
            for rank in ranks:
                blocks.append((offset, offset + rank))
                offset += rank
            saved = [b.detach().clone() for b in b_weights]
            try:
                for coalition in dict.fromkeys([frozenset(), *coalitions]):
                    in_s = sum(int(samples[o]) for o in coalition)
                    with torch.no_grad():
                        for b, keep in zip(b_weights, saved, strict=True):
                            for org, (lo, hi) in zip(orgs, blocks, strict=True):
                                factor = (int(samples[org]) / in_s) / full_w[org] if org in coalition else 0.0
                                b[:, lo:hi] = keep[:, lo:hi] * factor
                    sums, counts = losses_of(model, tok, val_texts, seq_len=seq_len, batch_size=batch_size)
                    out[coalition] = math.log(perplexity_from(sums, counts))
            finally:
                with torch.no_grad():
                    for b, keep in zip(b_weights, saved, strict=True):
                        b.copy_(keep)
    base = out[frozenset()]
    return base, {c: base - loss for c, loss in out.items()}
