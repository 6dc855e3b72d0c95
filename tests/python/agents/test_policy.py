"""The trainer's policy object: decisions logged with state and Q-values, the table survives restarts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.agents.policy import Economics, QLearningPolicy
from orchestrator.agents.qlearning import AgentConfig


def test_decision_is_stable_per_round_and_survives_a_restart(tmp_path: Path) -> None:
    econ = Economics(cost_per_step=0.5, valuation=10.0)
    policy = QLearningPolicy(tmp_path, econ, AgentConfig(seed=5, epsilon_start=1.0, epsilon_end=1.0))
    first = policy.decide(1, round_steps=8)
    assert policy.decide(1, round_steps=8) == first  # asked twice (a redelivered event): same answer
    restarted = QLearningPolicy(tmp_path, econ)
    assert restarted.decide(1, round_steps=8) == first
    assert first.steps == {"skip": 0, "low": 2, "medium": 4, "high": 8}[first.action]
    reward = restarted.settle(1, reward_units=3 * 10**18, share=0.4, improvement=0.2)
    assert reward == pytest.approx(3.0 - 0.5 * first.steps + 10.0 * 0.2)
    assert restarted.settle(1, reward_units=3 * 10**18, share=0.4, improvement=0.2) is None  # idempotent
    again = QLearningPolicy(tmp_path, econ)
    state = tuple(first.decision["state"])
    assert again.agent.q_values(state) == restarted.agent.q_values(state)
    assert again.agent.q_values(state)[again.agent.actions.index(first.action)] == pytest.approx(reward)
    log = [json.loads(line) for line in (tmp_path / "decisions.jsonl").read_text().splitlines()]
    assert [e["event"] for e in log] == ["decided", "settled"]
    assert set(log[0]) >= {"state", "q_values", "epsilon", "action", "round"}


def test_compute_budget_limits_the_levels(tmp_path: Path) -> None:
    policy = QLearningPolicy(tmp_path / "a", Economics(compute_budget_steps=3), AgentConfig(seed=1))
    # only 'low' (2 steps) fits a 3-step budget, once
    picks = {policy.decide(r, round_steps=8).action for r in range(1, 40)}
    assert picks <= {"skip", "low"}
    assert policy.steps_used <= 3
