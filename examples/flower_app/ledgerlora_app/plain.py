"""The ClientApp's training without the ledger: what a Flower user has before adding LedgerLoRA.

The global LoRA arrays arrive in the message; the org continues from them for the configured
steps on its own texts and replies with its arrays and sample count (Flower's FedAvg averages
them). The same trainer as the ledger path (``orchestrator.learning.train_adapter``), so the two
differ only in what happens around training.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict


def train_plain(msg: Message, context: Context) -> Message:
    from orchestrator.learning.api import Adapter, TrainConfig, load_org_data, read_adapter, train_adapter, write_adapter
    from orchestrator.learning.models import model_id

    cfg = context.run_config
    node = context.node_config
    model = str(cfg.get("ledger-model", "tiny"))
    from orchestrator.learning.data import TOPICS

    org = node.get("ledger-org") or TOPICS[int(node.get("partition-id", 0)) % len(TOPICS)]
    texts = load_org_data(str(org)).train
    train_cfg = TrainConfig(steps=int(cfg.get("ledger-steps", 1)), seq_len=int(cfg.get("ledger-seq-len", 64)),
                            batch_size=int(cfg.get("ledger-batch-size", 4)))
    arrays = msg.content.array_records.get("arrays", ArrayRecord())
    config = msg.content.config_records.get("config", ConfigRecord())
    with tempfile.TemporaryDirectory() as tmp:
        init = None
        if len(arrays) and "adapter-config" in config:
            import torch

            tensors = {key: torch.from_numpy(array.numpy().copy()) for key, array in arrays.items()}
            init = write_adapter(Adapter(None, json.loads(str(config["adapter-config"])), tensors,
                                         {"base_model": model_id(model), "num_samples": len(texts)}),
                                 Path(tmp) / "global")
        started = time.perf_counter()
        result = train_adapter(model, texts, train_cfg.for_round(int(config.get("server-round", 1)) - 1),
                               Path(tmp) / "local", init_adapter=init, progress=False)
        learning = time.perf_counter() - started
        adapter = read_adapter(result.adapter_dir)
    content = RecordDict({
        "arrays": ArrayRecord(torch_state_dict=adapter.tensors),
        "metrics": MetricRecord({"num-examples": int(result.num_samples), "train-loss": float(result.final_loss),
                                 "learning-seconds": learning}),
        "adapter": ConfigRecord({"adapter-config": json.dumps(adapter.config, sort_keys=True)}),
    })
    return Message(content=content, reply_to=msg)
