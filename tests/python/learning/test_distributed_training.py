"""The training step on two processes (torchrun, CPU gloo backend) against the one-process run.

Data-parallel training splits each batch's loss sum across ranks, so float32 rounding differs
in the last bits: the two-process adapter is compared within a tight tolerance, not for bit
identity (orchestrator/learning/distributed.py explains why); its format, keys, shapes, LoRA
config and metadata must be exactly those of the one-process adapter.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.learning.adapters import read_adapter
from orchestrator.learning.config import TrainConfig
from orchestrator.learning.data import load_org_data
from orchestrator.learning.train import train_adapter

pytestmark = pytest.mark.slow


def test_two_gloo_processes_train_the_same_adapter_as_one(tmp_path: Path, monkeypatch) -> None:
    """ORCH_TRAIN_NPROC=2 makes train_adapter (what the trainer daemon calls) run under torchrun."""
    import torch

    texts = load_org_data("business", max_train=8).train
    cfg = TrainConfig(steps=2, batch_size=4, seq_len=32)
    single = train_adapter("tiny", texts, cfg, tmp_path / "one", progress=False)
    monkeypatch.setenv("ORCH_TRAIN_NPROC", "2")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    double = train_adapter("tiny", texts, cfg, tmp_path / "two", progress=False)
    assert double.adapter_dir == tmp_path / "two" and double.num_samples == single.num_samples
    assert double.tokens == single.tokens  # the two ranks together saw exactly the one-process batches

    one, two = read_adapter(single.adapter_dir), read_adapter(double.adapter_dir)
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
    assert two.config == one.config
    assert {k: v for k, v in two.meta.items() if k != "final_loss"} == {
        k: v for k, v in one.meta.items() if k != "final_loss"}
    assert set(two.tensors) == set(one.tensors)
    moved = False
    for key, t1 in one.tensors.items():
        t2 = two.tensors[key]
        assert t2.shape == t1.shape and t2.dtype == t1.dtype
        torch.testing.assert_close(t2, t1, rtol=1e-4, atol=1e-6)
        moved = moved or ".lora_B." in key and bool(t1.abs().sum() > 0)
    assert moved  # the steps changed B (initialised to zero), so the comparison is not vacuous
    assert double.losses == pytest.approx(single.losses, rel=1e-5)
    assert json.loads(cfg.to_json()) == one.meta["config"]


def test_a_bad_process_count_is_refused_with_its_value(monkeypatch) -> None:
    from orchestrator.errors import LearningError
    from orchestrator.learning.distributed import requested_processes

    monkeypatch.setenv("ORCH_TRAIN_NPROC", "two")
    with pytest.raises(LearningError, match="'two'"):
        requested_processes()
    monkeypatch.setenv("ORCH_TRAIN_NPROC", "0")
    with pytest.raises(LearningError, match="at least 1"):
        requested_processes()
