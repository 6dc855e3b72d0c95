"""The split-learning server: the middle blocks behind a loopback HTTP endpoint.

Protocol (one step ``t`` of client ``c``; every body is a sealed :mod:`crypto` envelope):

* ``GET /hello`` -> JSON ``{server_public, session_id, mode, step}`` (public, not secret);
* ``POST /forward`` kind ``forward``: ``hidden (B,T,D) f32, mask (B,T) i64, positions (B,T) i64``
  -> kind ``forward_result``: ``hidden (B,T,D)`` after the middle blocks;
* ``POST /backward`` kind ``backward``: ``grad (B,T,D)`` w.r.t. that output
  -> kind ``backward_result``: ``grad (B,T,D)`` w.r.t. the client's hidden input;
* ``POST /sync`` (replica 0 only, hierarchical mode): another replica's LoRA tensors, answered
  with the average over replicas;
* ``GET /stats`` -> JSON counters (bytes, crypto time, passes, drops, rejected messages).

Modes. ``sequential``: one forward and one backward pass per client, in arrival order.
``batched``: the server waits (a barrier per step) until every active client has sent its
activations, runs one pass over the right-padded concatenation, and does the same for the
gradients. In both modes the LoRA update of step ``t`` happens once every active client's
backward is in, with the gradient averaged over clients, so both modes train the same model.

Faults: a message that fails authentication, is a replay, has bad shapes or the wrong step is
answered with an error status and changes nothing; a client missing at a barrier for
``step_timeout_s`` is dropped (its later messages are refused) and the step goes on with the
others.
"""

from __future__ import annotations

import hashlib
import json
import logging
import resource
import secrets
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import torch
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from orchestrator.split import wire
from orchestrator.split.batching import Slot, concat_padded, stitch_grads, take
from orchestrator.split.crypto import KeyPair, SessionChannel, derive_session_keys, peek_header
from orchestrator.split.errors import (
    SplitAuthError,
    SplitError,
    SplitProtocolError,
    SplitReplayError,
    SplitShapeError,
    SplitTimeoutError,
    status_for_error,
)
from orchestrator.split.model import LoraSpec, ServerMiddle, trainable

log = logging.getLogger(__name__)

MODES = ("sequential", "batched")
#: what hierarchical replicas keep in step: ``grads`` all-reduces the LoRA gradient every step
#: (weighted by clients; every replica then takes the same Adam step, so K replicas train what
#: one batched server would), ``adam`` averages weights and Adam moments every M steps,
#: ``weights`` averages weights only every M steps (FedAvg of LoRA; each replica's Adam apart).
SYNC_MODES = ("grads", "adam", "weights")
#: ``shared``: one server LoRA for all clients (gradient averaged over them); ``per-client``: one
#: server LoRA (and Adam) per client, trained only on that client's activations, so a client's
#: full adapter depends on its own data alone and forgetting it is an exact re-merge.
SERVER_LORA = ("shared", "per-client")


def check_server_choices(mode: str, sync: str, server_lora: str) -> None:
    """Refuse an unknown sync or server-LoRA setting, and per-client adapters in batched mode
    (one batched pass cannot apply a different adapter per client)."""
    if sync not in SYNC_MODES:
        raise ValueError(f"sync must be one of {SYNC_MODES}, got {sync!r}")
    if server_lora not in SERVER_LORA:
        raise ValueError(f"server_lora must be one of {SERVER_LORA}, got {server_lora!r}")
    if server_lora == "per-client" and mode == "batched":
        raise ValueError(
            "per-client server adapters need one server pass per client; use mode "
            "sequential or hierarchical (replicas then serve disjoint clients)"
        )
MAX_BODY = 512 * 1024 * 1024


@dataclass
class ServerConfig:
    """Everything a server (replica) process needs; picklable for ``spawn``."""

    model_dir: str = field(metadata={"help": "base model folder (every process loads the same)"})
    clients: dict[str, str] = field(
        metadata={"help": "allow-list: client id -> X25519 public key hex"}
    )
    mode: str = field(default="batched", metadata={"help": "sequential | batched"})
    lora: LoraSpec = field(default_factory=LoraSpec)
    seed: int = 0
    lr: float = 1e-3
    front_layers: int = 1
    back_layers: int = 1
    step_timeout_s: float = field(
        default=60.0, metadata={"help": "how long a barrier waits before dropping a client"}
    )
    private_key_hex: str | None = field(default=None, metadata={"help": "server X25519 key"})
    replica: int = 0
    replicas: int = 1
    sync_every: int = field(
        default=0, metadata={"help": "average LoRA over replicas every M steps"}
    )
    sync_url: str | None = field(default=None, metadata={"help": "replica 0's URL (others only)"})
    sync_key_hex: str | None = field(default=None, metadata={"help": "AES key shared by replicas"})
    torch_threads: int = 1
    sync: str = field(default="grads", metadata={"help": "grads | adam | weights"})
    server_lora: str = field(default="shared", metadata={"help": "shared | per-client"})
    device: str = field(default="cpu", metadata={"help": "torch device of the middle blocks"})

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"server mode must be one of {MODES}, got {self.mode!r}")
        check_server_choices(self.mode, self.sync, self.server_lora)
        if not self.clients:
            raise ValueError("a split server needs at least one allow-listed client")
        for cid, pub in self.clients.items():
            if len(bytes.fromhex(pub)) != 32:
                raise ValueError(f"client {cid!r}: public key must be 32 bytes hex, got {pub!r}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.step_timeout_s <= 0:
            raise ValueError(f"step_timeout_s must be > 0, got {self.step_timeout_s}")
        if not 0 <= self.replica < self.replicas:
            raise ValueError(f"replica {self.replica} is not in 0..{self.replicas - 1}")
        if self.replicas > 1 and (self.sync_every > 0 or self.sync == "grads"):
            if self.sync_key_hex is None or len(bytes.fromhex(self.sync_key_hex)) != 32:
                raise ValueError("hierarchical sync needs a 32-byte sync_key_hex")
            if self.replica > 0 and not self.sync_url:
                raise ValueError(f"replica {self.replica} needs sync_url (replica 0's URL)")


@dataclass
class _Pending:
    """One client's contribution to the current step."""

    hidden: torch.Tensor  # server-side leaf (requires grad) holding the client's activations
    mask: torch.Tensor
    positions: torch.Tensor
    output: torch.Tensor | None = None  # sequential: this client's own output (graph kept)


class SplitServer:
    """Training state and protocol logic of one server (replica); transport-independent."""

    def __init__(
        self,
        cfg: ServerConfig,
        middle: ServerMiddle,
        keypair: KeyPair | None = None,
        session_id: bytes | None = None,
        full_names: dict[str, str] | None = None,
    ) -> None:
        self.cfg = cfg
        self.middle = middle
        self.device = torch.device(cfg.device)
        self.keypair = keypair or (
            KeyPair.from_seed(bytes.fromhex(cfg.private_key_hex))
            if cfg.private_key_hex
            else KeyPair.generate()
        )
        self.session_id = session_id or secrets.token_bytes(16)
        self.params = trainable(middle)
        if not self.params:
            raise SplitProtocolError("the server middle has no trainable (LoRA) parameters")
        self.hidden_size = int(next(iter(self.params.values())).shape[-1])
        #: middle-module parameter name -> name in the full model (what adapters are saved as)
        self.full_names = full_names or {n: n for n in self.params}
        self.optimizer = torch.optim.Adam(self.params.values(), lr=cfg.lr)
        # per-client mode: one bank of LoRA parameters and one Adam per client, all starting
        # from the same seeded initialisation; a bank is swapped into the blocks for a pass
        self.banks: dict[str, dict[str, torch.nn.Parameter]] = {}
        self.bank_optimizers: dict[str, torch.optim.Optimizer] = {}
        if cfg.server_lora == "per-client":
            for cid in sorted(cfg.clients):
                bank = {
                    n: torch.nn.Parameter(p.detach().clone()) for n, p in self.params.items()
                }
                self.banks[cid] = bank
                self.bank_optimizers[cid] = torch.optim.Adam(bank.values(), lr=cfg.lr)
        self._channels: dict[str, SessionChannel] = {}
        self._cond = threading.Condition()
        self.step = 0
        self.active: set[str] = set(cfg.clients)
        self.dropped: dict[str, int] = {}
        self._pending: dict[str, _Pending] = {}
        self._grads: dict[str, torch.Tensor] = {}  # batched: output grads received this step
        self._done: set[str] = set()  # clients whose backward of this step is finished
        self._fwd_out: dict[tuple[int, str], torch.Tensor] = {}
        self._bwd_out: dict[tuple[int, str], torch.Tensor] = {}
        self._batch_out: torch.Tensor | None = None
        self._slots: list[Slot] = []
        self._step_error: dict[int, SplitError] = {}
        # hierarchical averaging (replica 0 collects)
        self._sync_cond = threading.Condition()
        self._stats_lock = threading.Lock()
        self._sync_states: dict[int, dict[int, dict[str, torch.Tensor]]] = {}
        self._sync_result: dict[int, dict[str, torch.Tensor]] = {}
        self._sync_last: dict[int, int] = {}
        self.stats: dict[str, Any] = {
            "bytes_in": 0,
            "bytes_out": 0,
            "forward_passes": 0,
            "backward_passes": 0,
            "steps": 0,
            "syncs": 0,
            "compute_seconds": 0.0,
            "sync_crypto_seconds": 0.0,
            "rejected": {},
        }
        self.stats["lora_bytes"] = self.lora_bytes()

    # ---------------------------------------------------------------- public protocol API

    def hello(self) -> dict[str, Any]:
        return {
            "server_public": self.keypair.public_bytes.hex(),
            "session_id": self.session_id.hex(),
            "mode": self.cfg.mode,
            "step": self.step,
            "replica": self.cfg.replica,
            "protocol": "ledgerlora-split/1",
        }

    def snapshot_stats(self) -> dict[str, Any]:
        with self._cond, self._stats_lock:
            out = dict(self.stats)
            out["rejected"] = dict(self.stats["rejected"])
            out["crypto_seconds"] = sum(c.crypto_seconds for c in self._channels.values())
            out["crypto_seconds"] += self.stats["sync_crypto_seconds"]
            out["step"] = self.step
            out["active"] = sorted(self.active)
            out["dropped"] = dict(self.dropped)
            out["mode"] = self.cfg.mode
            out["replica"] = self.cfg.replica
            out["lora_sha256"] = self.lora_digest()
            out["adam_sha256"] = self.adam_digest()
            # peak resident memory of this server process (Linux reports KiB)
            out["max_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return out

    def lora_digest(self) -> str:
        """SHA-256 over the LoRA tensors (every bank in per-client mode): replicas right after
        a sync must agree on it."""
        h = hashlib.sha256()
        banks = self.banks or {"": self.params}
        for bank in sorted(banks):
            for name in sorted(banks[bank]):
                h.update(f"{bank}/{name}".encode())
                h.update(banks[bank][name].detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def adam_digest(self) -> str:
        """SHA-256 over the shared optimizer's moments (what ``sync="adam"`` keeps equal)."""
        h = hashlib.sha256()
        for name in sorted(self.params):
            moments = self.optimizer.state.get(self.params[name], {})
            for m in ADAM_MOMENTS:
                if m in moments:
                    h.update(f"{name}/{m}".encode())
                    h.update(moments[m].detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def lora_bytes(self) -> dict[str, int]:
        """Server memory held by trainable state: LoRA tensors and (2x for) their Adam moments."""
        banks = self.banks or {"shared": self.params}
        weights = sum(p.numel() * p.element_size() for b in banks.values() for p in b.values())
        return {"banks": len(banks), "lora": weights, "adam": 2 * weights, "total": 3 * weights}

    def _use_bank(self, cid: str) -> None:
        """Per-client mode: point the middle's LoRA modules at ``cid``'s parameters."""
        if not self.banks:
            return
        for name, param in self.banks[cid].items():
            owner, _, leaf = name.rpartition(".")
            setattr(self.middle.get_submodule(owner), leaf, param)

    def adapter_tensors(self, cid: str) -> dict[str, torch.Tensor]:
        """The server LoRA that ``cid``'s model uses, named as in the full model."""
        bank = self.banks.get(cid, self.params)
        return {self.full_names[n]: p.detach().cpu().clone() for n, p in bank.items()}

    def count_bytes(self, bytes_in: int = 0, bytes_out: int = 0) -> None:
        # Its own lock: /sync requests arrive while a step (holding _cond) waits for them.
        with self._stats_lock:
            self.stats["bytes_in"] += bytes_in
            self.stats["bytes_out"] += bytes_out

    def record_rejection(self, exc: SplitError) -> None:
        with self._stats_lock:
            name = type(exc).__name__
            self.stats["rejected"][name] = self.stats["rejected"].get(name, 0) + 1

    def handle_forward(self, envelope: bytes) -> bytes:
        channel, step, tensors = self._open(envelope, "forward")
        cid = channel.client_id
        h = wire.expect(
            tensors, "hidden", ndim=3, dtypes=[torch.float32], shape=[None, None, self.hidden_size]
        )
        b, t, _ = h.shape
        mask = wire.expect(tensors, "mask", ndim=2, dtypes=[torch.int64], shape=[b, t])
        pos = wire.expect(tensors, "positions", ndim=2, dtypes=[torch.int64], shape=[b, t])
        if b == 0 or t == 0:
            raise SplitShapeError(f"client {cid!r}: empty activations of shape {tuple(h.shape)}")
        if not bool(((mask == 0) | (mask == 1)).all()) or not bool((mask[:, 0] == 1).all()):
            raise SplitShapeError(f"client {cid!r}: mask must be 0/1 with a real first token")
        if bool((pos < 0).any()):
            raise SplitShapeError(f"client {cid!r}: positions must be >= 0")
        dev = self.device
        item = _Pending(h.to(dev).requires_grad_(True), mask.to(dev), pos.to(dev))
        out = self._forward(cid, step, item)
        return channel.seal(step, "forward_result", wire.pack({"hidden": out}))

    def handle_backward(self, envelope: bytes) -> bytes:
        channel, step, tensors = self._open(envelope, "backward")
        grad = wire.expect(tensors, "grad", ndim=3, dtypes=[torch.float32])
        g_in = self._backward(channel.client_id, step, grad.to(self.device))
        return channel.seal(step, "backward_result", wire.pack({"grad": g_in}))

    def handle_adapter(self, envelope: bytes) -> bytes:
        """A client that finished ``steps`` steps asks for the server LoRA of its model.

        Answered once the server has applied the update of the client's last step (in
        sequential mode a client's backward may return before the step's update, which waits
        for every client). A dropped client gets nothing: it did not finish the round.
        """
        channel, step, _ = self._open(envelope, "adapter")
        cid = channel.client_id
        with self._cond:
            deadline = time.monotonic() + self.cfg.step_timeout_s
            if not self._wait_for(lambda: self.step >= step or cid in self.dropped, deadline):
                raise SplitTimeoutError(
                    f"client {cid!r}: the server did not reach step {step} within "
                    f"{self.cfg.step_timeout_s} s"
                )
            if cid in self.dropped:
                raise SplitProtocolError(
                    f"client {cid!r} was dropped at step {self.dropped[cid]}; it has no adapter"
                )
            tensors = self.adapter_tensors(cid)
        return channel.seal(step, "adapter_result", wire.pack(tensors))

    # ---------------------------------------------------------------- internals

    def _channel(self, client_id: str) -> SessionChannel:
        with self._cond:
            ch = self._channels.get(client_id)
            if ch is None:
                pub = self.cfg.clients.get(client_id)
                if pub is None:
                    raise SplitAuthError(
                        f"client {client_id!r} is not on this server's allow-list; register its "
                        "public key first"
                    )
                k_c2s, k_s2c = derive_session_keys(
                    self.keypair,
                    bytes.fromhex(pub),
                    client_id=client_id,
                    client_public=bytes.fromhex(pub),
                    server_public=self.keypair.public_bytes,
                    session_id=self.session_id,
                )
                ch = SessionChannel(client_id, k_c2s, k_s2c, is_server=True)
                self._channels[client_id] = ch
            return ch

    def _open(
        self, envelope: bytes, kind: str
    ) -> tuple[SessionChannel, int, dict[str, torch.Tensor]]:
        header = peek_header(envelope)
        channel = self._channel(header.client_id)
        header, plain = channel.open(envelope, kind=kind)
        return channel, header.step, wire.unpack(plain)

    def _check_member(self, cid: str, step: int) -> None:
        if cid in self.dropped:
            raise SplitProtocolError(
                f"client {cid!r} was dropped at step {self.dropped[cid]} after missing a barrier; "
                "it must be re-admitted by restarting the round"
            )
        if step != self.step:
            raise SplitProtocolError(
                f"client {cid!r} sent step {step} but the server is at step {self.step}"
            )

    def _wait_for(self, predicate: Any, deadline: float) -> bool:
        """Wait on the condition (held) until ``predicate()`` or the deadline; True if it holds."""
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._cond.wait(timeout=left)
        return True

    def _drop(self, cids: set[str], why: str) -> None:
        for cid in sorted(cids):
            if cid in self.active:
                log.warning("dropping client %s at step %d: %s", cid, self.step, why)
                self.active.discard(cid)
                self.dropped[cid] = self.step
        self._cond.notify_all()

    def _forward(self, cid: str, step: int, item: _Pending) -> torch.Tensor:
        with self._cond:
            # A client may run ahead to step t+1 while others finish t: wait for the update.
            deadline = time.monotonic() + self.cfg.step_timeout_s
            if step > self.step + 1:
                raise SplitProtocolError(
                    f"client {cid!r} sent step {step} but the server is at step {self.step}; "
                    "a client may be at most one step ahead"
                )
            if step > self.step and not self._wait_for(
                lambda: self.step >= step or cid in self.dropped, deadline
            ):
                self._drop(self.active - self._done, f"did not finish step {self.step} in time")
                self._finish_step()
            self._check_member(cid, step)
            if cid in self._pending:
                raise SplitProtocolError(
                    f"client {cid!r} already sent its activations for step {step}"
                )
            self._pending[cid] = item
            if self.cfg.mode == "sequential":
                t0 = time.perf_counter()
                self._use_bank(cid)  # per-client mode: this client's own server LoRA
                item.output = self.middle(item.hidden, item.mask, item.positions)
                self.stats["compute_seconds"] += time.perf_counter() - t0
                self.stats["forward_passes"] += 1
                return item.output.detach().cpu()
            if set(self._pending) >= self.active:
                self._batched_forward()
            elif not self._wait_for(
                lambda: (step, cid) in self._fwd_out or step in self._step_error, deadline
            ):
                self._drop(self.active - set(self._pending), f"sent no activations for step {step}")
                self._batched_forward()
            if step in self._step_error:
                raise self._step_error[step]
            return self._fwd_out.pop((step, cid)).cpu()

    def _batched_forward(self) -> None:
        try:
            self._batched_forward_inner()
        except (RuntimeError, ValueError) as exc:  # torch errors: fail this step for everyone
            self._fail_step(exc)

    def _batched_backward(self) -> None:
        try:
            self._batched_backward_inner()
        except (RuntimeError, ValueError) as exc:
            self._fail_step(exc)

    def _fail_step(self, exc: Exception) -> None:
        log.error("step %d failed on the server: %s", self.step, exc)
        self._step_error[self.step] = SplitError(f"server pass of step {self.step} failed: {exc}")
        self._done.clear()  # no update from a failed step
        self.optimizer.zero_grad(set_to_none=True)
        self._finish_step()

    def _batched_forward_inner(self) -> None:
        cids = sorted(c for c in self._pending if c in self.active)
        items = [self._pending[c] for c in cids]
        h, m, p, slots = concat_padded(
            cids, [i.hidden for i in items], [i.mask for i in items], [i.positions for i in items]
        )
        h = h.detach().requires_grad_(True)
        t0 = time.perf_counter()
        out = self.middle(h, m, p)
        self.stats["compute_seconds"] += time.perf_counter() - t0
        self.stats["forward_passes"] += 1
        self._batch_in, self._batch_out, self._slots = h, out, slots
        for slot in slots:
            self._fwd_out[(self.step, slot.client_id)] = take(out, slot).detach()
        self._cond.notify_all()

    def _backward(self, cid: str, step: int, grad: torch.Tensor) -> torch.Tensor:
        with self._cond:
            self._check_member(cid, step)
            item = self._pending.get(cid)
            if item is None:
                raise SplitProtocolError(
                    f"client {cid!r} sent gradients for step {step} before activations"
                )
            if cid in self._done or cid in self._grads:
                raise SplitProtocolError(
                    f"client {cid!r} already sent its gradients for step {step}"
                )
            if tuple(grad.shape) != tuple(item.hidden.shape):
                raise SplitShapeError(
                    f"client {cid!r}: gradient shape {tuple(grad.shape)} does not match the "
                    f"activations it sent, {tuple(item.hidden.shape)}"
                )
            deadline = time.monotonic() + self.cfg.step_timeout_s
            if self.cfg.mode == "sequential":
                assert item.output is not None
                t0 = time.perf_counter()
                item.output.backward(grad)
                self.stats["compute_seconds"] += time.perf_counter() - t0
                self.stats["backward_passes"] += 1
                g_in = item.hidden.grad
                assert g_in is not None
                self._done.add(cid)
                if self._done >= self.active:
                    self._finish_step()
                return g_in.detach().cpu()
            self._grads[cid] = grad
            expected = {c for c in self._pending if c in self.active}
            if set(self._grads) >= expected:
                self._batched_backward()
            elif not self._wait_for(
                lambda: (step, cid) in self._bwd_out or step in self._step_error, deadline
            ):
                self._drop(expected - set(self._grads), f"sent no gradients for step {step}")
                self._batched_backward()
            if step in self._step_error:
                raise self._step_error[step]
            return self._bwd_out.pop((step, cid)).cpu()

    def _batched_backward_inner(self) -> None:
        assert self._batch_out is not None
        full = stitch_grads(self._slots, self._grads, self._batch_out)
        t0 = time.perf_counter()
        self._batch_out.backward(full)
        self.stats["compute_seconds"] += time.perf_counter() - t0
        self.stats["backward_passes"] += 1
        g_in = self._batch_in.grad
        assert g_in is not None
        for slot in self._slots:
            if slot.client_id in self._grads:
                self._bwd_out[(self.step, slot.client_id)] = take(g_in, slot).detach().clone()
                self._done.add(slot.client_id)
        self._finish_step()

    def _hierarchical(self) -> bool:
        return self.cfg.replicas > 1 and self.cfg.server_lora == "shared"

    def _finish_step(self) -> None:
        """Update the server LoRA from this step's gradients, advance the step, sync replicas.

        Shared mode: the gradient is averaged over contributing clients (and, with
        ``sync="grads"``, over every replica's clients) before one Adam step. Per-client mode:
        each contributing client's bank takes its own Adam step on its own gradient.
        """
        n = len(self._done)
        if self.banks:
            for cid in sorted(self._done):
                self.bank_optimizers[cid].step()
            for opt in self.bank_optimizers.values():
                opt.zero_grad(set_to_none=True)
        else:
            if n:
                for p in self.params.values():
                    if p.grad is not None:
                        p.grad.div_(n)
            total = n
            if self._hierarchical() and self.cfg.sync == "grads":
                try:
                    total = self._allreduce_grads(n)
                except SplitError as exc:  # a sick replica must not stop this one's clients
                    log.error("replica %d: gradient all-reduce at step %d failed: %s",
                              self.cfg.replica, self.step, exc)
            if total:
                self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        self._pending.clear()
        self._grads.clear()
        self._done.clear()
        self._batch_out = None
        self.step += 1
        self.stats["steps"] += 1
        if (
            self._hierarchical()
            and self.cfg.sync in ("weights", "adam")
            and self.cfg.sync_every > 0
            and self.step % self.cfg.sync_every == 0
        ):
            try:
                self._sync_replicas()
            except SplitError as exc:  # a sick replica must not stop this one's clients
                log.error(
                    "replica %d: LoRA sync at step %d failed: %s", self.cfg.replica, self.step, exc
                )
        self._cond.notify_all()

    # ---------------------------------------------------------------- hierarchical averaging

    def lora_state(self) -> dict[str, torch.Tensor]:
        """What a sync averages: the LoRA weights, and with ``sync="adam"`` Adam's moments."""
        state = {k: v.detach().cpu().clone() for k, v in self.params.items()}
        if self.cfg.sync == "adam":
            for k, p in self.params.items():
                moments = self.optimizer.state.get(p, {})
                for m in ADAM_MOMENTS:  # zeros before the first step (Adam's own initial value)
                    v = moments[m].detach().cpu().clone() if m in moments else torch.zeros_like(p)
                    state[f"{k}{MOMENT_SEP}{m}"] = v.cpu()
        return state

    def load_lora_state(self, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for k, p in self.params.items():
                p.copy_(state[k])
                moments = self.optimizer.state.get(p, {})
                for m in ADAM_MOMENTS:
                    if m in moments and f"{k}{MOMENT_SEP}{m}" in state:
                        moments[m].copy_(state[f"{k}{MOMENT_SEP}{m}"])

    def _expected_sync_names(self) -> set[str]:
        names = set(self.params)
        if self.cfg.sync == "adam":
            names |= {f"{k}{MOMENT_SEP}{m}" for k in self.params for m in ADAM_MOMENTS}
        return names

    def _allreduce_grads(self, clients: int) -> int:
        """Replace this replica's (client-averaged) LoRA gradient by the mean over every
        replica's clients; return how many clients contributed in all."""
        grads = {
            k: (p.grad if p.grad is not None else torch.zeros_like(p)).detach().cpu()
            for k, p in self.params.items()
        }
        mean, total = self._exchange(grads, clients, self.step + 1)
        with torch.no_grad():
            for k, p in self.params.items():
                p.grad = mean[k].to(p.device).clone()
        self.stats["syncs"] += 1
        return total

    def _sync_aead(self) -> AESGCM:
        assert self.cfg.sync_key_hex is not None
        return AESGCM(bytes.fromhex(self.cfg.sync_key_hex))

    def _seal_sync(self, replica: int, step: int, state: dict[str, torch.Tensor]) -> bytes:
        nonce = secrets.token_bytes(12)
        t0 = time.thread_time()
        ct = self._sync_aead().encrypt(nonce, wire.pack(state), f"sync|{replica}|{step}".encode())
        self.stats["sync_crypto_seconds"] += time.thread_time() - t0
        head = json.dumps({"replica": replica, "step": step}).encode()
        return len(head).to_bytes(4, "big") + head + nonce + ct

    def _open_sync(self, body: bytes) -> tuple[int, int, dict[str, torch.Tensor]]:
        try:
            hlen = int.from_bytes(body[:4], "big")
            head = json.loads(body[4 : 4 + hlen])
            replica, step = int(head["replica"]), int(head["step"])
        except (ValueError, KeyError, TypeError) as exc:
            raise SplitProtocolError(f"malformed sync message: {exc}") from exc
        nonce, ct = body[4 + hlen : 16 + hlen], body[16 + hlen :]
        t0 = time.thread_time()
        try:
            plain = self._sync_aead().decrypt(nonce, ct, f"sync|{replica}|{step}".encode())
        except InvalidTag as exc:
            raise SplitAuthError(
                f"sync message from replica {replica} failed authentication"
            ) from exc
        finally:
            self.stats["sync_crypto_seconds"] += time.thread_time() - t0
        return replica, step, wire.unpack(plain)

    def _exchange(
        self, state: dict[str, torch.Tensor], weight: int, key: int
    ) -> tuple[dict[str, torch.Tensor], int]:
        """Send ``state`` (worth ``weight`` clients) to replica 0 under sync number ``key``
        (1, 2, ...: replays are refused); get the weighted mean over replicas back."""
        state = {**state, WEIGHT_KEY: torch.tensor([float(weight)], dtype=torch.float64)}
        if self.cfg.replica == 0:
            mean = dict(self._sync_submit(0, key, state))
        else:
            assert self.cfg.sync_url is not None
            body = self._seal_sync(self.cfg.replica, key, state)
            req = urllib.request.Request(self.cfg.sync_url + "/sync", data=body, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.cfg.step_timeout_s * 2) as resp:
                    _, _, mean = self._open_sync(resp.read())
            except (urllib.error.URLError, TimeoutError) as exc:
                raise SplitTimeoutError(
                    f"replica 0 at {self.cfg.sync_url} did not answer: {exc}"
                ) from exc
        total = int(mean.pop(WEIGHT_KEY).item())
        return mean, total

    def _sync_replicas(self) -> None:
        mean, _ = self._exchange(self.lora_state(), len(self.active), self.step)
        self.load_lora_state(mean)
        self.stats["syncs"] += 1

    def handle_sync(self, body: bytes) -> bytes:
        if self.cfg.replica != 0 or self.cfg.replicas < 2:
            raise SplitProtocolError("only replica 0 of a hierarchical server accepts /sync")
        replica, step, state = self._open_sync(body)
        with self._sync_cond:
            if step <= self._sync_last.get(replica, 0):
                raise SplitReplayError(f"sync from replica {replica} for step {step} is a replay")
            self._sync_last[replica] = step
        mean = self._sync_submit(replica, step, state)
        return self._seal_sync(0, step, mean)

    def _sync_submit(
        self, replica: int, step: int, state: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        with self._sync_cond:
            names = set(state) - {WEIGHT_KEY}
            if WEIGHT_KEY not in state or names != self._expected_sync_names():
                raise SplitShapeError(
                    f"sync from replica {replica} has the wrong tensor names"
                )
            self._sync_states.setdefault(step, {})[replica] = state
            deadline = time.monotonic() + self.cfg.step_timeout_s
            while step not in self._sync_result:
                states = self._sync_states[step]
                left = deadline - time.monotonic()
                if len(states) >= self.cfg.replicas or left <= 0:
                    self._sync_result[step] = weighted_mean([states[r] for r in sorted(states)])
                    self._sync_cond.notify_all()
                    break
                self._sync_cond.wait(timeout=left)
            return self._sync_result[step]


ADAM_MOMENTS = ("exp_avg", "exp_avg_sq")
MOMENT_SEP = "::"
WEIGHT_KEY = "__clients__"


def weighted_mean(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of replica states weighted by their ``WEIGHT_KEY`` (client counts);
    equal weights if no replica had a client. Same inputs in the same order -> same bits."""
    weights = [float(s[WEIGHT_KEY].item()) for s in states]
    total = sum(weights)
    coef = [w / total for w in weights] if total > 0 else [1.0 / len(states)] * len(states)
    out = {
        k: sum((c * s[k] for c, s in zip(coef, states, strict=True)), torch.zeros_like(v))
        for k, v in states[0].items()
        if k != WEIGHT_KEY
    }
    out[WEIGHT_KEY] = torch.tensor([total], dtype=torch.float64)
    return out


# -------------------------------------------------------------------- HTTP transport


class _Handler(BaseHTTPRequestHandler):
    server: _SplitHTTPServer
    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes; without TCP_NODELAY, Nagle + the peer's delayed
    # ACK can hold the body's last segment back for up to 40 ms per message
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s " + format, self.address_string(), *args)

    def _reply(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._reply(status, json.dumps(obj).encode(), "application/json")

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        core = self.server.core
        if self.path == "/hello":
            self._json(200, core.hello())
        elif self.path == "/stats":
            self._json(200, core.snapshot_stats())
        else:
            self._json(
                404, {"error": f"no such endpoint {self.path}", "type": "SplitProtocolError"}
            )

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        core = self.server.core
        routes = {
            "/forward": core.handle_forward,
            "/backward": core.handle_backward,
            "/sync": core.handle_sync,
            "/adapter": core.handle_adapter,
        }
        handler = routes.get(self.path)
        try:
            length = int(self.headers.get("Content-Length", "0"))
            if length <= 0 or length > MAX_BODY:
                raise SplitProtocolError(f"request body of {length} bytes is out of range")
            body = self.rfile.read(length)
            core.count_bytes(bytes_in=len(body))
            if handler is None:
                raise SplitProtocolError(f"no such endpoint {self.path}")
            out = handler(body)
            core.count_bytes(bytes_out=len(out))
            self._reply(200, out, "application/octet-stream")
        except SplitError as exc:
            core.record_rejection(exc)
            log.info("rejected %s: %s", self.path, exc)
            self._json(status_for_error(exc), {"error": str(exc), "type": type(exc).__name__})
        except Exception as exc:  # noqa: BLE001 - the server must outlive any one bad request
            log.exception("internal error on %s", self.path)
            self._json(500, {"error": f"internal server error: {exc}", "type": "SplitError"})


class _SplitHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, core: SplitServer) -> None:
        # Loopback only, ephemeral port: never reachable from another machine.
        super().__init__(("127.0.0.1", 0), _Handler)
        self.core = core


def build_server(cfg: ServerConfig) -> SplitServer:
    """Load the base model, keep the middle blocks with LoRA and wrap them in a server."""
    from orchestrator.split.base import load_base
    from orchestrator.split.model import split_model

    model = load_base(cfg.model_dir, cfg.lora, cfg.seed)
    parts = split_model(model, cfg.front_layers, cfg.back_layers)
    middle = parts.middle.to(cfg.device)
    full = {id(p): n for n, p in model.named_parameters()}
    names = {n: full[id(p)] for n, p in trainable(middle).items()}
    del parts, model  # the server holds only its blocks
    return SplitServer(cfg, middle, full_names=names)


def serve(cfg: ServerConfig, ready: Any) -> None:
    """Process entry point: build, bind 127.0.0.1:0, report ``(port, hello)``, serve forever."""
    from orchestrator.split.base import set_threads

    set_threads(cfg.torch_threads)
    try:
        core = build_server(cfg)
        httpd = _SplitHTTPServer(core)
    except Exception as exc:  # noqa: BLE001 - reported to the parent instead of dying silently
        ready.put(("error", f"{type(exc).__name__}: {exc}"))
        return
    ready.put(("ok", httpd.server_address[1], core.hello()))
    httpd.serve_forever(poll_interval=0.2)


class ServerProcess:
    """A server (replica) running in its own process; a context manager.

    The constructor starts the process; :meth:`wait_ready` blocks until it listens (several
    replicas can be started first and awaited together, since model loading dominates).
    """

    def __init__(
        self, cfg: ServerConfig, start_timeout_s: float = 300.0, *, wait: bool = True
    ) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self._timeout = start_timeout_s
        self._ready = ctx.Queue()
        self.proc = ctx.Process(
            target=serve, args=(cfg, self._ready), name=f"split-server-{cfg.replica}", daemon=True
        )
        self.proc.start()
        self.port = 0
        self.url = ""
        self.hello: dict[str, Any] = {}
        if wait:
            self.wait_ready()

    def wait_ready(self) -> ServerProcess:
        import queue

        try:
            msg = self._ready.get(timeout=self._timeout)
        except queue.Empty as exc:
            self.stop()
            raise SplitTimeoutError(f"split server did not start within {self._timeout} s") from exc
        if msg[0] != "ok":
            self.stop()
            raise SplitError(f"split server failed to start: {msg[1]}")
        self.port = int(msg[1])
        self.hello = msg[2]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/stats", timeout=30) as resp:
            return json.loads(resp.read())

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.terminate()
        self.proc.join(timeout=10)
        if self.proc.is_alive():  # pragma: no cover - terminate ignored
            self.proc.kill()
            self.proc.join(timeout=5)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def config_dict(cfg: ServerConfig) -> dict[str, Any]:
    """JSON-able view (for reports), without secrets."""
    d = asdict(cfg)
    d.pop("private_key_hex", None)
    d.pop("sync_key_hex", None)
    return d


__all__ = [
    "MODES",
    "ServerConfig",
    "ServerProcess",
    "SplitServer",
    "build_server",
    "config_dict",
    "serve",
]
