"""Reward allocation: budget-balanced, non-negative, zero for harm, integer-exact."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.agents.allocation import allocate_rewards

values_st = st.dictionaries(st.sampled_from(["a", "b", "c", "d", "e"]),
                            st.floats(min_value=-5, max_value=5, allow_nan=False), min_size=1)


@given(budget=st.integers(min_value=0, max_value=10**24), values=values_st,
       price=st.one_of(st.none(), st.floats(min_value=0, max_value=1e21)))
def test_total_within_budget_and_amounts_non_negative(budget: int, values: dict[str, float], price: float | None) -> None:
    amounts = allocate_rewards(budget, values, price=price)
    assert sum(amounts.values()) <= budget
    assert all(a >= 0 for a in amounts.values())
    for org, v in values.items():
        if v <= 0:
            assert amounts[org] == 0


def test_proportional_split_and_pool_keeps_non_payees_share() -> None:
    amounts = allocate_rewards(1000, {"a": 3.0, "b": 1.0, "c": -2.0, "old": 1.0}, payees=["a", "b", "c"])
    assert amounts == {"a": 600, "b": 200, "c": 0}  # "old" is in the model but did not submit: 200 stay


def test_price_pays_per_unit_and_scales_down_at_the_cap() -> None:
    assert allocate_rewards(10**6, {"a": 0.5, "b": 0.25}, price=100.0) == {"a": 50, "b": 25}
    capped = allocate_rewards(60, {"a": 0.5, "b": 0.25}, price=100.0)
    assert capped == {"a": 40, "b": 20}


def test_bad_input_is_refused_with_the_value() -> None:
    with pytest.raises(ValueError, match="-1"):
        allocate_rewards(-1, {"a": 1.0})
    with pytest.raises(ValueError, match="no contribution value"):
        allocate_rewards(10, {"a": 1.0}, payees=["b"])
