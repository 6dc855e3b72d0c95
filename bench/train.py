"""Our training loop's tokens/s against a plain peft + torch loop, same model, batch and steps.

    python bench/train.py [--model smollm2|tiny|PATH] [--steps 6] [--repeats 2]
    python bench/train.py --llama-1b        # GPU only: tokens/s and MFU of a 1B-class Llama

Both loops exclude model loading; each is run ``--repeats`` times alternately and the best
time is kept (the machine is shared).  Target: ours >= 0.95x the plain loop.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.learning.config import TrainConfig  # noqa: E402
from orchestrator.learning.data import load_org_data  # noqa: E402
from orchestrator.learning.models import load_model  # noqa: E402
from orchestrator.learning.train import train_adapter  # noqa: E402


def plain_loop(model_spec: str, texts: list[str], cfg: TrainConfig) -> tuple[int, float]:
    """The textbook loop: get_peft_model, AdamW, forward/backward/step.  Returns (tokens, s)."""
    import torch
    from peft import LoraConfig, get_peft_model

    model, tok = load_model(model_spec)
    batch = tok(texts, truncation=True, max_length=cfg.seq_len, padding="max_length", return_tensors="pt")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    device = next(model.parameters()).device
    torch.manual_seed(cfg.seed)
    peft_model = get_peft_model(model, LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha,
                                                  target_modules=list(cfg.target_modules), lora_dropout=0.0))
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=cfg.lr)
    peft_model.train()
    tokens = 0
    start = time.perf_counter()
    for step in range(cfg.steps):
        idx = [(step * cfg.batch_size + i) % len(texts) for i in range(cfg.batch_size)]
        mask = batch["attention_mask"][idx].to(device)
        loss = peft_model(input_ids=batch["input_ids"][idx].to(device), attention_mask=mask,
                          labels=labels[idx].to(device)).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        tokens += int(mask.sum())
    if device.type == "cuda":
        torch.cuda.synchronize()
    return tokens, time.perf_counter() - start


def llama_1b(steps: int, batch: int, seq_len: int) -> None:
    """Random-weight 1B-class Llama (TinyLlama-1.1B shape), LoRA r=8 q/v, bf16 on CUDA."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    if not torch.cuda.is_available():
        print("--llama-1b needs a CUDA GPU; none here")
        return
    config = LlamaConfig(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
                         num_key_value_heads=4, vocab_size=32000, max_position_embeddings=4096)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to("cuda", torch.bfloat16)
    n_params = sum(p.numel() for p in model.parameters())
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(0, config.vocab_size, (batch, seq_len), device="cuda")
    for i in range(steps + 3):
        if i == 3:
            torch.cuda.synchronize()
            start = time.perf_counter()
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    tps = steps * batch * seq_len / (time.perf_counter() - start)
    name = torch.cuda.get_device_name()
    peak = {"H100": 989e12, "H200": 989e12, "A100": 312e12}.get(next((k for k in ("H100", "H200", "A100") if k in name), ""), float("nan"))
    # Frozen base: forward 2N + activation gradients 2N FLOPs per token (no weight gradients).
    mfu = 4 * n_params * tps / peak
    print(f"{name}: {n_params / 1e9:.2f}B params, {tps:,.0f} tokens/s, MFU {mfu:.1%} (4N FLOPs/token, bf16 dense peak)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--llama-1b", action="store_true")
    args = parser.parse_args()
    if args.llama_1b:
        llama_1b(args.steps, args.batch_size, args.seq_len)
        return 0
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, seq_len=args.seq_len)
    texts = load_org_data("tech", max_train=max(32, args.steps * args.batch_size)).train
    load_model(args.model)  # warm the in-process cache for both loops
    ours_best, plain_best = 0.0, 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            res = train_adapter(args.model, texts, cfg, Path(tmp) / f"a{r}", progress=False)
            ours_best = max(ours_best, res.tokens / res.seconds)
            tokens, seconds = plain_loop(args.model, texts, cfg)
            plain_best = max(plain_best, tokens / seconds)
    ratio = ours_best / plain_best
    print(f"{args.model}: ours {ours_best:,.0f} tokens/s, plain peft loop {plain_best:,.0f} tokens/s "
          f"-> {ratio:.3f}x (target >= 0.95x)")
    return 0 if ratio >= 0.95 else 1


if __name__ == "__main__":
    raise SystemExit(main())
