from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import LearningError
from orchestrator.learning.models import TinySpec, _build_tiny, load_model, resolve_model


def test_tiny_model_built_twice_is_identical(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    spec = TinySpec(warmup_steps=20, public_articles_per_topic=10)  # small: the check, not the model
    _build_tiny(tmp_path / "a", spec)
    _build_tiny(tmp_path / "b", spec)
    wa, wb = load_file(str(tmp_path / "a" / "model.safetensors")), load_file(str(tmp_path / "b" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    assert all(wa[k].equal(wb[k]) for k in wa)
    assert (tmp_path / "a" / "tokenizer.json").read_bytes() == (tmp_path / "b" / "tokenizer.json").read_bytes()


def test_tiny_is_cached_and_copies_are_independent(tiny: str) -> None:
    import torch

    assert resolve_model(tiny) == resolve_model(tiny)
    m1, tok = load_model(tiny)
    m2, _ = load_model(tiny)
    with torch.no_grad():
        next(m1.parameters()).add_(1.0)
    assert not next(m1.parameters()).equal(next(m2.parameters()))
    assert len(tok) <= 1024 and tok.pad_token is not None


def test_unknown_model_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LearningError, match="unknown model '/no/such/model'"):
        resolve_model("/no/such/model")
    with pytest.raises(LearningError, match="has no config.json"):
        resolve_model(str(tmp_path))


def test_local_folder_spec_loads_like_its_alias(tiny: str) -> None:
    import torch

    folder = resolve_model(tiny)
    by_path, _ = load_model(str(folder))
    by_name, _ = load_model(tiny)
    assert all(a.equal(b) for a, b in zip(by_path.state_dict().values(), by_name.state_dict().values()))
    assert isinstance(next(by_path.parameters()), torch.Tensor)
