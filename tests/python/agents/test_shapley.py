"""Shapley values: the axioms on games with known answers, Monte-Carlo error bars, the cache."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from orchestrator.agents.shapley import (
    CachedGame,
    contribution_values,
    exact_shapley,
    leave_one_out,
    monte_carlo_shapley,
    shapley_from_table,
    values_from_json,
    values_to_json,
)


def glove(coalition: frozenset[str]) -> float:
    """One left glove, two right gloves: a pair is worth 1."""
    return float(min(len(coalition & {"L"}), len(coalition & {"R1", "R2"})))


def test_glove_game_has_its_textbook_values() -> None:
    result = exact_shapley(["L", "R1", "R2"], glove)
    assert result.values["L"] == pytest.approx(2 / 3)
    assert result.values["R1"] == pytest.approx(1 / 6)
    assert result.values["R2"] == pytest.approx(1 / 6)


def random_game(k: int, seed: int) -> dict[frozenset[str], float]:
    rng = np.random.default_rng(seed)
    players = [f"p{i}" for i in range(k)]
    table = {frozenset(c): float(rng.normal()) for r in range(1, k + 1) for c in itertools.combinations(players, r)}
    table[frozenset()] = 0.0
    return table


@pytest.mark.parametrize("k", [1, 2, 5, 8])
def test_efficiency_values_sum_to_grand_coalition(k: int) -> None:
    table = random_game(k, seed=k)
    players = [f"p{i}" for i in range(k)]
    result = exact_shapley(players, table.__getitem__)
    assert sum(result.values.values()) == pytest.approx(table[frozenset(players)] - table[frozenset()])


def test_symmetric_players_get_equal_values_and_null_player_zero() -> None:
    # a and b are interchangeable in every coalition; z adds nothing anywhere.
    def v(c: frozenset[str]) -> float:
        pair = len(c & {"a", "b"})
        has_c = "c" in c
        return float(pair**2 + 3 * has_c + has_c * pair)

    result = exact_shapley(["a", "b", "c", "z"], v)
    assert result.values["a"] == pytest.approx(result.values["b"])
    assert result.values["z"] == pytest.approx(0.0, abs=1e-12)
    assert result.values["c"] != pytest.approx(result.values["a"])


def test_additive_game_pays_each_player_its_own_value() -> None:
    own = {"a": 0.3, "b": -0.2, "c": 1.1}
    result = exact_shapley(list(own), lambda c: sum(own[p] for p in c))
    for p, x in own.items():
        assert result.values[p] == pytest.approx(x)


def test_each_coalition_is_evaluated_once() -> None:
    calls: list[frozenset[str]] = []

    def v(c: frozenset[str]) -> float:
        calls.append(c)
        return float(len(c) ** 2)

    game = CachedGame(["a", "b", "c", "d"], v)
    exact = exact_shapley(game.players, game)
    loo = leave_one_out(game.players, game)
    assert len(calls) == 16 == len(set(calls))
    assert len(exact.coalition_values) == 16
    assert loo.values["a"] == pytest.approx(16 - 9)


def test_monte_carlo_estimate_covers_the_exact_values_with_its_error_bar() -> None:
    table = random_game(7, seed=11)
    players = [f"p{i}" for i in range(7)]
    exact = exact_shapley(players, table.__getitem__)
    mc = monte_carlo_shapley(players, table.__getitem__, permutations=400, seed=3)
    for p in players:
        assert mc.std_errors[p] > 0
        assert abs(mc.values[p] - exact.values[p]) <= 4 * mc.std_errors[p] + 1e-9
    # every sampled permutation telescopes to v(N): efficiency holds exactly for the estimate too
    assert sum(mc.values.values()) == pytest.approx(table[frozenset(players)])
    again = monte_carlo_shapley(players, table.__getitem__, permutations=400, seed=3)
    assert again.values == mc.values


def test_auto_switches_to_monte_carlo_above_ten_players() -> None:
    players = [f"p{i:02d}" for i in range(12)]
    result = contribution_values(players, lambda c: float(len(c)), permutations=20)
    assert result.method == "monte_carlo"
    assert all(v == pytest.approx(1.0) for v in result.values.values())
    with pytest.raises(ValueError, match="K=12 > 10"):
        exact_shapley(players, lambda c: 0.0)


def test_table_form_matches_the_definition_by_permutations() -> None:
    table = random_game(4, seed=5)
    players = [f"p{i}" for i in range(4)]
    by_perm = dict.fromkeys(players, 0.0)
    perms = list(itertools.permutations(players))
    for order in perms:
        before: frozenset[str] = frozenset()
        for p in order:
            by_perm[p] += (table[before | {p}] - table[before]) / len(perms)
            before = before | {p}
    masks = np.array([table[frozenset(p for i, p in enumerate(players) if m >> i & 1)] for m in range(16)])
    assert list(shapley_from_table(masks)) == pytest.approx([by_perm[p] for p in players])


def test_coalition_values_round_trip_through_json() -> None:
    values = exact_shapley(["0xB", "0xa"], lambda c: float(len(c))).coalition_values
    assert values_from_json(values_to_json(values)) == values
