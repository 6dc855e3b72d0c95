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
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address

from orchestrator.chain.multicall import batch_call
from orchestrator.chain.submissions import Submission, reader_for
from orchestrator.daemons.base import Node
from orchestrator.errors import DaemonError, StorageError
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
    for sub in _candidates(subs, removals, up_to_round):
        if is_rejected(sub.round_id) or is_revoked(sub.round_id):
            continue
        return sub
    return None


def _candidates(subs: Sequence[Submission], removals: Sequence[tuple[int, int]],
                up_to_round: int | None) -> list[Submission]:
    """``subs`` newest first, without those after ``up_to_round`` or covered by a removal."""
    return [sub for sub in reversed(list(subs))
            if (up_to_round is None or sub.round_id <= up_to_round)
            and not any(from_round <= sub.round_id and sub.block < block for from_round, block in removals)]


def all_removals(node: Node) -> dict[str, list[tuple[int, int]]]:
    """Lower-case org -> (from round, block) of its Org/Round-scope removals, from one log query."""
    registry = node.contract("ContributionRegistry")
    out: dict[str, list[tuple[int, int]]] = {}
    for lg in registry.events.ContributionsRevoked().get_logs(from_block=node.protocol.manifest.first_block):
        out.setdefault(str(lg["args"]["org"]).lower(), []).append((int(lg["args"]["fromRound"]), int(lg["blockNumber"])))
    return out


class _Facts:
    """What never changes once on chain, per deployment: the chain id and each round's sample cap."""

    def __init__(self) -> None:
        self.chain_id: int | None = None
        self.caps: dict[int, int] = {}


_FACTS: weakref.WeakKeyDictionary[Any, _Facts] = weakref.WeakKeyDictionary()


def _facts(node: Node) -> _Facts:
    facts = _FACTS.get(node.protocol)
    if facts is None:
        facts = _FACTS[node.protocol] = _Facts()
    return facts


def round_caps(node: Node, round_ids: Iterable[int]) -> dict[int, int]:
    """Each round's per-submission sample cap (set at openRound, never changed); 0 when unknown.

    Read in one batched call for the rounds not seen before, then cached per deployment.
    """
    facts = _facts(node)
    wanted = sorted({int(r) for r in round_ids})
    todo = [r for r in wanted if r not in facts.caps]
    if todo:
        rounds = node.contract("Rounds")
        terms = batch_call(node.w3, [rounds.functions.roundTerms(r) for r in todo], protocol=node.protocol)
        for r, t in zip(todo, terms, strict=True):
            if int(t[0]) > 0:  # an unknown round (cap 0) may still be opened later
                facts.caps[r] = int(t[0])
    return {r: facts.caps.get(r, 0) for r in wanted}


def round_cap(node: Node, round_id: int) -> int:
    """The round's per-submission sample cap (set at openRound); 0 when the round is unknown."""
    return round_caps(node, [round_id])[int(round_id)]


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
    orgs = [org for org in orgs if exclude_org is None or org.lower() != exclude_org.lower()]
    found = live_inputs(node, orgs, up_to_round=up_to_round, removing=removing)
    return [found[org] for org in orgs if found[org] is not None]  # type: ignore[misc]


def live_input(node: Node, org: str, *, up_to_round: int | None = None,
               removing: tuple[str, int] | None = None) -> Input | None:
    """``org``'s contribution to the merge now (:func:`latest_live`), its count clipped to the cap."""
    return live_inputs(node, [org], up_to_round=up_to_round, removing=removing)[org]


def live_inputs(node: Node, orgs: Sequence[str], *, up_to_round: int | None = None,
                removing: tuple[str, int] | None = None) -> dict[str, Input | None]:
    """:func:`live_input` for each of ``orgs``, in a number of JSON-RPC calls that does not grow
    with the number of orgs: one log query for the submissions (incremental) and one for the
    removals, then the rejected/revoked flags of every org's newest candidate in one batched
    call (Multicall3; a second wave only for orgs whose newest one is unusable), the chosen
    submissions' commitments in one more and the new rounds' caps in one more.
    """
    rounds = node.contract("Rounds")
    registry = node.contract("ContributionRegistry")
    by_org = reader_for(node.protocol, node.confirmations).by_org()
    removals = all_removals(node)
    if removing is not None:
        removals.setdefault(removing[0].lower(), []).append((int(removing[1]), PENDING))
    queues = {org: _candidates(by_org.get(to_checksum_address(org), []), removals.get(org.lower(), []), up_to_round)
              for org in orgs}
    chosen: dict[str, Submission] = {}
    pending = {org: q for org, q in queues.items() if q}
    while pending:  # each wave drops one candidate per org: bounded by the longest history
        heads = [(org, q[0]) for org, q in pending.items()]
        flags = batch_call(node.w3, [call for org, sub in heads for call in (
            rounds.functions.isRejected(sub.round_id, sub.org), registry.functions.isRevoked(sub.round_id, sub.org))],
            protocol=node.protocol)
        waiting: dict[str, list[Submission]] = {}
        for k, (org, sub) in enumerate(heads):
            if flags[2 * k] or flags[2 * k + 1]:
                if len(pending[org]) > 1:
                    waiting[org] = pending[org][1:]
            else:
                chosen[org] = sub
        pending = waiting
    reader_for(node.protocol, node.confirmations).check_many(chosen.values())
    caps = round_caps(node, [sub.round_id for sub in chosen.values()])
    return {org: (Input(sub.org, sub.round_id, sub.cid, clipped(sub.num_samples, caps[sub.round_id]))
                  if (sub := chosen.get(org)) is not None else None) for org in orgs}


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
    facts = _facts(node)
    if facts.chain_id is None:
        facts.chain_id = int(node.w3.eth.chain_id)
    return sealed.submission_context(facts.chain_id, node.contract("Rounds").address, round_id, org)


def fetch_input(node: Node, item: Input, encryption_key: bytes, cache: Path) -> Path:
    """Fetch, decrypt, check the binding of and validate one input adapter.

    Cached per (CID, round, org): the same blob submitted by two orgs is two different claims,
    and only the one it is bound to passes.
    """
    return fetch_cached(node, item.adapter_cid, encryption_key,
                        cache / f"{item.adapter_cid}-r{item.round}-{item.org.lower()}",
                        binding(node, item.round, item.org))


#: adapters fetched, decrypted and validated at once (storage reads, AES-GCM and the safetensors
#: checks release the GIL for most of their time)
FETCH_WORKERS = 8


def fetch_each(node: Node, inputs: Sequence[Input], encryption_key: bytes,
               cache: Path) -> list[Path | StorageError]:
    """:func:`fetch_input` for each input, concurrently; each result is its folder or the
    :class:`StorageError` it raised (in the order of ``inputs``). Any other error is raised.
    """
    def one(item: Input) -> Path | StorageError:
        try:
            return fetch_input(node, item, encryption_key, cache)
        except StorageError as exc:
            return exc

    if len(inputs) <= 1:
        return [one(item) for item in inputs]
    with ThreadPoolExecutor(max_workers=min(FETCH_WORKERS, len(inputs)), thread_name_prefix="fetch") as pool:
        return list(pool.map(one, inputs))


def fetch_inputs(node: Node, inputs: list[Input], encryption_key: bytes, cache: Path) -> dict[str, Path]:
    """:func:`fetch_input` for each input (one per org, as in a merge), keyed by org; fetched
    concurrently, and the first failure (in input order) is raised."""
    out: dict[str, Path] = {}
    for item, got in zip(inputs, fetch_each(node, inputs, encryption_key, cache), strict=True):
        if isinstance(got, StorageError):
            raise got
        out[item.org] = got
    return out


def weights_of(inputs: list[Input]) -> dict[str, float]:
    total = sum(i.num_samples for i in inputs)
    if total <= 0:
        raise DaemonError("cannot weight an empty set of contributions")
    return {i.org: i.num_samples / total for i in inputs}


def merge_recipients(node: Node, aggregator_keys: dict[str, bytes]) -> dict[str, bytes]:
    """Who can decrypt the merged model: every active member and the aggregators."""
    membership = node.contract("Membership")
    recipients = {addr.lower(): key for addr, key in aggregator_keys.items()}
    members = list(membership.functions.members().call())
    keys = batch_call(node.w3, [membership.functions.encryptionKeyOf(org) for org in members], protocol=node.protocol)
    for org, key in zip(members, keys, strict=True):
        recipients[org.lower()] = bytes(key)
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
    merge_seconds: float = 0.0  # the merge arithmetic alone (sealing and storing not included)

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
    started = time.perf_counter()
    folder = stack(inputs, adapter_dirs, out_dir)
    merge_seconds = time.perf_counter() - started
    cid = sealed.store_adapter(node.store, folder, recipients, deterministic=True)
    plain_cid = compute_cid(sealed.pack_adapter(folder))
    return MergedModel(folder, cid, plain_cid, adapter_sha256(folder), inputs, weights, sorted(recipients),
                       merge_seconds)


def store_json(node: Node, document: dict[str, Any]) -> str:
    return node.store.add_bytes(json.dumps(document, sort_keys=True, indent=1, default=str).encode())


def rederive(node: Node, inputs: list[Input], recipients: dict[str, bytes], encryption_key: bytes, work: Path) -> MergedModel:
    """Recompute a merged model from its inputs' CIDs: what an auditor runs."""
    dirs = fetch_inputs(node, inputs, encryption_key, work / "inputs")
    return merge_and_store(node, inputs, dirs, recipients, work / "merged")
