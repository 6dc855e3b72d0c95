"""Splitting: the three parts compute exactly what the unsplit model computes (fp32)."""

from __future__ import annotations

import pytest
import torch
from split_helpers import tiny_config, token_batch
from transformers import LlamaConfig, LlamaForCausalLM

from orchestrator.split.equivalence import perturb_lora_b
from orchestrator.split.errors import SplitModelError
from orchestrator.split.model import (
    LoraSpec,
    add_lora,
    causal_padding_mask,
    lm_labels,
    positions_from_mask,
    split_model,
    trainable,
)

TOL = 1e-5


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = add_lora(LlamaForCausalLM(tiny_config()), LoraSpec(r=4, alpha=8), seed=1)
    perturb_lora_b(model, seed=2)  # B = 0 would make every lora_A gradient trivially zero
    return model


def _unsplit(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> tuple[float, dict]:
    model.zero_grad(set_to_none=True)
    loss = model(input_ids=ids, attention_mask=mask, labels=lm_labels(ids, mask)).loss
    loss.backward()
    grads = {n: p.grad.clone() for n, p in trainable(model).items()}
    model.zero_grad(set_to_none=True)
    return loss.item(), grads


def _split(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> tuple[float, dict]:
    parts = split_model(model)
    hidden, pos = parts.front(ids, mask)
    h_srv = hidden.detach().requires_grad_(True)  # what the server receives
    out = parts.middle(h_srv, mask, pos)
    h_cli = out.detach().requires_grad_(True)  # what client part C receives
    loss = parts.back(h_cli, mask, pos, lm_labels(ids, mask))
    loss.backward()
    out.backward(h_cli.grad)  # C -> server
    hidden.backward(h_srv.grad)  # server -> A
    grads = {n: p.grad.clone() for n, p in trainable(model).items()}
    model.zero_grad(set_to_none=True)
    return loss.item(), grads


@pytest.mark.parametrize("lengths", [[12, 12, 12], [12, 7, 3]], ids=["no-padding", "right-padding"])
def test_split_loss_and_every_lora_gradient_equal_the_unsplit_model(lengths: list[int]) -> None:
    model = _model()
    ids, mask = token_batch(5, len(lengths), lengths)

    ref_loss, ref_grads = _unsplit(model, ids, mask)
    loss, grads = _split(model, ids, mask)

    assert abs(loss - ref_loss) <= TOL
    assert set(grads) == set(ref_grads) and len(grads) == 2 * 2 * 4  # q,v x A,B x 4 blocks
    for name, g in ref_grads.items():
        assert g.abs().max() > 0, (
            f"{name} has a zero reference gradient: the check would be vacuous"
        )
        assert torch.allclose(grads[name], g, atol=TOL, rtol=0), name


def test_parts_hold_the_expected_blocks_and_share_the_tied_head() -> None:
    model = _model()
    parts = split_model(model, front_layers=1, back_layers=1)
    layers = list(model.model.layers)
    assert list(parts.front.layers) == layers[:1]
    assert list(parts.middle.layers) == layers[1:3]
    assert list(parts.back.layers) == layers[3:]
    # tied embeddings stay tied: both client parts point at the same tensor
    assert parts.back.lm_head.weight.data_ptr() == parts.front.embed_tokens.weight.data_ptr()
    # the server part has no embeddings or head at all
    names = {n for n, _ in parts.middle.named_parameters()}
    assert not any("embed" in n or "lm_head" in n for n in names)


def test_positions_and_mask_follow_right_padding() -> None:
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    assert positions_from_mask(mask).tolist() == [[0, 1, 2, 2], [0, 1, 1, 1]]
    m4 = causal_padding_mask(mask, torch.float32)
    allowed = m4 == 0
    assert allowed.shape == (2, 1, 4, 4)
    assert allowed[0, 0].tolist() == [
        [True, False, False, False],
        [True, True, False, False],
        [True, True, True, False],
        [True, True, True, False],  # padded query: attends real keys only
    ]
    assert not allowed[1, 0, :, 2:].any()  # nobody attends row 1's padding


@pytest.mark.parametrize("front,back", [(1, 3), (2, 2), (0, 1), (1, 0)])
def test_split_refuses_cuts_that_leave_no_server_middle(front: int, back: int) -> None:
    with pytest.raises(SplitModelError, match="cannot split 4 decoder layers"):
        split_model(_model(), front_layers=front, back_layers=back)


def test_split_refuses_a_model_that_is_not_llama_like() -> None:
    with pytest.raises(SplitModelError, match="not a Llama-architecture causal LM"):
        split_model(torch.nn.Linear(3, 3))


def test_lora_spec_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="rank r must be >= 1, got 0"):
        LoraSpec(r=0)
    with pytest.raises(ValueError, match="targets"):
        LoraSpec(targets=())


def test_seeded_lora_is_identical_across_independent_builds() -> None:
    cfg: LlamaConfig = tiny_config()
    torch.manual_seed(0)
    a = add_lora(LlamaForCausalLM(cfg), LoraSpec(), seed=7)
    torch.manual_seed(0)
    b = add_lora(LlamaForCausalLM(cfg), LoraSpec(), seed=7)
    pa, pb = trainable(a), trainable(b)
    assert set(pa) == set(pb)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert any(pa[k].abs().sum() > 0 for k in pa if "lora_A" in k)
