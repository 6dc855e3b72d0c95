"""A tabular Q-learning agent: one per organisation, choosing whether and how hard to train.

State (a few buckets, see :class:`StateSpace`): the org's recent reward, its recent share of
the round's contribution, whether its free stake covers the protocol's minimum, and how much
of its compute budget is left. Actions: skip the round, or take part at a low, medium or high
resource level (a fraction of the round's local steps). The reward the agent learns from is
``tokens received - own compute cost of the level + own valuation of the model's improvement``
(:func:`org_reward`).

Update: ``Q(s,a) += alpha_n (r + gamma max_a' Q(s',a') - Q(s,a))`` with ``alpha_n =
max(alpha, 1/n(s,a))`` (a sample mean for the first visits, a constant step afterwards, so
early estimates are not dominated by the zero initialisation), and epsilon-greedy exploration
with ``epsilon_t = max(epsilon_end, epsilon_start * epsilon_decay^t)``. Ties between equal
Q-values are broken by the agent's own seeded RNG. The whole agent, RNG state included,
round-trips through :meth:`QAgent.to_dict`, so a restarted daemon continues the same
trajectory.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ACTIONS: tuple[str, ...] = ("skip", "low", "medium", "high")
"""Action 0 skips; the others take part at an increasing resource level."""
LEVEL_FRACTION: dict[str, float] = {"skip": 0.0, "low": 0.25, "medium": 0.5, "high": 1.0}
"""Fraction of the round's configured local steps each action trains for."""

State = tuple[int, ...]


@dataclass(frozen=True)
class AgentConfig:
    """Learning parameters of one agent (peft-style: a help string and a check per field)."""

    alpha: float = field(default=0.05, metadata={"help": "constant learning rate after the first 1/alpha visits"})
    gamma: float = field(default=0.3, metadata={"help": "discount of the next state's value, in [0, 1)"})
    epsilon_start: float = field(default=0.5, metadata={"help": "exploration probability at the first decision"})
    epsilon_end: float = field(default=0.01, metadata={"help": "exploration floor"})
    epsilon_decay: float = field(default=0.98, metadata={"help": "per-decision multiplicative decay of epsilon"})
    seed: int = field(default=0, metadata={"help": "seeds exploration and tie-breaking"})

    def __post_init__(self) -> None:
        checks = [
            ("alpha", 0.0 < self.alpha <= 1.0),
            ("gamma", 0.0 <= self.gamma < 1.0),
            ("epsilon_start", 0.0 <= self.epsilon_start <= 1.0),
            ("epsilon_end", 0.0 <= self.epsilon_end <= self.epsilon_start),
            ("epsilon_decay", 0.0 < self.epsilon_decay <= 1.0),
            ("seed", isinstance(self.seed, int) and self.seed >= 0),
        ]
        for name, ok in checks:
            if not ok:
                help_ = next(f.metadata["help"] for f in dataclasses.fields(self) if f.name == name)
                raise ValueError(f"AgentConfig.{name} is invalid: {getattr(self, name)!r} ({help_})")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AgentConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"AgentConfig has no field(s) {unknown}; known fields: {sorted(known)}")
        return cls(**dict(data))


@dataclass(frozen=True)
class Observation:
    """What an org knows before a round: raw numbers, bucketed by :class:`StateSpace`."""

    recent_reward: float  # moving average of its own per-round reward (tokens)
    contribution_share: float  # its share of the last round's positive contribution, in [0, 1]
    free_stake: float  # free stake over the protocol's minimum stake (>= 1: can take part)
    compute_left: float  # remaining fraction of its compute budget, in [0, 1]


@dataclass(frozen=True)
class StateSpace:
    """Bucket edges: a value falls in bucket ``i`` = number of edges it is >= to."""

    reward_edges: tuple[float, ...] = (0.0,)
    share_edges: tuple[float, ...] = (1e-9, 0.5)
    stake_edges: tuple[float, ...] = (1.0,)
    compute_edges: tuple[float, ...] = (0.1,)

    def state(self, obs: Observation) -> State:
        def bucket(x: float, edges: Sequence[float]) -> int:
            return sum(1 for e in edges if x >= e)

        return (bucket(obs.recent_reward, self.reward_edges), bucket(obs.contribution_share, self.share_edges),
                bucket(obs.free_stake, self.stake_edges), bucket(obs.compute_left, self.compute_edges))


def org_reward(tokens: float, cost: float, valuation: float, improvement: float) -> float:
    """What the agent maximises: paid tokens - own compute cost + own value of the improvement."""
    return float(tokens) - float(cost) + float(valuation) * float(improvement)


@dataclass(frozen=True)
class Decision:
    """One choice, with everything needed to audit it afterwards."""

    state: State
    action: str
    q_values: dict[str, float]
    epsilon: float
    explored: bool

    def to_dict(self) -> dict[str, Any]:
        return {"state": list(self.state), "action": self.action, "q_values": self.q_values,
                "epsilon": self.epsilon, "explored": self.explored}


class QAgent:
    """Tabular Q-learning over (state, action); see the module docstring for the rules."""

    def __init__(self, config: AgentConfig | None = None, actions: Sequence[str] = ACTIONS) -> None:
        self.config = config or AgentConfig()
        self.actions = tuple(actions)
        if len(set(self.actions)) != len(self.actions) or not self.actions:
            raise ValueError(f"actions must be distinct and non-empty, got {list(actions)}")
        self.q: dict[State, list[float]] = {}
        self.visits: dict[State, list[int]] = {}
        self.decisions = 0
        self.rng = random.Random(self.config.seed)

    # -- the maths -------------------------------------------------------------------------
    @property
    def epsilon(self) -> float:
        c = self.config
        return max(c.epsilon_end, c.epsilon_start * c.epsilon_decay ** self.decisions)

    def q_values(self, state: State) -> list[float]:
        return self.q.setdefault(tuple(state), [0.0] * len(self.actions))

    def greedy(self, state: State, allowed: Sequence[str] | None = None) -> str:
        qs = self.q_values(state)
        candidates = [i for i, a in enumerate(self.actions) if allowed is None or a in allowed]
        if not candidates:
            raise ValueError(f"no allowed action among {list(self.actions)}")
        best = max(qs[i] for i in candidates)
        ties = [i for i in candidates if qs[i] == best]
        return self.actions[ties[0] if len(ties) == 1 else self.rng.choice(ties)]

    def act(self, state: State, allowed: Sequence[str] | None = None) -> Decision:
        """Epsilon-greedy choice among ``allowed`` actions (all by default)."""
        state = tuple(state)
        epsilon = self.epsilon
        options = [a for a in self.actions if allowed is None or a in allowed]
        explored = self.rng.random() < epsilon
        action = self.rng.choice(options) if explored else self.greedy(state, options)
        self.decisions += 1
        qs = self.q_values(state)
        return Decision(state, action, dict(zip(self.actions, qs, strict=True)), epsilon, explored)

    def update(self, state: State, action: str, reward: float, next_state: State) -> float:
        """One Q-learning step; returns the temporal-difference error."""
        if not math.isfinite(reward):
            raise ValueError(f"reward must be finite, got {reward}")
        if action not in self.actions:
            raise ValueError(f"unknown action {action!r}; actions are {list(self.actions)}")
        state, next_state = tuple(state), tuple(next_state)
        i = self.actions.index(action)
        qs = self.q_values(state)
        visits = self.visits.setdefault(state, [0] * len(self.actions))
        visits[i] += 1
        alpha = max(self.config.alpha, 1.0 / visits[i])
        target = float(reward) + self.config.gamma * max(self.q_values(next_state))
        error = target - qs[i]
        qs[i] += alpha * error
        return error

    # -- persistence (the caller does the I/O) ---------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        version, internal, gauss = self.rng.getstate()
        return {
            "config": dataclasses.asdict(self.config),
            "actions": list(self.actions),
            "decisions": self.decisions,
            "q": [{"state": list(s), "q": qs, "visits": self.visits.get(s, [0] * len(qs))}
                  for s, qs in sorted(self.q.items())],
            "rng": [version, list(internal), gauss],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QAgent:
        agent = cls(AgentConfig.from_dict(data["config"]), data["actions"])
        agent.decisions = int(data["decisions"])
        for row in data["q"]:
            state = tuple(int(x) for x in row["state"])
            agent.q[state] = [float(x) for x in row["q"]]
            agent.visits[state] = [int(x) for x in row["visits"]]
        version, internal, gauss = data["rng"]
        agent.rng.setstate((version, tuple(internal), gauss))
        return agent
