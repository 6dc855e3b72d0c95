"""Cutting a Llama-architecture causal LM into client front, server middle and client back.

FL-GLM layout: the client keeps ``embed_tokens + layers[:front]`` (part A) and
``layers[L-back:] + norm + lm_head`` (part C); the server runs ``layers[front:L-back]``.
Token ids, labels and embeddings therefore stay on the client; only hidden states, the 2-D
padding mask and the position ids cross, and their gradients come back.

Each side rebuilds what the decoder layers need from what was sent: rotary (cos, sin) from the
positions with its own copy of ``rotary_emb`` (it has no trained weights) and the 4-D additive
causal+padding mask from the 2-D mask. Because padding is on the right and attention is causal,
real tokens never attend to padding, which is also why the server may right-pad clients of
different lengths into one batch without changing anyone's result.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from orchestrator.split.errors import SplitModelError

IGNORE_INDEX = -100


def positions_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids 0..n-1 over real tokens (right padding); padding gets the last position."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def causal_padding_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive (B, 1, T, T) mask: 0 where query i may attend key j (j <= i, j real), else min.

    A finite minimum instead of -inf keeps fully masked rows (none occur with right padding,
    but a malicious mask could make one) from turning into NaN.
    """
    b, t = attention_mask.shape
    causal = torch.ones(t, t, dtype=torch.bool, device=attention_mask.device).tril()
    allowed = causal[None, None, :, :] & attention_mask.bool()[:, None, None, :]
    out = torch.zeros(b, 1, t, t, dtype=dtype, device=attention_mask.device)
    return out.masked_fill(~allowed, torch.finfo(dtype).min)


def lm_labels(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Causal-LM labels: the ids themselves, ``-100`` on padding (shifted inside the loss)."""
    return input_ids.masked_fill(attention_mask == 0, IGNORE_INDEX)


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over non-ignored targets (what transformers computes)."""
    shift_logits = logits[:, :-1, :].float().reshape(-1, logits.shape[-1])
    shift_labels = labels[:, 1:].reshape(-1)
    return nn.functional.cross_entropy(shift_logits, shift_labels, ignore_index=IGNORE_INDEX)


def _run_layers(
    layers: Sequence[nn.Module],
    rotary: nn.Module,
    hidden: torch.Tensor,
    attention_mask: torch.Tensor,
    positions: torch.Tensor,
) -> torch.Tensor:
    mask4d = causal_padding_mask(attention_mask, hidden.dtype)
    pos_emb = rotary(hidden, position_ids=positions)
    for layer in layers:
        out = layer(
            hidden, attention_mask=mask4d, position_ids=positions, position_embeddings=pos_emb
        )
        hidden = out[0] if isinstance(out, tuple) else out
    return hidden


class ClientFront(nn.Module):
    """Part A: token embeddings and the first ``front`` decoder blocks (stays on the client)."""

    def __init__(self, embed: nn.Module, layers: Sequence[nn.Module], rotary: nn.Module) -> None:
        super().__init__()
        self.embed_tokens = embed
        self.layers = nn.ModuleList(layers)
        self.rotary_emb = rotary

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(hidden, positions)``: the two things (with the mask) sent to the server."""
        positions = positions_from_mask(attention_mask)
        hidden = self.embed_tokens(input_ids)
        return _run_layers(
            self.layers, self.rotary_emb, hidden, attention_mask, positions
        ), positions


class ServerMiddle(nn.Module):
    """The middle decoder blocks, run (and LoRA-trained) by the server."""

    def __init__(self, layers: Sequence[nn.Module], rotary: nn.Module) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.rotary_emb = rotary

    def forward(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor
    ) -> torch.Tensor:
        return _run_layers(self.layers, self.rotary_emb, hidden, attention_mask, positions)


class ClientBack(nn.Module):
    """Part C: the last ``back`` blocks, final norm and LM head; the loss is computed here."""

    def __init__(
        self, layers: Sequence[nn.Module], norm: nn.Module, lm_head: nn.Module, rotary: nn.Module
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.norm = norm
        self.lm_head = lm_head
        self.rotary_emb = rotary

    def logits(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor
    ) -> torch.Tensor:
        hidden = _run_layers(self.layers, self.rotary_emb, hidden, attention_mask, positions)
        return self.lm_head(self.norm(hidden))

    def forward(
        self,
        hidden: torch.Tensor,
        attention_mask: torch.Tensor,
        positions: torch.Tensor,
        labels: torch.Tensor,
    ) -> torch.Tensor:
        return causal_lm_loss(self.logits(hidden, attention_mask, positions), labels)


@dataclass
class SplitParts:
    """The three pieces of one model; they share parameters with the model they came from."""

    front: ClientFront
    middle: ServerMiddle
    back: ClientBack


def causal_lm_core(model: nn.Module) -> nn.Module:
    """The ``LlamaForCausalLM``-like module inside ``model`` (unwraps a peft ``PeftModel``)."""
    m = model
    for _ in range(4):
        if hasattr(m, "lm_head") and hasattr(getattr(m, "model", None), "layers"):
            return m
        m = getattr(m, "base_model", None) or getattr(m, "model", None)
        if m is None:
            break
    raise SplitModelError(
        f"{type(model).__name__} is not a Llama-architecture causal LM (needs .model.embed_tokens, "
        ".model.layers, .model.norm, .model.rotary_emb and .lm_head)"
    )


def split_model(model: nn.Module, front_layers: int = 1, back_layers: int = 1) -> SplitParts:
    """Cut ``model`` into client front, server middle and client back (parameters shared).

    Sharing rather than copying means tied embeddings (``lm_head`` = ``embed_tokens``) stay tied
    on the client, and the unsplit model can be used as the reference in equivalence tests.
    """
    core = causal_lm_core(model)
    inner = core.model
    for attr in ("embed_tokens", "layers", "norm", "rotary_emb"):
        if not hasattr(inner, attr):
            raise SplitModelError(f"model.model has no {attr!r}; not a Llama-architecture model")
    n = len(inner.layers)
    if front_layers < 1 or back_layers < 1 or front_layers + back_layers >= n:
        raise SplitModelError(
            f"cannot split {n} decoder layers into front={front_layers}, back={back_layers} and a "
            "non-empty server middle; use a model with more layers or fewer client layers"
        )
    layers = list(inner.layers)
    # rotary_emb holds only the inv_freq buffer: each side gets its own copy (recomputed cos/sin).
    return SplitParts(
        front=ClientFront(
            inner.embed_tokens, layers[:front_layers], copy.deepcopy(inner.rotary_emb)
        ),
        middle=ServerMiddle(
            layers[front_layers : n - back_layers], copy.deepcopy(inner.rotary_emb)
        ),
        back=ClientBack(
            layers[n - back_layers :], inner.norm, core.lm_head, copy.deepcopy(inner.rotary_emb)
        ),
    )


@dataclass(frozen=True)
class LoraSpec:
    """LoRA hyper-parameters applied to every decoder block (client and server alike)."""

    r: int = 8
    alpha: int = 16
    targets: tuple[str, ...] = ("q_proj", "v_proj")

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ValueError(f"LoRA rank r must be >= 1, got {self.r}")
        if self.alpha < 1:
            raise ValueError(f"LoRA alpha must be >= 1, got {self.alpha}")
        if not self.targets:
            raise ValueError("LoRA targets must name at least one module (e.g. q_proj)")


def add_lora(model: nn.Module, spec: LoraSpec, seed: int) -> nn.Module:
    """Inject LoRA into every block in place and freeze everything else.

    Seeded so that the server process and each client process, which all start from the same
    base weights, build identical LoRA initialisations: that is what makes the split run
    comparable (and, for one client, identical) to centralised training.
    """
    from peft import LoraConfig, inject_adapter_in_model

    torch.manual_seed(seed)
    cfg = LoraConfig(
        r=spec.r, lora_alpha=spec.alpha, lora_dropout=0.0, target_modules=list(spec.targets)
    )
    model = inject_adapter_in_model(cfg, model)
    for name, p in model.named_parameters():
        p.requires_grad_("lora_" in name)
    return model


def trainable(module: nn.Module) -> dict[str, torch.Tensor]:
    """Named trainable parameters (the LoRA tensors) of ``module``."""
    return {n: p for n, p in module.named_parameters() if p.requires_grad}
