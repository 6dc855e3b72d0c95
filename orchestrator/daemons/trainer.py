"""Trainer daemon: one per organisation, acting from the organisation's own wallet.

- ``RoundOpened``: fetch the round config by its on-chain CID, train this org's adapter on its
  private data, seal it for the aggregators (and the org itself), store it, ``submitUpdate``.
- ``RoundFinalized``: fetch the round report by the ``metricsHash`` CID, rebuild the rewards tree
  from its leaves, check the root against the chain, ``claimReward`` with the proof.

In isolated mode an org continues its own adapter from round to round; in collaborative mode
it starts from the latest merged model. Every handler first checks the chain, so a restart
never submits or claims twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator.daemons import modelbook
from orchestrator.daemons.base import Daemon, Handler, Node
from orchestrator.daemons.rewards import RewardTable
from orchestrator.daemons.roundconfig import RoundConfig
from orchestrator.errors import DaemonError
from orchestrator.storage import adapters as sealed
from orchestrator.storage.cid import bytes32_to_cid, cid_to_bytes32

ROUND_OPEN = 1
ROUND_FINALIZED = 3


class TrainerDaemon(Daemon):
    role = "trainer"

    def __init__(
        self,
        node: Node,
        org_name: str,
        texts: list[str],
        data_commitment: bytes,
        encryption_key: bytes,
        *,
        progress: bool = False,
        name: str | None = None,
        policy: Any = None,
    ) -> None:
        if not texts:
            raise DaemonError(f"trainer {org_name}: no training texts; give the org a data folder")
        self.org_name = org_name
        self.texts = texts
        self.data_commitment = data_commitment
        self.encryption_key = encryption_key
        self.progress = progress
        #: decides per round whether (and how much) to train, e.g. agents.policy.QLearningPolicy
        self.policy = policy
        super().__init__(node, name or f"trainer-{org_name}")
        self.adapters_dir = node.state_dir / "adapters"

    def subscriptions(self) -> list[tuple[Any, str]]:
        rounds = self.node.contract("Rounds")
        return [(rounds, "RoundOpened"), (rounds, "RoundFinalized")]

    def handlers(self) -> Mapping[str, Handler]:
        finalized = self.on_round_finalized if self.policy is None else self._finalized_then_learn
        return {"RoundOpened": self.on_round_opened, "RoundFinalized": finalized}

    # -- round opened -----------------------------------------------------------------------
    def on_round_opened(self, event: Any) -> None:
        rounds = self.node.contract("Rounds")
        round_id = int(event.args["roundId"])
        me = self.node.address
        if rounds.functions.hasSubmitted(round_id, me).call():
            return
        state, deadline = rounds.functions.getRound(round_id).call()[:2]
        now = self.node.w3.eth.get_block("latest")["timestamp"]
        if state != ROUND_OPEN or now >= deadline:
            self.record("skip-round", round=round_id, reason="round not open any more")
            return
        config_cid = bytes32_to_cid(bytes(event.args["configCid"]))
        config = RoundConfig.from_bytes(self.node.store.cat(config_cid), f"round {round_id} config {config_cid}")

        from orchestrator.learning.api import TrainConfig, train_adapter

        train_cfg = TrainConfig.from_dict(config.train).for_round(round_id - 1)  # fresh data order per round
        if self.policy is not None:
            train_cfg = self._ask_policy(round_id, train_cfg)
            if train_cfg is None:
                return
        out_dir = self.adapters_dir / f"round-{round_id}"
        init = self._init_adapter(config, round_id)
        learning_started = time.perf_counter()
        result = train_adapter(config.model, self.texts, train_cfg, out_dir, init_adapter=init, progress=self.progress)
        learning_seconds = time.perf_counter() - learning_started
        recipients = config.recipient_keys()
        recipients[me.lower()] = sealed.public_key(self.encryption_key)
        cid = sealed.store_adapter(self.node.store, result.adapter_dir, recipients)
        self.node.send(
            rounds.functions.submitUpdate(round_id, cid_to_bytes32(cid), int(result.num_samples), self.data_commitment)
        )
        (self.adapters_dir / "latest.json").write_text(json.dumps({"round": round_id, "cid": cid}))
        self.record("submitted", round=round_id, cid=cid, samples=int(result.num_samples), loss=result.final_loss,
                    learning_seconds=learning_seconds)

    def _init_adapter(self, config: RoundConfig, round_id: int) -> Path | None:
        if config.mode == "collaborative":
            return self._latest_merged_model()
        latest = self.adapters_dir / "latest.json"
        if not latest.exists():
            return None
        info = json.loads(latest.read_text())
        if int(info["round"]) >= round_id:
            return None
        # Our own previous adapter, unless it was revoked (then we start again from the base).
        registry = self.node.contract("ContributionRegistry")
        if registry.functions.isRevoked(int(info["round"]), self.node.address).call():
            return None
        return modelbook.fetch_cached(self.node, info["cid"], self.encryption_key,
                                      self.adapters_dir / f"round-{info['round']}")

    def _latest_merged_model(self) -> Path | None:
        registry = self.node.contract("ContributionRegistry")
        version = int(registry.functions.latestVersion().call())
        if version == 0:
            return None
        model_cid = bytes32_to_cid(bytes(registry.functions.getVersion(version).call()[0]))
        return modelbook.fetch_cached(self.node, model_cid, self.encryption_key,
                                      self.adapters_dir / f"merged-v{version}")

    # -- round finalized --------------------------------------------------------------------
    def on_round_finalized(self, event: Any) -> None:
        rounds = self.node.contract("Rounds")
        round_id = int(event.args["roundId"])
        me = self.node.address
        if not rounds.functions.hasSubmitted(round_id, me).call():
            return
        if rounds.functions.hasClaimed(round_id, me).call():
            return
        report_cid = bytes32_to_cid(bytes(event.args["metricsHash"]))
        report = json.loads(self.node.store.cat(report_cid))
        table = RewardTable.from_json(report["rewards"])
        onchain_root = bytes(event.args["rewardsRoot"])
        if table.root != onchain_root:
            raise DaemonError(
                f"round {round_id}: rewards in report {report_cid} give root {table.root.hex()}, "
                f"but the chain holds {onchain_root.hex()}; not claiming"
            )
        amount = table.amounts.get(me)
        if not amount:
            self.record("no-reward", round=round_id)
            return
        self.node.send(rounds.functions.claimReward(round_id, amount, table.proof(me)))
        self.record("claimed", round=round_id, amount=amount)

    # -- participation policy (agents/): skip or a resource level per round, learn from the reward --
    def _ask_policy(self, round_id: int, train_cfg: Any) -> Any:
        """The round's training config at the policy's level, or None to skip the round."""
        import dataclasses

        choice = self.policy.decide(round_id, train_cfg.steps, free_stake=self._free_stake())
        d = choice.decision
        self.record("decided", round=round_id, choice=choice.action, steps=choice.steps, state=d["state"],
                    q_values=d["q_values"], epsilon=d["epsilon"], explored=d["explored"])
        return None if choice.skip else dataclasses.replace(train_cfg, steps=choice.steps)

    def _free_stake(self) -> float:
        """Free stake over the minimum stake (Protocol v2's freeStakeOf, else the whole stake)."""
        staking, me = self.node.contract("Staking"), self.node.address
        free = (staking.functions.freeStakeOf(me) if hasattr(staking.functions, "freeStakeOf")
                else staking.functions.stakeOf(me)).call()
        minimum = int(self.node.contract("Membership").functions.minStake().call())
        return int(free) / minimum if minimum else 1.0

    def _finalized_then_learn(self, event: Any) -> None:
        self.on_round_finalized(event)
        round_id = int(event.args["roundId"])
        report = json.loads(self.node.store.cat(bytes32_to_cid(bytes(event.args["metricsHash"]))))
        me = self.node.address
        amount = int(RewardTable.from_json(report["rewards"]).amounts.get(me, 0))
        contributions = report.get("contributions", {})
        positive = {o: max(float(v), 0.0) for o, v in contributions.get("shapley", {}).items()}
        share = positive.get(me, 0.0) / sum(positive.values()) if sum(positive.values()) > 0 else 0.0
        everyone = frozenset(contributions.get("players", []))
        improvement = next((float(row["value"]) for row in contributions.get("coalitions", [])
                            if frozenset(row["members"]) == everyone), 0.0)
        reward = self.policy.settle(round_id, amount, share, improvement, free_stake=self._free_stake())
        if reward is not None:
            self.record("learned", round=round_id, reward=reward, tokens=amount, share=share, improvement=improvement)
