from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from orchestrator.errors import LearningError
from orchestrator.learning.adapters import adapter_sha256, read_adapter
from orchestrator.learning.config import TrainConfig
from orchestrator.learning.data import OrgData
from orchestrator.learning.evaluate import evaluate_perplexity
from orchestrator.learning.train import train_adapter


def test_same_seed_and_data_give_a_bit_identical_adapter(tiny, cfg, orgs, out) -> None:  # type: ignore[no-untyped-def]
    texts = orgs["sport"].train
    a = train_adapter(tiny, texts, cfg, out / "a", progress=False)
    b = train_adapter(tiny, texts, cfg, out / "b", progress=False)
    assert (out / "a" / "adapter_model.safetensors").read_bytes() == (out / "b" / "adapter_model.safetensors").read_bytes()
    assert a.losses == b.losses
    c = train_adapter(tiny, texts, TrainConfig(**{**cfg.to_dict(), "seed": cfg.seed + 1}), out / "c", progress=False)
    assert adapter_sha256(c.adapter_dir) != adapter_sha256(a.adapter_dir)


def test_training_lowers_the_loss_on_the_org_data(tiny, cfg, orgs, out) -> None:  # type: ignore[no-untyped-def]
    texts = orgs["sport"].train
    res = train_adapter(tiny, texts, cfg, out / "a", progress=False)
    base = evaluate_perplexity(tiny, None, texts, seq_len=cfg.seq_len)
    tuned = evaluate_perplexity(tiny, res.adapter_dir, texts, seq_len=cfg.seq_len)
    assert tuned < 0.9 * base
    assert res.tokens > 0 and res.num_samples == len(texts)


def test_adapter_loads_with_peft_from_pretrained(tiny, cfg, orgs, out) -> None:  # type: ignore[no-untyped-def]
    from peft import PeftModel

    from orchestrator.learning.models import load_model

    res = train_adapter(tiny, orgs["sport"].train, cfg, out / "a", progress=False)
    model, _ = load_model(tiny)
    peft_model = PeftModel.from_pretrained(model, str(res.adapter_dir))
    saved = read_adapter(res.adapter_dir).tensors
    loaded = {k: v for k, v in peft_model.state_dict().items() if "lora_" in k}
    assert len(loaded) == len(saved)
    for key, tensor in saved.items():
        match = [v for k, v in loaded.items() if k.replace(".default", "") == key]
        assert match and match[0].equal(tensor)
    meta = json.loads((res.adapter_dir / "ledgerlora.json").read_text())
    assert meta["num_samples"] == len(orgs["sport"].train) and meta["config"] == cfg.to_dict()


def test_init_adapter_continues_from_the_given_adapter(tiny, cfg, orgs, out) -> None:  # type: ignore[no-untyped-def]
    first = train_adapter(tiny, orgs["sport"].train, cfg, out / "r0", progress=False)
    cont = train_adapter(tiny, orgs["sport"].train, cfg, out / "r1", init_adapter=first.adapter_dir, progress=False)
    fresh = train_adapter(tiny, orgs["sport"].train, cfg, out / "fresh", progress=False)
    assert cont.losses[0] < fresh.losses[0]  # starts where round 0 ended
    assert json.loads((out / "r1" / "ledgerlora.json").read_text())["init_adapter_sha256"] == adapter_sha256(first.adapter_dir)


def test_nan_loss_stops_and_keeps_the_last_good_adapter(tiny, orgs, out) -> None:  # type: ignore[no-untyped-def]
    # A real fault, no mock: with lr=1e37 the first AdamW update overflows the forward pass.
    import torch

    cfg = TrainConfig(steps=60, lr=1e37, seq_len=32, batch_size=2)
    with pytest.raises(LearningError, match=r"training stopped at step \d+: .* lower the learning rate"):
        train_adapter(tiny, orgs["sport"].train, cfg, out / "nan", progress=False)
    assert all(torch.isfinite(t).all() for t in read_adapter(out / "nan").tensors.values())
    meta = json.loads((out / "nan" / "ledgerlora.json").read_text())
    assert meta["stopped_at_step"] >= 0
    assert re.search(r"loss is (nan|-?inf)|not finite|non-finite", meta["stopped_because"])


def test_texts_too_short_to_train_on_are_a_clear_error(tiny, cfg, out) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(LearningError, match="too short to train on"):
        train_adapter(tiny, ["", ""], cfg, out / "a", progress=False)
    with pytest.raises(LearningError, match="no training texts"):
        train_adapter(tiny, [], cfg, out / "b", progress=False)


def test_init_adapter_of_another_base_is_refused(tiny, cfg, orgs, out) -> None:  # type: ignore[no-untyped-def]
    res = train_adapter(tiny, orgs["sport"].train, cfg, out / "a", progress=False)
    meta_path = res.adapter_dir / "ledgerlora.json"
    meta = json.loads(meta_path.read_text())
    meta["base_model"] = "some-other-model"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(LearningError, match="some-other-model"):
        train_adapter(tiny, orgs["sport"].train, cfg, out / "b", init_adapter=res.adapter_dir, progress=False)


def _unused(o: OrgData) -> Path:  # keep the type import used for readers
    return Path(o.name)
