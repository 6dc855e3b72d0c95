"""Daemon integration: Q-learning trainers on a real consortium (in-process chain, tiny model).

Three orgs; "politics" is an agent restricted to skipping, the others are Q-learning agents
choosing among low and high. Over two rounds: every decision is logged with its state and
Q-values, a skipped round has no submission on chain, each finalized round is learned from
once, the Q-table survives a restart, and the round report carries every coalition's value so
the rewards root on chain is recomputed from the report alone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from orchestrator.agents.policy import QLearningPolicy
from orchestrator.agents.qlearning import AgentConfig
from orchestrator.daemons.demo import DemoConfig, build_setup, drive
from orchestrator.daemons.incentives import agents_settled, attach_agents, close_when_everyone_decided, decisions
from orchestrator.daemons.rewards import recompute_rewards, round_report
from orchestrator.storage.cid import bytes32_to_cid

ROUNDS = 2
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    state = Path(tmp_path_factory.mktemp("agents"))
    cfg = DemoConfig(model="tiny", orgs=3, rounds=ROUNDS, unlearn="politics", out=state, quiet=True, steps=8)
    setup = build_setup(cfg, state)
    attach_agents(setup.trainers, seed=0, config=AgentConfig(seed=7),
                  actions={"business": ("low", "high"), "entertainment": ("low", "high"), "politics": ("skip",)})
    cons = setup.consortium
    rounds = cons.protocol.contract("Rounds")
    drive(setup.daemons, lambda: agents_settled(setup.trainers, ROUNDS),
          on_tick=lambda: close_when_everyone_decided(rounds, cons.private, setup.trainers))
    return setup


def test_every_decision_is_logged_with_state_and_q_values(run) -> None:  # type: ignore[no-untyped-def]
    for name, trainer in run.trainers.items():
        decided = [a for a in trainer.actions if a["action"] == "decided"]
        assert [a["round"] for a in decided] == list(range(1, ROUNDS + 1))
        for a in decided:
            assert len(a["state"]) == 4 and set(a["q_values"]) == set(trainer.policy.agent.actions)
        log = [json.loads(x) for x in (trainer.node.state_dir / "agent" / "decisions.jsonl").read_text().splitlines()]
        assert [e["event"] for e in log].count("decided") == ROUNDS
        assert [e["event"] for e in log].count("settled") == ROUNDS


def test_skipping_org_never_submits_and_others_train_at_their_level(run) -> None:  # type: ignore[no-untyped-def]
    rounds = run.consortium.protocol.contract("Rounds")
    for name, trainer in run.trainers.items():
        me = trainer.node.address
        for r in range(1, ROUNDS + 1):
            choice = next(a for a in trainer.actions if a["action"] == "decided" and a["round"] == r)
            assert rounds.functions.hasSubmitted(r, me).call() == (choice["choice"] != "skip"), (name, r)
    table = decisions(run.trainers)
    assert [d["action"] for d in table["politics"]] == ["skip"] * ROUNDS
    assert all(d["steps"] == {"low": 2, "high": 8}[d["action"]] for o in ("business", "entertainment")
               for d in table[o])


def test_rewards_root_is_recomputed_from_the_reports_coalition_values(run) -> None:  # type: ignore[no-untyped-def]
    cons = run.consortium
    rounds = cons.protocol.contract("Rounds")
    for r in range(1, ROUNDS + 1):
        report = round_report(rounds, cons.store, r)
        c = report["contributions"]
        assert c["method"] == "exact" and len(c["coalitions"]) == 2 ** len(c["players"])
        fin = rounds.events.RoundFinalized().get_logs(from_block=0, argument_filters={"roundId": r})[0]["args"]
        assert recompute_rewards(c).root == bytes(fin["rewardsRoot"])
        skipper = cons.orgs["politics"].address
        assert skipper not in c["payees"]
        assert bytes32_to_cid(bytes(fin["metricsHash"]))


def test_the_q_table_survives_a_restart_and_learned_from_each_round(run) -> None:  # type: ignore[no-untyped-def]
    for trainer in run.trainers.values():
        policy = trainer.policy
        learned = [a for a in trainer.actions if a["action"] == "learned"]
        assert [a["round"] for a in learned] == list(range(1, ROUNDS + 1))
        restarted = QLearningPolicy(policy.dir, policy.economics)
        assert restarted.agent.to_dict() == policy.agent.to_dict()
        assert sum(sum(v) for v in restarted.agent.visits.values()) == ROUNDS
