"""Unlearning executor: turns an unlearning request into a verified receipt.

Org scope (isolated mode, the default): the new model is the exact re-merge of every other
member's latest live adapter; with fixed seeds it is bit-identical to a consortium in which
the org never took part, and anyone can re-derive it from the remaining adapters' CIDs.
Round scope (round r): the org's contribution of round r and every later one (they descend from
it) are dropped; the org's latest adapter from before r, if any, stays in the merge. The
receipt carries the new model CID, the Merkle root of the removed contributions and the CID of
a verification report (perplexity on the forgotten org's public validation texts and on the
others', before and after) as ``metricsHash``.

Before acknowledging (which locks stake and makes the executor answerable) it decides whether
it can answer: the request must still have something live (else it closes the request without
a slash: ``closeRequest``), and every adapter of the new merge must fetch, open and validate.
Samples scope is never acknowledged: the org's own trainer answers it by replacing its
contribution(s) (``replaceContribution``); once the org's contribution in the merge is a
replacement for the request, the executor re-merges and completes.
Grouped collaboration (the round config's ``groups``): an Org / Round request is answered by the
forgotten org's group, whose other members replay their descending rounds without it
(``replayContribution``, :mod:`orchestrator.daemons.grouped`); on each replay (and periodically)
the executor checks whether every needed replay is on chain and then acknowledges, merges (the
group's replayed FedAvg stacked with the other groups' untouched adapters) and completes. The
receipt lists the groups, the removed contributions, the replaced originals and the replays. Pending requests whose
target has nothing live left (e.g. a Round request overtaken by an Org request) are closed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.chain.submissions import reader_for
from orchestrator.daemons import grouped, modelbook
from orchestrator.daemons.base import Daemon, Handler, Node
from orchestrator.daemons.roundconfig import RoundConfig
from orchestrator.errors import DaemonError
from orchestrator.merkle import MerkleTree, leaf_hash
from orchestrator.storage.cid import bytes32_to_cid, cid_to_bytes32

SCOPE_ORG, SCOPE_ROUND, SCOPE_SAMPLES = 0, 1, 2
(REQ_NONE, REQ_REQUESTED, REQ_ACKNOWLEDGED, REQ_COMPLETED, REQ_SLASHED, REQ_CLOSED, REQ_VOIDED,
 REQ_EXPIRED) = range(8)
PENDING_STATES = (REQ_REQUESTED, REQ_ACKNOWLEDGED)


def removed_leaf(org: str, round_id: int, adapter_cid: str) -> bytes:
    return leaf_hash(["address", "uint256", "bytes32"], [org, round_id, cid_to_bytes32(adapter_cid)])


@dataclass
class Plan:
    """What answering a request takes: the merge before, the merge after, what is removed."""

    before: list[modelbook.Input]
    after: list[modelbook.Input]
    removed: list[modelbook.Input]
    dirs: dict[tuple[str, int, str], Path]  # (org, round, CID) -> adapter folder, for every input

    def folders(self, inputs: list[modelbook.Input]) -> dict[str, Path]:
        """org -> adapter folder of a merge's inputs (one per org)."""
        return {i.org: self.dirs[_key(i)] for i in inputs}


class UnlearningDaemon(Daemon):
    role = "unlearner"

    def __init__(
        self,
        node: Node,
        encryption_key: bytes,
        aggregator_keys: dict[str, bytes],
        eval_texts: Mapping[str, list[str]],
        *,
        name: str | None = None,
        audit: Mapping[str, Any] | None = None,
    ) -> None:
        self.encryption_key = encryption_key
        # org address -> learning.verify.EvalSets (members, non-members, canaries) for the
        # calibrated attack in the receipt; only what the consortium chose to disclose to it.
        self.audit = {k.lower(): v for k, v in (audit or {}).items()}
        self.aggregator_keys = aggregator_keys
        self.eval_texts = dict(eval_texts)  # org address -> public validation texts of its topic
        super().__init__(node, name or "unlearner")
        self.work = node.state_dir / "unlearner"
        self._settled_below = 1  # requests below this id are final (periodic scans from here)
        self._waiting: dict[int, list[tuple[str, int]]] = {}  # grouped requests: replays still pending

    def subscriptions(self) -> list[tuple[Any, str]]:
        unlearning = self.node.contract("Unlearning")
        return [(unlearning, "UnlearningRequested"), (unlearning, "ContributionReplaced")]

    def handlers(self) -> Mapping[str, Handler]:
        return {"UnlearningRequested": self.on_requested, "ContributionReplaced": self.on_replaced}

    # -- Org / Round scope ------------------------------------------------------------------
    def on_requested(self, event: Any) -> None:
        unlearning = self.node.contract("Unlearning")
        request_id = int(event.args["requestId"])
        org, scope, state = unlearning.functions.getRequest(request_id).call()[:3]
        if state not in PENDING_STATES:
            return
        if scope == SCOPE_SAMPLES:
            # Only the org holds the data: its trainer replaces the contribution(s); we complete
            # on ContributionReplaced. Never acknowledged, so never slashable against us.
            self.record("awaiting-replacement", request=request_id, org=org)
            return
        if not unlearning.functions.hasLiveTarget(request_id).call():
            self._close(request_id, "nothing live left")
            return
        if self._grouped_config(request_id) is not None:
            self._try_grouped(request_id)
            return
        from_round = 1 if scope == SCOPE_ORG else int.from_bytes(bytes(event.args["target"]), "big")
        started = time.perf_counter()
        plan = self._plan(request_id, org, from_round)  # raises (no acknowledgement) if we cannot answer
        if state == REQ_REQUESTED:
            self.node.send(unlearning.functions.acknowledge(request_id))
            self.record("acknowledged", request=request_id, org=org)
        self._complete(request_id, org, plan, started)

    def _plan(self, request_id: int, org: str, from_round: int) -> Plan:
        before = modelbook.current_inputs(self.node)
        after = modelbook.current_inputs(self.node, removing=(org, from_round))
        removed = self._live_contributions(org, from_round)
        if not removed:
            raise DaemonError(f"request {request_id}: {org} has no live contribution from round {from_round}")
        if not after:
            raise DaemonError(f"request {request_id}: removing {org} leaves no contribution to merge; "
                              "the governor should judge the request (the base model is the answer)")
        return Plan(before, after, removed, self._fetch(before, after))

    def _fetch(self, *merges: list[modelbook.Input]) -> dict[tuple[str, int, str], Path]:
        return {_key(i): modelbook.fetch_input(self.node, i, self.encryption_key, self.work / "adapters")
                for i in _union(*merges)}

    def _live_contributions(self, org: str, from_round: int) -> list[modelbook.Input]:
        """Every live (not rejected, not revoked) contribution of ``org`` from ``from_round`` on."""
        rounds = self.node.contract("Rounds")
        registry = self.node.contract("ContributionRegistry")
        return [
            modelbook.Input(sub.org, sub.round_id, sub.cid, sub.num_samples)
            for sub in reader_for(self.node.protocol, self.node.confirmations).of_org(org)
            if sub.round_id >= from_round and not rounds.functions.isRejected(sub.round_id, org).call()
            and not registry.functions.isRevoked(sub.round_id, org).call()
        ]

    def _complete(self, request_id: int, org: str, plan: Plan, started: float) -> None:
        recipients = modelbook.merge_recipients(self.node, self.aggregator_keys)
        merged = modelbook.merge_and_store(self.node, plan.after, plan.folders(plan.after), recipients,
                                           self.work / f"merged-req-{request_id}")
        before_dir = modelbook.stack(plan.before, plan.folders(plan.before), self.work / f"before-req-{request_id}")
        self._post_receipt(request_id, org, merged, before_dir, plan.removed, {}, started)

    def _post_receipt(self, request_id: int, org: str, merged: modelbook.MergedModel, before_dir: Path,
                      removed: list[modelbook.Input], extra: dict[str, Any], started: float) -> None:
        unlearning = self.node.contract("Unlearning")
        seconds = time.perf_counter() - started
        report = self._verification(request_id, org, removed, merged, before_dir, seconds) | extra
        report_cid = modelbook.store_json(self.node, report)
        tree = MerkleTree.build([removed_leaf(i.org, i.round, i.adapter_cid) for i in removed])
        self.node.send(unlearning.functions.completeUnlearning(
            request_id, cid_to_bytes32(merged.cid), tree.root, cid_to_bytes32(report_cid)))
        self.record("unlearned", request=request_id, org=org, model_cid=merged.cid, report_cid=report_cid,
                    seconds=seconds)

    # -- Samples scope: complete after the org's replacement -------------------------------------
    def on_replaced(self, event: Any) -> None:
        unlearning = self.node.contract("Unlearning")
        request_id, round_id, org = int(event.args["requestId"]), int(event.args["roundId"]), event.args["org"]
        _org, scope, state = unlearning.functions.getRequest(request_id).call()[:3]
        if state not in PENDING_STATES:
            return
        if scope != SCOPE_SAMPLES:  # a group member's replay (grouped collaboration)
            self._try_grouped(request_id)
            return
        current = modelbook.live_input(self.node, org)
        reader = reader_for(self.node.protocol, self.node.confirmations)
        if current is None or current.round != round_id:
            # The org replaces its affected rounds oldest first; its contribution in the merge
            # (the latest live one) comes last, and that is when the model changes.
            self.record("replacement-seen", request=request_id, org=org, round=round_id)
            return
        started = time.perf_counter()
        after = modelbook.current_inputs(self.node)
        removed = []
        for sub in reader.of_org(org):
            history = reader.history(sub.round_id, org)
            for old, new in zip(history, history[1:]):
                if new.kind == "replaced" and new.request_id == request_id:
                    removed.append(modelbook.Input(org, old.round_id, old.cid, modelbook.clipped(
                        old.num_samples, modelbook.round_cap(self.node, old.round_id))))
        before = [next((i for i in removed if i.round == round_id), current) if i.org == org else i for i in after]
        self._complete(request_id, org, Plan(before, after, removed, self._fetch(before, after)), started)

    # -- housekeeping -----------------------------------------------------------------------
    def periodic(self) -> None:
        """Close pending requests whose target has nothing live left (no slash, bond refunded)."""
        unlearning = self.node.contract("Unlearning")
        count = int(unlearning.functions.requestCount().call())
        all_final = True
        for request_id in range(self._settled_below, count + 1):
            state = unlearning.functions.getRequest(request_id).call()[2]
            if state not in PENDING_STATES:
                if all_final:
                    self._settled_below = request_id + 1
                continue
            all_final = False
            if not unlearning.functions.hasLiveTarget(request_id).call():
                self._close(request_id, "nothing live left")
            elif self._grouped_config(request_id) is not None:
                self._try_grouped(request_id)

    def _close(self, request_id: int, reason: str) -> None:
        self.node.send(self.node.contract("Unlearning").functions.closeRequest(request_id))
        self.record("closed-request", request=request_id, reason=reason)

    def _verification(self, request_id: int, org: str, removed: list[modelbook.Input],
                      merged: modelbook.MergedModel, before_dir: Path, seconds: float) -> dict[str, Any]:
        from orchestrator.learning.api import evaluate_perplexity

        config = self._latest_config()
        perplexity: dict[str, dict[str, float]] = {}
        for member, texts in sorted(self.eval_texts.items()):
            if not texts:
                continue
            kw = {"seq_len": config.eval_seq_len, "batch_size": config.eval_batch_size}
            perplexity[member] = {
                "base": evaluate_perplexity(config.model, None, texts, **kw),
                "before": evaluate_perplexity(config.model, before_dir, texts, **kw),
                "after": evaluate_perplexity(config.model, merged.folder, texts, **kw),
            }
        return {
            "kind": "unlearning-receipt",
            "request": request_id,
            "org": org,
            **merged.describe(),
            "removed": [vars(i) for i in removed],
            "perplexity": perplexity,
            "unlearning_seconds": seconds,
        } | self._evidence(org, config, before_dir, merged)

    def _evidence(self, org: str, config: RoundConfig, before_dir: Any, merged: modelbook.MergedModel) -> dict[str, Any]:
        """learning.verify.receipt_evidence: the calibrated attack with bootstrap intervals and
        canary exposure (when audit texts of ``org`` are given), provenance, a metrics hash
        without wall time."""
        from orchestrator.learning.verify import receipt_evidence

        return {"evidence": receipt_evidence(
            config.model, before=before_dir, after=merged.folder, val={}, sets=self.audit.get(org.lower()),
            seq_len=config.eval_seq_len, batch_size=config.eval_batch_size,
        )}

    # -- grouped collaboration: complete once the forgotten org's group has replayed ---------------
    def _grouped_config(self, request_id: int) -> RoundConfig | None:
        """The round config of a grouped consortium at the request (None when not grouped)."""
        unlearning = self.node.contract("Unlearning")
        if unlearning.functions.getRequest(request_id).call()[1] == SCOPE_SAMPLES:
            return None
        at_request = grouped.rounds_at_request(self.node, request_id)
        config = grouped.config_of(self.node, at_request) if at_request else None
        return config if config is not None and config.mode == "grouped" else None

    def _try_grouped(self, request_id: int) -> None:
        """Complete an Org / Round request of a grouped consortium once every replay it needs is
        on chain: the new model stacks the group's replayed adapter with the other groups'
        untouched ones. Acknowledged only then (the replays are the members' work, not ours: we
        vouch for the answer once it can be given; we are answerable from the request on anyway)."""
        unlearning = self.node.contract("Unlearning")
        org, scope, state, _deadline, _agg, target = unlearning.functions.getRequest(request_id).call()[:6]
        config = self._grouped_config(request_id)
        if state not in PENDING_STATES or config is None:
            return
        at_request = grouped.rounds_at_request(self.node, request_id)
        status = grouped.replay_status(self.node, config, request_id, org, scope, bytes(target), at_request)
        if status.from_round is None:
            raise DaemonError(f"request {request_id}: {org} has no usable contribution left to remove")
        if not status.complete:
            pending = status.pending()
            if self._waiting.get(request_id) != pending:
                self._waiting[request_id] = pending
                self.record("awaiting-replays", request=request_id, org=org, group=status.group,
                            pending=[{"org": m, "round": r} for m, r in pending])
            return
        started = time.perf_counter()
        after = grouped.group_inputs(self.node, config.groups, removing=(org, status.from_round))
        if not after:
            raise DaemonError(f"request {request_id}: removing {org} leaves no contribution to merge; "
                              "the governor should judge the request (the base model is the answer)")
        removed = self._live_contributions(org, status.from_round)
        dirs = modelbook.fetch_inputs(self.node, grouped.flat(after), self.encryption_key, self.work / "adapters")
        before_dir = self._latest_model()
        if state == REQ_REQUESTED:
            self.node.send(unlearning.functions.acknowledge(request_id))
            self.record("acknowledged", request=request_id, org=org)
        recipients = modelbook.merge_recipients(self.node, self.aggregator_keys)
        merged = grouped.merge_and_store(self.node, after, dirs, recipients, self.work / f"merged-req-{request_id}")
        replaced = grouped.replaced_originals(self.node, request_id)
        extra = {"mode": "grouped", "groups": [g.describe() for g in after], "group": status.group,
                 "from_round": status.from_round, "replaced": [vars(i) for i in replaced],
                 "replays": [{"org": m, "round": r} for m, r in status.done]}
        self._post_receipt(request_id, org, merged, before_dir, removed, extra, started)
        self._waiting.pop(request_id, None)

    def _latest_model(self) -> Path:
        """The registry's latest model version (what the receipt's "before" figures measure)."""
        registry = self.node.contract("ContributionRegistry")
        version = int(registry.functions.latestVersion().call())
        model_cid = bytes32_to_cid(bytes(registry.functions.getVersion(version).call()[0]))
        return modelbook.fetch_cached(self.node, model_cid, self.encryption_key,
                                      self.work / f"model-v{version}-{model_cid}")

    def _latest_config(self) -> RoundConfig:
        rounds = self.node.contract("Rounds")
        count = int(rounds.functions.roundCount().call())
        config_cid = bytes32_to_cid(bytes(rounds.functions.getRound(count).call()[3]))
        return RoundConfig.from_bytes(self.node.store.cat(config_cid), f"round {count} config {config_cid}")


def _key(item: modelbook.Input) -> tuple[str, int, str]:
    return (item.org, item.round, item.adapter_cid)


def _union(*lists: list[modelbook.Input]) -> list[modelbook.Input]:
    seen: dict[tuple[str, int, str], modelbook.Input] = {}
    for items in lists:
        for item in items:
            seen.setdefault(_key(item), item)
    return list(seen.values())
