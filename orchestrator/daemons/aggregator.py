"""Aggregator daemon: opens rounds, closes them, merges, scores, rewards and finalizes.

On ``RoundClosed`` it fetches every submission (from the events, checked against the
commitments Rounds holds), verifies it (CID, decryption, the sealed header's binding to the
submitting org and round, validation) and rejects a bad one on chain (``rejectSubmission``)
without failing the round; merges each member's latest live adapter by exact stacking, weighted
by sample counts clipped to the round's cap; scores this round's contributions by leave-one-out
on its public validation set; turns scores into rewards and a Merkle root; stores the merged
model and a round report; ``finalizeRound`` with the rewards tree's total (the rest of the
budget returns to the pool). The report's CID is the ``metricsHash`` on chain, so anyone can
fetch it, rebuild the rewards tree and check the root and the total.

A round that reaches its deadline with no submission is cancelled (its budget returns to the
pool) and the next one opened; cancelled rounds do not count towards the plan's rounds.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.chain.submissions import reader_for
from orchestrator.daemons import modelbook
from orchestrator.daemons.base import Daemon, Handler, Node
from orchestrator.daemons.rewards import allocate, build_table
from orchestrator.daemons.roundconfig import RoundConfig
from orchestrator.errors import StorageError
from orchestrator.storage.cid import bytes32_to_cid, cid_to_bytes32

ROUND_NONE, ROUND_OPEN, ROUND_CLOSED, ROUND_FINALIZED, ROUND_CANCELLED = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class RoundPlan:
    """What the aggregator runs: how many rounds, how long each stays open, what it pays."""

    rounds: int = 2  # finalized rounds to run (a cancelled, empty round does not count)
    duration_s: int = 3600
    reward_budget: int = 1000 * 10**18
    config: RoundConfig | None = None
    max_samples: int = 1_000_000  # per-submission sample cap set at openRound

    def __post_init__(self) -> None:
        if not 0 < self.max_samples < 2**64:
            raise ValueError(f"max_samples must be in 1..2**64-1, got {self.max_samples}")


class AggregatorDaemon(Daemon):
    role = "aggregator"

    def __init__(
        self,
        node: Node,
        encryption_key: bytes,
        plan: RoundPlan,
        val_texts: list[str],
        *,
        name: str | None = None,
    ) -> None:
        self.encryption_key = encryption_key
        self.plan = plan
        self.val_texts = val_texts
        super().__init__(node, name or "aggregator")
        self.work = node.state_dir / "aggregator"

    def subscriptions(self) -> list[tuple[Any, str]]:
        rounds = self.node.contract("Rounds")
        return [(rounds, "RoundClosed")]

    def handlers(self) -> Mapping[str, Handler]:
        return {"RoundClosed": self.on_round_closed}

    # -- periodic: open the next round, close the open one when due ---------------------------
    def periodic(self) -> None:
        rounds = self.node.contract("Rounds")
        count = int(rounds.functions.roundCount().call())
        if count:
            state, deadline, num_submissions = rounds.functions.getRound(count).call()[:3]
        else:
            state, deadline, num_submissions = ROUND_FINALIZED, 0, 0
        if state == ROUND_OPEN:
            members = int(self.node.contract("Membership").functions.memberCount().call())
            now = self.node.w3.eth.get_block("latest")["timestamp"]
            if num_submissions == 0 and now >= deadline:
                self.cancel_round(count)
            elif num_submissions >= members or now >= deadline:
                self.node.send(rounds.functions.closeRound(count))
                self.record("closed", round=count, submissions=num_submissions, members=members)
        elif (state in (ROUND_FINALIZED, ROUND_CANCELLED) and self.plan.config is not None
              and count - self.cancelled_rounds() < self.plan.rounds):
            self.open_round()

    def cancelled_rounds(self) -> int:
        rounds = self.node.contract("Rounds")
        return len(rounds.events.RoundCancelled().get_logs(from_block=self.node.protocol.manifest.first_block))

    def cancel_round(self, round_id: int) -> None:
        """An empty round: cancel it (its budget returns to the pool); periodic opens the next."""
        self.node.send(self.node.contract("Rounds").functions.cancelRound(round_id))
        self.record("cancelled", round=round_id)

    def open_round(self) -> int:
        assert self.plan.config is not None
        rounds = self.node.contract("Rounds")
        config_cid = self.node.store.add_bytes(self.plan.config.to_bytes())
        now = self.node.w3.eth.get_block("latest")["timestamp"]
        receipt = self.node.send(
            rounds.functions.openRound(cid_to_bytes32(config_cid), now + self.plan.duration_s, self.plan.reward_budget,
                                       self.plan.max_samples)
        )
        round_id = int(rounds.events.RoundOpened().process_receipt(receipt)[0]["args"]["roundId"])
        self.record("opened", round=round_id, config_cid=config_cid)
        return round_id

    # -- round closed: verify, merge, score, reward, finalize ----------------------------------
    def on_round_closed(self, event: Any) -> None:
        rounds = self.node.contract("Rounds")
        round_id = int(event.args["roundId"])
        state, _deadline, num_submissions = rounds.functions.getRound(round_id).call()[:3]
        if state != ROUND_CLOSED:
            return  # already finalized or cancelled (a restart or duplicate delivery)
        if num_submissions == 0:
            self.cancel_round(round_id)
            return
        config = self._config_of(round_id)
        started = time.perf_counter()
        rejected = self._verify_submissions(round_id)
        inputs = modelbook.current_inputs(self.node, up_to_round=round_id)
        dirs = modelbook.fetch_inputs(self.node, inputs, self.encryption_key, self.work / "adapters")
        recipients = modelbook.merge_recipients(self.node, config.recipient_keys())
        learning_started = time.perf_counter()
        merged = modelbook.merge_and_store(self.node, inputs, dirs, recipients, self.work / f"merged-round-{round_id}")

        from orchestrator.learning.api import evaluate_perplexity, score_contributions

        this_round = {i.org for i in inputs if i.round == round_id}
        scores = score_contributions(
            config.model, dirs, merged.weights, self.val_texts,
            seq_len=config.eval_seq_len, batch_size=config.eval_batch_size,
        ) if len(dirs) > 1 else {o: 1.0 for o in dirs}
        ppl = evaluate_perplexity(config.model, merged.folder, self.val_texts,
                                  seq_len=config.eval_seq_len, batch_size=config.eval_batch_size)
        learning_seconds = time.perf_counter() - learning_started
        budget = int(rounds.functions.getRound(round_id).call()[6])
        samples = {i.org: i.num_samples for i in inputs if i.org in this_round}
        table = build_table(allocate(budget, {o: s for o, s in scores.items() if o in this_round}, samples))
        report = {
            "kind": "round-report",
            "round": round_id,
            "mode": config.mode,
            **merged.describe(),
            "rejected": rejected,
            "scores": scores,
            "rewards": table.to_json(),
            "metrics": {"val_perplexity": ppl, "aggregation_seconds": time.perf_counter() - started,
                        "learning_seconds": learning_seconds},
        }
        report_cid = modelbook.store_json(self.node, report)
        self.node.send(rounds.functions.finalizeRound(
            round_id, cid_to_bytes32(merged.cid), table.root, table.total, cid_to_bytes32(report_cid)))
        self.record("finalized", round=round_id, model_cid=merged.cid, report_cid=report_cid,
                    rejected=[r["org"] for r in rejected], val_perplexity=ppl, learning_seconds=learning_seconds)

    def _config_of(self, round_id: int) -> RoundConfig:
        rounds = self.node.contract("Rounds")
        config_cid = bytes32_to_cid(bytes(rounds.functions.getRound(round_id).call()[3]))
        return RoundConfig.from_bytes(self.node.store.cat(config_cid), f"round {round_id} config {config_cid}")

    def _verify_submissions(self, round_id: int) -> list[dict[str, str]]:
        """Fetch and validate each submission of the round; reject the bad ones on chain.

        A blob whose sealed header is bound to another org or round (a copied CID) fails here
        with BindingMismatchError, a StorageError, and is rejected like any broken adapter.
        """
        rounds = self.node.contract("Rounds")
        rejected = []
        for sub in reader_for(self.node.protocol, self.node.confirmations).of_round(round_id):
            org, cid = sub.org, sub.cid
            if rounds.functions.isRejected(round_id, org).call():
                rejected.append({"org": org, "cid": cid, "reason": "rejected earlier"})
                continue
            try:
                modelbook.fetch_inputs(self.node, [modelbook.Input(org, round_id, cid, 1)],
                                       self.encryption_key, self.work / "adapters")
            except StorageError as exc:
                reason = f"{type(exc).__name__}: {exc}"
                self.node.send(rounds.functions.rejectSubmission(
                    round_id, org, hashlib.sha256(reason.encode()).digest()))
                rejected.append({"org": org, "cid": cid, "reason": reason})
                self.record("rejected", round=round_id, org=org, reason=reason)
        return rejected

