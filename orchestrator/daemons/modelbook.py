"""The consortium's current model, re-derived from the chain: which adapters it contains.

The merged model is never trusted as a blob: it is always ``merge(inputs)`` where ``inputs``
are read from the chain (each org's latest contribution that is neither rejected, nor revoked,
nor descended from a revoked one; submissions from their events, checked against Rounds'
commitments). The aggregator uses this at finalization and the unlearning executor after a
revocation; an auditor uses :func:`rederive` to recompute a posted model CID bit for bit.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from orchestrator.chain.submissions import Submission, reader_for
from orchestrator.daemons.base import Node
from orchestrator.errors import DaemonError
from orchestrator.storage import adapters as sealed
from orchestrator.storage.cid import compute_cid


@dataclass(frozen=True)
class Input:
    """One contribution that is part of the merged model."""

    org: str
    round: int
    adapter_cid: str
    num_samples: int


def latest_live(
    subs: Sequence[Submission],
    *,
    is_rejected: Callable[[int], bool],
    is_revoked: Callable[[int], bool],
    removals: Sequence[tuple[int, int]] = (),
    up_to_round: int | None = None,
) -> Submission | None:
    """An org's contribution that may be merged now: its latest usable submission.

    An org's adapters form one lineage: in isolated mode each round continues the org's latest
    live adapter. A submission is unusable when it was rejected (never merged), revoked, or made
    before a removal that covers its round (``removals``: (from round, block of the removal)):
    such an adapter was trained on top of what was removed, so it stays out even if the chain
    did not list its round. The org's earlier adapters are ancestors, not descendants, of a
    removed round: the latest usable one of them is the org's contribution after a Round-scope
    removal (after an Org-scope removal, from round 1, nothing is left).
    """
    for sub in reversed(list(subs)):
        if up_to_round is not None and sub.round_id > up_to_round:
            continue
        if is_rejected(sub.round_id) or is_revoked(sub.round_id):
            continue
        if any(from_round <= sub.round_id and sub.block < block for from_round, block in removals):
            continue
        return sub
    return None


def removals_of(node: Node, org: str) -> list[tuple[int, int]]:
    """(from round, block) of every Org/Round-scope removal of ``org`` (ContributionsRevoked)."""
    registry = node.contract("ContributionRegistry")
    logs = registry.events.ContributionsRevoked().get_logs(
        from_block=node.protocol.manifest.first_block, argument_filters={"org": org})
    return [(int(lg["args"]["fromRound"]), int(lg["blockNumber"])) for lg in logs]


def round_cap(node: Node, round_id: int) -> int:
    """The round's per-submission sample cap (set at openRound); 0 when the round is unknown."""
    return int(node.contract("Rounds").functions.roundTerms(round_id).call()[0])


def clipped(num_samples: int, cap: int) -> int:
    """A self-reported sample count as the merge and the rewards weigh it (at most the round cap)."""
    return min(int(num_samples), int(cap)) if cap > 0 else int(num_samples)


#: a removal that is being executed (not yet on chain) covers every block
PENDING = 2**63


def current_inputs(node: Node, *, exclude_org: str | None = None, up_to_round: int | None = None,
                   removing: tuple[str, int] | None = None) -> list[Input]:
    """Each member's latest live contribution (see :func:`latest_live`), sorted by org address.

    Submissions are read from events (:mod:`orchestrator.chain.submissions`), each checked
    against the commitment Rounds holds; sample counts are clipped to the round's cap.
    ``removing=(org, from_round)``: the inputs as they will be once that removal is on chain
    (what the unlearning executor merges before it posts the receipt).
    """
    membership = node.contract("Membership")
    orgs = sorted(set(membership.functions.members().call()), key=str.lower)
    inputs = [live_input(node, org, up_to_round=up_to_round, removing=removing) for org in orgs
              if exclude_org is None or org.lower() != exclude_org.lower()]
    return [i for i in inputs if i is not None]


def live_input(node: Node, org: str, *, up_to_round: int | None = None,
               removing: tuple[str, int] | None = None) -> Input | None:
    """``org``'s contribution to the merge now (:func:`latest_live`), its count clipped to the cap."""
    rounds = node.contract("Rounds")
    registry = node.contract("ContributionRegistry")
    removals = removals_of(node, org)
    if removing is not None and removing[0].lower() == org.lower():
        removals.append((int(removing[1]), PENDING))
    sub = latest_live(
        reader_for(node.protocol, node.confirmations).of_org(org),
        is_rejected=lambda r: bool(rounds.functions.isRejected(r, org).call()),
        is_revoked=lambda r: bool(registry.functions.isRevoked(r, org).call()),
        removals=removals,
        up_to_round=up_to_round,
    )
    if sub is None:
        return None
    return Input(sub.org, sub.round_id, sub.cid, clipped(sub.num_samples, round_cap(node, sub.round_id)))


def fetch_cached(node: Node, cid: str, encryption_key: bytes, dest: Path,
                 expect_context: bytes | None = None) -> Path:
    """Fetch, decrypt and validate the adapter ``cid`` into ``dest`` unless it is already there.

    ``expect_context``: the binding a submitted adapter must carry (:func:`binding`).
    """
    if not (dest / "adapter_config.json").exists():
        if dest.exists():
            shutil.rmtree(dest)  # a half-written folder from a crash
        sealed.fetch_adapter(node.store, cid, node.address.lower(), encryption_key, dest,
                             expect_context=expect_context)
    return dest


def binding(node: Node, round_id: int, org: str) -> bytes:
    """The sealed-header binding of ``org``'s submission to ``round_id`` on this deployment."""
    return sealed.submission_context(int(node.w3.eth.chain_id), node.contract("Rounds").address, round_id, org)


def fetch_input(node: Node, item: Input, encryption_key: bytes, cache: Path) -> Path:
    """Fetch, decrypt, check the binding of and validate one input adapter.

    Cached per (CID, round, org): the same blob submitted by two orgs is two different claims,
    and only the one it is bound to passes.
    """
    return fetch_cached(node, item.adapter_cid, encryption_key,
                        cache / f"{item.adapter_cid}-r{item.round}-{item.org.lower()}",
                        binding(node, item.round, item.org))


def fetch_inputs(node: Node, inputs: list[Input], encryption_key: bytes, cache: Path) -> dict[str, Path]:
    """:func:`fetch_input` for each input (one per org, as in a merge), keyed by org."""
    return {item.org: fetch_input(node, item, encryption_key, cache) for item in inputs}


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
