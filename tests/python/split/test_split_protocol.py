"""The protocol across processes: a real server process on 127.0.0.1, clients over HTTP.

Clients run in threads of the test process (each with its own key, parts and optimizer); the
server is a separate process, so every activation and gradient really crosses a socket.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from split_helpers import run_threads, token_batch

from orchestrator.split import wire
from orchestrator.split.base import load_base
from orchestrator.split.client import SplitClient, http_post
from orchestrator.split.crypto import KeyPair, SessionChannel, derive_session_keys
from orchestrator.split.errors import (
    SplitAuthError,
    SplitProtocolError,
    SplitReplayError,
    SplitShapeError,
)
from orchestrator.split.model import LoraSpec, lm_labels, split_model
from orchestrator.split.runner import centralized_losses

LORA = LoraSpec(r=4, alpha=8)
SEED = 3
LR = 1e-2


def _client(tiny_dir: Path, cid: str, kp: KeyPair, srv: Any, **kw: Any) -> SplitClient:
    parts = split_model(load_base(tiny_dir, LORA, SEED))
    return SplitClient(
        cid,
        kp,
        srv.url,
        parts.front,
        parts.back,
        lr=LR,
        timeout_s=60,
        expected_server_public=bytes.fromhex(srv.hello["server_public"]),
        **kw,
    )


def _server_kwargs(tiny_dir: Path, keys: dict[str, KeyPair], **kw: Any) -> dict[str, Any]:
    return dict(
        model_dir=str(tiny_dir),
        clients={c: k.public_bytes.hex() for c, k in keys.items()},
        lora=LORA,
        seed=SEED,
        lr=LR,
        **kw,
    )


def test_one_client_split_training_equals_centralized_training_and_lowers_the_loss(
    tiny_dir: Path, server_factory: Any
) -> None:
    keys = {"a": KeyPair.generate()}
    srv = server_factory(**_server_kwargs(tiny_dir, keys, mode="sequential"))
    client = _client(tiny_dir, "a", keys["a"], srv)
    batch = token_batch(11, 2, [16, 9])
    steps = 5

    split_losses = [client.train_step(s, *batch).loss for s in range(steps)]
    central = centralized_losses(tiny_dir, [[batch] * steps], LORA, SEED, LR)

    # same data, same seeds, same Adam: the split run follows the centralised trajectory
    assert split_losses == pytest.approx(central, abs=1e-4)
    assert split_losses[-1] < split_losses[0] - 0.05


def test_batched_server_trains_exactly_like_the_sequential_server(
    tiny_dir: Path, server_factory: Any
) -> None:
    keys = {"a": KeyPair.generate(), "b": KeyPair.generate()}
    data = {
        "a": [token_batch(s, 2, [12, 7]) for s in range(3)],
        "b": [token_batch(10 + s, 1, [5]) for s in range(3)],
    }  # different lengths: padding
    losses: dict[str, dict[str, Any]] = {}
    stats = {}
    for mode in ("sequential", "batched"):
        srv = server_factory(**_server_kwargs(tiny_dir, keys, mode=mode, step_timeout_s=60))
        clients = {c: _client(tiny_dir, c, keys[c], srv) for c in keys}
        losses[mode] = run_threads(
            {
                c: (lambda c=c: [clients[c].train_step(s, *data[c][s]).loss for s in range(3)])
                for c in keys
            }
        )
        stats[mode] = srv.stats()
        srv.stop()

    for c in keys:
        assert losses["batched"][c] == pytest.approx(losses["sequential"][c], abs=1e-5)
    assert stats["sequential"]["forward_passes"] == 6  # one pass per client and step
    assert stats["batched"]["forward_passes"] == 3  # one pass per step for both clients
    assert stats["batched"]["lora_sha256"] != ""  # (digest available for replica checks)


def test_captured_wire_bytes_contain_no_token_ids_or_labels(
    tiny_dir: Path, server_factory: Any
) -> None:
    server_key = KeyPair.generate()
    keys = {"a": KeyPair.generate()}
    srv = server_factory(
        **_server_kwargs(
            tiny_dir, keys, mode="sequential", private_key_hex=server_key.private_bytes().hex()
        )
    )
    client = _client(tiny_dir, "a", keys["a"], srv, keep_wire=True)
    ids, mask = token_batch(21, 2, [24, 24])
    client.train_step(0, ids, mask)
    labels = lm_labels(ids, mask)

    # An eavesdropper with the captured bytes: no id sequence in any integer encoding.
    captured = client.wire.sent + client.wire.received
    assert len(captured) == 4 and client.wire.bytes_sent > 0
    needles = []
    for row in torch.cat([ids, labels]):
        for dtype in (torch.int64, torch.int32, torch.int16):
            needles.append(row[:6].to(dtype).numpy().tobytes())
        needles.append(" ".join(str(int(x)) for x in row[:6]).encode())
    for blob in captured:
        assert not any(n in blob for n in needles)

    # Even the server (holding the session key) receives only activations, mask, positions.
    hello = srv.hello
    keys_s = derive_session_keys(
        server_key,
        keys["a"].public_bytes,
        client_id="a",
        client_public=keys["a"].public_bytes,
        server_public=server_key.public_bytes,
        session_id=bytes.fromhex(hello["session_id"]),
    )
    server_end = SessionChannel("a", *keys_s, is_server=True)
    sent = [wire.unpack(server_end.open(env)[1]) for env in client.wire.sent]
    assert set(sent[0]) == {"hidden", "mask", "positions"} and set(sent[1]) == {"grad"}
    for tensors in sent:
        for t in tensors.values():
            plain = wire.pack({"t": t})
            assert not any(n in plain for n in needles[:3])
            if t.shape == ids.shape:
                assert not torch.equal(t, ids) and not torch.equal(t, labels)


def test_bad_messages_are_refused_and_the_server_keeps_serving(
    tiny_dir: Path, server_factory: Any
) -> None:
    keys = {"a": KeyPair.generate()}
    srv = server_factory(**_server_kwargs(tiny_dir, keys, mode="sequential"))
    alice = _client(tiny_dir, "a", keys["a"], srv, keep_wire=True)
    batch = token_batch(31, 1, [10])
    alice.train_step(0, *batch)
    assert alice.channel is not None

    # not on the allow-list
    mallory = _client(tiny_dir, "mallory", KeyPair.generate(), srv)
    with pytest.raises(SplitAuthError, match="not on this server's allow-list"):
        mallory.train_step(0, *batch)
    # alice's name, someone else's key
    impostor = _client(tiny_dir, "a", KeyPair.generate(), srv)
    with pytest.raises(SplitAuthError, match="failed authentication"):
        impostor.train_step(1, *batch)
    # a captured message sent again
    with pytest.raises(SplitReplayError, match="replayed"):
        http_post(srv.url + "/forward", alice.wire.sent[0], 30)
    # authentic but wrong hidden size
    bad = {
        "hidden": torch.zeros(1, 10, 63),
        "mask": torch.ones(1, 10, dtype=torch.long),
        "positions": torch.arange(10)[None],
    }
    with pytest.raises(SplitShapeError, match="dim 2 must be 64"):
        http_post(srv.url + "/forward", alice.channel.seal(1, "forward", wire.pack(bad)), 30)
    # authentic, right shapes, but a step that is already over
    with pytest.raises(SplitProtocolError, match="sent step 0 but the server is at step 1"):
        alice.train_step(0, *batch)

    # a step far ahead is refused at once (it must not make the server wait and drop others)
    with pytest.raises(SplitProtocolError, match="at most one step ahead"):
        alice.train_step(5, *batch)

    loss = alice.train_step(1, *batch).loss  # alice's session and training are unaffected
    assert torch.isfinite(torch.tensor(loss))
    stats = srv.stats()
    assert stats["rejected"] == {
        "SplitAuthError": 2,
        "SplitReplayError": 1,
        "SplitShapeError": 1,
        "SplitProtocolError": 2,
    }
    assert stats["steps"] == 2 and stats["dropped"] == {}


def test_a_client_that_drops_out_mid_step_is_dropped_and_the_others_finish(
    tiny_dir: Path, server_factory: Any
) -> None:
    keys = {c: KeyPair.generate() for c in ("a", "b", "c")}
    srv = server_factory(**_server_kwargs(tiny_dir, keys, mode="batched", step_timeout_s=3))
    clients = {c: _client(tiny_dir, c, keys[c], srv) for c in keys}
    data = {c: token_batch(40 + i, 1, [8]) for i, c in enumerate(keys)}

    def dropper() -> None:
        # client c sends its activations for step 0 and then goes silent (a crash mid-step)
        cl = clients["c"]
        cl.connect()
        ids, mask = data["c"]
        h, pos = cl.front(ids, mask)
        cl._exchange(
            "/forward", 0, "forward", {"hidden": h.detach(), "mask": mask, "positions": pos}
        )

    results = run_threads(
        {
            "a": lambda: [clients["a"].train_step(s, *data["a"]).loss for s in range(3)],
            "b": lambda: [clients["b"].train_step(s, *data["b"]).loss for s in range(3)],
            "c": dropper,
        }
    )

    assert len(results["a"]) == 3 and len(results["b"]) == 3, results
    stats = srv.stats()
    assert stats["dropped"] == {"c": 0} and stats["active"] == ["a", "b"] and stats["steps"] == 3
    with pytest.raises(SplitProtocolError, match="dropped at step 0"):
        clients["c"].train_step(3, *data["c"])
