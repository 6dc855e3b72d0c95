"""The real-model path: GGUF conversion (cached), a few LoRA steps, a loadable adapter."""

from __future__ import annotations

import pytest

from orchestrator.learning.config import TrainConfig
from orchestrator.learning.evaluate import evaluate_perplexity
from orchestrator.learning.models import load_model, resolve_model
from orchestrator.learning.train import train_adapter


@pytest.mark.slow
def test_smollm2_converts_trains_and_reloads(orgs, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from peft import PeftModel

    folder = resolve_model("smollm2")
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    texts = orgs["sport"].train[:8]
    cfg = TrainConfig(steps=3, lr=2e-3, seq_len=32, batch_size=2)
    res = train_adapter("smollm2", texts, cfg, tmp_path / "a", progress=False)
    assert res.tokens > 0 and all(x == x for x in res.losses)  # finite
    base_ppl = evaluate_perplexity("smollm2", None, texts[:4], seq_len=32)
    assert base_ppl < 200  # a real pretrained model, not random weights (uniform would be 49152)
    model, _ = load_model("smollm2")
    peft_model = PeftModel.from_pretrained(model, str(res.adapter_dir))
    c = model.config
    kv_out = c.num_key_value_heads * (c.hidden_size // c.num_attention_heads)
    # per layer: q (A r x d, B d x r) + v (A r x d, B kv_out x r)
    expected = c.num_hidden_layers * cfg.rank * (c.hidden_size * 2 + c.hidden_size + kv_out)
    assert sum(p.numel() for n, p in peft_model.named_parameters() if "lora_" in n) == expected
    tuned_ppl = evaluate_perplexity("smollm2", res.adapter_dir, texts[:4], seq_len=32)
    assert tuned_ppl != base_ppl
