from __future__ import annotations

import json

import pytest

from orchestrator.learning.config import TrainConfig


@pytest.mark.parametrize(
    ("field", "value"),
    [("rank", 0), ("alpha", -1.0), ("steps", 0), ("batch_size", 0), ("seq_len", 1), ("lr", float("nan")),
     ("seed", -1), ("dropout", 1.0), ("target_modules", ())],
)
def test_invalid_field_is_rejected_naming_field_and_value(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"TrainConfig.{field} is invalid"):
        TrainConfig(**{field: value})  # type: ignore[arg-type]


def test_json_round_trip_is_canonical_and_lossless() -> None:
    cfg = TrainConfig(rank=4, alpha=8, target_modules=("v_proj", "q_proj"), steps=3, seed=9)
    text = cfg.to_json()
    assert TrainConfig.from_json(text) == cfg
    assert json.loads(text)["target_modules"] == ["v_proj", "q_proj"]
    assert text == TrainConfig.from_dict(json.loads(text)).to_json()


def test_unknown_key_is_rejected() -> None:
    with pytest.raises(ValueError, match="no field"):
        TrainConfig.from_dict({"rank": 8, "ranks": 9})


def test_round_seed_depends_only_on_round_index() -> None:
    cfg = TrainConfig(seed=5)
    assert cfg.for_round(0) == cfg
    assert cfg.for_round(2).seed == 2005
    assert cfg.for_round(2).steps == cfg.steps
