"""A split training run as a consortium round on the ledger (``split-train --chain``).

The server operator holds the aggregator role. One run is one round:

1. the aggregator opens the round (``openRound``; the round config, on IPFS, says "split" and
   carries the split settings);
2. the split run trains (server and client processes as in :mod:`runner`); each client ends
   with its full-model adapter: its own front/back LoRA plus the server LoRA its activations
   trained (its own with ``server_lora="per-client"``, the shared one otherwise);
3. each client's adapter is sealed for the aggregator and the client, stored by CID and
   submitted (``submitUpdate``) from that client's own wallet, with the Merkle root of the texts
   it trained on as data commitment;
4. the aggregator daemon closes the round, verifies, merges (exact stacking), scores,
   allocates rewards and finalizes, as for any round; each client's trainer daemon checks the
   rewards root and claims.

Split contributions are ordinary adapters in the registry, so the unlearning executor forgets a
split-mode org with no change: with per-client server LoRA the re-merge without it equals a
split run without it, bit for bit.

Chain, storage and daemons are the consortium's own (``orchestrator.daemons``); nothing is
copied. ``rpc_url=None`` deploys on a new in-process chain; a URL deploys a new consortium on
that chain (a dev chain such as anvil: the accounts are derived test keys funded from the
node's unlocked account).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.split.errors import SplitError
from orchestrator.split.runner import SplitTrainConfig

if TYPE_CHECKING:  # pragma: no cover
    from orchestrator.daemons.consortium import Consortium

GOVERNOR, AGGREGATOR, RELAYER = 0, 1, 2
FIRST_ORG = 3
EVAL_TEXTS = 4


def org_name(index: int) -> str:
    return f"client-{index}"


def deploy_split_consortium(
    cfg: SplitTrainConfig, state: Path, rpc_url: str | None = None
) -> Consortium:
    """Deploy and onboard a consortium whose members are the run's clients.

    Client ``i``'s wallet is test account ``3 + i`` whoever else takes part, so the same
    client has the same address (and merge position) in a run without some other client.
    """
    from orchestrator.chain.connection import connect, funded_accounts
    from orchestrator.daemons.consortium import deploy_consortium
    from orchestrator.storage.embedded import EmbeddedStore

    private = connect(rpc_url, chain_id=None if rpc_url else 1337)
    public = connect(rpc_url) if rpc_url else connect(None, chain_id=1338)
    accounts = funded_accounts(private, FIRST_ORG + cfg.clients)
    if rpc_url is None:
        funded_accounts(public, FIRST_ORG)
    chosen = accounts[:FIRST_ORG] + [accounts[FIRST_ORG + i] for i in cfg.client_indices]
    store = EmbeddedStore(Path(state) / "ipfs")
    names = [org_name(i) for i in cfg.client_indices]
    return deploy_consortium(private, public, chosen, names, store)


@dataclass
class SplitLedger:
    """The consortium a split run reports to, and the daemons acting on it."""

    consortium: Consortium
    state: Path
    val_texts: dict[str, list[str]]  # org name -> public validation texts of its topic

    def node(self, who: Any, name: str) -> Any:
        return self.consortium.node(who, self.state / name)

    def aggregator(self, config: Any = None) -> Any:
        from orchestrator.daemons.aggregator import AggregatorDaemon, RoundPlan

        cons = self.consortium
        # rounds=0: the split run opens its round itself; the loop never opens another
        plan = RoundPlan(rounds=0, config=config)
        val = [t for texts in self.val_texts.values() for t in texts]
        return AggregatorDaemon(self.node(cons.aggregator, "aggregator"),
                                cons.aggregator.enc_private, plan, val)

    def unlearner(self) -> Any:
        from orchestrator.daemons.unlearner import UnlearningDaemon

        cons = self.consortium
        by_address = {cons.orgs[n].address: t for n, t in self.val_texts.items() if n in cons.orgs}
        return UnlearningDaemon(self.node(cons.aggregator, "unlearner"),
                                cons.aggregator.enc_private, cons.aggregator_keys(), by_address)

    def trainer(self, name: str, texts: list[str]) -> Any:
        """The org's trainer daemon: here it only checks the rewards root and claims (the
        split run already submitted, so its RoundOpened handler does nothing)."""
        from orchestrator.daemons.trainer import TrainerDaemon
        from orchestrator.merkle import data_commitment

        ident = self.consortium.orgs[name]
        return TrainerDaemon(self.node(ident, f"org-{name}"), name, texts,
                             data_commitment(texts), ident.enc_private)


def open_ledger(cfg: SplitTrainConfig, state: Path, rpc_url: str | None = None) -> SplitLedger:
    from orchestrator.learning.data import TOPICS, load_org_data

    cons = deploy_split_consortium(cfg, state, rpc_url)
    val = {
        org_name(i): load_org_data(TOPICS[i % len(TOPICS)], seed=cfg.seed).val[:EVAL_TEXTS]
        for i in cfg.client_indices
    }
    return SplitLedger(cons, Path(state), val)


def round_config(cfg: SplitTrainConfig, spec: str, cons: Consortium) -> Any:
    from orchestrator.daemons.roundconfig import RoundConfig

    split = {k: v for k, v in dataclasses.asdict(cfg).items()
             if k not in ("adapters_dir", "baseline", "check_equivalence", "exclude", "device",
                          "threads", "step_timeout_s")}
    return RoundConfig(
        model=spec,
        mode="isolated",
        train={"split": split},
        aggregator_keys={cons.aggregator.address: cons.aggregator.enc_public.hex()},
        eval_seq_len=cfg.seq_len,
        eval_batch_size=8,
    )


def submit_adapter(node: Any, round_id: int, adapter_dir: Path, recipients: dict[str, bytes],
                   num_samples: int, commitment: bytes) -> str:
    """Seal ``adapter_dir`` for ``recipients`` (bound to this org and round), store it,
    ``submitUpdate`` from ``node``."""
    from orchestrator.daemons.modelbook import binding
    from orchestrator.storage import adapters as sealed
    from orchestrator.storage.cid import cid_to_bytes32

    cid = sealed.store_adapter(node.store, adapter_dir, recipients,
                               context=binding(node, round_id, node.address))
    rounds = node.contract("Rounds")
    node.send(rounds.functions.submitUpdate(round_id, cid_to_bytes32(cid), num_samples,
                                            commitment))
    return cid


def run_split_round(
    cfg: SplitTrainConfig, ledger: SplitLedger, model_dir: str | Path | None = None
) -> dict[str, Any]:
    """Open a round, train split, submit every client's adapter, finalize, claim rewards."""
    from orchestrator.daemons.demo import drive
    from orchestrator.daemons.rewards import RewardTable, round_report, rewards_settled
    from orchestrator.merkle import data_commitment
    from orchestrator.split.base import split_model_dir
    from orchestrator.split.runner import client_texts, run_split_training
    from orchestrator.storage import adapters as sealed

    cons = ledger.consortium
    folder = Path(model_dir) if model_dir is not None else split_model_dir(cfg.model)
    config = round_config(cfg, cfg.learning_spec(folder), cons)
    aggregator = ledger.aggregator(config)
    round_id = aggregator.open_round()
    started = time.perf_counter()
    run_cfg = dataclasses.replace(
        cfg, adapters_dir=str(ledger.state / f"round-{round_id}" / "adapters")
    )
    report = run_split_training(run_cfg, model_dir=folder)
    if report["client_errors"]:
        raise SplitError(
            f"round {round_id}: clients failed, nothing submitted: {report['client_errors']}; "
            "the round stays open until its deadline"
        )
    texts = client_texts(cfg.clients, cfg.steps, cfg.batch_size, cfg.seq_len, cfg.seed)
    submissions: dict[str, dict[str, Any]] = {}
    for i in cfg.client_indices:
        name = org_name(i)
        ident = cons.orgs[name]
        adapter = report["adapters"][name]
        recipients = config.recipient_keys()
        recipients[ident.address.lower()] = sealed.public_key(ident.enc_private)
        cid = submit_adapter(ledger.node(ident, f"org-{name}"), round_id, Path(adapter["dir"]),
                             recipients, int(adapter["num_samples"]), data_commitment(texts[i]))
        submissions[name] = {"org": ident.address, "adapter_cid": cid, **adapter}
    trainers = [ledger.trainer(org_name(i), texts[i]) for i in cfg.client_indices]
    rounds = cons.protocol.contract("Rounds")
    drive([aggregator, *trainers], lambda: rewards_settled(rounds, cons.store, round_id))
    final = round_report(rounds, cons.store, round_id)
    assert final is not None
    table = RewardTable.from_json(final["rewards"])
    return {
        "round": round_id,
        "submissions": submissions,
        "round_report": final,
        "rewards": {cons.org_by_address(o): a for o, a in table.amounts.items()},
        "claimed": {n: bool(rounds.functions.hasClaimed(round_id, cons.orgs[n].address).call())
                    for n in submissions},
        "chain_seconds": time.perf_counter() - started - report["wall_seconds"],
        "split": report,
    }


def forget(ledger: SplitLedger, name: str) -> dict[str, Any]:
    """The org ``name`` asks (from its own wallet) to be forgotten; the executor answers."""
    from orchestrator.daemons.consortium import request_unlearning
    from orchestrator.daemons.demo import drive
    from orchestrator.daemons.unlearner import REQ_COMPLETED, SCOPE_ORG

    cons = ledger.consortium
    ident = cons.orgs[name]
    unlearning = cons.protocol.contract("Unlearning")
    request_id = request_unlearning(cons.private, cons.protocol, ident.account, ident.address, SCOPE_ORG)
    executor = ledger.unlearner()
    drive([executor],
          lambda: unlearning.functions.getRequest(request_id).call()[2] == REQ_COMPLETED)
    done = [a for a in executor.actions if a["action"] == "unlearned"]
    return {"request": request_id, "receipt": json.loads(cons.store.cat(done[-1]["report_cid"]))}
