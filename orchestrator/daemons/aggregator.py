"""Aggregator daemon: opens rounds, closes them, merges, scores, rewards and finalizes.

On ``RoundClosed`` it fetches every submission (from the events, checked against the
commitments Rounds holds), verifies it (CID, decryption, the sealed header's binding to the
submitting org and round, validation) and rejects a bad one on chain (``rejectSubmission``)
without failing the round. Only a failure the submitter caused (:data:`SUBMITTER_FAULTS`: the
blob does not open for the aggregator or is bound to another org or round, the adapter breaks
the rules, the CID is malformed or the payload oversized) rejects; a fault of the aggregator's
own storage (corrupt or missing block, unreachable Kubo node) drops the damaged blocks so they
can be fetched again and defers the event with backoff (:class:`RetryLater`): the round stays
closed and pending until the content is readable again. It then merges each member's latest
live adapter by exact stacking, weighted by sample counts clipped to the round's cap; values
every coalition of the merged model's inputs by re-merging it and measuring the
validation-loss reduction on its public validation set; pays this round's submitters by exact
Shapley value (``rewards.score_round``, zero for a harmful contribution, total <= budget) under
a Merkle root; stores the merged model and a round report; ``finalizeRound`` with the rewards
tree's total (the rest of the budget returns to the pool). The report's CID is the
``metricsHash`` on chain, so anyone can fetch it, rebuild the rewards tree and check the root
and the total.

Grouped mode (the round config's ``groups``): the model is the exact stack of each group's
FedAvg of its members' latest round (:mod:`orchestrator.daemons.grouped`); the report lists the
groups (round, weight, members). No round opens while an Org / Round request of a grouped
consortium is pending: its group is replaying, and a round trained meanwhile would descend from
the forgotten org.

A round that reaches its deadline with no submission is cancelled (its budget returns to the
pool) and the next one opened; cancelled rounds do not count towards the plan's rounds.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.chain.multicall import batch_call
from orchestrator.chain.submissions import reader_for
from orchestrator.daemons import grouped, modelbook
from orchestrator.daemons.base import Daemon, Handler, Node, RetryLater
from orchestrator.daemons.rewards import build_table, score_round
from orchestrator.daemons.roundconfig import RoundConfig
from orchestrator.errors import StorageError
from orchestrator.storage import errors as serr
from orchestrator.storage.cid import bytes32_to_cid, cid_to_bytes32

ROUND_NONE, ROUND_OPEN, ROUND_CLOSED, ROUND_FINALIZED, ROUND_CANCELLED = 0, 1, 2, 3, 4

#: Fetch failures attributable to the submitter: these (and only these) reject on chain.
#: (A sealed header bound to another org or round is a DecryptionError subclass.)
SUBMITTER_FAULTS: tuple[type[StorageError], ...] = (
    serr.DecryptionError, serr.BindingMismatchError, serr.AdapterValidationError, serr.InvalidCidError,
    serr.PayloadTooLargeError,
)


def _local_fault(node: Node, cid: str | None, exc: StorageError) -> RetryLater:
    """A storage fault on our side: drop damaged blocks (re-fetched next time), retry later."""
    repair = getattr(node.store, "verify", None)
    if isinstance(exc, serr.CorruptBlockError) and repair is not None:
        repair(cid, repair=True)
    return RetryLater(f"local storage fault reading {cid or 'the inputs'} ({type(exc).__name__}: {exc}); not the "
                      "submitter's fault, retrying")


@dataclass(frozen=True)
class RoundPlan:
    """What the aggregator runs: how many rounds, how long each stays open, what it pays."""

    rounds: int = 2  # finalized rounds to run (a cancelled, empty round does not count)
    duration_s: int = 3600
    reward_budget: int = 1000 * 10**18
    config: RoundConfig | None = None
    max_samples: int = 1_000_000  # per-submission sample cap set at openRound
    #: contribution values: "auto" (exact Shapley for <= 10 inputs, Monte-Carlo above), "exact",
    #: "monte_carlo" or "leave_one_out"
    contribution_method: str = "auto"
    #: token units paid per nat of contribution value, capped at the budget; None splits the
    #: whole budget over the positive values (the shares of inputs that did not submit this
    #: round stay in the pool)
    reward_price: int | None = None
    min_members: int = 1  # no round opens with fewer members
    status_every_s: float = 60.0  # how often an open round logs whom it is waiting for

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
        self._last_status = float("-inf")

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
        members = int(self.node.contract("Membership").functions.memberCount().call())
        if state == ROUND_OPEN:
            now = self.node.w3.eth.get_block("latest")["timestamp"]
            if num_submissions == 0 and now >= deadline:
                self.cancel_round(count)
            elif num_submissions >= members or now >= deadline:
                self.node.send(rounds.functions.closeRound(count))
                self.record("closed", round=count, submissions=num_submissions, members=members)
            elif self._status_due():
                self._log_waiting(count, int(deadline) - int(now))
        elif (state in (ROUND_FINALIZED, ROUND_CANCELLED) and self.plan.config is not None
              and count - self.cancelled_rounds() < self.plan.rounds):
            if self._replay_pending():
                if self._status_due():
                    self.log.warning("%s: a grouped replay is pending; the next round opens after its receipt",
                                     self.name)
            elif members >= self.plan.min_members:
                self.open_round()
            elif self._status_due():
                self.log.warning("%s: waiting for members before opening a round: %d of at least %d have joined",
                                 self.name, members, self.plan.min_members)

    def _replay_pending(self) -> bool:
        """Grouped mode: an Org / Round request is pending (its group is replaying)."""
        if self.plan.config is None or self.plan.config.mode != "grouped":
            return False
        unlearning = self.node.contract("Unlearning")
        for request_id in range(int(unlearning.functions.requestCount().call()), 0, -1):
            _org, scope, state = unlearning.functions.getRequest(request_id).call()[:3]
            if scope != 2 and state in (1, 2):  # Org / Round, Requested / Acknowledged
                return True
        return False

    def _status_due(self) -> bool:
        now = time.monotonic()
        if now - self._last_status < self.plan.status_every_s:
            return False
        self._last_status = now
        return True

    def _log_waiting(self, round_id: int, seconds_left: int) -> None:
        rounds = self.node.contract("Rounds")
        membership = self.node.contract("Membership")
        members = list(membership.functions.members().call())
        missing = [m for m in members if not rounds.functions.hasSubmitted(round_id, m).call()]
        names = ", ".join(f"{m} ({membership.functions.metadataOf(m).call().rsplit('/', 1)[-1] or '?'})"
                          for m in missing)
        self.log.warning("%s: round %d waiting for %d of %d: %s; closes at the deadline in %ds",
                         self.name, round_id, len(missing), len(members), names, max(0, seconds_left))
        self.record("waiting", round=round_id, missing=missing, members=len(members), seconds_left=seconds_left)

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
        groups = grouped.group_inputs(self.node, config.groups, up_to_round=round_id) if config.groups else None
        inputs = grouped.flat(groups) if groups is not None else modelbook.current_inputs(self.node, up_to_round=round_id)
        try:
            dirs = modelbook.fetch_inputs(self.node, inputs, self.encryption_key, self.work / "adapters")
        except StorageError as exc:  # they were all readable a moment ago, or were accepted earlier
            raise _local_fault(self.node, None, exc) from exc
        recipients = modelbook.merge_recipients(self.node, config.recipient_keys())
        out = self.work / f"merged-round-{round_id}"
        merged = (grouped.merge_and_store(self.node, groups, dirs, recipients, out) if groups is not None
                  else modelbook.merge_and_store(self.node, inputs, dirs, recipients, out))

        from orchestrator.learning.api import evaluate_perplexity

        # learning = the merge arithmetic, the contribution scoring and the evaluation (sealing,
        # storing and the chain are orchestration)
        learning_started = time.perf_counter() - merged.merge_seconds
        this_round = sorted({i.org for i in inputs if i.round == round_id}, key=str.lower)
        budget = int(rounds.functions.getRound(round_id).call()[6])
        contributions = score_round(
            config.model, dirs, {i.org: i.num_samples for i in inputs}, self.val_texts, this_round, budget,
            seq_len=config.eval_seq_len, batch_size=config.eval_batch_size, method=self.plan.contribution_method,
            price=self.plan.reward_price, seed=round_id)
        scores = contributions.values
        ppl = evaluate_perplexity(config.model, merged.folder, self.val_texts,
                                  seq_len=config.eval_seq_len, batch_size=config.eval_batch_size)
        learning_seconds = time.perf_counter() - learning_started
        table = build_table(contributions.amounts)
        report = {
            "kind": "round-report",
            "round": round_id,
            "mode": config.mode,
            **merged.describe(),
            **({"groups": [g.describe() for g in groups]} if groups is not None else {}),
            "rejected": rejected,
            "scores": scores,
            "contributions": contributions.to_json(),
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
        subs = reader_for(self.node.protocol, self.node.confirmations).of_round(round_id)
        earlier = batch_call(self.node.w3, [rounds.functions.isRejected(round_id, sub.org) for sub in subs],
                             protocol=self.node.protocol)
        todo = [sub for sub, was in zip(subs, earlier, strict=True) if not was]
        rejected += [{"org": sub.org, "cid": sub.cid, "reason": "rejected earlier"}
                     for sub, was in zip(subs, earlier, strict=True) if was]
        fetched = modelbook.fetch_each(self.node, [modelbook.Input(sub.org, round_id, sub.cid, 1) for sub in todo],
                                       self.encryption_key, self.work / "adapters")
        for sub, got in zip(todo, fetched, strict=True):
            if isinstance(got, SUBMITTER_FAULTS):
                reason = f"{type(got).__name__}: {got}"
                self.node.send(rounds.functions.rejectSubmission(
                    round_id, sub.org, hashlib.sha256(reason.encode()).digest()))
                rejected.append({"org": sub.org, "cid": sub.cid, "reason": reason})
                self.record("rejected", round=round_id, org=sub.org, reason=reason)
            elif isinstance(got, StorageError):
                raise _local_fault(self.node, sub.cid, got) from got
        return sorted(rejected, key=lambda r: r["org"].lower())
