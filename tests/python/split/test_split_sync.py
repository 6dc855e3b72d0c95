"""Hierarchical replicas kept in step, and per-client server LoRA (exact forgetting).

Real server processes on 127.0.0.1 (one per replica), clients in threads of the test process.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
from split_helpers import run_threads, token_batch

from orchestrator.learning.adapters import tensors_sha256
from orchestrator.split.base import load_base
from orchestrator.split.client import SplitClient
from orchestrator.split.crypto import KeyPair
from orchestrator.split.model import LoraSpec, split_model
from orchestrator.split.runner import client_adapter

LORA = LoraSpec(r=4, alpha=8)
SEED = 5
LR = 1e-2
STEPS = 3
DATA = {
    "a": [token_batch(s, 2, [12, 7]) for s in range(STEPS)],
    "b": [token_batch(10 + s, 1, [9]) for s in range(STEPS)],
    "c": [token_batch(20 + s, 2, [5, 11]) for s in range(STEPS)],
}
KEYS = {c: KeyPair.from_seed(bytes([i + 1]) * 32) for i, c in enumerate(DATA)}


def _server(factory: Any, tiny_dir: Path, cids: list[str], **kw: Any) -> Any:
    return factory(
        model_dir=str(tiny_dir),
        clients={c: KEYS[c].public_bytes.hex() for c in cids},
        lora=LORA,
        seed=SEED,
        lr=LR,
        step_timeout_s=60,
        **kw,
    )


def _replicas(factory: Any, tiny_dir: Path, groups: list[list[str]], **kw: Any) -> list[Any]:
    key = secrets.token_hex(32)
    first = _server(factory, tiny_dir, groups[0], replica=0, replicas=len(groups),
                    sync_key_hex=key, **kw)
    rest = [
        _server(factory, tiny_dir, g, replica=i, replicas=len(groups), sync_key_hex=key,
                sync_url=first.url, **kw)
        for i, g in enumerate(groups[1:], start=1)
    ]
    return [first, *rest]


def _train(tiny_dir: Path, served_by: dict[str, Any], adapters: bool = False) -> dict[str, Any]:
    """Every client trains STEPS steps in its own thread; losses (and its full adapter).

    Models are loaded here, in the main thread: transformers' loading is not thread-safe."""
    setup = {}
    for cid, srv in served_by.items():
        model = load_base(tiny_dir, LORA, SEED)
        parts = split_model(model)
        client = SplitClient(cid, KEYS[cid], srv.url, parts.front, parts.back, lr=LR,
                             timeout_s=60,
                             expected_server_public=bytes.fromhex(srv.hello["server_public"]))
        setup[cid] = (model, parts, client)

    def run(cid: str) -> Any:
        model, parts, client = setup[cid]
        losses = [client.train_step(s, *DATA[cid][s]).loss for s in range(STEPS)]
        return (losses, client_adapter(model, parts, client, STEPS)) if adapters else losses

    out = run_threads({c: (lambda c=c: run(c)) for c in served_by})
    errors = {c: v for c, v in out.items() if isinstance(v, Exception)}
    assert not errors, errors
    return out


def test_hierarchical_gradient_sync_trains_exactly_like_one_batched_server(
    tiny_dir: Path, server_factory: Any
) -> None:
    one = _server(server_factory, tiny_dir, ["a", "b", "c"], mode="batched")
    batched = _train(tiny_dir, {c: one for c in DATA})
    reps = _replicas(server_factory, tiny_dir, [["a", "c"], ["b"]], mode="batched", sync="grads")
    hier = _train(tiny_dir, {"a": reps[0], "b": reps[1], "c": reps[0]})

    for c in DATA:  # the all-reduce weights each replica's gradient by its client count
        assert hier[c] == pytest.approx(batched[c], abs=1e-5), c
    stats = [r.stats() for r in reps]
    assert [s["syncs"] for s in stats] == [STEPS, STEPS]
    assert stats[0]["lora_sha256"] == stats[1]["lora_sha256"]
    assert stats[0]["adam_sha256"] == stats[1]["adam_sha256"]


def test_adam_sync_averages_the_optimizer_moments_with_the_weights(
    tiny_dir: Path, server_factory: Any
) -> None:
    """Each replica trains on different clients (different gradients, so different Adam
    moments) and after every sync both hold the same weights and the same moments."""
    reps = _replicas(server_factory, tiny_dir, [["a"], ["b"]], mode="batched", sync="adam",
                     sync_every=1)
    _train(tiny_dir, {"a": reps[0], "b": reps[1]})
    stats = [r.stats() for r in reps]
    assert [s["syncs"] for s in stats] == [STEPS, STEPS]
    assert stats[0]["lora_sha256"] == stats[1]["lora_sha256"]
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # sha256(b"")
    assert stats[0]["adam_sha256"] == stats[1]["adam_sha256"] != empty


def test_per_client_server_lora_makes_a_clients_adapter_independent_of_the_others(
    tiny_dir: Path, server_factory: Any
) -> None:
    """Forgetting b is a re-merge: a's and c's full adapters from a run with b are bit-equal to
    those of a run without b, and differ from what one shared server LoRA gives."""
    with_b = _server(server_factory, tiny_dir, ["a", "b", "c"], mode="sequential",
                     server_lora="per-client")
    full = _train(tiny_dir, {c: with_b for c in DATA}, adapters=True)
    without = _server(server_factory, tiny_dir, ["a", "c"], mode="sequential",
                      server_lora="per-client")
    rest = _train(tiny_dir, {c: without for c in ("a", "c")}, adapters=True)
    shared = _server(server_factory, tiny_dir, ["a", "b", "c"], mode="sequential")
    mixed = _train(tiny_dir, {c: shared for c in DATA}, adapters=True)

    for c in ("a", "c"):
        assert full[c][0] == rest[c][0], c  # identical loss trajectories
        assert tensors_sha256(full[c][1]) == tensors_sha256(rest[c][1]), c
        assert tensors_sha256(full[c][1]) != tensors_sha256(mixed[c][1]), c
    # every block's LoRA is in each adapter, under peft's saved names
    assert any(".layers.0." in k for k in full["a"][1])
    assert any(".layers.2." in k for k in full["a"][1])
    assert all(k.startswith("base_model.model.model.layers.") for k in full["a"][1])
    stats = with_b.stats()
    assert stats["lora_bytes"]["banks"] == 3
    assert stats["lora_bytes"]["total"] == 3 * shared.stats()["lora_bytes"]["total"]
