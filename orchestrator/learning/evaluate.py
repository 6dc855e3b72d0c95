"""Evaluation: per-sample losses, perplexity, leave-one-out contribution scores, MIA AUC.

Evaluation dominates CPU time on SmolLM2 (the 49,152-token LM head), so scoring loads the
stacked adapter once and switches each org off by zeroing its columns of B in place, instead of
writing and loading K+1 merged adapters.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestrator.errors import LearningError
from orchestrator.learning.adapters import is_adapter_dir, read_adapter
from orchestrator.learning.models import load_model, model_id
from orchestrator.learning.train import encode


@contextlib.contextmanager
def loaded(model_spec: str, adapter_dir: Path | None) -> Iterator[tuple[Any, Any]]:
    """(model, tokenizer) with ``adapter_dir`` applied, in eval mode; freed on exit."""
    from peft import PeftModel

    model, tokenizer = load_model(model_spec)
    if adapter_dir is not None:
        adapter_dir = Path(adapter_dir)
        if not is_adapter_dir(adapter_dir):
            raise LearningError(f"{adapter_dir} is not a LoRA adapter folder")
        base = read_adapter(adapter_dir).base_model
        if base and base != model_id(model_spec):
            raise LearningError(
                f"adapter {adapter_dir} belongs to base model {base!r}, not {model_id(model_spec)!r}"
            )
        model = PeftModel.from_pretrained(model, str(adapter_dir))
    model.eval()
    try:
        yield model, tokenizer
    finally:
        del model


def losses_of(
    model: Any, tokenizer: Any, texts: Sequence[str], *, seq_len: int, batch_size: int
) -> tuple[list[float], list[int]]:
    """Per text: (sum of next-token NLL, number of predicted tokens).  Too-short texts get (nan, 0)."""
    import torch
    import torch.nn.functional as F

    if batch_size < 1:
        raise LearningError(f"batch_size must be >= 1; got {batch_size}")
    data = encode(tokenizer, texts, seq_len, what="evaluation texts")
    device = next(model.parameters()).device
    sums = [math.nan] * len(texts)
    counts = [0] * len(texts)
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            ids = data.input_ids[start : start + batch_size].to(device)
            mask = data.attention_mask[start : start + batch_size].to(device)
            labels = data.labels[start : start + batch_size].to(device)
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            target = labels[:, 1:]
            nll = F.cross_entropy(logits.transpose(1, 2), target, ignore_index=-100, reduction="none")
            valid = target != -100
            for row in range(ids.shape[0]):
                original = data.kept[start + row]
                sums[original] = float(nll[row][valid[row]].sum())
                counts[original] = int(valid[row].sum())
    return sums, counts


def perplexity_from(sums: Sequence[float], counts: Sequence[int]) -> float:
    total = sum(c for c in counts)
    if total == 0:
        raise LearningError("no tokens to evaluate on")
    return math.exp(sum(s for s, c in zip(sums, counts, strict=True) if c) / total)


def mean_losses(sums: Sequence[float], counts: Sequence[int]) -> list[float]:
    """Mean NLL per text (the membership-inference score); nan for too-short texts."""
    return [s / c if c else math.nan for s, c in zip(sums, counts, strict=True)]


def evaluate_perplexity(
    model_spec: str,
    adapter_dir: Path | None,
    texts: Sequence[str],
    *,
    seq_len: int = 64,
    batch_size: int = 8,
) -> float:
    """Token-level perplexity of base (+ adapter) on ``texts``, each truncated to ``seq_len``."""
    with loaded(model_spec, adapter_dir) as (model, tok):
        return perplexity_from(*losses_of(model, tok, texts, seq_len=seq_len, batch_size=batch_size))


def sample_losses(
    model_spec: str,
    adapter_dir: Path | None,
    texts: Sequence[str],
    *,
    seq_len: int = 64,
    batch_size: int = 8,
) -> list[float]:
    """Mean next-token NLL of each text (for membership inference and canaries)."""
    with loaded(model_spec, adapter_dir) as (model, tok):
        return mean_losses(*losses_of(model, tok, texts, seq_len=seq_len, batch_size=batch_size))


def mia_auc(member_losses: Sequence[float], nonmember_losses: Sequence[float]) -> float:
    """AUC of the loss-threshold membership-inference attack (lower loss => "member").

    The Mann-Whitney statistic: P(loss(member) < loss(non-member)) + 0.5 P(tie).  0.5 means the
    attacker cannot tell members from held-out texts, i.e. nothing to forget shows.
    """
    members = [x for x in member_losses if not math.isnan(x)]
    others = [x for x in nonmember_losses if not math.isnan(x)]
    if not members or not others:
        raise LearningError(
            f"membership inference needs member and non-member losses; got {len(members)} and {len(others)}"
        )
    wins = 0.0
    for m in members:
        for o in others:
            wins += 1.0 if m < o else 0.5 if m == o else 0.0
    return wins / (len(members) * len(others))


def _lora_b_modules(model: Any) -> list[Any]:
    return [
        module.lora_B["default"].weight
        for _, module in sorted(model.named_modules(), key=lambda kv: kv[0])
        if hasattr(module, "lora_B") and "default" in getattr(module, "lora_B", {})
    ]


def score_contributions(
    model_spec: str,
    adapter_dirs: Mapping[str, Path],
    weights: Mapping[str, float],
    val_texts: Sequence[str],
    *,
    seq_len: int = 64,
    batch_size: int = 8,
) -> dict[str, float]:
    """Leave-one-out marginal effect of each org on validation loss (positive = helpful).

    score_k = loss(stack without k's term) - loss(stack of all), in nats per token.  The other
    orgs' weights are NOT renormalised: the score isolates k's own term ``w_k B_k A_k``.
    """
    import tempfile

    import torch

    from orchestrator.learning.aggregate import merge_adapters

    orgs = sorted(adapter_dirs)
    if not orgs:
        raise LearningError("score_contributions needs at least one adapter")
    missing = [o for o in orgs if o not in weights]
    if missing:
        raise LearningError(f"no weight given for org(s) {missing}")
    ranks = [read_adapter(Path(adapter_dirs[o])).rank for o in orgs]
    with tempfile.TemporaryDirectory(prefix="ledgerlora-score-") as tmp:
        merged = merge_adapters(
            [Path(adapter_dirs[o]) for o in orgs], [weights[o] for o in orgs], Path(tmp) / "all"
        )
        with loaded(model_spec, merged) as (model, tok):

            def loss() -> float:
                sums, counts = losses_of(model, tok, val_texts, seq_len=seq_len, batch_size=batch_size)
                return math.log(perplexity_from(sums, counts))

            full = loss()
            b_weights = _lora_b_modules(model)
            scores: dict[str, float] = {}
            offset = 0
            for org, rank in zip(orgs, ranks, strict=True):
                saved = [b[:, offset : offset + rank].clone() for b in b_weights]
                with torch.no_grad():
                    for b in b_weights:
                        b[:, offset : offset + rank] = 0
                scores[org] = loss() - full
                with torch.no_grad():
                    for b, keep in zip(b_weights, saved, strict=True):
                        b[:, offset : offset + rank] = keep
                offset += rank
    return scores
