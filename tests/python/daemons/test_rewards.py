"""Reward allocation and the round config document: pure functions, no chain."""

from __future__ import annotations

import pytest

from orchestrator.daemons.rewards import RewardTable, allocate, build_table
from orchestrator.daemons.roundconfig import RoundConfig
from orchestrator.errors import ConfigError
from orchestrator.merkle import reward_leaf, verify

A, B, C = "0x" + "a" * 40, "0x" + "b" * 40, "0x" + "c" * 40


def test_budget_is_split_in_proportion_to_positive_scores() -> None:
    amounts = allocate(1000, {A: 3.0, B: 1.0, C: -2.0}, {A: 1, B: 1, C: 1})
    assert amounts == {A: 750, B: 250, C: 0}


def test_no_helpful_org_falls_back_to_sample_counts() -> None:
    assert allocate(900, {A: -1.0, B: 0.0}, {A: 2, B: 1}) == {A: 600, B: 300}


def test_allocation_never_exceeds_the_budget() -> None:
    amounts = allocate(10**18 + 7, {A: 1 / 3, B: 1 / 3, C: 1 / 3}, {})
    assert sum(amounts.values()) <= 10**18 + 7
    assert max(amounts.values()) - min(amounts.values()) <= 1


def test_negative_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="-5"):
        allocate(-5, {A: 1.0}, {A: 1})


def test_table_proofs_verify_and_zero_rewards_have_no_leaf() -> None:
    table = build_table({A: 5, B: 0, C: 7})
    assert set(table.amounts) == {A, C}
    for org, amount in table.amounts.items():
        assert verify(table.proof(org), table.root, reward_leaf(org, amount))
    with pytest.raises(KeyError, match=B):
        table.proof(B)


def test_table_round_trips_through_its_json_form() -> None:
    table = build_table({A: 10**21, C: 3})
    again = RewardTable.from_json(table.to_json())
    assert again.root == table.root and again.amounts == table.amounts


def test_round_config_round_trips_and_rejects_bad_values() -> None:
    cfg = RoundConfig(model="tiny", train={"steps": 2}, aggregator_keys={A: "11" * 32})
    assert RoundConfig.from_bytes(cfg.to_bytes()) == cfg
    with pytest.raises(ConfigError, match="federated"):
        RoundConfig(mode="federated", aggregator_keys={A: "11" * 32})
    with pytest.raises(ConfigError, match="32 bytes"):
        RoundConfig(aggregator_keys={A: "11" * 8})
    with pytest.raises(ConfigError, match="unknown fields"):
        RoundConfig.from_bytes(b'{"model": "tiny", "surprise": 1}')
    with pytest.raises(ConfigError, match="not valid JSON"):
        RoundConfig.from_bytes(b"{nope")
