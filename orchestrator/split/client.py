"""The split-learning client: keeps token ids, labels, embeddings and the loss at home.

One training step: part A turns ``input_ids`` into hidden states; only those, the padding mask
and positions are sealed and sent; part C receives the server's output, computes the loss
against labels it never sends, and returns only the gradient w.r.t. that output; the gradient
w.r.t. A's output comes back and finishes backprop through A. Both client parts' LoRA tensors
are updated locally and never leave.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import torch

from orchestrator.split import wire
from orchestrator.split.crypto import KeyPair, SessionChannel, derive_session_keys
from orchestrator.split.errors import (
    SplitAuthError,
    SplitShapeError,
    SplitTimeoutError,
    error_for_status,
)
from orchestrator.split.model import ClientBack, ClientFront, lm_labels, trainable


@dataclass
class WireLog:
    """What this client put on and took off the wire (for byte counts and leak tests)."""

    sent: list[bytes] = field(default_factory=list)
    received: list[bytes] = field(default_factory=list)
    keep: bool = False
    bytes_sent: int = 0
    bytes_received: int = 0

    def record(self, out: bytes, back: bytes) -> None:
        self.bytes_sent += len(out)
        self.bytes_received += len(back)
        if self.keep:
            self.sent.append(out)
            self.received.append(back)


@dataclass
class StepResult:
    step: int
    loss: float
    seconds: float
    crypto_seconds: float
    finished_at: float


def http_post(url: str, body: bytes, timeout_s: float) -> bytes:
    """POST raw bytes; map error statuses back to the server's ``SplitError`` subclass."""
    req = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/octet-stream"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return resp.read()
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("error", "")
        except (ValueError, AttributeError):
            detail = exc.reason
        raise error_for_status(exc.code)(f"server refused {url}: {detail}") from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise SplitTimeoutError(f"no answer from {url} within {timeout_s} s: {exc}") from exc


def http_get_json(url: str, timeout_s: float) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return json.loads(resp.read())
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise SplitTimeoutError(f"no answer from {url} within {timeout_s} s: {exc}") from exc


class SplitClient:
    """One organisation's side of split training."""

    def __init__(
        self,
        client_id: str,
        keypair: KeyPair,
        server_url: str,
        front: ClientFront,
        back: ClientBack,
        *,
        lr: float = 1e-3,
        timeout_s: float = 120.0,
        expected_server_public: bytes | None = None,
        keep_wire: bool = False,
        device: str = "cpu",
    ) -> None:
        self.client_id = client_id
        self.keypair = keypair
        self.url = server_url.rstrip("/")
        self.front = front
        self.back = back
        self.timeout_s = timeout_s
        self.expected_server_public = expected_server_public
        self.device = torch.device(device)
        params = list(trainable(front).values()) + list(trainable(back).values())
        self.optimizer = torch.optim.Adam(params, lr=lr) if params else None
        self.wire = WireLog(keep=keep_wire)
        self.channel: SessionChannel | None = None

    def connect(self) -> dict[str, Any]:
        """Fetch the server's public key and session id, check the pin, derive the session."""
        hello = http_get_json(self.url + "/hello", self.timeout_s)
        server_pub = bytes.fromhex(hello["server_public"])
        if self.expected_server_public is not None and server_pub != self.expected_server_public:
            raise SplitAuthError(
                f"server at {self.url} presented public key {server_pub.hex()[:16]}..., not the "
                "pinned one; refusing to send activations to it"
            )
        k_c2s, k_s2c = derive_session_keys(
            self.keypair,
            server_pub,
            client_id=self.client_id,
            client_public=self.keypair.public_bytes,
            server_public=server_pub,
            session_id=bytes.fromhex(hello["session_id"]),
        )
        self.channel = SessionChannel(self.client_id, k_c2s, k_s2c, is_server=False)
        return hello

    def _exchange(
        self, path: str, step: int, kind: str, tensors: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        if self.channel is None:
            self.connect()
        assert self.channel is not None
        body = self.channel.seal(step, kind, wire.pack(tensors))
        reply = http_post(self.url + path, body, self.timeout_s)
        self.wire.record(body, reply)
        _, plain = self.channel.open(reply, kind=f"{kind}_result")
        return wire.unpack(plain)

    def train_step(
        self, step: int, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> StepResult:
        """One full forward/backward through A -> server -> C -> server -> A, then update A, C."""
        t0 = time.perf_counter()
        c0 = self.channel.crypto_seconds if self.channel else 0.0
        attention_mask = attention_mask.long().to(self.device)
        input_ids = input_ids.to(self.device)
        labels = lm_labels(input_ids, attention_mask)
        hidden, positions = self.front(input_ids, attention_mask)
        reply = self._exchange(
            "/forward",
            step,
            "forward",
            {"hidden": hidden.detach(), "mask": attention_mask, "positions": positions},
        )
        served = wire.expect(
            reply, "hidden", ndim=3, dtypes=[torch.float32], shape=list(hidden.shape)
        )
        served = served.to(self.device).requires_grad_(True)
        loss = self.back(served, attention_mask, positions, labels)
        loss.backward()
        assert served.grad is not None
        reply = self._exchange("/backward", step, "backward", {"grad": served.grad})
        g_in = wire.expect(reply, "grad", ndim=3, dtypes=[torch.float32], shape=list(hidden.shape))
        if hidden.requires_grad:
            hidden.backward(g_in.to(self.device))
        if self.optimizer is not None:
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        assert self.channel is not None
        return StepResult(
            step=step,
            loss=float(loss.detach()),
            seconds=time.perf_counter() - t0,
            crypto_seconds=self.channel.crypto_seconds - c0,
            finished_at=time.time(),
        )

    def fetch_server_adapter(self, steps: int) -> dict[str, torch.Tensor]:
        """After ``steps`` steps: the server LoRA this client's model ran through (full-model
        names), answered once the server has applied the last step's update."""
        reply = self._exchange("/adapter", steps, "adapter", {"steps": torch.tensor([steps])})
        for name, t in reply.items():
            if not t.is_floating_point() or not bool(torch.isfinite(t).all()):
                raise SplitShapeError(f"server adapter tensor {name!r} is not finite floats")
        return reply


__all__ = ["SplitClient", "StepResult", "WireLog", "http_get_json", "http_post"]
