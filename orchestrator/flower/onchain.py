"""The chain facts both sides of a Flower app read (no flwr import: ClientApps start light).

A Flower message only names the chain's round id under :data:`ROUND_KEY`; everything else (the
round's config CID, who submitted which adapter, the rewards root) is read from the events here.
"""

from __future__ import annotations

from typing import Any

from orchestrator.storage.cid import bytes32_to_cid

ROUND_KEY = "ledger-round"  # config record: the chain's round id
CID_KEY = "ledger-cid"  # train reply: the adapter CID the org submitted
ORG_KEY = "ledger-org"  # train reply: the org's address


def chain_logs(node: Any, event: str, round_id: int, contract: str = "Rounds", **filters: Any) -> list[Any]:
    """The ``event`` logs of ``round_id`` (indexed ``roundId``) since the deployment block."""
    c = node.contract(contract)
    return list(getattr(c.events, event)().get_logs(
        from_block=node.protocol.manifest.first_block, argument_filters={"roundId": round_id, **filters}))


def submissions_on_chain(node: Any, round_id: int) -> dict[str, str]:
    """org address -> adapter CID of every ``UpdateSubmitted`` in ``round_id``."""
    return {ev["args"]["org"]: bytes32_to_cid(bytes(ev["args"]["adapterCid"]))
            for ev in chain_logs(node, "UpdateSubmitted", round_id)}


def submission_of(node: Any, round_id: int, org: str) -> tuple[str, int] | None:
    """(adapter CID, sample count) that ``org`` submitted in ``round_id``, or None."""
    logs = chain_logs(node, "UpdateSubmitted", round_id, org=org)
    if not logs:
        return None
    args = logs[-1]["args"]
    return bytes32_to_cid(bytes(args["adapterCid"])), int(args["numSamples"])
