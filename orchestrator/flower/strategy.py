"""A Flower strategy for the ServerApp: rounds on chain, exact stacking, scores, rewards.

:class:`LedgerFedAvg` keeps Flower's FedAvg loop (node sampling, ``Grid.send_and_receive``,
the train and evaluate phases, ``Result``) and changes what a round is:

- ``configure_train``: the aggregator daemon opens the round on chain (config document on
  IPFS, its CID on chain); the train message carries only the chain's round id. No weights
  travel through Flower: each ClientApp trains its LoRA adapter, seals it, stores it and
  submits its CID from the org's own wallet (:mod:`orchestrator.flower.client`).
- ``aggregate_train``: checks each reply's CID against the ``UpdateSubmitted`` event on chain
  (the chain is authoritative, a reply only says "done"), closes the round and runs the
  aggregator daemon's own ``RoundClosed`` handler: fetch, decrypt, validate (rejecting bad
  submissions on chain), merge every member's latest valid adapter by exact stacking, score,
  allocate rewards, store the merged model and the round report, ``finalizeRound``.
- ``configure_evaluate``: asks each org that submitted to settle the round: rebuild the
  rewards tree from the report, check its root against the chain and claim (Flower's evaluate
  phase, so the message count per round is the same as a plain FedAvg app's).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from logging import INFO, WARNING
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg
from flwr.supercore import log

from orchestrator.daemons.aggregator import AggregatorDaemon, RoundPlan
from orchestrator.daemons.roundconfig import RoundConfig
from orchestrator.flower.onchain import CID_KEY, ORG_KEY, ROUND_KEY, chain_logs, submissions_on_chain
from orchestrator.storage.cid import bytes32_to_cid

@dataclass(frozen=True)
class FinalizedRound:
    """What the strategy records per Flower round (also logged by the ServerApp)."""

    flower_round: int
    chain_round: int
    submissions: dict[str, str]  # org address -> adapter CID, as on chain
    model_cid: str
    report_cid: str


class LedgerFedAvg(FedAvg):
    """FedAvg's loop with LedgerLoRA's round: see the module docstring.

    ``aggregator`` is an :class:`AggregatorDaemon` acting from the aggregator's wallet (build it
    with :meth:`from_context` in a ServerApp). ``settle``: run the evaluate phase in which orgs
    check the rewards root and claim (default True).
    """

    def __init__(self, aggregator: AggregatorDaemon, *, min_nodes: int = 2, settle: bool = True,
                 **fedavg: Any) -> None:
        fedavg.setdefault("min_train_nodes", min_nodes)
        fedavg.setdefault("min_available_nodes", min_nodes)
        fedavg.setdefault("min_evaluate_nodes", min_nodes if settle else 0)
        fedavg.setdefault("fraction_evaluate", 1.0 if settle else 0.0)
        super().__init__(**fedavg)
        self.aggregator = aggregator
        self.settle = settle
        self.chain_round: dict[int, int] = {}
        self.submitters: dict[int, list[int]] = {}
        self.finalized: list[FinalizedRound] = []
        #: per Flower round: wall seconds from opening to the end of settling, the slowest org's
        #: training call, the aggregator's learning work (merge, scoring, evaluation)
        self.stats: list[dict[str, float]] = []
        self._started: dict[int, float] = {}

    @classmethod
    def from_context(cls, run_config: dict[str, Any], **kwargs: Any) -> LedgerFedAvg:
        """Build the aggregator exactly as ``python -m orchestrator daemon --role aggregator`` does,
        with the round settings from the run config (``ledger-model``, ``ledger-steps``,
        ``ledger-seq-len``, ``ledger-batch-size``, ``ledger-mode``, ``num-server-rounds``)."""
        from orchestrator.daemons.cli import build_daemon
        from orchestrator.flower.settings import daemon_args
        from orchestrator.learning.api import TrainConfig

        args = daemon_args("aggregator", run_config)
        aggregator = build_daemon(args)
        base = aggregator.plan.config
        train = TrainConfig(steps=args.steps, seq_len=int(run_config.get("ledger-seq-len", 64)),
                            batch_size=int(run_config.get("ledger-batch-size", 4)))
        config = RoundConfig(model=args.model, mode=str(run_config.get("ledger-mode", "isolated")),
                             train=train.to_dict(), aggregator_keys=base.aggregator_keys,
                             eval_seq_len=int(run_config.get("ledger-seq-len", base.eval_seq_len)))
        aggregator.plan = RoundPlan(rounds=args.rounds, duration_s=args.duration,
                                    reward_budget=int(args.budget * 10**18), config=config)
        if "min_nodes" not in kwargs:
            members = int(aggregator.node.contract("Membership").functions.memberCount().call())
            kwargs["min_nodes"] = int(run_config.get("ledger-min-nodes", members))
        return cls(aggregator, **kwargs)

    # -- train: open on chain, orgs submit from their wallets ---------------------------------
    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        self._started[server_round] = time.perf_counter()
        round_id = self.aggregator.open_round()
        self.chain_round[server_round] = round_id
        log(INFO, "LedgerLoRA: round %s opened on chain as round %s", server_round, round_id)
        config[ROUND_KEY] = round_id
        messages = list(super().configure_train(server_round, ArrayRecord(), config, grid))
        self.submitters[server_round] = [m.metadata.dst_node_id for m in messages]
        return messages

    def aggregate_train(self, server_round: int, replies: Iterable[Message]
                        ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        valid, _ = self._check_and_log_replies(replies, is_train=True, validate=False)
        round_id = self.chain_round[server_round]
        node = self.aggregator.node
        on_chain = {org.lower(): cid for org, cid in submissions_on_chain(node, round_id).items()}
        confirmed = []
        for msg in valid:
            cfg = msg.content.config_records.get("ledger", ConfigRecord())
            org, cid = str(cfg.get(ORG_KEY, "")), str(cfg.get(CID_KEY, ""))
            if on_chain.get(org.lower()) == cid:
                confirmed.append(msg.metadata.src_node_id)
            else:
                log(WARNING, "LedgerLoRA: node %s says %s submitted %s in round %s, the chain says %s; ignored",
                    msg.metadata.src_node_id, org, cid, round_id, on_chain.get(org.lower()))
        self.submitters[server_round] = confirmed
        learning = [float(m.content.metric_records["metrics"].get("learning-seconds", 0.0))
                    for m in valid if "metrics" in m.content.metric_records]
        rounds = node.contract("Rounds")
        receipt = node.send(rounds.functions.closeRound(round_id))
        closed = rounds.events.RoundClosed().process_receipt(receipt)[0]
        self.aggregator.record("closed", round=round_id, submissions=len(on_chain))
        self.aggregator.on_round_closed(closed)
        finalized = chain_logs(node, "RoundFinalized", round_id)[-1]["args"]
        record = FinalizedRound(server_round, round_id, dict(sorted(submissions_on_chain(node, round_id).items())),
                                bytes32_to_cid(bytes(finalized["modelCid"])),
                                bytes32_to_cid(bytes(finalized["metricsHash"])))
        self.finalized.append(record)
        log(INFO, "LedgerLoRA: round %s finalized on chain: %s submissions, model %s, report %s",
            round_id, len(record.submissions), record.model_cid, record.report_cid)
        done = [a for a in self.aggregator.actions if a["action"] == "finalized" and a["round"] == round_id]
        metrics = {"chain-round": round_id, "submissions": len(record.submissions)}
        if done:
            metrics["val-perplexity"] = float(done[-1]["val_perplexity"])
        self.stats.append({"round": server_round, "chain_round": round_id,
                           "clients_learning_max_s": max(learning, default=0.0), "replies": len(confirmed),
                           "aggregator_learning_s": float(done[-1]["learning_seconds"]) if done else 0.0})
        if not self.settle:
            self._round_done(server_round)
        return None, MetricRecord(metrics)

    def _round_done(self, server_round: int) -> None:
        for row in self.stats:
            if row["round"] == server_round:
                row["seconds"] = time.perf_counter() - self._started[server_round]

    # -- evaluate: orgs check the rewards root and claim ----------------------------------------
    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                           grid: Grid) -> Iterable[Message]:
        nodes = self.submitters.get(server_round, [])
        if not self.settle or not nodes:
            return []
        config[ROUND_KEY] = self.chain_round[server_round]
        config["server-round"] = server_round
        return self._construct_messages(RecordDict({self.configrecord_key: config}), nodes, MessageType.EVALUATE)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        valid, _ = self._check_and_log_replies(replies, is_train=False, validate=False)
        self._round_done(server_round)
        if not valid:
            return None
        claimed = [float(m.content.metric_records["metrics"].get("reward-lls", 0.0)) for m in valid]
        return MetricRecord({"claims": len(claimed), "rewards-lls": sum(claimed)})
