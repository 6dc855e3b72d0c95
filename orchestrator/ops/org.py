"""An organisation's everyday actions, each from its own wallet: stake, join, leave, claim,
request unlearning, decrypt an adapter. The CLI (``python -m orchestrator org ...``) and the
trainer daemon (``--join``) call these functions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from orchestrator.daemons.base import Node
from orchestrator.errors import ConfigError, DaemonError
from orchestrator.ops.context import named

TOKEN = 10**18
SCOPES = {"org": 0, "round": 1, "samples": 2}


def parse_amount(text: str) -> int:
    """``"12.5"`` LLS -> token wei; a clear error for anything else."""
    from decimal import Decimal, InvalidOperation

    try:
        value = Decimal(text) * TOKEN
    except InvalidOperation:
        raise ConfigError(f"amount {text!r} is not a number of LLS (e.g. 100 or 12.5)") from None
    if value < 0 or value != value.to_integral_value():
        raise ConfigError(f"amount {text!r} must be positive with at most 18 decimals")
    return int(value)


def stake(node: Node, amount: int | None = None) -> int:
    """Stake ``amount`` (default: what is missing to the minimum stake); returns what was staked."""
    membership, staking, token = (node.contract(n) for n in ("Membership", "Staking", "LedgerToken"))
    if amount is None:
        amount = int(membership.functions.minStake().call()) - int(staking.functions.stakeOf(node.address).call())
    if amount <= 0:
        return 0
    balance = int(token.functions.balanceOf(node.address).call())
    if balance < amount:
        raise DaemonError(f"{node.address} holds {balance / TOKEN:g} LLS but staking needs {amount / TOKEN:g}; "
                          "get tokens from the governor first")
    node.send(token.functions.approve(staking.address, amount))
    node.send(staking.functions.stake(amount))
    return amount


def ensure_member(node: Node, enc_public: bytes, name: str) -> bool:
    """Stake what is missing and join with ``enc_public``; False when already a member."""
    membership = node.contract("Membership")
    if membership.functions.isMember(node.address).call():
        return False
    stake(node)
    node.send(membership.functions.join(enc_public, f"ledgerlora://org/{name}"))
    return True


def leave(node: Node) -> None:
    """Leave the consortium (Protocol v2's ``Membership.leave``); the stake then unbonds."""
    membership = node.contract("Membership")
    if not membership.functions.isMember(node.address).call():
        raise DaemonError(f"{node.address} is not a member; nothing to leave")
    if not any(f.get("name") == "leave" for f in membership.abi):
        raise DaemonError("this deployment's Membership has no leave() (Protocol v1); "
                          "ask the governor to removeMember, or redeploy Protocol v2")
    node.send(membership.functions.leave())


def finalized_report(node: Node, round_id: int) -> tuple[dict[str, Any], bytes]:
    """The round report (by the metricsHash CID of RoundFinalized) and the on-chain rewards root."""
    from orchestrator.storage.cid import bytes32_to_cid

    rounds = node.contract("Rounds")
    logs = rounds.events.RoundFinalized().get_logs(from_block=node.protocol.manifest.first_block,
                                                   argument_filters={"roundId": round_id})
    if not logs:
        raise DaemonError(f"round {round_id} is not finalized")
    args = logs[-1]["args"]
    report = json.loads(node.store.cat(bytes32_to_cid(bytes(args["metricsHash"]))))
    return report, bytes(args["rewardsRoot"])


def claim(node: Node, round_id: int) -> int:
    """Claim this org's reward of ``round_id`` with a proof rebuilt from the round report; returns
    the amount (0 when nothing is due or it was claimed already)."""
    from orchestrator.daemons.rewards import RewardTable

    rounds = node.contract("Rounds")
    if rounds.functions.hasClaimed(round_id, node.address).call():
        return 0
    report, root = finalized_report(node, round_id)
    table = RewardTable.from_json(report["rewards"])
    if table.root != root:
        raise DaemonError(f"round {round_id}: the report's rewards give root 0x{table.root.hex()}, the chain holds "
                          f"0x{root.hex()}; not claiming")
    amount = int(table.amounts.get(node.address, 0))
    if amount:
        node.send(rounds.functions.claimReward(round_id, amount, table.proof(node.address)))
    return amount


def submissions_of(node: Node, org: str) -> dict[int, dict[str, Any]]:
    """round -> the org's latest UpdateSubmitted args (works on Protocol v1 and v2 alike)."""
    rounds = node.contract("Rounds")
    logs = rounds.events.UpdateSubmitted().get_logs(from_block=node.protocol.manifest.first_block,
                                                    argument_filters={"org": org})
    return {int(log["args"]["roundId"]): dict(log["args"]) for log in logs}


def claimable_rounds(node: Node) -> list[int]:
    """Finalized rounds this org submitted to and has not claimed."""
    rounds = node.contract("Rounds")
    return [r for r in sorted(submissions_of(node, node.address))
            if named(rounds, "getRound", r)["state"] == 3 and not rounds.functions.hasClaimed(r, node.address).call()]


def request_unlearning(node: Node, scope: str, target: int = 0, reason: str = "") -> int:
    """Ask for this org's contributions to be forgotten; returns the request id.

    Protocol v2 takes a bond (``Unlearning.requestBond``): it is approved first, from this wallet.
    """
    import hashlib

    unlearning, token = node.contract("Unlearning"), node.contract("LedgerToken")
    if scope not in SCOPES:
        raise ConfigError(f"scope {scope!r} is not one of {', '.join(SCOPES)}")
    if any(f.get("name") == "requestBond" for f in unlearning.abi):
        bond = int(unlearning.functions.requestBond().call())
        if bond:
            node.send(token.functions.approve(unlearning.address, bond))
    receipt = node.send(unlearning.functions.requestUnlearning(
        node.address, SCOPES[scope], int(target).to_bytes(32, "big"), hashlib.sha256(reason.encode()).digest()))
    return int(unlearning.events.UnlearningRequested().process_receipt(receipt)[0]["args"]["requestId"])


def decrypt_adapter(store: Any, cid: str, address: str, key: bytes, out: Path, *, force: bool = False) -> Path:
    """Fetch, verify and decrypt the sealed adapter ``cid`` into the folder ``out``."""
    from orchestrator.storage import adapters as sealed

    out = Path(out)
    if out.exists() and any(out.iterdir()) if out.is_dir() else out.exists():
        if not force:
            raise ConfigError(f"{out} exists; choose another -o OUT or pass --force to replace it")
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    return sealed.fetch_adapter(store, cid, address.lower(), key, out)
