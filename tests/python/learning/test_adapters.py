"""Provenance of adapters: stock tools resolve the base they name, offline."""

from __future__ import annotations

import json

import torch

from orchestrator.learning.aggregate import merge_adapters
from orchestrator.learning.config import TrainConfig
from orchestrator.learning.evaluate import loaded
from orchestrator.learning.models import resolve_model
from orchestrator.learning.train import train_adapter


def test_auto_peft_loads_trained_and_merged_adapters_offline(tiny, orgs, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from peft import AutoPeftModelForCausalLM

    cfg = TrainConfig(steps=3, lr=1e-2, seq_len=32)
    a = train_adapter(tiny, orgs["sport"].train, cfg.for_org("sport"), tmp_path / "a", progress=False).adapter_dir
    b = train_adapter(tiny, orgs["politics"].train, cfg.for_org("politics"), tmp_path / "b", progress=False).adapter_dir
    merged = merge_adapters([a, b], [1, 1], tmp_path / "m")
    name = json.loads((merged / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert name == f"ledgerlora/{resolve_model(tiny).name}"  # an id, not this machine's folder
    ids = torch.tensor([[5, 17, 42, 99, 7, 300]])
    for adapter in (a, merged):
        stock = AutoPeftModelForCausalLM.from_pretrained(str(adapter))
        stock.eval()
        with torch.no_grad(), loaded(tiny, adapter) as (ours, _):
            assert torch.allclose(stock(input_ids=ids).logits, ours(input_ids=ids).logits, atol=1e-5)


def test_training_records_device_dtype_and_determinism(tiny, orgs, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from orchestrator.learning.adapters import read_adapter

    cfg = TrainConfig(steps=2, lr=1e-2, seq_len=32)
    meta = read_adapter(train_adapter(tiny, orgs["sport"].train, cfg, tmp_path / "a", progress=False).adapter_dir).meta
    expected_device = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert meta["device"] == expected_device
    assert meta["dtype"] == ("bfloat16" if torch.cuda.is_available() else "float32")
    assert set(meta["determinism"]) >= {"deterministic_algorithms", "cudnn_deterministic", "cudnn_benchmark"}


def test_cuda_training_is_bit_identical_across_two_runs(tiny, orgs, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from orchestrator.learning.adapters import adapter_sha256, read_adapter

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (none on this machine): CUDA determinism not checked here")
    cfg = TrainConfig(steps=4, lr=1e-2, seq_len=32)
    a = train_adapter(tiny, orgs["sport"].train, cfg, tmp_path / "a", progress=False).adapter_dir
    b = train_adapter(tiny, orgs["sport"].train, cfg, tmp_path / "b", progress=False).adapter_dir
    assert read_adapter(a).meta["determinism"]["deterministic_algorithms"] is True
    assert adapter_sha256(a) == adapter_sha256(b)
