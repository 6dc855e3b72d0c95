"""What a ClientApp on an org's SuperNode calls: train + seal + store + submit, then settle.

Each helper builds the org's trainer daemon exactly as ``python -m orchestrator daemon --role
trainer`` would (key from the SuperNode's environment, data from ``ledger-org``/``ledger-data``
in the node config, state in ``ledger-state-dir``) and runs that daemon's own handler on the
event it reads from the chain, not on anything the ServerApp sent: the message only names the
chain's round id. So a Flower-driven org trains, seals and submits from its own wallet, and
claims only after checking the rewards root, with the same idempotency as the daemon (a
retried message never submits or claims twice).

Usage in a ClientApp module (keep heavy imports out of its top level: Flower starts a fresh
process for every message)::

    from flwr.clientapp import ClientApp
    from orchestrator.flower import client as ledger

    app = ClientApp()

    @app.train()
    def train(msg, context):
        return ledger.train(msg, context)

    @app.evaluate()
    def evaluate(msg, context):
        return ledger.settle(msg, context)
"""

from __future__ import annotations

from typing import Any

from orchestrator.errors import DaemonError
from orchestrator.flower.onchain import CID_KEY, ORG_KEY, ROUND_KEY, chain_logs, submission_of



def trainer_for(context: Any) -> Any:
    """The org's :class:`~orchestrator.daemons.trainer.TrainerDaemon`, from Flower's context."""
    from orchestrator.daemons.cli import build_daemon
    from orchestrator.flower.settings import daemon_args

    args = daemon_args("trainer", dict(context.run_config), dict(context.node_config))
    if not args.org and not args.data:
        raise DaemonError("this SuperNode has no org data: start it with --node-config "
                          "'ledger-org=\"<topic>\"' or 'ledger-data=\"<folder>\"'")
    trainer = build_daemon(args)
    trainer.progress = False  # no terminal behind a SuperNode
    return trainer


def _round_of(msg: Any) -> int:
    config = msg.content.config_records.get("config")
    if config is None or ROUND_KEY not in config:
        raise DaemonError(f"message {msg.metadata.message_id} has no '{ROUND_KEY}' in its config record: "
                          "was it sent by orchestrator.flower.strategy.LedgerFedAvg?")
    return int(config[ROUND_KEY])


def train_and_submit(trainer: Any, round_id: int) -> tuple[str, int]:
    """Run the trainer's ``RoundOpened`` handler on the chain's event; return (CID, samples) on chain."""
    opened = chain_logs(trainer.node, "RoundOpened", round_id)
    if not opened:
        raise DaemonError(f"round {round_id} was never opened on chain; the ServerApp and this SuperNode "
                          "use different chains or manifests")
    trainer.on_round_opened(opened[-1])
    submitted = submission_of(trainer.node, round_id, trainer.node.address)
    if submitted is None:
        raise DaemonError(f"round {round_id}: no submission from {trainer.node.address} on chain "
                          "(the round was no longer open; see the trainer's log)")
    return submitted


def train(msg: Any, context: Any) -> Any:
    """Flower train message -> train, seal, store, ``submitUpdate``; reply with the CID on chain."""
    from flwr.app import ConfigRecord, Message, MetricRecord, RecordDict

    trainer = trainer_for(context)
    round_id = _round_of(msg)
    cid, samples = train_and_submit(trainer, round_id)
    done = [a for a in trainer.actions if a["action"] == "submitted"]
    metrics: dict[str, float | int] = {"num-examples": samples, "learning-seconds": 0.0}
    if done:
        metrics["train-loss"] = float(done[-1]["loss"])
        metrics["learning-seconds"] = float(done[-1]["learning_seconds"])
    content = RecordDict({
        "metrics": MetricRecord(metrics),
        "ledger": ConfigRecord({ORG_KEY: trainer.node.address, CID_KEY: cid, ROUND_KEY: round_id}),
    })
    return Message(content=content, reply_to=msg)


def settle(msg: Any, context: Any) -> Any:
    """Flower evaluate message -> check the round's rewards root against the chain and claim."""
    from flwr.app import Message, MetricRecord, RecordDict

    trainer = trainer_for(context)
    round_id = _round_of(msg)
    finalized = chain_logs(trainer.node, "RoundFinalized", round_id)
    if not finalized:
        raise DaemonError(f"round {round_id} is not finalized on chain yet; nothing to claim")
    trainer.on_round_finalized(finalized[-1])
    claimed = sum(int(a["amount"]) for a in trainer.actions if a["action"] == "claimed")
    metrics = {"num-examples": 1, "reward-lls": claimed / 10**18}
    return Message(content=RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)
