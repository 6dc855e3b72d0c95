"""Merging LoRA adapters behind one small interface (Flower's ``aggregate.py`` style).

The maths are pure functions on :class:`Adapter` objects (tensors in memory, no files), so they
are testable without a model.  :func:`merge_adapters` is the file-level entry point.

- ``stack`` (exact): the merged update of every module is ``sum_k w_k s_k B_k A_k`` where
  ``s_k = alpha_k / r_k`` is peft's scaling.  It is represented as ONE adapter of rank
  ``R = sum_k r_k``: ``A = [A_1; ...; A_K]`` (rows), ``B = [w_1 s_1 B_1, ..., w_K s_K B_K]``
  (columns), ``lora_alpha = R`` so peft's own scaling is 1.  No averaging error at all, and
  ranks may differ between orgs.
- ``fedavg``: weighted mean of A and of B separately (needs equal rank and scaling).  Cheap,
  keeps rank r, but ``mean(B) mean(A) != mean(B A)``: the comparison point, and the merge
  collaborative mode continues from.
- ``median`` / ``trimmed_mean``: robust statistics on the update itself.  A and B are defined
  only up to a change of basis (``B A = (B M)(M^-1 A)``), so a statistic over the factors is
  meaningless; these act coordinate-wise on every org's dense update ``s_k B_k A_k`` of each
  module (float64), and the result is stored back as an adapter by a truncated SVD (rank
  ``sum_k r_k`` by default, scaling 1).  ``trimmed_mean`` trims ``max(1, floor(trim K))``
  values per side whenever K >= 3.  Weights are ignored (a robust statistic must not let one org
  buy influence).  :func:`outlier_report` flags the org whose update is out of line (norm or
  direction); the merged adapter's ``ledgerlora.json`` carries the report.

Weights are relative: they are normalised to sum to 1, so callers can pass sample counts.
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator.errors import LearningError
from orchestrator.learning.adapters import Adapter, read_adapter, write_adapter

METHODS = ("stack", "fedavg", "median", "trimmed_mean", "clipped_mean")
ROBUST = ("median", "trimmed_mean", "clipped_mean")
NORM_OUTLIER = 3.0  # flagged when the update's norm exceeds this multiple of the median norm
DIRECTION_SHARE = 0.25  # ... or its mean cosine is below this share of the others' agreement


def clip_weights(weights: Sequence[float], cap: float) -> list[float]:
    """Clip self-reported sample counts at the round's cap (Protocol v2 sets it at openRound),
    so one org cannot buy the whole merge weight by reporting 2**64 - 1 samples."""
    if not (math.isfinite(cap) and cap > 0):
        raise LearningError(f"the sample-count cap must be a finite number > 0; got {cap!r}")
    return [min(float(w), float(cap)) for w in weights]


def normalise_weights(weights: Sequence[float], names: Sequence[str]) -> list[float]:
    if len(weights) != len(names):
        raise LearningError(f"got {len(weights)} weights for {len(names)} adapters; give one weight per adapter")
    for name, w in zip(names, weights, strict=True):
        if not (isinstance(w, int | float) and math.isfinite(w) and w >= 0):
            raise LearningError(f"weight of adapter {name} must be a finite number >= 0; got {w!r}")
    total = float(sum(weights))
    if total <= 0:
        raise LearningError(f"adapter weights must not all be zero; got {list(weights)}")
    return [float(w) / total for w in weights]


def check_compatible(adapters: Sequence[Adapter], *, same_rank: bool) -> None:
    """Same base model, same targets, same module set (and same rank/scaling if asked)."""
    if not adapters:
        raise LearningError("no adapters to merge; give at least one adapter folder")
    ref = adapters[0]
    ref_pairs = ref.pairs()
    for other in adapters[1:]:
        if other.base_model != ref.base_model:
            raise LearningError(
                f"adapter {other.name} was trained on base model {other.base_model!r} but "
                f"{ref.name} on {ref.base_model!r}; merge only adapters of one base model"
            )
        if other.targets != ref.targets or set(other.pairs()) != set(ref_pairs):
            raise LearningError(
                f"adapter {other.name} targets {list(other.targets)} but {ref.name} targets "
                f"{list(ref.targets)}; all orgs must train the same target modules"
            )
        if same_rank and (other.rank != ref.rank or other.scaling != ref.scaling):
            raise LearningError(
                f"adapter {other.name} has rank {other.rank} (alpha {other.alpha}) but {ref.name} has "
                f"rank {ref.rank} (alpha {ref.alpha}); this method needs equal ranks; use method='stack'"
            )
    for adapter in adapters:
        for prefix, (a_key, b_key) in adapter.pairs().items():
            a, b = adapter.tensors[a_key], adapter.tensors[b_key]
            if a.shape[0] != b.shape[1] or a.shape[0] != adapter.rank:
                raise LearningError(
                    f"adapter {adapter.name}: module {prefix} has A {tuple(a.shape)} and B "
                    f"{tuple(b.shape)}, inconsistent with rank {adapter.rank}"
                )


def _merged_config(ref: Adapter, rank: int, alpha: float) -> dict[str, Any]:
    config = copy.deepcopy(ref.config)
    config.update(r=rank, lora_alpha=alpha, rank_pattern={}, alpha_pattern={}, use_rslora=False)
    return config


def _merged_meta(adapters: Sequence[Adapter], weights: Sequence[float], method: str) -> dict[str, Any]:
    from orchestrator.learning.adapters import tensors_sha256

    return {
        "base_model": adapters[0].base_model,
        "num_samples": sum(a.num_samples for a in adapters),
        "merge": {
            "method": method,
            "weights": list(weights),
            "parts": [tensors_sha256(a.tensors) for a in adapters],
            "ranks": [a.rank for a in adapters],
        },
    }


class Aggregator(ABC):
    """Turns K compatible adapters and their (normalised) weights into one adapter."""

    name: str = ""
    needs_same_rank: bool = True

    def __call__(self, adapters: Sequence[Adapter], weights: Sequence[float]) -> Adapter:
        check_compatible(adapters, same_rank=self.needs_same_rank)
        norm = normalise_weights(weights, [a.name for a in adapters])
        merged = self.aggregate(adapters, norm)
        extra = merged.meta  # what the method itself records (e.g. the SVD residual)
        merged.meta = _merged_meta(adapters, norm, self.name)
        merged.meta["merge"].update(extra)
        return merged

    @abstractmethod
    def aggregate(self, adapters: Sequence[Adapter], weights: Sequence[float]) -> Adapter:
        """The maths; inputs are already checked and weights sum to 1."""


class StackAggregator(Aggregator):
    name = "stack"
    needs_same_rank = False

    def aggregate(self, adapters: Sequence[Adapter], weights: Sequence[float]) -> Adapter:
        import torch

        total_rank = sum(a.rank for a in adapters)
        ref = adapters[0]
        tensors: dict[str, torch.Tensor] = {}
        for prefix, (a_key, b_key) in ref.pairs().items():
            a_parts, b_parts = [], []
            for adapter, w in zip(adapters, weights, strict=True):
                ak, bk = adapter.pairs()[prefix]
                a_parts.append(adapter.tensors[ak].float())
                b_parts.append(adapter.tensors[bk].float() * (w * adapter.scaling))
            tensors[a_key] = torch.cat(a_parts, dim=0)
            tensors[b_key] = torch.cat(b_parts, dim=1)
        # lora_alpha == r  ->  peft scaling 1: the per-org scaling already sits in B.
        return Adapter(None, _merged_config(ref, total_rank, float(total_rank)), tensors)


class _CoordinateAggregator(Aggregator):
    """Applies one reduction coordinate-wise to the stacked A's and to the stacked B's."""

    def aggregate(self, adapters: Sequence[Adapter], weights: Sequence[float]) -> Adapter:
        import torch

        ref = adapters[0]
        tensors: dict[str, torch.Tensor] = {}
        for key in ref.tensors:
            stacked = torch.stack([a.tensors[key].float() for a in adapters], dim=0)
            tensors[key] = self.reduce(stacked, weights)
        return Adapter(None, _merged_config(ref, ref.rank, ref.alpha), tensors)

    @abstractmethod
    def reduce(self, stacked: Any, weights: Sequence[float]) -> Any:
        """Reduce over dim 0."""


class FedAvgAggregator(_CoordinateAggregator):
    name = "fedavg"

    def reduce(self, stacked: Any, weights: Sequence[float]) -> Any:
        import torch

        w = torch.tensor(weights, dtype=stacked.dtype).view(-1, *([1] * (stacked.dim() - 1)))
        return (stacked * w).sum(dim=0)


class _DenseRobustAggregator(Aggregator):
    """A robust statistic over the orgs' dense updates per module, stored as a rank-R SVD adapter."""

    needs_same_rank = False

    def __init__(self, rank: int | None = None) -> None:
        if rank is not None and rank < 1:
            raise LearningError(f"rank of the robust merge must be >= 1; got {rank}")
        self.rank = rank

    def __call__(self, adapters: Sequence[Adapter], weights: Sequence[float]) -> Adapter:
        merged = super().__call__(adapters, weights)
        merged.meta["merge"]["outliers"] = outlier_report(adapters, merged)
        return merged

    def aggregate(self, adapters: Sequence[Adapter], weights: Sequence[float]) -> Adapter:
        import torch

        ref = adapters[0]
        pairs = ref.pairs()
        dense = {p: torch.stack([_delta(a, p) for a in adapters]) for p in pairs}
        rank = self.rank or sum(a.rank for a in adapters)
        rank = min([rank, *(min(d.shape[1:]) for d in dense.values())])
        tensors: dict[str, torch.Tensor] = {}
        residual = 0.0
        total = 0.0
        for prefix, (a_key, b_key) in pairs.items():
            robust = self.reduce(dense[prefix])
            u, sv, vh = torch.linalg.svd(robust, full_matrices=False)
            tensors[b_key] = (u[:, :rank] * sv[:rank]).float().contiguous()
            tensors[a_key] = vh[:rank].float().contiguous()
            residual += float((sv[rank:] ** 2).sum())
            total += float((sv**2).sum())
        merged = Adapter(None, _merged_config(ref, rank, float(rank)), tensors)
        merged.meta = {"svd_relative_residual": math.sqrt(residual / total) if total > 0 else 0.0}
        return merged

    @abstractmethod
    def reduce(self, stacked: Any) -> Any:
        """Reduce K dense updates (K x out x in, float64) coordinate-wise over dim 0."""


def _delta(adapter: Adapter, prefix: str) -> Any:
    a_key, b_key = adapter.pairs()[prefix]
    return adapter.scaling * (adapter.tensors[b_key].double() @ adapter.tensors[a_key].double())


class MedianAggregator(_DenseRobustAggregator):
    name = "median"

    def reduce(self, stacked: Any) -> Any:
        ordered = stacked.sort(dim=0).values
        k = ordered.shape[0]
        if k % 2:
            return ordered[k // 2].clone()
        return (ordered[k // 2 - 1] + ordered[k // 2]) / 2


class TrimmedMeanAggregator(_DenseRobustAggregator):
    name = "trimmed_mean"

    def __init__(self, trim: float = 0.2, rank: int | None = None) -> None:
        super().__init__(rank)
        if not 0 <= trim < 0.5:
            raise LearningError(f"trim fraction must be in [0, 0.5); got {trim}")
        self.trim = trim

    def cut(self, k: int) -> int:
        """Values trimmed per side: at least one whenever K >= 3 (trim=0.2 of K=3 is 0.6)."""
        cut = int(math.floor(self.trim * k))
        return max(cut, 1) if k >= 3 else cut

    def reduce(self, stacked: Any) -> Any:
        k = stacked.shape[0]
        cut = self.cut(k)
        ordered = stacked.sort(dim=0).values
        return ordered[cut : k - cut].mean(dim=0)


class ClippedMeanAggregator(_DenseRobustAggregator):
    """Norm-bounded mean: every org's whole update is scaled down to at most the median norm,
    adapters flagged by :func:`outlier_report` are left out, the rest averaged (one org, one
    vote).  A missed attacker moves the merge by at most one median-norm update / K."""

    name = "clipped_mean"

    def aggregate(self, adapters: Sequence[Adapter], weights: Sequence[float]) -> Adapter:
        report = outlier_report(adapters)
        flagged = set(report["flagged"])
        self._factors = [
            0.0 if i in flagged else min(1.0, report["median_norm"] / n) if n > 0 else 0.0
            for i, n in enumerate(report["norm"])
        ]
        if not any(self._factors):
            raise LearningError("every adapter was flagged as an outlier; nothing left to merge")
        merged = super().aggregate(adapters, weights)
        merged.meta["clip_factors"] = list(self._factors)
        return merged

    def reduce(self, stacked: Any) -> Any:
        import torch

        f = torch.tensor(self._factors, dtype=stacked.dtype).view(-1, *([1] * (stacked.dim() - 1)))
        return (stacked * f).sum(dim=0) / sum(1 for x in self._factors if x > 0)


def outlier_report(adapters: Sequence[Adapter], merged: Adapter | None = None) -> dict[str, Any]:
    """Which input looks poisoned, from the geometry of the dense updates (input order).

    Per adapter: the norm of its whole update and ``mean_cosine``, its mean cosine with the
    others.  Honest orgs fine-tuning one base on related text share a small common direction
    (mean cosines of a few hundredths on the tiny model), so the others' agreement is positive.
    Flagged: a norm above NORM_OUTLIER x the median norm (a scaled update), and the least
    aligned adapter when its mean cosine is below DIRECTION_SHARE x the others' agreement among
    themselves (a sign-flipped or random update points against or across the common
    direction).  A flag is a finding for review: the robust merge already limits its effect.
    """
    import torch

    pairs = adapters[0].pairs()
    flat = [torch.cat([_delta(a, p).flatten() for p in pairs]) for a in adapters]
    norms = [float(f.norm()) for f in flat]
    k = len(flat)
    cos = [[float(flat[i] @ flat[j]) / ((norms[i] * norms[j]) or 1.0) for j in range(k)] for i in range(k)]

    def mean_cos(i: int, without: int | None = None) -> float:
        others = [j for j in range(k) if j not in (i, without)]
        return sum(cos[i][j] for j in others) / len(others) if others else 0.0

    mean = [mean_cos(i) for i in range(k)]
    ordered = sorted(norms)
    median_norm = ordered[k // 2] if k % 2 else (ordered[k // 2 - 1] + ordered[k // 2]) / 2
    flagged = [i for i in range(k) if k >= 3 and norms[i] > NORM_OUTLIER * median_norm]
    agreement = 0.0
    if k >= 3:
        worst = min(range(k), key=lambda i: (mean[i], i))
        others = sorted(mean_cos(j, without=worst) for j in range(k) if j != worst)
        agreement = others[len(others) // 2]
        if agreement > 0 and mean[worst] < DIRECTION_SHARE * agreement and worst not in flagged:
            flagged.append(worst)
    return {
        "norm": norms,
        "mean_cosine": mean,
        "median_norm": median_norm,
        "others_agreement": agreement,
        "flagged": sorted(flagged),
    }


def get_aggregator(method: str, **options: Any) -> Aggregator:
    if method == "stack":
        return StackAggregator()
    if method == "fedavg":
        return FedAvgAggregator()
    if method == "median":
        return MedianAggregator(**options)
    if method == "trimmed_mean":
        return TrimmedMeanAggregator(**options)
    if method == "clipped_mean":
        return ClippedMeanAggregator(**options)
    raise LearningError(f"unknown merge method {method!r}; choose one of {', '.join(METHODS)}")


def merge_adapters(
    adapter_dirs: Sequence[Path],
    weights: Sequence[float],
    out_dir: Path,
    *,
    method: str = "stack",
    max_samples: float | None = None,
    **options: Any,
) -> Path:
    """Merge adapter folders into one loadable peft adapter folder at ``out_dir``.

    ``max_samples`` clips each weight (a self-reported sample count) at the round's cap first.

    Pass ``adapter_dirs`` in a canonical order (the daemons sort by org address) so the merged
    file hashes are reproducible; ``stack`` gives the same model in any order, up to float
    rounding.
    """
    aggregator = get_aggregator(method, **options)
    adapters = [read_adapter(Path(p)) for p in adapter_dirs]
    weights = clip_weights(weights, max_samples) if max_samples is not None else list(weights)
    merged = aggregator(adapters, weights)
    return write_adapter(merged, Path(out_dir))


def delta_weights(adapter: Adapter) -> dict[str, Any]:
    """Module prefix -> the dense update ``scaling * B @ A`` (for tests and verification)."""
    out = {}
    for prefix, (a_key, b_key) in adapter.pairs().items():
        out[prefix] = adapter.scaling * (adapter.tensors[b_key].double() @ adapter.tensors[a_key].double())
    return out
