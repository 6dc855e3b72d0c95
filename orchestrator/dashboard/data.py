"""What each page shows, gathered from the indexer (history), view calls (current state) and IPFS.

Read-only by construction: a :class:`ChainView` holds no key and only calls ``view`` functions
(``eth_call``), ``eth_getLogs``/``eth_getBlock`` (through the indexer) and ``store.cat``.
Every figure is kept exact (integers in token wei, CIDs, hashes); the templates format them
for people and carry the exact value in a ``data-value`` attribute.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from eth_abi import encode as abi_encode
from eth_utils import to_checksum_address

from orchestrator.chain.contracts import ANCHOR_CONTRACT, Protocol
from orchestrator.daemons.relayer import ANCHORED_CONTRACTS, record_of
from orchestrator.daemons.rewards import RewardTable
from orchestrator.daemons.unlearner import removed_leaf
from orchestrator.indexer import IndexedEvent, Indexer
from orchestrator.merkle import MerkleTree, reward_leaf, verify
from orchestrator.redact import redact_url
from orchestrator.storage.base import Store
from orchestrator.storage.cid import bytes32_to_cid

log = logging.getLogger(__name__)

ROUND_STATES = {0: "none", 1: "open", 2: "closed", 3: "finalized", 4: "cancelled"}
REQUEST_STATES = {0: "none", 1: "requested", 2: "acknowledged", 3: "completed", 4: "slashed", 5: "closed",
                  6: "voided", 7: "expired"}
SCOPES = {0: "org", 1: "round", 2: "samples"}
ZERO32 = "0x" + "00" * 32


def cid_of(hex32: str | bytes | None) -> str | None:
    """CIDv0 of an on-chain bytes32 digest; None for zero."""
    if hex32 is None:
        return None
    raw = bytes.fromhex(hex32.removeprefix("0x")) if isinstance(hex32, str) else bytes(hex32)
    if raw == b"\x00" * 32:
        return None
    return bytes32_to_cid(raw)


@dataclass
class Cache:
    """Content-addressed documents never change: keep what was fetched."""

    docs: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class ChainView:
    """The dashboard's read-only window onto one consortium."""

    def __init__(
        self,
        protocol: Protocol,
        indexer: Indexer,
        store: Store | None = None,
        anchor: Protocol | None = None,
        *,
        rpc_url: str = "RPC_URL",
        manifest_path: str = "MANIFEST",
    ) -> None:
        self.protocol = protocol
        self.indexer = indexer
        self.store = store
        self.anchor = anchor if anchor is not None and ANCHOR_CONTRACT in anchor else None
        self.rpc_url = redact_url(rpc_url)  # shown on the page: never a credential in it
        self.manifest_path = manifest_path
        self._cache = Cache()
        self.chain_id = indexer.chain_id

    # -- helpers ------------------------------------------------------------------------------

    def c(self, name: str) -> Any:
        return self.protocol.contract(name).functions

    def document(self, cid: str | None) -> dict[str, Any] | None:
        """A JSON document from IPFS by CID (cached), or None when it cannot be fetched."""
        if not cid or self.store is None:
            return None
        with self._cache.lock:
            if cid in self._cache.docs:
                return self._cache.docs[cid]
        try:
            doc = json.loads(self.store.cat(cid))
        except Exception as exc:  # a missing block, a Kubo node down: the page says "unavailable"
            log.warning("dashboard: cannot fetch %s: %s", cid, exc)
            return None
        with self._cache.lock:
            self._cache.docs[cid] = doc
        return doc

    def chain_time(self) -> int:
        return int(self.protocol.w3.eth.get_block("latest")["timestamp"])

    def head(self) -> int:
        return int(self.protocol.w3.eth.block_number)

    def names(self) -> dict[str, str]:
        """Checksummed address -> the org's name from its membership metadata (``ledgerlora://org/NAME``)."""
        out: dict[str, str] = {}
        for ev in self.indexer.events("MemberJoined"):
            uri = str(ev.get("metadataURI", ""))
            out[to_checksum_address(ev["org"])] = uri.rsplit("/", 1)[-1] if uri else ev["org"][:10]
        return out

    def _has(self, contract: str, function: str) -> bool:
        return any(e.get("name") == function for e in self.protocol.contract(contract).abi)

    def revocations(self, org: str | None = None) -> list[dict[str, Any]]:
        """Revoked contribution ranges: ``{org, request, from, to, tx_hash}`` (v1: one round each;
        v2's ``ContributionsRevoked`` covers rounds ``fromRound..toRound`` of the org)."""
        out = []
        for e in self.indexer.events(("ContributionRevoked", "ContributionsRevoked"), org=org):
            first = int(e["roundId"]) if "roundId" in e.args else int(e["fromRound"])
            last = int(e["roundId"]) if "roundId" in e.args else int(e["toRound"])
            out.append({"org": to_checksum_address(e["org"]), "request": int(e["requestId"]), "from": first,
                        "to": last, "tx_hash": e.tx_hash})
        return out

    def revoked_by(self, round_id: int, org: str, revocations: list[dict[str, Any]] | None = None) -> int | None:
        """The request that revoked ``org``'s contribution of ``round_id``, if any."""
        org = to_checksum_address(org)
        ranges = self.revocations(org) if revocations is None else revocations
        return next((r["request"] for r in ranges if r["org"] == org and r["from"] <= round_id <= r["to"]), None)

    def submissions(self, round_id: int | None = None, org: str | None = None) -> list[IndexedEvent]:
        """The current submission per (round, org): ``UpdateSubmitted``, or the latest
        ``SubmissionReplaced`` (v2: an org's replacement answering a Samples request)."""
        latest: dict[tuple[int, str], IndexedEvent] = {}
        for e in self.indexer.events(("UpdateSubmitted", "SubmissionReplaced"), round_id=round_id, org=org):
            latest[(int(e["roundId"]), to_checksum_address(e["org"]))] = e
        return sorted(latest.values(), key=lambda e: (e.block, e.log_index))

    # -- overview -----------------------------------------------------------------------------

    def rounds(self) -> list[dict[str, Any]]:
        opened = {int(e["roundId"]): e for e in self.indexer.events("RoundOpened")}
        subs: dict[int, int] = {}
        for e in self.submissions():
            subs[int(e["roundId"])] = subs.get(int(e["roundId"]), 0) + 1
        rejected: dict[int, int] = {}
        for e in self.indexer.events("SubmissionRejected"):
            rejected[int(e["roundId"])] = rejected.get(int(e["roundId"]), 0) + 1
        finalized = {int(e["roundId"]): e for e in self.indexer.events("RoundFinalized")}
        cancelled = {int(e["roundId"]) for e in self.indexer.events("RoundCancelled")}
        closed = {int(e["roundId"]) for e in self.indexer.events("RoundClosed")}
        claimed: dict[int, int] = {}
        for e in self.indexer.events("RewardClaimed"):
            claimed[int(e["roundId"])] = claimed.get(int(e["roundId"]), 0) + int(e["amount"])
        out = []
        for rid in sorted(opened):  # from the index alone: no call per round, however many there are
            ev = opened[rid]
            fin = finalized.get(rid)
            report = self.document(cid_of(fin["metricsHash"])) if fin else None
            state = ("finalized" if fin else "cancelled" if rid in cancelled else "closed" if rid in closed
                     else "open")
            out.append({
                "id": rid,
                "state": state,
                "opened_at": ev.timestamp,
                "deadline": int(ev["deadline"]),
                # v2 finalizes with the rewards total (the rest returns to the pool): getRound's budget.
                "budget": int(fin["rewardsTotal"]) if fin and "rewardsTotal" in fin.args else int(ev["rewardBudget"]),
                "max_samples": ev.get("maxSamples"),
                "cancelled": rid in cancelled,
                "submissions": subs.get(rid, 0),
                "rejected": rejected.get(rid, 0),
                "claimed": claimed.get(rid, 0),
                "model_cid": cid_of(fin["modelCid"]) if fin else None,
                "version": int(fin["versionId"]) if fin else None,
                "report_cid": cid_of(fin["metricsHash"]) if fin else None,
                "val_perplexity": (report or {}).get("metrics", {}).get("val_perplexity"),
            })
        return out

    def overview(self) -> dict[str, Any]:
        registry = self.c("ContributionRegistry")
        latest = int(registry.latestVersion().call())
        model_cid = cid_of(bytes(registry.getVersion(latest).call()[0])) if latest else None
        states = self.request_states()
        rounds = self.rounds()
        return {
            "rounds": rounds,
            "latest_version": latest,
            "model_cid": model_cid,
            "reward_pool": int(self.c("Rounds").rewardPool().call()),
            "budget_reserved": sum(r["budget"] - r["claimed"] for r in rounds if r["state"] in ("open", "closed")),
            "budgets_total": sum(r["budget"] for r in rounds),
            "claimed_total": sum(r["claimed"] for r in rounds),
            "total_staked": int(self.c("Staking").totalStaked().call()),
            "member_count": int(self.c("Membership").memberCount().call()),
            "round_count": int(self.c("Rounds").roundCount().call()),
            "requests_open": sum(1 for s in states.values() if s in ("requested", "acknowledged")),
            "requests_total": len(states),
            "indexed_events": self.indexer.count(),
            "head": self.head(),
            "chain_id": self.chain_id,
        }

    def request_states(self) -> dict[int, str]:
        """Every request's state from the index (v2's ``RequestSettled`` names the final one)."""
        states = {int(e["requestId"]): "requested" for e in self.indexer.events("UnlearningRequested")}
        steps = {"UnlearningAcknowledged": "acknowledged", "UnlearningCompleted": "completed",
                 "AggregatorSlashed": "slashed", "RequestVoided": "voided"}
        for e in self.indexer.events((*steps, "RequestSettled")):
            rid = int(e["requestId"])
            if e.name == "RequestSettled":
                states[rid] = REQUEST_STATES.get(int(e["state"]), f"state {int(e['state'])}")
            elif states.get(rid) in ("requested", "acknowledged"):
                states[rid] = steps[e.name]
        return states

    # -- members ------------------------------------------------------------------------------

    def members(self) -> list[dict[str, Any]]:
        names = self.names()
        membership, staking = self.c("Membership"), self.c("Staking")
        token = self.c("LedgerToken")
        min_stake = int(membership.minStake().call())
        current = {to_checksum_address(a) for a in membership.members().call()}
        earned: dict[str, int] = {}
        scores: dict[str, list[float]] = {}
        for fin in self.indexer.events("RoundFinalized"):
            report = self.document(cid_of(fin["metricsHash"])) or {}
            for row in report.get("rewards", []):
                org = to_checksum_address(str(row["org"]))
                earned[org] = earned.get(org, 0) + int(str(row["amount"]))
            for org, score in (report.get("scores") or {}).items():
                scores.setdefault(to_checksum_address(org), []).append(float(score))
        out = []
        for org in sorted(set(names) | current, key=str.lower):
            subs = self.submissions(org=org)
            ranges = self.revocations(org)
            revoked = [e for e in subs if self.revoked_by(int(e["roundId"]), org, ranges) is not None]
            rejected = self.indexer.events("SubmissionRejected", org=org)
            claimed = sum(int(e["amount"]) for e in self.indexer.events("RewardClaimed", org=org))
            stake = int(staking.stakeOf(org).call())
            pending = int(staking.pendingUnbond(org).call()[0])
            # v2 locks the member's stake in Staking; v1 has no lock, so the minimum stake is what
            # membership needs (the rest could be unbonded without losing the seat).
            locked = int(staking.lockedOf(org).call()) if self._has("Staking", "lockedOf") else (
                min(stake, min_stake) if org in current else 0)
            out.append({
                "org": org,
                "name": names.get(org, org[:10]),
                "member": org in current,
                "stake": stake,
                "free_stake": max(0, stake - locked),
                "locked_stake": locked,
                "pending_unbond": pending,
                "balance": int(token.balanceOf(org).call()),
                "contributions": len(subs),
                "rounds": sorted(int(e["roundId"]) for e in subs),
                "revoked": len(revoked),
                "rejected": len(rejected),
                "earned": earned.get(org, 0),
                "claimed": claimed,
                "scores": scores.get(org, []),
                "mean_score": (sum(scores[org]) / len(scores[org])) if scores.get(org) else None,
            })
        return out

    # -- one round ----------------------------------------------------------------------------

    def round(self, round_id: int) -> dict[str, Any] | None:
        opened = self.indexer.events("RoundOpened", round_id=round_id)
        if not opened:
            return None
        names = self.names()
        info = self.c("Rounds").getRound(round_id).call()
        onchain_root = "0x" + bytes(info[5]).hex()
        fin = next(iter(self.indexer.events("RoundFinalized", round_id=round_id)), None)
        report = self.document(cid_of(fin["metricsHash"])) if fin else None
        reasons = {to_checksum_address(r["org"]): r for r in (report or {}).get("rejected", [])}
        rejected = {to_checksum_address(e["org"]): e for e in self.indexer.events("SubmissionRejected", round_id=round_id)}
        claimed = {to_checksum_address(e["org"]): int(e["amount"])
                   for e in self.indexer.events("RewardClaimed", round_id=round_id)}
        scores = {to_checksum_address(o): float(s) for o, s in ((report or {}).get("scores") or {}).items()}
        revocations = self.revocations()
        submissions = []
        for e in self.submissions(round_id=round_id):
            org = to_checksum_address(e["org"])
            rej = rejected.get(org)
            reason = reasons.get(org, {}).get("reason") if rej else None
            reason_ok = (None if reason is None else
                         "0x" + hashlib.sha256(str(reason).encode()).hexdigest() == rej["reasonHash"]) if rej else None
            submissions.append({
                "org": org, "name": names.get(org, org[:10]), "cid": cid_of(e.get("adapterCid")),
                "samples": e.get("numSamples"), "data_commitment": e.get("dataCommitment"),
                "rejected": rej is not None, "reason": reason, "reason_hash": rej["reasonHash"] if rej else None,
                "reason_matches_hash": reason_ok, "score": scores.get(org),
                "revoked_by": self.revoked_by(round_id, org, revocations),
                "replaced_by": int(e["requestId"]) if e.name == "SubmissionReplaced" else None,
                "tx_hash": e.tx_hash, "time": e.timestamp,
            })
        rewards = []
        table_root = None
        if report is not None:
            table = RewardTable.from_json(report.get("rewards", []))
            table_root = "0x" + table.root.hex()
            for org, amount in sorted(table.amounts.items(), key=lambda kv: kv[0].lower()):
                proof = table.proof(org)
                rewards.append({
                    "org": org, "name": names.get(org, org[:10]), "amount": amount,
                    "proof": ["0x" + p.hex() for p in proof],
                    # Checked now, against the root read from the chain a moment ago.
                    "proof_valid": verify(proof, bytes(info[5]), reward_leaf(org, amount)),
                    "claimed": claimed.get(org),
                })
        ev = opened[0]
        return {
            "id": round_id,
            "state": ROUND_STATES.get(int(info[0]), f"state {int(info[0])}"),
            "opened_at": ev.timestamp,
            "deadline": int(info[1]),
            "config_cid": cid_of(ev["configCid"]),
            "budget": int(info[6]),
            "claimed": int(info[7]),
            "num_submissions": int(info[2]),
            "model_cid": cid_of(bytes(info[4])),
            "rewards_root": onchain_root,
            "table_root": table_root,
            "report_cid": cid_of(fin["metricsHash"]) if fin else None,
            "version": int(fin["versionId"]) if fin else None,
            "report": report,
            "val_perplexity": (report or {}).get("metrics", {}).get("val_perplexity"),
            "submissions": submissions,
            "rewards": rewards,
            "inputs": (report or {}).get("inputs", []),
        }

    # -- lineage ------------------------------------------------------------------------------

    def lineage(self) -> dict[str, Any]:
        names = self.names()
        by_request = {int(e["requestId"]): e for e in self.indexer.events("UnlearningRequested")}
        completed = {int(e["versionId"]): e for e in self.indexer.events("UnlearningCompleted")}
        revocations = [r | {"name": names.get(r["org"], r["org"][:10])} for r in self.revocations()]
        versions = []
        for e in self.indexer.events("VersionRecorded"):
            vid = int(e["versionId"])
            doc = self.document(cid_of(e["metricsHash"])) or {}
            unlearn = completed.get(vid)
            inputs = [{
                "org": to_checksum_address(i["org"]), "name": names.get(to_checksum_address(i["org"]), i["org"][:10]),
                "round": int(i["round"]), "cid": i.get("adapter_cid"), "weight": i.get("weight"),
                "revoked_by": self.revoked_by(int(i["round"]), i["org"], revocations),
            } for i in doc.get("inputs", [])]
            versions.append({
                "id": vid, "parent": int(e["parentVersion"]), "round": int(e["roundId"]),
                "model_cid": cid_of(e["modelCid"]), "report_cid": cid_of(e["metricsHash"]),
                "time": e.timestamp, "inputs": inputs,
                "kind": "unlearning" if unlearn else "round",
                "request": int(unlearn["requestId"]) if unlearn else None,
                "forgotten": (names.get(to_checksum_address(by_request[int(unlearn["requestId"])]["org"]))
                              if unlearn and int(unlearn["requestId"]) in by_request else None),
            })
        return {"versions": versions, "revocations": revocations,
                "latest": int(self.c("ContributionRegistry").latestVersion().call())}

    # -- unlearning ---------------------------------------------------------------------------

    def requests(self) -> list[dict[str, Any]]:
        names = self.names()
        now = self.chain_time()
        acks = {int(e["requestId"]): e for e in self.indexer.events("UnlearningAcknowledged")}
        done = {int(e["requestId"]): e for e in self.indexer.events("UnlearningCompleted")}
        slashed = {int(e["requestId"]): e for e in self.indexer.events("AggregatorSlashed")}
        revoked: dict[int, list[dict[str, Any]]] = {}
        for r in self.revocations():
            revoked.setdefault(r["request"], []).append(r)
        bonds = {int(e["requestId"]): int(e["bond"]) for e in self.indexer.events("RequestBonded")}
        settled = {int(e["requestId"]): e for e in self.indexer.events("RequestSettled")}
        out = []
        for e in self.indexer.events("UnlearningRequested", newest_first=True):
            rid = int(e["requestId"])
            req = self.c("Unlearning").getRequest(rid).call()
            state = int(req[2])
            deadline = int(req[3])
            org = to_checksum_address(e["org"])
            scope = int(e["scope"])
            comp = done.get(rid)
            receipt = self.document(cid_of(comp["metricsHash"])) if comp else None
            removed_root_ok = None
            if receipt is not None and receipt.get("removed"):
                leaves = [removed_leaf(to_checksum_address(i["org"]), int(i["round"]), i["adapter_cid"])
                          for i in receipt["removed"]]
                removed_root_ok = "0x" + MerkleTree.build(leaves).root.hex() == comp["removedRoot"]
            target = str(e["target"])
            out.append({
                "id": rid, "org": org, "name": names.get(org, org[:10]), "scope": SCOPES.get(scope, str(scope)),
                "target": (int(target, 16) if scope == 1 else target), "reason_hash": e["reasonHash"],
                "state": REQUEST_STATES.get(state, f"state {state}"), "deadline": deadline,
                "time_left": deadline - now if state in (1, 2) else None, "requested_at": e.timestamp,
                "aggregator": to_checksum_address(str(req[4])) if int(str(req[4]), 16) else None,
                "acknowledged_at": acks[rid].timestamp if rid in acks else None,
                "completed_at": comp.timestamp if comp else None,
                "seconds_to_receipt": (comp.timestamp - e.timestamp) if comp and comp.timestamp and e.timestamp else None,
                "new_model_cid": cid_of(comp["newModelCid"]) if comp else None,
                "version": int(comp["versionId"]) if comp else None,
                "removed_root": comp["removedRoot"] if comp else None,
                "removed_root_matches": removed_root_ok,
                "receipt_cid": cid_of(comp["metricsHash"]) if comp else None,
                "receipt": receipt,
                "perplexity": self._perplexity_rows(receipt, names),
                "revoked": revoked.get(rid, []),
                "slashed": int(slashed[rid]["amount"]) if rid in slashed else None,
                "bond": bonds.get(rid),
                "refunded": int(settled[rid]["refunded"]) if rid in settled else None,
                "forfeited": int(settled[rid]["forfeited"]) if rid in settled else None,
                "rederive": self.rederive_command(rid) if comp else None,
            })
        return out

    @staticmethod
    def _perplexity_rows(receipt: dict[str, Any] | None, names: dict[str, str]) -> list[dict[str, Any]]:
        rows = []
        for org, figures in ((receipt or {}).get("perplexity") or {}).items():
            try:
                who = names.get(to_checksum_address(org), org)
            except ValueError:
                who = org
            row = {"org": who, "forgotten": to_checksum_address(org) == to_checksum_address(receipt["org"])
                   if receipt and str(org).startswith("0x") and receipt.get("org") else False}
            for key in ("base", "before", "after", "retrain"):
                value = figures.get(key) if isinstance(figures, dict) else None
                if isinstance(value, dict):  # {"mean": m, "low": l, "high": h} style intervals
                    row[key] = value.get("mean", value.get("value"))
                    row[key + "_interval"] = (value.get("low"), value.get("high"))
                else:
                    row[key] = value
            rows.append(row)
        return rows

    def rederive_command(self, request_id: int) -> str:
        return (f"ORCH_ENC_KEY=<your X25519 key, hex> python -m orchestrator audit-receipt --rpc-url {self.rpc_url} "
                f"--manifest {self.manifest_path} --request {request_id} --as <your address>")

    # -- anchors ------------------------------------------------------------------------------

    def anchors(self) -> list[dict[str, Any]]:
        if self.anchor is None:
            return []
        out = []
        public_anchor = self.anchor.contract(ANCHOR_CONTRACT)
        has_supersede = any(f.get("name") == "isSuperseded" for f in public_anchor.abi)
        for e in self.indexer.anchor_events():
            if int(e["sourceChainId"]) != self.chain_id:
                continue
            aid = int(e["anchorId"])
            out.append({"id": aid, "from": int(e["fromBlock"]), "to": int(e["toBlock"]), "root": e["root"],
                        "posted_at": e.timestamp, "tx_hash": e.tx_hash,
                        "superseded": bool(public_anchor.functions.isSuperseded(aid).call()) if has_supersede else False,
                        "records": self.indexer.count_between(int(e["fromBlock"]), int(e["toBlock"]))})
        return out

    def recent_records(self, limit: int = 30) -> list[IndexedEvent]:
        return self.indexer.events(limit=limit, newest_first=True)

    def check_record(self, tx_hash: str, log_index: int) -> dict[str, Any]:
        """Is this private-chain record anchored? Rebuilds the anchor's tree from the private
        chain's own logs and asks the public chain's ``PublicAnchor.verify``."""
        result: dict[str, Any] = {"tx_hash": tx_hash, "log_index": log_index, "anchored": False, "verified": False}
        if self.anchor is None:
            result["error"] = "no anchor chain configured (start the dashboard with --anchor-rpc-url)"
            return result
        w3 = self.protocol.w3
        try:
            receipt = w3.eth.get_transaction_receipt(tx_hash)
        except Exception as exc:
            result["error"] = f"no transaction {tx_hash} on the private chain ({type(exc).__name__})"
            return result
        log_entry = next((x for x in receipt["logs"] if int(x["logIndex"]) == log_index), None)
        if log_entry is None:
            result["error"] = f"transaction {tx_hash} has no log with index {log_index}"
            return result
        record = record_of(log_entry)
        leaf = record.leaf(self.chain_id)
        result.update(block=record.block_number, leaf="0x" + leaf.hex())
        covering = next((a for a in self.anchors()
                         if a["from"] <= record.block_number <= a["to"] and not a["superseded"]), None)
        if covering is None:
            result["error"] = f"block {record.block_number} is not inside any anchored range yet"
            return result
        addresses = [self.protocol.contract(n).address for n in ANCHORED_CONTRACTS if n in self.protocol]
        logs = w3.eth.get_logs({"fromBlock": covering["from"], "toBlock": covering["to"], "address": addresses})
        leaves = [record_of(x).leaf(self.chain_id) for x in logs]
        if leaf not in leaves:
            result["error"] = "the record is not one of the anchored contracts' events"
            return result
        tree = MerkleTree.build(leaves)
        proof = tree.proof(leaf)
        public_anchor = self.anchor.contract(ANCHOR_CONTRACT)
        verify_abi = next(f for f in public_anchor.abi if f.get("type") == "function" and f.get("name") == "verify")
        if verify_abi["inputs"][1]["type"] == "bytes":  # v2: the contract hashes the record itself
            argument: bytes = abi_encode(
                ["uint256", "uint256", "bytes32", "uint256", "address", "bytes32"],
                [self.chain_id, record.block_number, bytes.fromhex(record.tx_hash.removeprefix("0x")),
                 record.log_index, to_checksum_address(record.address),
                 bytes.fromhex(record.event_digest.removeprefix("0x"))])
        else:
            argument = leaf
        verified = bool(public_anchor.functions.verify(covering["id"], argument, proof).call())
        result.update(anchored=True, anchor_id=covering["id"], proof=["0x" + p.hex() for p in proof],
                      local_root="0x" + tree.root.hex(), onchain_root=covering["root"], verified=verified,
                      records_in_range=len(leaves))
        return result
