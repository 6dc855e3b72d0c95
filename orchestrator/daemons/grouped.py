"""Grouped collaboration (SISA over organisations) in the live consortium, re-derived from the chain.

The round config (its CID is on chain) fixes ``groups``: member address -> group. Inside a group
the members collaborate: every member starts round r from its group's adapter of the group's
latest earlier round (the FedAvg of the members' contributions of that round, weighted by their
sample counts clipped to the round's cap); a group's first round starts from a fresh adapter
seeded by the group's label (``initial_adapter(cfg.for_round(r - 1).for_org("group-<g>"))``).
Across groups the model is the exact stack of the group adapters, each weighted by its group's
sample total. This is :func:`orchestrator.learning.federation.run_rounds` with ``mode="grouped"``
run distributed; with the same texts, seeds and configs the tensors are bit-identical.

A group's adapter of round r is re-derived from the chain alone: the members' usable
submissions of round r (not rejected, not revoked, not made before a removal that covers them).
Members seal their submissions for their group's members too, so each member derives its own
init and no party has to publish (or be trusted for) intermediate group adapters.

Forgetting an org of group g (Org scope, or Round scope from round t) replays only group g: every
other member of g replaces each of its contributions of the rounds after the first removed
one (``Unlearning.replayContribution``), round by round, each from the group's replayed adapter
of the previous round. Contributions of the first removed round itself do not descend from the
forgotten org (their init predates it) and stay; its group adapter is re-averaged without the
org. Other groups are untouched. :func:`replay_status` says which replays a request still needs.
"""

from __future__ import annotations

import shutil
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address

from orchestrator.chain.submissions import Submission, reader_for
from orchestrator.daemons import modelbook
from orchestrator.daemons.base import Node
from orchestrator.daemons.roundconfig import RoundConfig
from orchestrator.errors import DaemonError
from orchestrator.storage import adapters as sealed
from orchestrator.storage.cid import bytes32_to_cid, compute_cid


@dataclass(frozen=True)
class GroupInput:
    """One group's part of the model: its members' contributions of the group's latest round."""

    group: int
    round: int
    inputs: list[modelbook.Input]  # sorted by org address (the FedAvg order)

    @property
    def weight(self) -> int:
        return sum(i.num_samples for i in self.inputs)

    def describe(self) -> dict[str, Any]:
        return {"group": self.group, "round": self.round, "weight": self.weight,
                "members": [i.org for i in self.inputs]}


def config_of(node: Node, round_id: int) -> RoundConfig:
    """The round config committed on chain for ``round_id``."""
    config_cid = bytes32_to_cid(bytes(node.contract("Rounds").functions.getRound(round_id).call()[3]))
    return RoundConfig.from_bytes(node.store.cat(config_cid), f"round {round_id} config {config_cid}")


def latest_config(node: Node) -> RoundConfig | None:
    count = int(node.contract("Rounds").functions.roundCount().call())
    return config_of(node, count) if count else None


_REMOVALS: weakref.WeakKeyDictionary[Any, tuple[int, dict[str, list[tuple[int, int]]]]] = weakref.WeakKeyDictionary()


def removals_now(node: Node) -> dict[str, list[tuple[int, int]]]:
    """:func:`modelbook.all_removals`, read incrementally: removals are final once on chain, so
    each call asks only for the blocks since the previous one (per deployment)."""
    registry = node.contract("ContributionRegistry")
    latest = int(node.w3.eth.block_number)
    seen, known = _REMOVALS.get(node.protocol, (int(node.protocol.manifest.first_block) - 1, {}))
    if latest > seen:
        known = {org: list(items) for org, items in known.items()}
        for lg in registry.events.ContributionsRevoked().get_logs(from_block=seen + 1, to_block=latest):
            known.setdefault(str(lg["args"]["org"]).lower(), []).append(
                (int(lg["args"]["fromRound"]), int(lg["blockNumber"])))
        _REMOVALS[node.protocol] = (latest, known)
    return known


def usable(node: Node, org: str, *, up_to_round: int | None = None, removing: tuple[str, int] | None = None,
           removals: Mapping[str, list[tuple[int, int]]] | None = None) -> list[Submission]:
    """``org``'s submissions that may be merged: not rejected, not revoked, not descended from a
    removal (:func:`modelbook.latest_live`'s rule, applied to every round, not only the latest).
    ``removals``: :func:`removals_now`, when the caller already has it."""
    rounds = node.contract("Rounds")
    registry = node.contract("ContributionRegistry")
    removals = list((removals_now(node) if removals is None else removals).get(org.lower(), []))
    if removing is not None and removing[0].lower() == org.lower():
        removals.append((int(removing[1]), modelbook.PENDING))
    out = []
    for sub in reader_for(node.protocol, node.confirmations).of_org(org):
        if up_to_round is not None and sub.round_id > up_to_round:
            continue
        if any(from_round <= sub.round_id and sub.block < block for from_round, block in removals):
            continue
        if rounds.functions.isRejected(sub.round_id, org).call() or registry.functions.isRevoked(sub.round_id, org).call():
            continue
        out.append(sub)
    return out


def _as_input(node: Node, sub: Submission) -> modelbook.Input:
    return modelbook.Input(sub.org, sub.round_id, sub.cid,
                           modelbook.clipped(sub.num_samples, modelbook.round_cap(node, sub.round_id)))


def group_inputs(node: Node, groups: Mapping[str, int], *, up_to_round: int | None = None,
                 removing: tuple[str, int] | None = None, only: int | None = None) -> list[GroupInput]:
    """Each group's latest round with a usable contribution and those contributions, by group.

    ``only``: just that group. ``removing=(org, from_round)``: as it will be once that removal
    is on chain.
    """
    by_group: dict[int, dict[int, list[modelbook.Input]]] = {}
    removals = removals_now(node)
    for addr, group in sorted(groups.items()):
        if only is not None and group != only:
            continue
        for sub in usable(node, to_checksum_address(addr), up_to_round=up_to_round, removing=removing,
                          removals=removals):
            by_group.setdefault(group, {}).setdefault(sub.round_id, []).append(_as_input(node, sub))
    return [GroupInput(g, max(rounds), sorted(rounds[max(rounds)], key=lambda i: i.org.lower()))
            for g, rounds in sorted(by_group.items())]


def flat(groups: list[GroupInput]) -> list[modelbook.Input]:
    return [i for g in groups for i in g.inputs]


def group_adapter(group: GroupInput, dirs: Mapping[str, Path], out_dir: Path) -> Path:
    """The group's FedAvg of its members' adapters, weighted by their (clipped) sample counts."""
    from orchestrator.learning.api import merge_adapters

    if out_dir.exists():
        shutil.rmtree(out_dir)
    return merge_adapters([dirs[i.org] for i in group.inputs], [float(i.num_samples) for i in group.inputs],
                          out_dir, method="fedavg")


def stack_groups(groups: list[GroupInput], dirs: Mapping[str, Path], out_dir: Path) -> Path:
    """Exact stack of the group adapters (by group number), each weighted by its group's total."""
    from orchestrator.learning.api import merge_adapters

    if not groups:
        raise DaemonError("no valid contributions left to merge")
    parts = [group_adapter(g, dirs, out_dir.parent / f"{out_dir.name}-group-{g.group}") for g in groups]
    if out_dir.exists():
        shutil.rmtree(out_dir)
    return merge_adapters(parts, [float(g.weight) for g in groups], out_dir, method="stack")


def merge_and_store(node: Node, groups: list[GroupInput], dirs: Mapping[str, Path], recipients: dict[str, bytes],
                    out_dir: Path) -> modelbook.MergedModel:
    """:func:`stack_groups`, sealed deterministically (anyone re-deriving gets the same CID)."""
    from orchestrator.learning.api import adapter_sha256

    started = time.perf_counter()
    folder = stack_groups(groups, dirs, out_dir)
    merge_seconds = time.perf_counter() - started
    inputs = flat(groups)
    cid = sealed.store_adapter(node.store, folder, recipients, deterministic=True)
    return modelbook.MergedModel(folder, cid, compute_cid(sealed.pack_adapter(folder)), adapter_sha256(folder),
                                 inputs, modelbook.weights_of(inputs), sorted(recipients), merge_seconds)


def rederive(node: Node, groups: list[GroupInput], recipients: dict[str, bytes], encryption_key: bytes,
             work: Path) -> modelbook.MergedModel:
    """Recompute a grouped model from its inputs' CIDs: what an auditor runs."""
    dirs = modelbook.fetch_inputs(node, flat(groups), encryption_key, work / "inputs")
    return merge_and_store(node, groups, dirs, recipients, work / "merged")


def groups_from_report(doc: Mapping[str, Any]) -> list[GroupInput]:
    """The groups a round report or receipt lists (``groups`` entries with their inputs)."""
    by_org = {str(i["org"]).lower(): i for i in doc["inputs"]}
    out = []
    for g in doc["groups"]:
        items = [by_org[str(m).lower()] for m in g["members"]]
        out.append(GroupInput(int(g["group"]), int(g["round"]), [
            modelbook.Input(to_checksum_address(i["org"]), int(i["round"]), str(i["adapter_cid"]),
                            int(i["num_samples"])) for i in items]))
    return out


def member_keys(node: Node, config: RoundConfig, group: int) -> dict[str, bytes]:
    """Encryption keys of ``group``'s members (lower-case address -> key), for sealing to the group."""
    membership = node.contract("Membership")
    keys = {}
    for addr in config.group_members(group):
        key = bytes(membership.functions.encryptionKeyOf(to_checksum_address(addr)).call())
        if any(key):
            keys[addr] = key
    return keys


def init_adapter(node: Node, config: RoundConfig, round_id: int, encryption_key: bytes, work: Path, *,
                 removing: tuple[str, int] | None = None) -> Path:
    """The adapter a member of its group starts round ``round_id`` from (see the module doc)."""
    from orchestrator.learning.api import TrainConfig
    from orchestrator.learning.federation import group_label
    from orchestrator.learning.train import initial_adapter

    group = config.group_of(node.address)
    if group is None:
        raise DaemonError(f"{node.address} has no group in the round config; the grouped consortium's "
                          "groups must list every member")
    found = group_inputs(node, {a: group for a in config.group_members(group)}, up_to_round=round_id - 1,
                         removing=removing)
    if not found:
        cfg = TrainConfig.from_dict(config.train).for_round(round_id - 1).for_org(group_label(group))
        return _cached(work / f"group-{group}-init-r{round_id}-{cfg.seed}",
                       lambda out: initial_adapter(config.model, cfg, out))
    prev = found[0]
    tag = "-".join(f"{i.org.lower()[:10]}{i.adapter_cid[-8:]}" for i in prev.inputs)
    dirs = modelbook.fetch_inputs(node, prev.inputs, encryption_key, work / "inputs")
    return _cached(work / f"group-{group}-r{prev.round}-{tag}", lambda out: group_adapter(prev, dirs, out))


def _cached(folder: Path, build: Any) -> Path:
    if (folder / "adapter_config.json").exists():
        return folder
    tmp = folder.with_name(folder.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    build(tmp)
    if folder.exists():
        shutil.rmtree(folder)
    tmp.replace(folder)
    return folder


# -- replays ------------------------------------------------------------------------------------


def removal_start(node: Node, org: str, scope: int, target: bytes,
                  removals: Mapping[str, list[tuple[int, int]]] | None = None) -> int | None:
    """The first removed round of a request: Round scope its target, Org scope the org's first
    usable contribution (None when it has none)."""
    if scope == 1:
        return int.from_bytes(bytes(target), "big")
    subs = usable(node, org, removals=removals)
    return subs[0].round_id if subs else None


@dataclass(frozen=True)
class ReplayStatus:
    """What a request in a grouped consortium needs replayed, and what is done."""

    group: int | None
    from_round: int | None  # first removed round
    needed: list[tuple[str, int]]  # (member, round) to replay, by round then member
    done: list[tuple[str, int]]

    @property
    def complete(self) -> bool:
        return set(self.needed) <= set(self.done)

    def pending(self) -> list[tuple[str, int]]:
        return [x for x in self.needed if x not in set(self.done)]


def replay_status(node: Node, config: RoundConfig, request_id: int, org: str, scope: int, target: bytes,
                  rounds_at_request: int) -> ReplayStatus:
    """Which contributions of the forgotten org's group must be replayed, and which are.

    Needed: every usable contribution of another member of the org's group in the rounds after
    the first removed one, up to the rounds that existed at the request. Done: those whose
    current submission is a replacement for ``request_id``.
    """
    group = config.group_of(org)
    removals = removals_now(node)
    start = removal_start(node, org, scope, target, removals)
    if group is None or start is None:
        return ReplayStatus(group, start, [], [])
    needed, done = [], []
    for addr in config.group_members(group):
        if addr == org.lower():
            continue
        member = to_checksum_address(addr)
        for sub in usable(node, member, up_to_round=rounds_at_request, removals=removals):
            if sub.round_id <= start:
                continue
            needed.append((member, sub.round_id))
            if sub.kind == "replaced" and sub.request_id == request_id:
                done.append((member, sub.round_id))
    return ReplayStatus(group, start, sorted(needed, key=_by_round), sorted(done, key=_by_round))


def _by_round(item: tuple[str, int]) -> tuple[int, str]:
    return item[1], item[0].lower()


def replaced_originals(node: Node, request_id: int) -> list[modelbook.Input]:
    """The contributions that replays for ``request_id`` replaced (each round's original)."""
    reader = reader_for(node.protocol, node.confirmations)
    out = []
    rounds = int(node.contract("Rounds").functions.roundCount().call())
    for round_id in range(1, rounds + 1):
        for sub in reader.of_round(round_id):
            history = reader.history(round_id, sub.org)
            for old, new in zip(history, history[1:]):
                if new.kind == "replaced" and new.request_id == request_id:
                    out.append(_as_input(node, old))
    return out


_AT_REQUEST: weakref.WeakKeyDictionary[Any, dict[int, int]] = weakref.WeakKeyDictionary()


def rounds_at_request(node: Node, request_id: int) -> int:
    """How many rounds existed when ``request_id`` was made (the contract's ``roundsAtRequest``,
    from the events: rounds opened up to the request's block). A fixed fact: cached per deployment."""
    cache = _AT_REQUEST.setdefault(node.protocol, {})
    if request_id not in cache:
        cache[request_id] = _rounds_at_request(node, request_id)
    return cache[request_id]


def _rounds_at_request(node: Node, request_id: int) -> int:
    first = node.protocol.manifest.first_block
    logs = node.contract("Unlearning").events.UnlearningRequested().get_logs(
        from_block=first, argument_filters={"requestId": request_id})
    if not logs:
        raise DaemonError(f"request {request_id} has no UnlearningRequested event")
    block = int(logs[0]["blockNumber"])
    return len(node.contract("Rounds").events.RoundOpened().get_logs(from_block=first, to_block=block))
