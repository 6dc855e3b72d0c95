"""The consortium's current model, re-derived from the chain: which adapters it contains.

The merged model is never trusted as a blob: it is always ``merge(inputs)`` where ``inputs``
are read from the contracts (each org's latest contribution that is neither rejected nor
revoked). The aggregator uses this at finalization and the unlearning executor after a
revocation; an auditor uses :func:`rederive` to recompute a posted model CID bit for bit.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from orchestrator.daemons.base import Node
from orchestrator.errors import DaemonError
from orchestrator.storage import adapters as sealed
from orchestrator.storage.cid import bytes32_to_cid, compute_cid


@dataclass(frozen=True)
class Input:
    """One contribution that is part of the merged model."""

    org: str
    round: int
    adapter_cid: str
    num_samples: int


def current_inputs(node: Node, *, exclude_org: str | None = None, up_to_round: int | None = None) -> list[Input]:
    """Each member's latest valid contribution, sorted by org address (the merge order)."""
    rounds = node.contract("Rounds")
    registry = node.contract("ContributionRegistry")
    membership = node.contract("Membership")
    orgs = sorted(set(membership.functions.members().call()), key=str.lower)
    inputs: list[Input] = []
    for org in orgs:
        if exclude_org is not None and org.lower() == exclude_org.lower():
            continue
        round_ids = sorted(int(r) for r in rounds.functions.contributionsOf(org).call())
        for round_id in reversed(round_ids):
            if up_to_round is not None and round_id > up_to_round:
                continue
            if rounds.functions.isRejected(round_id, org).call():
                continue
            if registry.functions.isRevoked(round_id, org).call():
                # An isolated-mode adapter descends from the org's earlier ones; once one is
                # revoked, nothing of that org from that point on may remain.
                break
            cid, num_samples = registry.functions.getContribution(round_id, org).call()[:2]
            inputs.append(Input(org, round_id, bytes32_to_cid(bytes(cid)), int(num_samples)))
            break
    return inputs


def fetch_cached(node: Node, cid: str, encryption_key: bytes, dest: Path) -> Path:
    """Fetch, decrypt and validate the adapter ``cid`` into ``dest`` unless it is already there."""
    if not (dest / "adapter_config.json").exists():
        if dest.exists():
            shutil.rmtree(dest)  # a half-written folder from a crash
        sealed.fetch_adapter(node.store, cid, node.address.lower(), encryption_key, dest)
    return dest


def fetch_inputs(node: Node, inputs: list[Input], encryption_key: bytes, cache: Path) -> dict[str, Path]:
    """Fetch, decrypt and validate every input adapter (cached by CID)."""
    return {item.org: fetch_cached(node, item.adapter_cid, encryption_key, cache / item.adapter_cid)
            for item in inputs}


def weights_of(inputs: list[Input]) -> dict[str, float]:
    total = sum(i.num_samples for i in inputs)
    if total <= 0:
        raise DaemonError("cannot weight an empty set of contributions")
    return {i.org: i.num_samples / total for i in inputs}


def merge_recipients(node: Node, aggregator_keys: dict[str, bytes]) -> dict[str, bytes]:
    """Who can decrypt the merged model: every active member and the aggregators."""
    membership = node.contract("Membership")
    recipients = {addr.lower(): key for addr, key in aggregator_keys.items()}
    for org in membership.functions.members().call():
        recipients[org.lower()] = bytes(membership.functions.encryptionKeyOf(org).call())
    return dict(sorted(recipients.items()))


def stack(inputs: list[Input], adapter_dirs: dict[str, Path], out_dir: Path) -> Path:
    """Exact stacking merge of ``inputs`` in their (address) order, weighted by sample count."""
    from orchestrator.learning.api import merge_adapters

    weights = weights_of(inputs)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    return merge_adapters([adapter_dirs[i.org] for i in inputs], [weights[i.org] for i in inputs],
                          out_dir, method="stack")


@dataclass(frozen=True)
class MergedModel:
    folder: Path
    cid: str  # CID of the sealed object (what goes on chain)
    plain_cid: str  # CID of the packed plaintext adapter (anyone re-deriving checks this)
    sha256: str  # hash of the merged tensors
    inputs: list[Input]
    weights: dict[str, float]
    recipients: list[str]

    def describe(self) -> dict[str, Any]:
        return {
            "model_cid": self.cid,
            "model_plain_cid": self.plain_cid,
            "model_sha256": self.sha256,
            "inputs": [asdict(i) | {"weight": self.weights[i.org]} for i in self.inputs],
            "recipients": self.recipients,
        }


def merge_and_store(
    node: Node,
    inputs: list[Input],
    adapter_dirs: dict[str, Path],
    recipients: dict[str, bytes],
    out_dir: Path,
) -> MergedModel:
    """Exact stacking merge, sealed deterministically so anyone re-deriving gets the same CID."""
    from orchestrator.learning.api import adapter_sha256

    if not inputs:
        raise DaemonError("no valid contributions left to merge")
    weights = weights_of(inputs)
    folder = stack(inputs, adapter_dirs, out_dir)
    cid = sealed.store_adapter(node.store, folder, recipients, deterministic=True)
    plain_cid = compute_cid(sealed.pack_adapter(folder))
    return MergedModel(folder, cid, plain_cid, adapter_sha256(folder), inputs, weights, sorted(recipients))


def store_json(node: Node, document: dict[str, Any]) -> str:
    return node.store.add_bytes(json.dumps(document, sort_keys=True, indent=1, default=str).encode())


def rederive(node: Node, inputs: list[Input], recipients: dict[str, bytes], encryption_key: bytes, work: Path) -> MergedModel:
    """Recompute a merged model from its inputs' CIDs: what an auditor runs."""
    dirs = fetch_inputs(node, inputs, encryption_key, work / "inputs")
    return merge_and_store(node, inputs, dirs, recipients, work / "merged")
