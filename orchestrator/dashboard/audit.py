"""What an auditor runs on an unlearning receipt: ``python -m orchestrator audit-receipt``.

Nothing of the executor's is trusted: the inputs the receipt lists are checked against the
chain's submission events and revocation views, the removed root is rebuilt, the model is re-merged from the adapters' CIDs and
compared with the receipt's plaintext CID and tensor hash and with the sealed model on chain.
A grouped receipt (``groups``) is re-merged as its groups (FedAvg inside each, exact stack
across), each group's inputs checked against the round config's groups, and the replacements
made on chain for the request must be exactly the receipt's replays, all by members of the
forgotten org's group.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address

from orchestrator.chain.contracts import Protocol
from orchestrator.daemons import grouped, modelbook
from orchestrator.daemons.unlearner import removed_leaf
from orchestrator.errors import ConfigError
from orchestrator.merkle import MerkleTree
from orchestrator.storage import adapters as sealed
from orchestrator.storage.base import Store
from orchestrator.storage.cid import bytes32_to_cid, compute_cid


class _ReadOnlyNode:
    """What fetching adapters needs of a daemon's Node, without a wallet: the auditor signs nothing."""

    confirmations = 0  # a receipt is final: read the chain as it is

    def __init__(self, protocol: Protocol, store: Store, address: str) -> None:
        self.protocol, self.store, self.address, self.w3 = protocol, store, address, protocol.w3

    def contract(self, name: str) -> Any:
        return self.protocol.contract(name)


def audit_receipt(protocol: Protocol, store: Store, request_id: int, auditor: str, enc_key: bytes,
                  work: Path) -> dict[str, Any]:
    """Run every check; ``result["ok"]`` is True when all pass."""
    from orchestrator.learning.api import adapter_sha256

    unlearning = protocol.contract("Unlearning")
    registry = protocol.contract("ContributionRegistry")
    logs = unlearning.events.UnlearningCompleted().get_logs(
        from_block=protocol.manifest.first_block, argument_filters={"requestId": request_id})
    if not logs:
        raise ConfigError(f"request {request_id} has no receipt on chain (not completed yet?)")
    done = logs[0]["args"]
    receipt_cid = bytes32_to_cid(bytes(done["metricsHash"]))
    receipt = json.loads(store.cat(receipt_cid))
    inputs = [modelbook.Input(to_checksum_address(i["org"]), int(i["round"]), str(i["adapter_cid"]),
                              int(i["num_samples"])) for i in receipt["inputs"]]
    removed = [(to_checksum_address(i["org"]), int(i["round"]), str(i["adapter_cid"])) for i in receipt["removed"]]
    checks: dict[str, bool] = {}

    rounds = protocol.contract("Rounds")
    submitted: dict[tuple[int, str], tuple[str, int]] = {}  # the latest submission per (round, org)
    names = [e["name"] for e in rounds.abi if e.get("type") == "event"]
    logs = [x for name in ("UpdateSubmitted", "SubmissionReplaced") if name in names
            for x in rounds.events[name]().get_logs(from_block=protocol.manifest.first_block)]
    for x in sorted(logs, key=lambda x: (x["blockNumber"], x["logIndex"])):
        args = x["args"]
        submitted[(int(args["roundId"]), to_checksum_address(args["org"]))] = (
            bytes32_to_cid(bytes(args["adapterCid"])), int(args["numSamples"]))

    has_cap = any(f.get("name") == "roundTerms" for f in rounds.abi)  # v2: counts clipped to the round's cap

    def on_chain(item: modelbook.Input) -> bool:
        cid, samples = submitted.get((item.round, item.org), ("", -1))
        cap = int(rounds.functions.roundTerms(item.round).call()[0]) if has_cap else 0
        return cid == item.adapter_cid and (min(samples, cap) if cap > 0 else samples) == item.num_samples

    checks["every input is a submission on chain with the same CID and sample count"] = all(map(on_chain, inputs))
    checks["no input is revoked"] = not any(
        registry.functions.isRevoked(i.round, i.org).call() for i in inputs)
    checks["every removed contribution is revoked on chain"] = all(
        registry.functions.isRevoked(r, o).call() for o, r, _ in removed)
    checks["no removed contribution is among the inputs"] = not (
        {(o, r) for o, r, _ in removed} & {(i.org, i.round) for i in inputs})
    checks["the removed root on chain is the root of the receipt's removed list"] = bool(removed) and (
        MerkleTree.build([removed_leaf(o, r, c) for o, r, c in removed]).root == bytes(done["removedRoot"]))

    node = _ReadOnlyNode(protocol, store, to_checksum_address(auditor))
    groups = grouped.groups_from_report(receipt) if receipt.get("groups") else None
    if groups is not None:  # grouped collaboration: the groups as the round config on chain fixes them
        config = grouped.config_of(node, grouped.rounds_at_request(node, request_id))  # type: ignore[arg-type]
        checks["every input belongs to its group in the round config and to the group's listed round"] = (
            sorted((i.org, i.round) for i in grouped.flat(groups)) == sorted((i.org, i.round) for i in inputs)
            and all(config.group_of(i.org) == g.group and i.round == g.round for g in groups for i in g.inputs))
        # Replays: only members of the forgotten org's group, and every replacement made on chain
        # for this request is one of them (a member of another group replacing its own round
        # inside the window would show here).
        replays = sorted((to_checksum_address(r["org"]), int(r["round"])) for r in receipt.get("replays", []))
        on_chain = sorted((i.org, i.round) for i in grouped.replaced_originals(node, request_id))  # type: ignore[arg-type]
        checks["every replacement made for the request on chain is a replay of the forgotten org's group"] = (
            on_chain == replays and all(config.group_of(o) == receipt.get("group") for o, _ in replays))
    dirs = modelbook.fetch_inputs(node, inputs, enc_key, work / "inputs")  # type: ignore[arg-type]
    merged = (grouped.stack_groups(groups, dirs, work / "merged") if groups is not None
              else modelbook.stack(inputs, dirs, work / "merged"))
    plain = sealed.pack_adapter(merged)
    checks["the re-merged model's CID equals the receipt's"] = compute_cid(plain) == receipt.get("model_plain_cid")
    checks["the re-merged model's tensor hash equals the receipt's"] = adapter_sha256(merged) == receipt.get("model_sha256")
    onchain = bytes32_to_cid(bytes(done["newModelCid"]))
    blob = store.cat(onchain)
    checks["the sealed model on chain decrypts to the re-merged model"] = (
        sealed.open_sealed(blob, node.address.lower(), enc_key) == plain)
    return {"request": request_id, "receipt_cid": receipt_cid, "model_cid": onchain,
            "inputs": len(inputs), "removed": len(removed), "checks": checks, "ok": all(checks.values())}
