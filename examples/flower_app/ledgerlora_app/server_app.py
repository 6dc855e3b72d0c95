"""ServerApp: LedgerLoRA's strategy (``ledger = true``) or Flower's plain FedAvg on LoRA arrays.

At the end it prints one JSON line: per round, the wall seconds from configuring training to the
end of the evaluate phase and the slowest client's training call (``bench/flower_compare.py``
reads it); with the ledger, also each round's chain id, submissions and model/report CIDs.
"""

from __future__ import annotations

import json
import time

from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

app = ServerApp()


class LoraFedAvg(FedAvg):
    """Plain FedAvg on the LoRA arrays; forwards the adapter's peft config the clients report."""

    def __init__(self, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(**kwargs)
        self.adapter_config = ""
        self.stats: list[dict[str, float]] = []
        self._started = 0.0

    def configure_train(self, server_round, arrays, config, grid):  # type: ignore[no-untyped-def]
        self._started = time.perf_counter()
        if self.adapter_config:
            config["adapter-config"] = self.adapter_config
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(self, server_round, replies):  # type: ignore[no-untyped-def]
        replies = list(replies)
        learning = []
        for msg in (m for m in replies if not m.has_error()):
            if "adapter" in msg.content.config_records:
                self.adapter_config = str(msg.content.config_records.pop("adapter")["adapter-config"])
            learning.append(float(msg.content.metric_records["metrics"].pop("learning-seconds", 0.0)))
        self.stats.append({"round": server_round, "clients_learning_max_s": max(learning, default=0.0),
                           "clients_learning_sum_s": sum(learning), "aggregator_learning_s": 0.0,
                           "replies": sum(not m.has_error() for m in replies)})
        return super().aggregate_train(server_round, replies)

    def aggregate_evaluate(self, server_round, replies):  # type: ignore[no-untyped-def]
        out = super().aggregate_evaluate(server_round, replies)
        self.stats[-1]["seconds"] = time.perf_counter() - self._started
        return out


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    rounds = int(cfg["num-server-rounds"])
    if cfg.get("ledger", True):
        from orchestrator.flower.strategy import LedgerFedAvg

        strategy = LedgerFedAvg.from_context(dict(cfg))
        strategy.start(grid=grid, initial_arrays=ArrayRecord(), num_rounds=rounds)
        print(json.dumps({"ledger_rounds": [vars(r) for r in strategy.finalized], "round_stats": strategy.stats}),
              flush=True)
        return
    nodes = int(cfg.get("min-nodes", 2))
    plain = LoraFedAvg(min_train_nodes=nodes, min_available_nodes=nodes, min_evaluate_nodes=nodes)
    plain.start(grid=grid, initial_arrays=ArrayRecord(), num_rounds=rounds,
                train_config=ConfigRecord(), evaluate_config=ConfigRecord())
    print(json.dumps({"round_stats": plain.stats}), flush=True)
