"""``python -m orchestrator status``: the consortium at a glance, read from the chain only.

Rounds and their state with deadlines, members with their stakes, who has (not) submitted to
the open round, open unlearning requests with the time left, the latest model CID, and the
events set aside by the daemons whose state folders are on this machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from web3 import Web3

from orchestrator.ops.context import named

ROUND_STATES = {0: "none", 1: "open", 2: "closed", 3: "finalized", 4: "cancelled"}
REQUEST_STATES = {0: "none", 1: "requested", 2: "acknowledged", 3: "completed", 4: "slashed", 5: "closed", 6: "voided",
                  7: "expired"}
SCOPE_NAMES = {0: "org", 1: "round", 2: "samples"}
TOKEN = 10**18


def _cid(value: bytes) -> str | None:
    from orchestrator.storage.cid import bytes32_to_cid

    return bytes32_to_cid(bytes(value)) if any(bytes(value)) else None


def collect(w3: Web3, protocol: Any, state_dirs: list[Path], *, last_rounds: int = 10) -> dict[str, Any]:
    rounds, membership, staking = (protocol.contract(n) for n in ("Rounds", "Membership", "Staking"))
    unlearning, registry = protocol.contract("Unlearning"), protocol.contract("ContributionRegistry")
    now = int(w3.eth.get_block("latest")["timestamp"])
    members = [str(m) for m in membership.functions.members().call()]
    out: dict[str, Any] = {
        "chain_id": int(w3.eth.chain_id), "network": protocol.manifest.network, "block": int(w3.eth.block_number),
        "time": now, "reward_pool": int(rounds.functions.rewardPool().call()),
        "members": [{"address": m, "name": membership.functions.metadataOf(m).call(),
                     "stake": int(staking.functions.stakeOf(m).call())} for m in members],
    }
    count = int(rounds.functions.roundCount().call())
    out["rounds"] = []
    for round_id in range(max(1, count - last_rounds + 1), count + 1):
        r = named(rounds, "getRound", round_id)
        entry = {"round": round_id, "state": ROUND_STATES.get(int(r["state"]), str(r["state"])),
                 "deadline": int(r["deadline"]), "seconds_left": max(0, int(r["deadline"]) - now),
                 "submissions": int(r["numSubmissions"]), "budget": int(r.get("rewardBudget", 0)),
                 "model_cid": _cid(r["modelCid"]) if "modelCid" in r else None}
        if entry["state"] == "open":
            entry["submitted"] = [m for m in members if rounds.functions.hasSubmitted(round_id, m).call()]
            entry["waiting_for"] = [m for m in members if m not in entry["submitted"]]
        out["rounds"].append(entry)
    requests = []
    for request_id in range(1, int(unlearning.functions.requestCount().call()) + 1):
        q = named(unlearning, "getRequest", request_id)
        state = REQUEST_STATES.get(int(q["state"]), str(q["state"]))
        if state in ("requested", "acknowledged"):
            requests.append({"request": request_id, "org": q["org"], "scope": SCOPE_NAMES.get(int(q["scope"]), q["scope"]),
                             "state": state, "deadline": int(q["deadline"]),
                             "seconds_left": max(0, int(q["deadline"]) - now), "aggregator": q["aggregator"]})
    out["unlearning_open"] = requests
    version = int(registry.functions.latestVersion().call())
    out["model"] = {"version": version,
                    "cid": _cid(named(registry, "getVersion", version)["modelCid"]) if version else None}
    out["set_aside"] = _set_aside(state_dirs)
    return out


def _set_aside(state_dirs: list[Path]) -> list[dict[str, Any]]:
    from orchestrator.chain.scanner import DeadLetterStore
    from orchestrator.ops.deadletters import event_names

    names = event_names() if state_dirs else {}
    found = []
    for folder in state_dirs:
        for db_path in sorted(Path(folder).rglob("*.sqlite")):
            store = DeadLetterStore.open(db_path)
            try:
                for d in store.list():
                    found.append({"state": str(db_path.parent), "id": d.id, "event": names.get(d.topic, d.topic),
                                  "block": d.block, "error": d.last_error, "retry_at": d.retry_at})
            finally:
                store.close()
    return found


def _ago(seconds: int) -> str:
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def render(s: dict[str, Any]) -> str:
    lines = [f"chain {s['chain_id']} ({s['network']}), block {s['block']}; reward pool {s['reward_pool'] / TOKEN:g} LLS",
             f"members ({len(s['members'])}):"]
    lines += [f"  {m['address']}  {m['name'] or '-'}  stake {m['stake'] / TOKEN:g} LLS" for m in s["members"]]
    lines.append("rounds:" if s["rounds"] else "rounds: none yet")
    for r in s["rounds"]:
        line = f"  #{r['round']} {r['state']}, {r['submissions']} submission(s), budget {r['budget'] / TOKEN:g} LLS"
        if r["state"] == "open":
            line += f", deadline in {_ago(r['seconds_left'])}, waiting for {len(r['waiting_for'])}: " + (
                ", ".join(r["waiting_for"]) or "nobody")
        elif r["model_cid"]:
            line += f", model {r['model_cid']}"
        lines.append(line)
    lines.append(f"latest model: version {s['model']['version']} {s['model']['cid'] or '(none)'}")
    lines.append("open unlearning requests:" if s["unlearning_open"] else "open unlearning requests: none")
    lines += [f"  #{q['request']} {q['scope']} of {q['org']}: {q['state']}, {_ago(q['seconds_left'])} left "
              f"(aggregator {q['aggregator']})" for q in s["unlearning_open"]]
    lines.append("set-aside events:" if s["set_aside"] else "set-aside events: none")
    lines += [f"  {d['state']}: {d['id']} {d['event']} (block {d['block']}): {d['error']}" for d in s["set_aside"]]
    return "\n".join(lines)


def wait_until_settled(protocol: Any, round_id: int | None, request_id: int | None, timeout: float,
                       poll: float = 2.0) -> str:
    """Block until round ``round_id`` is finalized/cancelled and request ``request_id`` settled."""
    import time

    from orchestrator.errors import DaemonError

    rounds, unlearning = protocol.contract("Rounds"), protocol.contract("Unlearning")
    deadline = time.monotonic() + timeout
    while True:
        round_state = ROUND_STATES.get(int(named(rounds, "getRound", round_id)["state"])) if round_id else None
        request_state = None
        if request_id and request_id <= int(unlearning.functions.requestCount().call()):
            request_state = REQUEST_STATES.get(int(named(unlearning, "getRequest", request_id)["state"]), "settled")
        round_done = round_id is None or round_state in ("finalized", "cancelled")
        request_done = request_id is None or request_state not in (None, "none", "requested", "acknowledged")
        if round_done and request_done:
            return "; ".join(x for x in (round_id and f"round {round_id} {round_state}",
                                         request_id and f"request {request_id} {request_state}") if x)
        if time.monotonic() > deadline:
            raise DaemonError(f"timed out after {timeout:.0f}s: round {round_id} is {round_state}, "
                              f"request {request_id} is {request_state}; see the daemons' logs and `status`")
        time.sleep(poll)
