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
- ``median`` / ``trimmed_mean``: coordinate-wise over A and over B, robust to one poisoned
  adapter; weights are ignored (a robust statistic must not let one org buy influence).

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

METHODS = ("stack", "fedavg", "median", "trimmed_mean")


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
        merged.meta = _merged_meta(adapters, norm, self.name)
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


class MedianAggregator(_CoordinateAggregator):
    name = "median"

    def reduce(self, stacked: Any, weights: Sequence[float]) -> Any:
        ordered = stacked.sort(dim=0).values
        k = ordered.shape[0]
        if k % 2:
            return ordered[k // 2].clone()
        return (ordered[k // 2 - 1] + ordered[k // 2]) / 2


class TrimmedMeanAggregator(_CoordinateAggregator):
    name = "trimmed_mean"

    def __init__(self, trim: float = 0.2) -> None:
        if not 0 <= trim < 0.5:
            raise LearningError(f"trim fraction must be in [0, 0.5); got {trim}")
        self.trim = trim

    def reduce(self, stacked: Any, weights: Sequence[float]) -> Any:
        k = stacked.shape[0]
        cut = int(math.floor(self.trim * k))
        ordered = stacked.sort(dim=0).values
        return ordered[cut : k - cut].mean(dim=0)


def get_aggregator(method: str, **options: Any) -> Aggregator:
    if method == "stack":
        return StackAggregator()
    if method == "fedavg":
        return FedAvgAggregator()
    if method == "median":
        return MedianAggregator()
    if method == "trimmed_mean":
        return TrimmedMeanAggregator(**options)
    raise LearningError(f"unknown merge method {method!r}; choose one of {', '.join(METHODS)}")


def merge_adapters(
    adapter_dirs: Sequence[Path],
    weights: Sequence[float],
    out_dir: Path,
    *,
    method: str = "stack",
    **options: Any,
) -> Path:
    """Merge adapter folders into one loadable peft adapter folder at ``out_dir``.

    Pass ``adapter_dirs`` in a canonical order (the daemons sort by org address) so the merged
    file hashes are reproducible; ``stack`` gives the same model in any order, up to float
    rounding.
    """
    aggregator = get_aggregator(method, **options)
    adapters = [read_adapter(Path(p)) for p in adapter_dirs]
    merged = aggregator(adapters, list(weights))
    return write_adapter(merged, Path(out_dir))


def delta_weights(adapter: Adapter) -> dict[str, Any]:
    """Module prefix -> the dense update ``scaling * B @ A`` (for tests and verification)."""
    out = {}
    for prefix, (a_key, b_key) in adapter.pairs().items():
        out[prefix] = adapter.scaling * (adapter.tensors[b_key].double() @ adapter.tensors[a_key].double())
    return out
