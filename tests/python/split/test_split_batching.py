"""Client-batching: one padded server pass equals one pass per client."""

from __future__ import annotations

import torch
from split_helpers import tiny_config, token_batch
from transformers import LlamaForCausalLM

from orchestrator.split.batching import concat_padded, stitch_grads, take
from orchestrator.split.equivalence import perturb_lora_b
from orchestrator.split.model import LoraSpec, add_lora, split_model, trainable

TOL = 1e-5


def test_batched_server_pass_equals_separate_passes() -> None:
    torch.manual_seed(0)
    model = add_lora(LlamaForCausalLM(tiny_config()), LoraSpec(r=4, alpha=8), seed=1)
    perturb_lora_b(model, seed=2)
    parts = split_model(model)
    middle = parts.middle
    # three clients, different batch sizes and lengths, some rows padded
    batches = [token_batch(1, 2, [9, 5]), token_batch(2, 1, [14]), token_batch(3, 3, [6, 6, 2])]
    g = torch.Generator().manual_seed(9)
    acts = []
    with torch.no_grad():
        for ids, mask in batches:
            h, pos = parts.front(ids, mask)
            acts.append((h, mask, pos, torch.randn(h.shape, generator=g)))

    sep_out, sep_gin = [], []
    for h, m, p, gr in acts:
        x = h.clone().requires_grad_(True)
        out = middle(x, m, p)
        out.backward(gr)
        sep_out.append(out.detach())
        sep_gin.append(x.grad)
    sep_lora = {n: q.grad.clone() for n, q in trainable(middle).items()}  # summed over clients
    middle.zero_grad(set_to_none=True)

    cids = ["a", "b", "c"]
    H, M, P, slots = concat_padded(
        cids, [a[0] for a in acts], [a[1] for a in acts], [a[2] for a in acts]
    )
    H.requires_grad_(True)
    out = middle(H, M, P)
    out.backward(stitch_grads(slots, {c: a[3] for c, a in zip(cids, acts)}, out))

    assert H.shape[:2] == (6, 14)  # 2+1+3 rows, padded to the longest client
    for slot, o, gi in zip(slots, sep_out, sep_gin):
        assert torch.allclose(take(out, slot), o, atol=TOL, rtol=0), slot
        assert torch.allclose(take(H.grad, slot), gi, atol=TOL, rtol=0), slot
    for n, q in trainable(middle).items():
        assert sep_lora[n].abs().max() > 0
        assert torch.allclose(q.grad, sep_lora[n], atol=TOL, rtol=0), n


def test_a_missing_clients_gradient_contributes_zero() -> None:
    h = [torch.ones(1, 3, 2), torch.ones(2, 2, 2)]
    m = [torch.ones(1, 3, dtype=torch.long), torch.ones(2, 2, dtype=torch.long)]
    p = [torch.arange(3)[None], torch.arange(2)[None].repeat(2, 1)]
    H, M, P, slots = concat_padded(["x", "y"], h, m, p)
    full = stitch_grads(slots, {"x": torch.full((1, 3, 2), 7.0)}, H)
    assert full[0].eq(7).all() and full[1:].eq(0).all()
    assert M.tolist() == [[1, 1, 1], [1, 1, 0], [1, 1, 0]]
    assert P.tolist() == [[0, 1, 2], [0, 1, 1], [0, 1, 1]]
