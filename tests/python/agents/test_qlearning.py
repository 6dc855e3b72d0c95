"""The Q-learning agent: its update rule, a toy problem with a known optimum, determinism."""

from __future__ import annotations

import dataclasses
import json

import pytest

from orchestrator.agents.qlearning import AgentConfig, Observation, QAgent, StateSpace, org_reward


def test_update_follows_the_q_learning_rule() -> None:
    agent = QAgent(AgentConfig(alpha=0.1, gamma=0.5))
    s, s2 = (0, 0, 1, 1), (1, 1, 1, 1)
    agent.q_values(s2)[3] = 4.0  # max_a' Q(s', a') = 4
    # first visit: alpha = max(0.1, 1/1) = 1 -> Q = r + gamma * 4
    agent.update(s, "low", 2.0, s2)
    assert agent.q_values(s)[1] == pytest.approx(2.0 + 0.5 * 4.0)
    # second visit: alpha = 1/2; TD error = (-1 + 2) - 4 = -3
    error = agent.update(s, "low", -1.0, s2)
    assert error == pytest.approx(-3.0)
    assert agent.q_values(s)[1] == pytest.approx(4.0 - 0.5 * 3.0)
    # from the 11th visit on the step is the constant alpha
    for _ in range(9):
        agent.update(s, "low", 0.0, s2)
    before = agent.q_values(s)[1]
    agent.update(s, "low", 10.0, s2)
    assert agent.q_values(s)[1] == pytest.approx(before + 0.1 * (10.0 + 2.0 - before))
    assert agent.q_values(s)[0] == 0.0  # other actions untouched


def test_epsilon_decays_to_its_floor() -> None:
    agent = QAgent(AgentConfig(epsilon_start=0.5, epsilon_end=0.05, epsilon_decay=0.5))
    seen = []
    for _ in range(6):
        seen.append(agent.epsilon)
        agent.act((0, 0, 0, 0))
    assert seen == pytest.approx([0.5, 0.25, 0.125, 0.0625, 0.05, 0.05])


def test_learns_the_known_optimal_policy_of_a_delayed_reward_problem() -> None:
    """Two states. In s0, 'a' pays 1 and stays; 'b' pays 0 and moves to s1. In s1, 'b' pays 3
    and stays; 'a' pays 0 and goes back. With gamma 0.9 the optimum is b everywhere
    (Q*(s0,b) = 0.9 * 30 = 27 > Q*(s0,a) = 1 + 0.9 * 27 = 25.3): a myopic agent would take a."""
    agent = QAgent(AgentConfig(alpha=0.05, gamma=0.9, epsilon_start=1.0, epsilon_end=0.2, epsilon_decay=0.999,
                               seed=7), actions=("a", "b"))
    state = (0,)
    for _ in range(20000):
        action = agent.act(state).action
        if state == (0,):
            reward, nxt = (1.0, (0,)) if action == "a" else (0.0, (1,))
        else:
            reward, nxt = (3.0, (1,)) if action == "b" else (0.0, (0,))
        agent.update(state, action, reward, nxt)
        state = nxt
    assert agent.greedy((0,)) == "b" and agent.greedy((1,)) == "b"
    assert agent.q_values((0,)) == pytest.approx([25.3, 27.0], abs=1.5)
    assert agent.q_values((1,)) == pytest.approx([24.3, 30.0], abs=1.5)


def play(agent: QAgent, rounds: int) -> list[tuple[str, tuple[int, ...]]]:
    out = []
    state: tuple[int, ...] = (0, 0, 1, 1)
    for t in range(rounds):
        d = agent.act(state)
        nxt = (t % 2, int(d.action != "skip"), 1, 1)
        agent.update(state, d.action, {"skip": 0.0, "low": 0.5, "medium": 0.2, "high": -1.0}[d.action], nxt)
        out.append((d.action, state))
        state = nxt
    return out


def test_same_seed_same_decisions_and_a_restart_continues_the_same_trajectory() -> None:
    cfg = AgentConfig(seed=42)
    straight = play(QAgent(cfg), 60)
    assert play(QAgent(cfg), 60) == straight
    assert play(QAgent(dataclasses.replace(cfg, seed=43)), 60) != straight
    # persisted after 25 decisions and restored: it continues exactly as the uninterrupted twin
    first, twin = QAgent(cfg), QAgent(cfg)
    play(first, 25)
    play(twin, 25)
    restored = QAgent.from_dict(json.loads(json.dumps(first.to_dict())))
    assert play(restored, 35) == play(twin, 35)


def test_state_buckets_and_reward() -> None:
    space = StateSpace(reward_edges=(0.0, 10.0), share_edges=(1e-9, 0.5), stake_edges=(1.0,), compute_edges=(0.1,))
    assert space.state(Observation(-3.0, 0.0, 0.5, 0.05)) == (0, 0, 0, 0)
    assert space.state(Observation(12.0, 0.7, 2.0, 0.9)) == (2, 2, 1, 1)
    assert org_reward(tokens=5.0, cost=2.0, valuation=10.0, improvement=0.1) == pytest.approx(4.0)


def test_bad_config_names_the_field() -> None:
    with pytest.raises(ValueError, match="gamma"):
        AgentConfig(gamma=1.0)
    with pytest.raises(ValueError, match="no field"):
        AgentConfig.from_dict({"alpah": 0.1})
