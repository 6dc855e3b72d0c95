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
    def total(self) -> int:
        """What the tree pays in all: ``finalizeRound``'s ``rewardsTotal`` (<= the budget)."""
        return sum(self.amounts.values())

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


def round_report(rounds: object, store: object, round_id: int) -> dict[str, object] | None:
    """The report a finalized round points to (its ``metricsHash`` CID), or None if not finalized."""
    import json

    from orchestrator.storage.cid import bytes32_to_cid

    logs = rounds.events.RoundFinalized().get_logs(  # type: ignore[attr-defined]
        from_block=0, argument_filters={"roundId": round_id})
    if not logs:
        return None
    return json.loads(store.cat(bytes32_to_cid(bytes(logs[0]["args"]["metricsHash"]))))  # type: ignore[attr-defined]


def rewards_settled(rounds: object, store: object, round_id: int) -> bool:
    """True once the round is finalized and every org with a non-zero reward has claimed it."""
    report = round_report(rounds, store, round_id)
    if report is None:
        return False
    table = RewardTable.from_json(report["rewards"])  # type: ignore[arg-type]
    return all(rounds.functions.hasClaimed(round_id, org).call()  # type: ignore[attr-defined]
               for org in table.amounts)


# -- contribution-based rewards (exact Shapley of re-merged coalitions) ------------------------
@dataclass(frozen=True)
class RoundContributions:
    """Everything needed to recompute a round's rewards: the report carries it as JSON.

    ``players`` are the adapters in the merged model (each member's latest valid one);
    ``payees`` are this round's submitters among them (only they can claim); ``coalitions``
    holds the value of every coalition the method evaluated (all 2^K for exact Shapley).
    """

    method: str
    players: list[str]
    payees: list[str]
    coalitions: dict[frozenset[str], float]
    values: dict[str, float]
    std_errors: dict[str, float]
    budget: int
    price: int | None  # token units per nat of value; None: the budget is split proportionally
    permutations: int
    seed: int
    amounts: dict[str, int]

    def to_json(self) -> dict[str, object]:
        from orchestrator.agents.shapley import values_to_json

        return {"method": self.method, "players": self.players, "payees": self.payees,
                "value": "validation-loss reduction (nats/token) of the re-merged coalition vs the base model",
                "coalitions": values_to_json(self.coalitions), "shapley": self.values, "std_errors": self.std_errors,
                "budget": str(self.budget), "price": None if self.price is None else str(self.price),
                "permutations": self.permutations, "seed": self.seed,
                "amounts": {o: str(a) for o, a in sorted(self.amounts.items())}}


def coalitions_needed(players: list[str], method: str, *, permutations: int = 200, seed: int = 0) -> list[frozenset[str]]:
    """The coalitions ``method`` will ask for (the aggregator evaluates them in one model load)."""
    from orchestrator.agents.shapley import CachedGame, contribution_values

    game = CachedGame(players, lambda c: 0.0)
    contribution_values(players, game, method=method, permutations=permutations, seed=seed)
    return sorted(game.cache, key=lambda c: (len(c), sorted(c)))


def contribution_rewards(
    players: list[str],
    coalitions: Mapping[frozenset[str], float],
    payees: list[str],
    budget: int,
    *,
    method: str = "auto",
    price: int | None = None,
    permutations: int = 200,
    seed: int = 0,
) -> RoundContributions:
    """Contribution values from coalition values, then amounts: pure, so anyone can recompute them."""
    from orchestrator.agents.allocation import allocate_rewards
    from orchestrator.agents.shapley import contribution_values

    def value(c: frozenset[str]) -> float:
        if c not in coalitions:
            raise ValueError(f"the value of coalition {sorted(c)} is missing; it must be evaluated first")
        return float(coalitions[c])

    players = sorted(players, key=str.lower)
    result = contribution_values(players, value, method=method, permutations=permutations, seed=seed)
    amounts = allocate_rewards(budget, result.values, payees=payees,
                               price=None if price is None else float(price))
    return RoundContributions(result.method, players, sorted(payees, key=str.lower), dict(coalitions),
                              result.values, result.std_errors, budget, price, permutations, seed, amounts)


def recompute_rewards(contributions: Mapping[str, object]) -> RewardTable:
    """The rewards table a round report's ``contributions`` section implies (what an auditor runs)."""
    from orchestrator.agents.shapley import values_from_json

    price = contributions.get("price")
    result = contribution_rewards(
        list(contributions["players"]), values_from_json(contributions["coalitions"]),  # type: ignore[call-overload, arg-type]
        list(contributions["payees"]), int(str(contributions["budget"])),  # type: ignore[call-overload]
        method=str(contributions["method"]), price=None if price is None else int(str(price)),
        permutations=int(str(contributions["permutations"])), seed=int(str(contributions["seed"])))
    return build_table(result.amounts)


def score_round(
    model: str,
    adapter_dirs: Mapping[str, object],
    samples: Mapping[str, int],
    val_texts: list[str],
    payees: list[str],
    budget: int,
    *,
    seq_len: int,
    batch_size: int,
    method: str = "auto",
    price: int | None = None,
    permutations: int = 200,
    seed: int = 0,
) -> RoundContributions:
    """The aggregator's scoring step: evaluate the needed coalitions' re-merged models, then pay."""
    from pathlib import Path

    from orchestrator.learning.coalitions import coalition_values

    players = sorted(adapter_dirs, key=str.lower)
    needed = coalitions_needed(players, method, permutations=permutations, seed=seed)
    _, values = coalition_values(model, {o: Path(str(p)) for o, p in adapter_dirs.items()}, samples, val_texts,
                                 needed, seq_len=seq_len, batch_size=batch_size)
    return contribution_rewards(players, values, payees, budget, method=method, price=price,
                                permutations=permutations, seed=seed)
