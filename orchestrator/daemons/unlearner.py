"""Unlearning executor: turns an ``UnlearningRequested`` event into a verified receipt.

Org scope (isolated mode, the default): the new model is the exact re-merge of every other
member's latest valid adapter; with fixed seeds it is bit-identical to a consortium in which
the org never took part, and anyone can re-derive it from the remaining adapters' CIDs.
Round scope: the org's contribution of that round and its later ones (which descend from it)
are dropped. The receipt carries the new model CID, the Merkle root of the removed
contributions and the CID of a verification report (perplexity on the forgotten org's public
validation texts and on the others', before and after) as ``metricsHash``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from orchestrator.daemons import modelbook
from orchestrator.daemons.base import Daemon, Handler, Node
from orchestrator.daemons.roundconfig import RoundConfig
from orchestrator.errors import DaemonError
from orchestrator.merkle import MerkleTree, leaf_hash
from orchestrator.storage.cid import bytes32_to_cid, cid_to_bytes32

SCOPE_ORG, SCOPE_ROUND, SCOPE_SAMPLES = 0, 1, 2
REQ_NONE, REQ_REQUESTED, REQ_ACKNOWLEDGED, REQ_COMPLETED, REQ_SLASHED = 0, 1, 2, 3, 4


def removed_leaf(org: str, round_id: int, adapter_cid: str) -> bytes:
    return leaf_hash(["address", "uint256", "bytes32"], [org, round_id, cid_to_bytes32(adapter_cid)])


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

    def subscriptions(self) -> list[tuple[Any, str]]:
        return [(self.node.contract("Unlearning"), "UnlearningRequested")]

    def handlers(self) -> Mapping[str, Handler]:
        return {"UnlearningRequested": self.on_requested}

    def on_requested(self, event: Any) -> None:
        unlearning = self.node.contract("Unlearning")
        request_id = int(event.args["requestId"])
        org, scope, state = unlearning.functions.getRequest(request_id).call()[:3]
        if state in (REQ_COMPLETED, REQ_SLASHED):
            return
        if state == REQ_REQUESTED:
            self.node.send(unlearning.functions.acknowledge(request_id))
        if scope == SCOPE_SAMPLES:
            raise DaemonError(
                f"request {request_id}: sample-level removal is retrained by the org's own trainer "
                "(it alone holds the data); the executor handles Org and Round scope"
            )
        started = time.perf_counter()
        before = modelbook.current_inputs(self.node)
        if scope == SCOPE_ORG:
            removed = [i for i in before if i.org.lower() == org.lower()]
            removed += self._earlier_contributions(org, exclude={i.round for i in removed})
            after = [i for i in before if i.org.lower() != org.lower()]
        else:
            round_id = int.from_bytes(bytes(event.args["target"]), "big")
            removed = self._contributions_from(org, round_id)
            after = [i for i in before if not (i.org.lower() == org.lower() and i.round >= round_id)]
        if not removed:
            raise DaemonError(f"request {request_id}: {org} has no contribution to remove")
        recipients = modelbook.merge_recipients(self.node, self.aggregator_keys)
        dirs_before = modelbook.fetch_inputs(self.node, before, self.encryption_key, self.work / "adapters")
        dirs_after = {o: d for o, d in dirs_before.items() if o in {i.org for i in after}}
        merged = modelbook.merge_and_store(self.node, after, dirs_after, recipients, self.work / f"merged-req-{request_id}")
        seconds = time.perf_counter() - started
        report = self._verification(request_id, org, before, removed, dirs_before, merged, seconds)
        report_cid = modelbook.store_json(self.node, report)
        tree = MerkleTree.build([removed_leaf(i.org, i.round, i.adapter_cid) for i in removed])
        self.node.send(unlearning.functions.completeUnlearning(
            request_id, cid_to_bytes32(merged.cid), tree.root, cid_to_bytes32(report_cid)))
        self.record("unlearned", request=request_id, org=org, model_cid=merged.cid, report_cid=report_cid,
                    seconds=seconds)

    def _contributions_from(self, org: str, round_id: int) -> list[modelbook.Input]:
        rounds = self.node.contract("Rounds")
        registry = self.node.contract("ContributionRegistry")
        out = []
        for r in sorted(int(x) for x in rounds.functions.contributionsOf(org).call()):
            if r >= round_id and not registry.functions.isRevoked(r, org).call():
                cid, n = registry.functions.getContribution(r, org).call()[:2]
                out.append(modelbook.Input(org, r, bytes32_to_cid(bytes(cid)), int(n)))
        return out

    def _earlier_contributions(self, org: str, exclude: set[int]) -> list[modelbook.Input]:
        return [i for i in self._contributions_from(org, 0) if i.round not in exclude]

    def _verification(self, request_id: int, org: str, before: list[modelbook.Input],
                      removed: list[modelbook.Input], dirs_before: dict, merged: modelbook.MergedModel, seconds: float) -> dict[str, Any]:
        from orchestrator.learning.api import evaluate_perplexity

        config = self._latest_config()
        before_dir = modelbook.stack(before, dirs_before, self.work / f"before-req-{request_id}")
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

    def _latest_config(self) -> RoundConfig:
        rounds = self.node.contract("Rounds")
        count = int(rounds.functions.roundCount().call())
        config_cid = bytes32_to_cid(bytes(rounds.functions.getRound(count).call()[3]))
        return RoundConfig.from_bytes(self.node.store.cat(config_cid), f"round {count} config {config_cid}")
