"""Q-learning trainers in a consortium: attach the agents, let skipped rounds close, report.

Used by the demo (``demo --agents``), ``incentives --live`` and the daemon integration test.
An org that skips never submits, so a round with a skipper stays open until its deadline; on
the in-process chain :func:`close_when_everyone_decided` moves chain time past the deadline
once every trainer's policy has decided, instead of waiting for wall-clock time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator.agents.policy import Economics, QLearningPolicy
from orchestrator.agents.qlearning import ACTIONS, AgentConfig
from orchestrator.chain.connection import advance_time
from orchestrator.daemons.trainer import TrainerDaemon

ROUND_OPEN = 1


def attach_agents(trainers: dict[str, TrainerDaemon], *, seed: int = 0, valuation: float = 100.0,
                  costs: Sequence[float] | None = None, config: AgentConfig | None = None,
                  actions: dict[str, tuple[str, ...]] | None = None) -> None:
    """Give every trainer a Q-learning policy persisted in ``<its state dir>/agent``.

    ``costs`` (tokens per local step, one per org in name order) default to a spread from cheap
    to dear, so the orgs face different margins.
    """
    names = sorted(trainers)
    costs = list(costs) if costs is not None else [0.05 * (1 + 4 * i) for i in range(len(names))]
    if len(costs) != len(names):
        raise ValueError(f"{len(costs)} costs for {len(names)} orgs {names}")
    for i, name in enumerate(names):
        base = config or AgentConfig()
        agent_cfg = AgentConfig(**{**base.__dict__, "seed": base.seed + 1000 * seed + i})
        trainers[name].policy = QLearningPolicy(
            Path(trainers[name].node.state_dir) / "agent", Economics(cost_per_step=costs[i], valuation=valuation),
            agent_cfg, actions=(actions or {}).get(name, ACTIONS))


def close_when_everyone_decided(rounds: Any, w3: Any, trainers: dict[str, TrainerDaemon]) -> None:
    """If the open round has every trainer's decision, move chain time past its deadline."""
    count = int(rounds.functions.roundCount().call())
    if not count:
        return
    state, deadline = rounds.functions.getRound(count).call()[:2]
    if state != ROUND_OPEN:
        return
    if all(str(count) in t.policy.pending or count in t.policy.settled for t in trainers.values()):
        now = int(w3.eth.get_block("latest")["timestamp"])
        if now < int(deadline):
            advance_time(w3, int(deadline) - now + 1)


def agents_settled(trainers: dict[str, TrainerDaemon], rounds: int) -> bool:
    """Every trainer has learned from every round 1..rounds."""
    return all(r in t.policy.settled for t in trainers.values() for r in range(1, rounds + 1))


def decisions(trainers: dict[str, TrainerDaemon]) -> dict[str, list[dict[str, Any]]]:
    """Per org and round: the action, the local steps, the tokens received and the learned reward."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name, trainer in sorted(trainers.items()):
        learned = {a["round"]: a for a in trainer.actions if a["action"] == "learned"}
        out[name] = [{"round": a["round"], "action": a["choice"], "steps": a["steps"], "explored": a["explored"],
                      "q_values": a["q_values"], "tokens": str(learned.get(a["round"], {}).get("tokens", 0)),
                      "reward": learned.get(a["round"], {}).get("reward")}
                     for a in trainer.actions if a["action"] == "decided"]
    return out
