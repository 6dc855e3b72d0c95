"""The trainer daemon's participation policy: a Q-learning agent with a persisted Q-table.

The trainer asks :meth:`QLearningPolicy.decide` on every ``RoundOpened`` (skip, or which
fraction of the round's local steps to train) and calls :meth:`QLearningPolicy.settle` once the
round is finalized, with what the round report says: the org's reward, its share of the
round's positive contribution and the improvement of the merged model. The agent's table, its
RNG, the pending decisions and the running state are written atomically to
``<state_dir>/agent.json`` after every change, so a restarted daemon continues the same
trajectory; every decision is appended to ``<state_dir>/decisions.jsonl`` with its state and
Q-values. This is the one module of the package that does I/O.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.agents.qlearning import ACTIONS, LEVEL_FRACTION, AgentConfig, Observation, QAgent, StateSpace, org_reward


@dataclass(frozen=True)
class Economics:
    """The org's own cost model and valuation (all in whole tokens)."""

    cost_per_step: float = field(default=0.0, metadata={"help": "tokens one local training step costs the org"})
    valuation: float = field(default=0.0, metadata={"help": "tokens the org values one nat of loss reduction at"})
    compute_budget_steps: float = field(default=math.inf, metadata={"help": "local steps the org can spend in all"})
    token_unit: int = field(default=10**18, metadata={"help": "base units per token (18 decimals)"})
    ema: float = field(default=0.3, metadata={"help": "weight of the newest reward in the recent-reward average"})

    def __post_init__(self) -> None:
        if not (self.cost_per_step >= 0 and self.valuation >= 0 and self.compute_budget_steps > 0
                and self.token_unit >= 1 and 0 < self.ema <= 1):
            raise ValueError(f"invalid Economics {asdict(self)}: costs, valuation >= 0; budget, unit > 0; 0 < ema <= 1")


@dataclass(frozen=True)
class Choice:
    """What the trainer does this round, and the decision behind it (for the log)."""

    round: int
    action: str
    steps: int
    decision: dict[str, Any]

    @property
    def skip(self) -> bool:
        return self.action == "skip"


class QLearningPolicy:
    """One org's agent, persisted in its daemon's state directory."""

    FILE = "agent.json"
    LOG = "decisions.jsonl"

    def __init__(self, state_dir: Path, economics: Economics | None = None, config: AgentConfig | None = None,
                 space: StateSpace | None = None, actions: tuple[str, ...] = ACTIONS) -> None:
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.economics = economics or Economics()
        self.space = space or StateSpace()
        path = self.dir / self.FILE
        if path.exists():
            doc = json.loads(path.read_text())
            self.agent = QAgent.from_dict(doc["agent"])
            self.recent, self.share = float(doc["recent"]), float(doc["share"])
            self.steps_used = float(doc["steps_used"])
            self.pending: dict[str, dict[str, Any]] = doc["pending"]
            self.settled: list[int] = doc["settled"]
        else:
            unknown = [a for a in actions if a not in LEVEL_FRACTION]
            if unknown:
                raise ValueError(f"unknown action(s) {unknown}; choose among {list(ACTIONS)}")
            self.agent = QAgent(config or AgentConfig(), actions)
            self.recent = self.share = self.steps_used = 0.0
            self.pending, self.settled = {}, []

    def observation(self, free_stake: float) -> Observation:
        left = (1.0 if math.isinf(self.economics.compute_budget_steps)
                else max(0.0, 1.0 - self.steps_used / self.economics.compute_budget_steps))
        return Observation(self.recent, self.share, free_stake, left)

    def decide(self, round_id: int, round_steps: int, free_stake: float = 1.0) -> Choice:
        """Skip or a level for ``round_id``; asking twice for one round returns the first answer."""
        key = str(round_id)
        if key not in self.pending:
            state = self.space.state(self.observation(free_stake))
            budget_left = self.economics.compute_budget_steps - self.steps_used
            allowed = [a for a in ACTIONS if self._steps(a, round_steps) <= budget_left]
            decision = self.agent.act(state, allowed)
            steps = self._steps(decision.action, round_steps)
            self.pending[key] = {"action": decision.action, "steps": steps, "decision": decision.to_dict()}
            self.steps_used += steps
            self._save()
            self._log({"event": "decided", "round": round_id, "steps": steps, **decision.to_dict()})
        p = self.pending[key]
        return Choice(round_id, p["action"], int(p["steps"]), p["decision"])

    @staticmethod
    def _steps(action: str, round_steps: int) -> int:
        return 0 if action == "skip" else max(1, round(LEVEL_FRACTION[action] * round_steps))

    def settle(self, round_id: int, reward_units: int, share: float, improvement: float,
               free_stake: float = 1.0) -> float | None:
        """Learn from a finalized round; returns the reward learned from (None if nothing pending)."""
        p = self.pending.get(str(round_id))
        if p is None or round_id in self.settled:
            return None
        e = self.economics
        reward = org_reward(reward_units / e.token_unit, e.cost_per_step * int(p["steps"]), e.valuation, improvement)
        self.recent = (1 - e.ema) * self.recent + e.ema * reward
        self.share = float(share)
        state = tuple(p["decision"]["state"])
        next_state = self.space.state(self.observation(free_stake))
        self.agent.update(state, p["action"], reward, next_state)
        del self.pending[str(round_id)]
        self.settled = sorted([*self.settled, round_id])[-1000:]
        self._save()
        self._log({"event": "settled", "round": round_id, "action": p["action"], "reward": reward,
                   "tokens_units": str(reward_units), "share": share, "improvement": improvement,
                   "q_values": dict(zip(self.agent.actions, self.agent.q_values(state), strict=True))})
        return reward

    def _save(self) -> None:
        doc = {"agent": self.agent.to_dict(), "recent": self.recent, "share": self.share,
               "steps_used": self.steps_used, "pending": self.pending, "settled": self.settled,
               "economics": {k: (None if isinstance(v, float) and math.isinf(v) else v)
                             for k, v in asdict(self.economics).items()}}
        tmp = self.dir / (self.FILE + ".tmp")
        tmp.write_text(json.dumps(doc, sort_keys=True))
        os.replace(tmp, self.dir / self.FILE)

    def _log(self, entry: dict[str, Any]) -> None:
        with open(self.dir / self.LOG, "a") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")
