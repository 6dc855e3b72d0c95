"""ClientApp: train this org's LoRA adapter; with the ledger, seal, store and submit it on chain.

Heavy imports stay inside the functions: the SuperNode starts a fresh process per message.
"""

from __future__ import annotations

from flwr.app import Context, Message
from flwr.clientapp import ClientApp

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    if context.run_config.get("ledger", True):
        from orchestrator.flower import client as ledger

        return ledger.train(msg, context)
    from ledgerlora_app.plain import train_plain

    return train_plain(msg, context)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    if context.run_config.get("ledger", True):
        from orchestrator.flower import client as ledger

        return ledger.settle(msg, context)
    from flwr.app import MetricRecord, RecordDict

    return Message(content=RecordDict({"metrics": MetricRecord({"num-examples": 1})}), reply_to=msg)
