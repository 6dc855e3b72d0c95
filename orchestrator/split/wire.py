"""Tensor (de)serialisation for what crosses the split boundary.

safetensors rather than pickle: a malicious peer's bytes can only ever become tensors plus a
string-to-string metadata map, never code. Validation of names, dtypes and shapes happens here
so that the server rejects a bad message before it touches its model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from orchestrator.split.errors import SplitShapeError


def pack(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str] | None = None) -> bytes:
    """Serialise named tensors (made contiguous, moved to CPU) into safetensors bytes."""
    clean = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    return st_save(clean, metadata=dict(meta) if meta else None)


def unpack(raw: bytes) -> dict[str, torch.Tensor]:
    """Inverse of :func:`pack`; bytes that are not safetensors raise :class:`SplitShapeError`."""
    try:
        return st_load(raw)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise SplitShapeError(
            f"payload is not a safetensors blob ({len(raw)} bytes): {exc}"
        ) from exc


def expect(
    tensors: Mapping[str, torch.Tensor],
    name: str,
    *,
    ndim: int,
    dtypes: Sequence[torch.dtype],
    shape: Sequence[int | None] | None = None,
) -> torch.Tensor:
    """Fetch ``tensors[name]`` and check rank, dtype and (``None`` = any) sizes."""
    if name not in tensors:
        raise SplitShapeError(f"message lacks tensor {name!r} (has {sorted(tensors)})")
    t = tensors[name]
    if t.dim() != ndim:
        raise SplitShapeError(f"tensor {name!r} has shape {tuple(t.shape)}, expected {ndim} dims")
    if t.dtype not in dtypes:
        raise SplitShapeError(
            f"tensor {name!r} has dtype {t.dtype}, expected one of {list(dtypes)}"
        )
    if shape is not None:
        for i, (got, want) in enumerate(zip(t.shape, shape, strict=True)):
            if want is not None and got != want:
                raise SplitShapeError(
                    f"tensor {name!r} has shape {tuple(t.shape)}; dim {i} must be {want}"
                )
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise SplitShapeError(f"tensor {name!r} contains NaN or inf")
    return t
