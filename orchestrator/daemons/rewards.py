"""Reward allocation: contribution scores -> integer token amounts -> a Merkle root.

Pure functions, no chain and no model: the aggregator calls them at finalization and anyone
can re-run them on the round report to check the root the aggregator posted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator.merkle import MerkleTree, reward_leaf


@dataclass(frozen=True)
class RewardTable:
    """Amounts per org (checksummed address -> token units) and the tree over them."""

    amounts: dict[str, int]
    tree: MerkleTree | None

    @property
    def root(self) -> bytes:
        return self.tree.root if self.tree is not None else b"\x00" * 32

    def proof(self, org: str) -> list[bytes]:
        if self.tree is None or org not in self.amounts:
            raise KeyError(f"{org} has no reward in this table (orgs: {sorted(self.amounts)})")
        return self.tree.proof(reward_leaf(org, self.amounts[org]))

    def to_json(self) -> list[dict[str, object]]:
        return [{"org": org, "amount": str(amount)} for org, amount in sorted(self.amounts.items())]

    @classmethod
    def from_json(cls, rows: list[dict[str, object]]) -> RewardTable:
        return build_table({str(r["org"]): int(str(r["amount"])) for r in rows})


def allocate(budget: int, scores: Mapping[str, float], samples: Mapping[str, int]) -> dict[str, int]:
    """Split ``budget`` in proportion to each org's positive contribution score.

    Orgs whose leave-one-out score is zero or negative (their adapter did not help the merged
    model on the validation set) get nothing. If no org helped, the budget is split by sample
    count instead, so a round of honest but unhelpful work is still paid. Amounts are floored;
    the remainder (a few token units at most) stays in the round's budget, unclaimed.
    """
    if budget < 0:
        raise ValueError(f"reward budget must be >= 0, got {budget}")
    orgs = sorted(set(scores) | set(samples))
    if not orgs or budget == 0:
        return {org: 0 for org in orgs}
    # Scores are floats; scale to integers first so the split is exact integer arithmetic.
    positive = {org: int(round(max(float(scores.get(org, 0.0)), 0.0) * 1e12)) for org in orgs}
    weights = positive if sum(positive.values()) > 0 else {org: int(samples.get(org, 0)) for org in orgs}
    total = sum(weights.values())
    if total == 0:
        return {org: 0 for org in orgs}
    return {org: budget * weights[org] // total for org in orgs}


def build_table(amounts: Mapping[str, int]) -> RewardTable:
    """Tree over the orgs with a non-zero amount (a zero leaf would be a pointless claim)."""
    paid = {org: int(a) for org, a in amounts.items() if int(a) > 0}
    tree = MerkleTree.build([reward_leaf(o, a) for o, a in paid.items()]) if paid else None
    return RewardTable(amounts=paid, tree=tree)
