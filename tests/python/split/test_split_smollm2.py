"""The real pretrained model: SmolLM2-135M split 1 / 28 / 1 blocks, server in its own process."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.split.base import load_base, split_model_dir
from orchestrator.split.client import SplitClient
from orchestrator.split.crypto import KeyPair
from orchestrator.split.model import LoraSpec, split_model
from orchestrator.split.runner import client_batches

LORA = LoraSpec(r=8, alpha=16)


@pytest.mark.slow
def test_a_few_split_steps_lower_the_smollm2_loss(server_factory: Any) -> None:
    folder = split_model_dir("smollm2")  # converted once by the learning layer, then cached
    (batch,) = client_batches(folder, clients=1, steps=1, batch_size=2, seq_len=24, seed=0)[0]
    key = KeyPair.generate()
    srv = server_factory(
        model_dir=str(folder),
        clients={"org": key.public_bytes.hex()},
        mode="sequential",
        lora=LORA,
        seed=0,
        lr=2e-3,
        torch_threads=1,
    )
    model = load_base(folder, LORA, seed=0)
    parts = split_model(model)
    assert len(parts.middle.layers) == 28  # the server holds all but the first and last block
    client = SplitClient(
        "org",
        key,
        srv.url,
        parts.front,
        parts.back,
        lr=2e-3,
        timeout_s=120,
        expected_server_public=bytes.fromhex(srv.hello["server_public"]),
    )

    losses = [client.train_step(step, *batch).loss for step in range(3)]

    assert losses[-1] < losses[0] - 0.05, losses
    assert srv.stats()["steps"] == 3
