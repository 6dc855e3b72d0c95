"""Contribution values of a cooperative game: exact Shapley, Monte-Carlo Shapley, leave-one-out.

A game is a set of players and a value function ``v(S)`` on coalitions (frozensets of player
names) with ``v(empty) = 0`` by convention of the caller (the value of a coalition is the
validation-loss reduction of the model merged from its members' adapters, against the base
model). Every function evaluates ``v`` at most once per coalition: values are cached by
members, because each evaluation is a model evaluation in the aggregator.

Exact Shapley enumerates all 2^K coalitions and is used for K <= ``MAX_EXACT`` players; above
that, permutation sampling gives an unbiased estimate with a standard error per player.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

MAX_EXACT = 10
"""Largest number of players for exact Shapley (2^10 = 1,024 coalition evaluations)."""

ValueFn = Callable[[frozenset[str]], float]


@dataclass(frozen=True)
class ShapleyResult:
    """Per-player values, with the coalition values they were computed from."""

    method: str  # "exact", "monte_carlo" or "leave_one_out"
    values: dict[str, float]
    coalition_values: dict[frozenset[str], float]
    #: standard error per player (0 for exact methods)
    std_errors: dict[str, float] = field(default_factory=dict)
    permutations: int = 0

    def ci95(self, player: str) -> tuple[float, float]:
        half = 1.96 * self.std_errors.get(player, 0.0)
        return self.values[player] - half, self.values[player] + half


class CachedGame:
    """A value function memoised by coalition members (each coalition evaluated once)."""

    def __init__(self, players: Sequence[str], value: ValueFn) -> None:
        if len(set(players)) != len(players):
            raise ValueError(f"players must be distinct, got {list(players)}")
        self.players = list(players)
        self._value = value
        self.cache: dict[frozenset[str], float] = {}

    def __call__(self, coalition: frozenset[str]) -> float:
        if coalition not in self.cache:
            unknown = coalition - set(self.players)
            if unknown:
                raise ValueError(f"coalition has non-players {sorted(unknown)}")
            v = float(self._value(coalition))
            if not math.isfinite(v):
                raise ValueError(f"value of coalition {sorted(coalition)} is not finite: {v}")
            self.cache[coalition] = v
        return self.cache[coalition]


def mask_members(players: Sequence[str], mask: int) -> frozenset[str]:
    return frozenset(p for i, p in enumerate(players) if mask >> i & 1)


def shapley_weights(k: int) -> np.ndarray:
    """w[s] = s! (k-s-1)! / k!: the weight of a coalition of size s not containing the player."""
    return np.array([math.factorial(s) * math.factorial(k - s - 1) / math.factorial(k) for s in range(k)])


def shapley_from_table(table: np.ndarray) -> np.ndarray:
    """Exact Shapley values from ``table[mask] = v(coalition of the set bits of mask)``.

    Player i is bit i. Vectorised over the 2^K masks: the simulation calls this every round.
    """
    size = int(table.shape[0])
    k = size.bit_length() - 1
    if size != 1 << k or k < 1:
        raise ValueError(f"a coalition table has 2^K entries (K >= 1), got {size}")
    masks = np.arange(size)
    popcount = np.array([bin(m).count("1") for m in range(size)])
    weights = shapley_weights(k)
    phi = np.empty(k)
    for i in range(k):
        without = masks[(masks >> i) & 1 == 0]
        phi[i] = float(np.sum(weights[popcount[without]] * (table[without | (1 << i)] - table[without])))
    return phi


def exact_shapley(players: Sequence[str], value: ValueFn | CachedGame) -> ShapleyResult:
    """Shapley values from all 2^K coalitions (K <= MAX_EXACT)."""
    k = len(players)
    if k == 0:
        return ShapleyResult("exact", {}, {frozenset(): 0.0})
    if k > MAX_EXACT:
        raise ValueError(f"exact Shapley enumerates 2^K coalitions; K={k} > {MAX_EXACT}: use monte_carlo_shapley")
    game = value if isinstance(value, CachedGame) else CachedGame(players, value)
    table = np.array([game(mask_members(players, m)) for m in range(1 << k)])
    phi = shapley_from_table(table)
    return ShapleyResult("exact", {p: float(phi[i]) for i, p in enumerate(players)}, dict(game.cache),
                         {p: 0.0 for p in players})


def monte_carlo_shapley(
    players: Sequence[str], value: ValueFn | CachedGame, *, permutations: int = 200, seed: int = 0
) -> ShapleyResult:
    """Permutation-sampling estimate: the mean marginal contribution over random orders.

    Each sampled permutation gives one marginal contribution per player; the estimate is their
    mean and its standard error is their standard deviation over sqrt(permutations).
    """
    if permutations < 2:
        raise ValueError(f"monte_carlo_shapley needs >= 2 permutations for an error bar, got {permutations}")
    game = value if isinstance(value, CachedGame) else CachedGame(players, value)
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {p: [] for p in players}
    order = sorted(players)
    for _ in range(permutations):
        rng.shuffle(order)
        coalition: frozenset[str] = frozenset()
        before = game(coalition)
        for p in order:
            coalition = coalition | {p}
            after = game(coalition)
            samples[p].append(after - before)
            before = after
    values = {p: float(np.mean(samples[p])) for p in players}
    errors = {p: float(np.std(samples[p], ddof=1) / math.sqrt(permutations)) for p in players}
    return ShapleyResult("monte_carlo", values, dict(game.cache), errors, permutations)


def leave_one_out(players: Sequence[str], value: ValueFn | CachedGame) -> ShapleyResult:
    """v(N) - v(N without i): K + 1 evaluations, no fairness axioms beyond the null player."""
    game = value if isinstance(value, CachedGame) else CachedGame(players, value)
    everyone = frozenset(players)
    full = game(everyone)
    values = {p: full - game(everyone - {p}) for p in players}
    return ShapleyResult("leave_one_out", values, dict(game.cache), {p: 0.0 for p in players})


def contribution_values(
    players: Sequence[str], value: ValueFn | CachedGame, *, method: str = "auto", permutations: int = 200,
    seed: int = 0,
) -> ShapleyResult:
    """``auto``: exact for K <= MAX_EXACT, Monte-Carlo above; or name the method."""
    if method == "auto":
        method = "exact" if len(players) <= MAX_EXACT else "monte_carlo"
    if method == "exact":
        return exact_shapley(players, value)
    if method == "monte_carlo":
        return monte_carlo_shapley(players, value, permutations=permutations, seed=seed)
    if method == "leave_one_out":
        return leave_one_out(players, value)
    raise ValueError(f"unknown contribution method {method!r}; choose auto, exact, monte_carlo or leave_one_out")


def coalition_key(coalition: frozenset[str]) -> str:
    """Canonical text of a coalition for reports: members sorted case-insensitively, comma-joined."""
    return ",".join(sorted(coalition, key=str.lower))


def values_to_json(values: Mapping[frozenset[str], float]) -> list[dict[str, object]]:
    return [{"members": sorted(c, key=str.lower), "value": v}
            for c, v in sorted(values.items(), key=lambda kv: (len(kv[0]), coalition_key(kv[0])))]


def values_from_json(rows: Sequence[Mapping[str, object]]) -> dict[frozenset[str], float]:
    return {frozenset(str(m) for m in row["members"]): float(row["value"]) for row in rows}  # type: ignore[attr-defined, arg-type]
