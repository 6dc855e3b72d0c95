"""Trainer daemon: one per organisation, acting from the organisation's own wallet.

- ``RoundOpened``: fetch the round config by its on-chain CID, train this org's adapter on its
  private data, seal it for the aggregators (and the org itself) bound to this org and round,
  store it, ``submitUpdate`` (the sample count clipped to the round's cap).
- ``RoundFinalized``: fetch the round report by the ``metricsHash`` CID, rebuild the rewards tree
  from its leaves, check the root against the chain, ``claimReward`` with the proof (within the
  claim window; a rejected submission earns nothing).
- ``UnlearningRequested`` (Samples scope, this org): only the org holds its data, so its trainer
  answers. With ``shards > 1`` (SISA) each round's adapter is one adapter per shard, stacked;
  removing samples retrains only the shards that held them (``unlearn_samples``) and
  ``replaceContribution`` puts the new adapter, its sample count and the data commitment of
  the remaining samples on chain, for every live round that used the samples (oldest first,
  so the contribution in the merge is replaced last and the executor then re-merges).
  :meth:`TrainerDaemon.request_sample_removal` is how the org asks (it posts the bond).

- ``UnlearningRequested`` (Org / Round scope, grouped mode, another member of this org's group):
  the org replays its rounds that descend from the removed contributions, oldest first, each
  once the group's previous round is replayed (``periodic``), and ``replayContribution`` puts
  each replay on chain (:mod:`orchestrator.daemons.grouped`).

In isolated mode an org continues its own latest live adapter from round to round (SISA mode
trains each round from the base model); in collaborative mode it starts from the latest merged
model; in grouped mode from its group's FedAvg of the group's latest earlier round, which it
derives itself from its group's submissions (sealed for the group). Every org trains with its
own seed (``TrainConfig.for_round(r - 1).for_org(org name)``). Every handler first checks the chain, so a restart never submits or claims twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from web3.logs import DISCARD

from orchestrator.chain.multicall import batch_call
from orchestrator.chain.submissions import reader_for
from orchestrator.daemons import grouped, modelbook
from orchestrator.daemons.base import Daemon, Handler, Node
from orchestrator.daemons.rewards import RewardTable
from orchestrator.daemons.roundconfig import RoundConfig
from orchestrator.errors import DaemonError
from orchestrator.merkle import data_commitment as merkle_data_commitment
from orchestrator.storage import adapters as sealed
from orchestrator.storage.cid import bytes32_to_cid, cid_to_bytes32

ROUND_OPEN = 1
ROUND_FINALIZED = 3
SCOPE_SAMPLES = 2


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
        shards: int = 1,
        policy: Any = None,
    ) -> None:
        if not texts:
            raise DaemonError(f"trainer {org_name}: no training texts; give the org a data folder")
        if shards < 1:
            raise DaemonError(f"trainer {org_name}: shards must be >= 1, got {shards}")
        self.org_name = org_name
        self.encryption_key = encryption_key
        self.progress = progress
        self.shards = shards
        #: decides per round whether (and how much) to train, e.g. agents.policy.QLearningPolicy
        self.policy = policy
        super().__init__(node, name or f"trainer-{org_name}")
        self.adapters_dir = node.state_dir / "adapters"
        self.forget_dir = node.state_dir / "forget"
        # Samples removed earlier (persisted) never come back into training after a restart.
        removed = self._removed()
        self.texts = [t for t in texts if t not in removed]
        self.data_commitment = data_commitment if not removed else merkle_data_commitment(self.texts)

    def subscriptions(self) -> list[tuple[Any, str]]:
        rounds = self.node.contract("Rounds")
        return [(rounds, "RoundOpened"), (rounds, "RoundFinalized"),
                (self.node.contract("Unlearning"), "UnlearningRequested")]

    def handlers(self) -> Mapping[str, Handler]:
        finalized = self.on_round_finalized if self.policy is None else self._finalized_then_learn
        return {"RoundOpened": self.on_round_opened, "RoundFinalized": finalized,
                "UnlearningRequested": self.on_unlearning_requested}

    # -- round opened -----------------------------------------------------------------------
    def on_round_opened(self, event: Any) -> None:
        rounds = self.node.contract("Rounds")
        round_id = int(event.args["roundId"])
        me = self.node.address
        submitted, (state, deadline, *_) = batch_call(
            self.node.w3, [rounds.functions.hasSubmitted(round_id, me), rounds.functions.getRound(round_id)],
            protocol=self.node.protocol)
        if submitted:
            return
        now = self.node.w3.eth.get_block("latest")["timestamp"]
        if state != ROUND_OPEN or now >= deadline:
            self.record("skip-round", round=round_id, reason="round not open any more")
            return
        config_cid = bytes32_to_cid(bytes(event.args["configCid"]))
        config = RoundConfig.from_bytes(self.node.store.cat(config_cid), f"round {round_id} config {config_cid}")

        from orchestrator.learning.api import train_adapter

        train_cfg = self._train_config(config, round_id)
        if self.policy is not None:
            train_cfg = self._ask_policy(round_id, train_cfg)
            if train_cfg is None:
                return
        # The config this round really trained with (a policy may change the steps): a replay
        # of the round (grouped collaboration) trains with exactly this one.
        self.adapters_dir.mkdir(parents=True, exist_ok=True)
        (self.adapters_dir / f"round-{round_id}.train.json").write_text(json.dumps(train_cfg.to_dict()))
        out_dir = self.adapters_dir / f"round-{round_id}"
        learning_started = time.perf_counter()
        if self.shards > 1:
            if config.mode == "grouped":
                raise DaemonError(f"trainer {self.org_name}: grouped mode trains one adapter per org; SISA "
                                  f"shards (shards={self.shards}) are for isolated mode")
            result = self._train_sisa(config, train_cfg, out_dir)
        else:
            init = self._init_adapter(config, round_id)
            result = train_adapter(config.model, self.texts, train_cfg, out_dir, init_adapter=init,
                                   progress=self.progress)
        learning_seconds = time.perf_counter() - learning_started
        recipients = self._recipients(config)
        # Bound to this org and round (authenticated header): a copy submitted by anyone else
        # is rejected by the aggregator.
        cid = sealed.store_adapter(self.node.store, result.adapter_dir, recipients,
                                   context=modelbook.binding(self.node, round_id, me))
        # The round counts at most maxSamples per submission; reporting more would revert.
        samples = modelbook.clipped(int(result.num_samples), int(event.args.get("maxSamples", 0)))
        self.node.send(
            rounds.functions.submitUpdate(round_id, cid_to_bytes32(cid), samples, self.data_commitment)
        )
        (self.adapters_dir / "latest.json").write_text(json.dumps({"round": round_id, "cid": cid}))
        self.record("submitted", round=round_id, cid=cid, samples=samples, loss=result.final_loss,
                    learning_seconds=learning_seconds)

    def _train_config(self, config: RoundConfig, round_id: int) -> Any:
        """Round ``round_id``'s training config for this org: a fresh data order per round and the
        org's own seed (LoRA initialisation and data order), as ``federation.run_rounds`` trains."""
        from orchestrator.learning.api import TrainConfig

        return TrainConfig.from_dict(config.train).for_round(round_id - 1).for_org(self.org_name)

    def _recipients(self, config: RoundConfig) -> dict[str, bytes]:
        """Who can open this org's adapter: the aggregators, the org, and in grouped mode its group
        (each member derives its group's FedAvg itself)."""
        recipients = config.recipient_keys()
        group = config.group_of(self.node.address)
        if group is not None:
            recipients.update(grouped.member_keys(self.node, config, group))
        recipients[self.node.address.lower()] = sealed.public_key(self.encryption_key)
        return recipients

    def _init_adapter(self, config: RoundConfig, round_id: int) -> Path | None:
        if config.mode == "collaborative":
            return self._latest_merged_model()
        if config.mode == "grouped":
            return grouped.init_adapter(self.node, config, round_id, self.encryption_key, self.adapters_dir / "group")
        # Continue our own latest live adapter: not a rejected or revoked one, nor one that
        # descends from a removed round (then we continue its ancestor, or start from the base).
        mine = modelbook.live_input(self.node, self.node.address, up_to_round=round_id - 1)
        if mine is None:
            return None
        return modelbook.fetch_cached(self.node, mine.adapter_cid, self.encryption_key,
                                      self.adapters_dir / f"round-{mine.round}-{mine.adapter_cid}",
                                      modelbook.binding(self.node, mine.round, self.node.address))

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
        submitted, claimed, rejected, terms = batch_call(self.node.w3, [
            rounds.functions.hasSubmitted(round_id, me), rounds.functions.hasClaimed(round_id, me),
            rounds.functions.isRejected(round_id, me), rounds.functions.roundTerms(round_id)],
            protocol=self.node.protocol)
        if not submitted or claimed or rejected:
            return
        claim_deadline = int(terms[2])
        if claim_deadline and self.node.w3.eth.get_block("latest")["timestamp"] > claim_deadline:
            self.record("claim-window-closed", round=round_id)
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

    # -- SISA training and sample-level unlearning -------------------------------------------------
    def _train_sisa(self, config: RoundConfig, train_cfg: Any, out_dir: Path) -> Any:
        """One adapter per shard, stacked; the shard layout is kept to retrain shards later."""
        from orchestrator.learning.api import TrainResult, train_sharded

        sharded = train_sharded(config.model, self.texts, train_cfg, out_dir / "sisa", shards=self.shards,
                                progress=self.progress)
        _save_sisa(out_dir / "sisa.json", sharded)
        return TrainResult(adapter_dir=sharded.merged, num_samples=sharded.num_samples, final_loss=float("nan"),
                           tokens=0, seconds=sharded.train_seconds)

    def request_sample_removal(self, samples: list[str], reason_hash: bytes = b"\x00" * 32) -> int:
        """Ask for these samples of our own data to be forgotten (posting the request bond).

        The target is the Merkle root of the samples (as the data commitment is built); the
        samples themselves stay in this org's state folder, which is how our own handler knows
        what to retrain when the request comes back as an event.
        """
        unknown = [t[:40] for t in samples if t not in self.texts]
        if not samples or unknown:
            raise DaemonError(f"trainer {self.org_name}: can only forget samples it trains on; unknown: {unknown}")
        root = merkle_data_commitment(samples)
        self.forget_dir.mkdir(parents=True, exist_ok=True)
        (self.forget_dir / f"{root.hex()}.json").write_text(json.dumps(sorted(set(samples))))
        unlearning = self.node.contract("Unlearning")
        bond = int(unlearning.functions.requestBond().call())
        if bond:
            self.node.send(self.node.contract("LedgerToken").functions.approve(unlearning.address, bond))
        receipt = self.node.send(unlearning.functions.requestUnlearning(self.node.address, SCOPE_SAMPLES, root,
                                                                        reason_hash))
        request_id = int(unlearning.events.UnlearningRequested().process_receipt(receipt, errors=DISCARD)[0]["args"]["requestId"])
        self.record("requested-sample-removal", request=request_id, samples=len(samples), target=root.hex())
        return request_id

    def on_unlearning_requested(self, event: Any) -> None:
        unlearning = self.node.contract("Unlearning")
        request_id = int(event.args["requestId"])
        org, scope, state = unlearning.functions.getRequest(request_id).call()[:3]
        if scope != SCOPE_SAMPLES:
            self._join_replay(request_id, org, scope, state, bytes(event.args["target"]))
            return
        if org.lower() != self.node.address.lower() or state not in (1, 2):
            return
        target = bytes(event.args["target"])
        path = self.forget_dir / f"{target.hex()}.json"
        if not path.exists():
            self.record("cannot-answer", request=request_id, reason="the samples of this target are not known here")
            return
        samples = json.loads(path.read_text())
        if merkle_data_commitment(samples) != target:
            raise DaemonError(f"request {request_id}: {path} does not hash to the requested target {target.hex()}")
        if self.shards <= 1:
            self.record("cannot-answer", request=request_id, reason="sample removal needs SISA training (shards > 1)")
            return
        self._forget(samples)  # future rounds never see these samples again
        reader = reader_for(self.node.protocol, self.node.confirmations)
        rounds = self.node.contract("Rounds")
        registry = self.node.contract("ContributionRegistry")
        removing = set(samples)
        for sub in reader.of_org(self.node.address):
            r = sub.round_id
            if any(h.kind == "replaced" and h.request_id == request_id for h in reader.history(r, sub.org)):
                continue  # answered before a restart
            if rounds.functions.isRejected(r, sub.org).call() or registry.functions.isRevoked(r, sub.org).call():
                continue
            state_file = self.adapters_dir / f"round-{r}" / "sisa.json"
            if not state_file.exists():
                continue  # not trained here in SISA mode
            sharded = _load_sisa(state_file)
            held = [t for t in removing if sharded.shard_of(t) is not None]
            if not held:
                continue
            self._replace(request_id, r, sharded, held)

    def _replace(self, request_id: int, round_id: int, sharded: Any, held: list[str]) -> None:
        from orchestrator.learning.api import unlearn_samples

        rounds = self.node.contract("Rounds")
        config_cid = bytes32_to_cid(bytes(rounds.functions.getRound(round_id).call()[3]))
        config = RoundConfig.from_bytes(self.node.store.cat(config_cid), f"round {round_id} config {config_cid}")
        train_cfg = self._train_config(config, round_id)
        out = self.adapters_dir / f"round-{round_id}" / f"sisa-req-{request_id}"
        result = unlearn_samples(config.model, sharded, held, train_cfg, out, progress=self.progress)
        new = result.sharded
        remaining = [t for texts in new.shard_texts for t in texts]
        recipients = config.recipient_keys()
        recipients[self.node.address.lower()] = sealed.public_key(self.encryption_key)
        cid = sealed.store_adapter(self.node.store, new.merged, recipients,
                                   context=modelbook.binding(self.node, round_id, self.node.address))
        samples = modelbook.clipped(new.num_samples, modelbook.round_cap(self.node, round_id))
        self.node.send(self.node.contract("Unlearning").functions.replaceContribution(
            request_id, round_id, cid_to_bytes32(cid), samples, merkle_data_commitment(remaining)))
        _save_sisa(self.adapters_dir / f"round-{round_id}" / "sisa.json", new)
        self.record("replaced", request=request_id, round=round_id, cid=cid, samples=samples,
                    retrained_shards=new.retrained_shards, seconds=result.seconds)

    # -- grouped collaboration: replay our rounds without a forgotten member of our group ----------
    def _join_replay(self, request_id: int, org: str, scope: int, state: int, target: bytes) -> None:
        """An Org / Round request of a member of our group: note the replay job (done in periodic)."""
        if state not in (1, 2) or org.lower() == self.node.address.lower():
            return
        at_request = grouped.rounds_at_request(self.node, request_id)
        if not at_request:
            return
        config = grouped.config_of(self.node, at_request)
        if config.mode != "grouped" or config.group_of(org) != config.group_of(self.node.address) \
                or config.group_of(org) is None:
            return
        jobs = self._replay_jobs()
        jobs[str(request_id)] = {"org": org, "scope": int(scope), "target": target.hex(), "rounds": at_request}
        self._save_replay_jobs(jobs)
        self.record("replay-joined", request=request_id, org=org)

    def periodic(self) -> None:
        """Advance the grouped replays: each of our rounds once its group's previous round is replayed."""
        jobs = self._replay_jobs()
        for key, job in sorted(jobs.items()):
            if not self._advance_replay(int(key), job):
                del jobs[key]
            self._save_replay_jobs(jobs)

    def _advance_replay(self, request_id: int, job: dict[str, Any]) -> bool:
        """Replay every round that is ready now; False when the job is over."""
        unlearning = self.node.contract("Unlearning")
        me = self.node.address
        while True:
            state, deadline = unlearning.functions.getRequest(request_id).call()[2:4]
            if state not in (1, 2) or self.node.w3.eth.get_block("latest")["timestamp"] > deadline:
                return False
            config = grouped.config_of(self.node, int(job["rounds"]))
            status = grouped.replay_status(self.node, config, request_id, job["org"], int(job["scope"]),
                                           bytes.fromhex(job["target"]), int(job["rounds"]))
            pending = status.pending()
            done = set(job.setdefault("done", []))  # replayed here (the chain may not show it yet)
            mine = [r for m, r in pending if m.lower() == me.lower() and r not in done]
            if not mine:
                return False
            if any(r < mine[0] for _, r in pending):
                return True  # a member of the group has an earlier round to replay first: wait
            assert status.from_round is not None
            self._replay_round(request_id, job["org"], status.from_round, mine[0])
            job["done"].append(mine[0])
            self._save_replay_jobs(self._replay_jobs() | {str(request_id): job})

    def _replay_round(self, request_id: int, org: str, from_round: int, round_id: int) -> None:
        from orchestrator.learning.api import TrainConfig, train_adapter

        config = grouped.config_of(self.node, round_id)
        used = self.adapters_dir / f"round-{round_id}.train.json"  # as the round trained (policy steps)
        train_cfg = (TrainConfig.from_dict(json.loads(used.read_text())) if used.exists()
                     else self._train_config(config, round_id))
        init = grouped.init_adapter(self.node, config, round_id, self.encryption_key, self.adapters_dir / "group",
                                    removing=(org, from_round))
        out = self.adapters_dir / f"round-{round_id}-replay-{request_id}"
        started = time.perf_counter()
        result = train_adapter(config.model, self.texts, train_cfg, out, init_adapter=init, progress=self.progress)
        # Sealed for the whole group, the forgotten org included: it stays a member and starts its
        # next round from the group's adapter, which is derived from these replays.
        cid = sealed.store_adapter(self.node.store, result.adapter_dir, self._recipients(config),
                                   context=modelbook.binding(self.node, round_id, self.node.address))
        samples = modelbook.clipped(int(result.num_samples), modelbook.round_cap(self.node, round_id))
        self.node.send(self.node.contract("Unlearning").functions.replayContribution(
            request_id, round_id, cid_to_bytes32(cid), samples, self.data_commitment))
        self.record("replayed", request=request_id, round=round_id, cid=cid, samples=samples,
                    learning_seconds=time.perf_counter() - started)

    def _replay_jobs(self) -> dict[str, Any]:
        path = self.node.state_dir / "replays.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def _save_replay_jobs(self, jobs: dict[str, Any]) -> None:
        path = self.node.state_dir / "replays.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(jobs, sort_keys=True))
        tmp.replace(path)

    def _removed(self) -> set[str]:
        path = self.node.state_dir / "removed-samples.json"
        return set(json.loads(path.read_text())) if path.exists() else set()

    def _forget(self, samples: list[str]) -> None:
        removed = self._removed() | set(samples)
        path = self.node.state_dir / "removed-samples.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(sorted(removed)))
        tmp.replace(path)
        self.texts = [t for t in self.texts if t not in removed]
        if not self.texts:
            raise DaemonError(f"trainer {self.org_name}: removing these samples leaves no data; request Org scope")
        self.data_commitment = merkle_data_commitment(self.texts)


def _save_sisa(path: Path, sharded: Any) -> None:
    """The org's private SISA layout (which texts in which shard, where each shard's adapter is)."""
    doc = {"shard_texts": sharded.shard_texts, "shard_dirs": [str(d) for d in sharded.shard_dirs],
           "merged": str(sharded.merged), "num_samples": sharded.num_samples}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)


def _load_sisa(path: Path) -> Any:
    from orchestrator.learning.api import ShardedAdapter

    doc = json.loads(path.read_text())
    return ShardedAdapter(shard_texts=doc["shard_texts"], shard_dirs=[Path(d) for d in doc["shard_dirs"]],
                          merged=Path(doc["merged"]), num_samples=int(doc["num_samples"]))
