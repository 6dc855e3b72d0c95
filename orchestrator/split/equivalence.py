"""fp32 equivalence checks reported by every run (and asserted, independently, by the tests).

1. split vs unsplit: the loss computed at client part C after A -> server -> C equals the
   unsplit model's own loss (transformers' forward with ``labels``), and every LoRA gradient,
   after gradients travel C -> server -> A, equals the unsplit model's.
2. batched vs separate: one server pass over several clients' right-padded activations gives
   each client the same output and input gradient as a pass of its own, and the same summed
   LoRA gradient.

``lora_B`` starts at zero in LoRA, which would make every ``lora_A`` gradient zero and the
check vacuous, so B is first filled with seeded noise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from orchestrator.split.batching import concat_padded, stitch_grads, take
from orchestrator.split.model import LoraSpec, SplitParts, lm_labels, split_model, trainable


def perturb_lora_b(model: torch.nn.Module, seed: int, scale: float = 0.05) -> None:
    """Seeded non-zero ``lora_B`` so that all LoRA gradients are informative."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * scale)


def split_step(parts: SplitParts, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Loss of one step through the three parts with explicit hand-offs; leaves LoRA grads."""
    labels = lm_labels(ids, mask)
    hidden, pos = parts.front(ids, mask)
    h_srv = hidden.detach().requires_grad_(True)
    out = parts.middle(h_srv, mask, pos)
    h_cli = out.detach().requires_grad_(True)
    loss = parts.back(h_cli, mask, pos, labels)
    loss.backward()
    out.backward(h_cli.grad)
    hidden.backward(h_srv.grad)
    return loss.detach()


def split_vs_unsplit(
    model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor
) -> dict[str, float]:
    params = trainable(model)
    model.zero_grad(set_to_none=True)
    ref_t = model(input_ids=ids, attention_mask=mask, labels=lm_labels(ids, mask)).loss
    ref_t.backward()
    ref = ref_t.item()
    ref_grads = {n: p.grad.detach().clone() for n, p in params.items() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    loss = split_step(split_model(model), ids, mask)
    diffs = [(params[n].grad - g).abs().max().item() for n, g in ref_grads.items()]
    scale = max(g.abs().max().item() for g in ref_grads.values())
    model.zero_grad(set_to_none=True)
    return {
        "max_grad_rel_diff": max(diffs) / scale if scale > 0 else 0.0,
        "loss_unsplit": ref,
        "loss_split": loss.item(),
        "loss_abs_diff": abs(ref - loss.item()),
        "max_grad_abs_diff": max(diffs),
        "grads_compared": len(diffs),
    }


def batched_vs_separate(
    parts: SplitParts, batches: list[tuple[torch.Tensor, torch.Tensor]], seed: int
) -> dict[str, float]:
    middle = parts.middle
    params = trainable(middle)
    g = torch.Generator().manual_seed(seed + 1)
    hs, ms, ps, grads = [], [], [], []
    with torch.no_grad():
        for ids, mask in batches:
            h, p = parts.front(ids, mask)
            hs.append(h)
            ms.append(mask)
            ps.append(p)
            grads.append(torch.randn(h.shape, generator=g))
    sep_out, sep_gin = [], []
    middle.zero_grad(set_to_none=True)
    for h, m, p, gr in zip(hs, ms, ps, grads, strict=True):
        x = h.clone().requires_grad_(True)
        out = middle(x, m, p)
        out.backward(gr)
        sep_out.append(out.detach())
        sep_gin.append(x.grad)
    sep_param = {n: q.grad.detach().clone() for n, q in params.items()}
    middle.zero_grad(set_to_none=True)
    cids = [str(i) for i in range(len(hs))]
    H, M, P, slots = concat_padded(cids, hs, ms, ps)
    H = H.requires_grad_(True)
    out = middle(H, M, P)
    out.backward(stitch_grads(slots, dict(zip(cids, grads, strict=True)), out))
    diff_out = max(
        (take(out, s) - o).abs().max().item() for s, o in zip(slots, sep_out, strict=True)
    )
    diff_gin = max(
        (take(H.grad, s) - gi).abs().max().item() for s, gi in zip(slots, sep_gin, strict=True)
    )
    diff_par = max((q.grad - sep_param[n]).abs().max().item() for n, q in params.items())
    scale_out = max(o.abs().max().item() for o in sep_out)
    scale_gin = max(gi.abs().max().item() for gi in sep_gin)
    scale_par = max(v.abs().max().item() for v in sep_param.values())
    middle.zero_grad(set_to_none=True)
    return {
        # relative to the largest reference magnitude: batched matmuls round differently, and
        # real models (SmolLM2) carry hidden values in the hundreds
        "max_output_rel_diff": diff_out / scale_out,
        "max_input_grad_rel_diff": diff_gin / scale_gin,
        "max_lora_grad_rel_diff": diff_par / scale_par,
        "clients": len(hs),
        "padded_len": int(H.shape[1]),
        "max_output_abs_diff": diff_out,
        "max_input_grad_abs_diff": diff_gin,
        "max_lora_grad_abs_diff": diff_par,
    }


def equivalence_report(
    model_dir: str | Path,
    batches: list[list[tuple[torch.Tensor, torch.Tensor]]],
    lora: LoraSpec,
    seed: int,
) -> dict[str, Any]:
    from orchestrator.split.base import load_base

    model = load_base(model_dir, lora, seed)
    perturb_lora_b(model, seed, scale=0.01)
    ids, mask = batches[0][0]
    report: dict[str, Any] = {"split_vs_unsplit": split_vs_unsplit(model, ids, mask)}
    report["batched_vs_separate"] = batched_vs_separate(
        split_model(model), [b[0] for b in batches], seed
    )
    tol = 1e-5
    report["tolerance"] = tol
    report["criterion"] = "loss: absolute; gradients and outputs: max |diff| / max |reference|"
    s, b = report["split_vs_unsplit"], report["batched_vs_separate"]
    report["passed"] = bool(
        s["loss_abs_diff"] <= tol
        and s["max_grad_rel_diff"] <= tol
        and b["max_output_rel_diff"] <= tol
        and b["max_input_grad_rel_diff"] <= tol
        and b["max_lora_grad_rel_diff"] <= tol
    )
    return report
