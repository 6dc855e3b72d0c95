"""``python -m orchestrator demo``: a whole consortium on the embedded default, in one process.

Two in-process py-evm chains (the private consortium chain and a public chain holding the
anchor), the on-disk IPFS blockstore, five organisations named after the BBC News topics each
training on its own topic, an aggregator, an unlearning executor and an anchor relayer. The
daemons are the same classes that run as separate processes against anvil; here one loop ticks
them in turn. At the end one org exercises its right to be forgotten, the executor completes
the request, an auditor re-derives the new model from the remaining adapters' CIDs, and the
relayer anchors everything on the public chain, where each record's proof is checked.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from orchestrator.chain.connection import connect, funded_accounts
from orchestrator.daemons import grouped, modelbook
from orchestrator.daemons.aggregator import AggregatorDaemon, RoundPlan
from orchestrator.daemons.base import Daemon
from orchestrator.daemons.consortium import TOKEN, Consortium, deploy_consortium, request_unlearning
from orchestrator.daemons.rewards import rewards_settled, round_report
from orchestrator.daemons.relayer import RelayerDaemon, record_of, verify_batch
from orchestrator.daemons.roundconfig import RoundConfig
from orchestrator.daemons.incentives import agents_settled, close_when_everyone_decided, decisions
from orchestrator.daemons.trainer import TrainerDaemon
from orchestrator.daemons.unlearner import REQ_COMPLETED, SCOPE_ORG, UnlearningDaemon
from orchestrator.errors import ConfigError, DaemonError
from orchestrator.storage.cid import bytes32_to_cid
from orchestrator.storage.embedded import EmbeddedStore

from orchestrator.learning.data import TOPICS  # noqa: E402  (torch-free: texts and commitments only)

#: Per-model defaults sized for 2 CPU cores (see docs/BENCHMARKS.md for the timings).
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "tiny": {"steps": 30, "batch_size": 8, "seq_len": 64, "lr": 3e-3, "max_train": 64, "eval_texts": 8},
    "smollm2": {"steps": 8, "batch_size": 4, "seq_len": 64, "lr": 2e-3, "max_train": 32, "eval_texts": 4},
}


@dataclass
class DemoConfig:
    model: str = "smollm2"
    orgs: int = 5
    rounds: int = 2
    unlearn: str = "sport"
    out: Path = Path("out/demo")
    steps: int | None = None
    seed: int = 0
    quiet: bool = False
    agents: bool = False  # trainers are Q-learning agents (agents.policy) choosing skip/low/medium/high
    #: 0: isolated mode; G >= 1: grouped collaboration in G groups (round-robin over the sorted
    #: org names, federation.assign_groups), fixed in the round config
    groups: int = 0

    def __post_init__(self) -> None:
        if not 2 <= self.orgs <= len(TOPICS):
            raise ConfigError(f"--orgs must be between 2 and {len(TOPICS)}, got {self.orgs}")
        if self.rounds < 1:
            raise ConfigError(f"--rounds must be at least 1, got {self.rounds}")
        if self.unlearn not in TOPICS[: self.orgs]:
            raise ConfigError(
                f"--unlearn {self.unlearn!r} is not one of the {self.orgs} orgs {TOPICS[: self.orgs]}"
            )
        if not 0 <= self.groups <= self.orgs:
            raise ConfigError(f"--groups must be between 0 (isolated) and --orgs ({self.orgs}), got {self.groups}")
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"--steps must be at least 1, got {self.steps}")

    @property
    def defaults(self) -> dict[str, Any]:
        return dict(MODEL_DEFAULTS.get(self.model, MODEL_DEFAULTS["smollm2"]))


@dataclass
class DemoResult:
    report: dict[str, Any]
    consortium: Consortium
    daemons: dict[str, Daemon] = field(default_factory=dict)
    report_path: Path | None = None


def drive(daemons: Sequence[Daemon], done: Callable[[], bool], *, max_ticks: int = 400,
          on_tick: Callable[[], None] | None = None) -> int:
    """Tick every daemon in turn until ``done()``; fail loudly instead of spinning forever."""
    for tick in range(max_ticks):
        if done():
            return tick
        for daemon in daemons:
            daemon.tick()
        if on_tick is not None:
            on_tick()
    raise DaemonError(f"the consortium did not reach the expected state within {max_ticks} ticks")


@dataclass
class Setup:
    """A deployed, onboarded consortium with its daemons, not yet running."""

    consortium: Consortium
    data: dict[str, Any]
    trainers: dict[str, TrainerDaemon]
    aggregator: AggregatorDaemon
    unlearner: UnlearningDaemon
    relayer: RelayerDaemon

    @property
    def daemons(self) -> list[Daemon]:
        return [self.aggregator, *self.trainers.values(), self.unlearner]


def build_setup(cfg: DemoConfig, state: Path, on_step: Callable[[str], None] | None = None,
                trainer_names: Sequence[str] | None = None) -> Setup:
    """Deploy on two new in-process chains, onboard ``cfg.orgs`` orgs, construct every daemon.

    ``trainer_names`` limits which orgs get a trainer daemon (a test plays the others by hand).
    """
    step = on_step or (lambda text: None)
    d = cfg.defaults
    steps = cfg.steps or d["steps"]
    names = list(TOPICS[: cfg.orgs])
    from orchestrator.learning.data import load_org_data

    private = connect(None, chain_id=1337)
    public = connect(None, chain_id=1338)
    accounts = funded_accounts(private, 3 + cfg.orgs)
    funded_accounts(public, 3 + cfg.orgs)
    store = EmbeddedStore(state / "ipfs")
    cons = deploy_consortium(private, public, accounts, names, store)
    step("loading each org's private data")

    data = {n: load_org_data(n, max_train=d["max_train"], seed=cfg.seed) for n in names}
    # The aggregator's public validation set: a few held-back texts of every topic.
    eval_by_org = {cons.orgs[n].address: data[n].val[: d["eval_texts"]] for n in names}
    val_texts = [t for n in names for t in data[n].val[: d["eval_texts"]]]
    step("starting daemons")

    from orchestrator.learning.api import TrainConfig

    train = TrainConfig(steps=steps, batch_size=d["batch_size"], seq_len=d["seq_len"], lr=d["lr"], seed=cfg.seed)
    groups = {}
    if cfg.groups:
        from orchestrator.learning.federation import assign_groups

        groups = {cons.orgs[n].address.lower(): g for n, g in assign_groups(names, cfg.groups).items()}
    round_cfg = RoundConfig(model=cfg.model, mode="grouped" if groups else "isolated", train=train.to_dict(),
                            groups=groups,
                            aggregator_keys={cons.aggregator.address: cons.aggregator.enc_public.hex()},
                            eval_seq_len=d["seq_len"], eval_batch_size=8)
    agg_node = cons.node(cons.aggregator, state / "aggregator")
    trainers = {
        n: TrainerDaemon(cons.node(cons.orgs[n], state / f"org-{n}"), n, data[n].train,
                         data[n].commitment(), cons.orgs[n].enc_private)
        for n in (trainer_names if trainer_names is not None else names)
    }
    if cfg.agents:
        from orchestrator.daemons.incentives import attach_agents

        # The org that will ask to be forgotten chooses its level but never skips (it must have
        # something to forget); every other org may skip.
        attach_agents(trainers, seed=cfg.seed, actions={cfg.unlearn: ("low", "medium", "high")})
    aggregator = AggregatorDaemon(agg_node, cons.aggregator.enc_private,
                                  RoundPlan(rounds=cfg.rounds, config=round_cfg), val_texts)
    from orchestrator.learning.verify import EvalSets

    # What the forgotten org discloses to the executor for the receipt's membership attack: some
    # of its training articles and articles of its topic it never trained on, and its canaries.
    audit = {cons.orgs[n].address: EvalSets(val={}, members=data[n].articles[:32],
                                            nonmembers=(data[n].heldout + data[n].unused)[:32],
                                            canaries=data[n].canaries, canary_reps=data[n].canary_reps)
             for n in names}
    unlearner = UnlearningDaemon(cons.node(cons.aggregator, state / "unlearner"), cons.aggregator.enc_private,
                                 cons.aggregator_keys(), eval_by_org, audit=audit)
    relayer = RelayerDaemon(cons.node(cons.relayer, state / "relayer"),
                            cons.node(cons.relayer, state / "relayer-public", public=True))
    return Setup(cons, data, trainers, aggregator, unlearner, relayer)


def run_demo(cfg: DemoConfig, console: Console | None = None) -> DemoResult:
    console = console or Console(quiet=cfg.quiet, width=max(Console().width, 120))
    started = time.perf_counter()
    out = Path(cfg.out)
    state = out / "state"
    if state.exists():
        shutil.rmtree(state)  # a demo always starts from genesis; its chains live in memory
    state.mkdir(parents=True)
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                        TimeElapsedColumn(), console=console, transient=False)
    total = 3 + cfg.rounds * (cfg.orgs + 2) + 3
    with progress:
        bar = progress.add_task("deploying two in-process chains", total=total)

        setup = build_setup(cfg, state, on_step=lambda text: progress.update(bar, advance=1, description=text))
        cons, relayer = setup.consortium, setup.relayer
        agg_node = setup.aggregator.node
        daemons = setup.daemons
        progress.update(bar, advance=1)

        rounds = cons.protocol.contract("Rounds")
        seen_actions = {"n": 0}

        def on_tick() -> None:
            actions = [a for dm in daemons for a in dm.actions]
            new = actions[seen_actions["n"]:] if len(actions) > seen_actions["n"] else []
            for a in new:
                label = {"submitted": "trained + submitted", "finalized": "merged + finalized",
                         "claimed": "reward claimed"}.get(a["action"], a["action"])
                if a["action"] in ("submitted", "finalized", "closed"):
                    progress.update(bar, advance=1)
                progress.update(bar, description=f"{a['daemon']}: {label}" + (
                    f" (round {a['round']})" if "round" in a else ""))
            seen_actions["n"] = len(actions)

        def rounds_done() -> bool:
            return int(rounds.functions.roundCount().call()) >= cfg.rounds and all(
                rewards_settled(rounds, cons.store, r) for r in range(1, cfg.rounds + 1)) and (
                not cfg.agents or agents_settled(setup.trainers, cfg.rounds))

        def tick_rounds() -> None:
            on_tick()
            if cfg.agents:  # a round with a skipper closes at its deadline: move chain time there
                close_when_everyone_decided(rounds, cons.private, setup.trainers)

        drive(daemons, rounds_done, on_tick=tick_rounds)
        group_of = setup.aggregator.plan.config.groups if setup.aggregator.plan.config else {}
        before = grouped.flat(grouped.group_inputs(agg_node, group_of)) if group_of else \
            modelbook.current_inputs(agg_node)

        # The right to be forgotten: the org asks from its own wallet.
        progress.update(bar, advance=1, description=f"{cfg.unlearn} requests unlearning")
        unlearning = cons.protocol.contract("Unlearning")
        forgotten = cons.orgs[cfg.unlearn]
        request_id = request_unlearning(cons.private, cons.protocol, forgotten.account, forgotten.address, SCOPE_ORG)
        drive(daemons, lambda: unlearning.functions.getRequest(request_id).call()[2] == REQ_COMPLETED,
              on_tick=on_tick)
        progress.update(bar, advance=1, description="auditor re-derives the unlearned model")

        # An auditor re-derives the new model from the remaining adapters' CIDs on chain.
        new_cid = bytes32_to_cid(bytes(unlearning.functions.getRequest(request_id).call()[6]))
        recipients = modelbook.merge_recipients(agg_node, cons.aggregator_keys())
        if group_of:  # grouped: each group's FedAvg (the forgotten org's group replayed), stacked
            after_groups = grouped.group_inputs(agg_node, group_of)
            after = grouped.flat(after_groups)
            audit = grouped.rederive(agg_node, after_groups, recipients, cons.aggregator.enc_private, state / "auditor")
        else:
            after = modelbook.current_inputs(agg_node)
            audit = modelbook.rederive(agg_node, after, recipients, cons.aggregator.enc_private, state / "auditor")
        progress.update(bar, advance=1, description="relayer anchors the private chain on the public chain")

        batch = relayer.anchor_once()
        anchors = _check_anchors(cons, relayer, batch)
        progress.update(bar, completed=total, description="done")

    report = build_report(cons, cfg, request_id, before, after, new_cid, audit, anchors,
                          time.perf_counter() - started)
    if cfg.agents:
        report["agents"] = decisions(setup.trainers)
    result = DemoResult(report, cons, {d.name: d for d in [*daemons, relayer]})
    result.report_path = write_report(report, out)
    print_report(report, console)
    return result


def _check_anchors(cons: Consortium, relayer: RelayerDaemon, batch: dict[str, Any] | None) -> dict[str, Any]:
    """Recompute every anchored leaf from the private chain's own logs, then verify on the public chain."""
    if batch is None:
        raise DaemonError("the relayer found nothing to anchor")
    anchor = cons.anchor.contract("PublicAnchor")
    chain_id = int(cons.private.eth.chain_id)
    recomputed = 0
    for rec in batch["records"]:
        tx = cons.private.eth.get_transaction_receipt(rec["tx_hash"])
        log = next(ev for ev in tx["logs"] if int(ev["logIndex"]) == rec["log_index"])
        if "0x" + record_of(log).leaf(chain_id).hex() == rec["leaf"]:
            recomputed += 1
    verified, total = verify_batch(anchor, batch)
    return {"anchor_id": batch["anchor_id"], "blocks": [batch["from_block"], batch["to_block"]],
            "root": batch["root"], "records": total, "leaves_recomputed": recomputed,
            "proofs_verified_on_public_chain": verified, "batch_cid": batch["cid"]}


def build_report(cons: Consortium, cfg: DemoConfig, request_id: int, before: list[modelbook.Input],
                 after: list[modelbook.Input], new_cid: str, audit: modelbook.MergedModel,
                 anchors: dict[str, Any], seconds: float) -> dict[str, Any]:
    rounds = cons.protocol.contract("Rounds")
    token = cons.protocol.contract("LedgerToken")
    name_of = cons.org_by_address
    round_rows = []
    for r in range(1, int(rounds.functions.roundCount().call()) + 1):
        info = rounds.functions.getRound(r).call()
        rep = round_report(rounds, cons.store, r)
        assert rep is not None, f"round {r} is not finalized"
        round_rows.append({
            "round": r, "submissions": int(info[2]), "model_cid": bytes32_to_cid(bytes(info[4])),
            "rewards_root": "0x" + bytes(info[5]).hex(), "budget": int(info[6]), "claimed": int(info[7]),
            "val_perplexity": rep["metrics"]["val_perplexity"],
            "scores": {name_of(o): s for o, s in rep["scores"].items()},
            "rewards": {name_of(x["org"]): int(x["amount"]) for x in rep["rewards"]},
            "rejected": rep["rejected"],
        })
    unlearning = cons.protocol.contract("Unlearning")
    req = unlearning.functions.getRequest(request_id).call()
    completed = unlearning.events.UnlearningCompleted().get_logs(
        from_block=0, argument_filters={"requestId": request_id})[0]["args"]
    receipt_doc = json.loads(cons.store.cat(bytes32_to_cid(bytes(completed["metricsHash"]))))
    return {
        "model": cfg.model,
        "orgs": {n: i.address for n, i in cons.orgs.items()},
        "chains": {"private": int(cons.private.eth.chain_id), "public": int(cons.public.eth.chain_id)},
        "contracts": {n: cons.protocol.contract(n).address for n in
                      ("LedgerToken", "Staking", "Membership", "ContributionRegistry", "Rounds", "Unlearning")},
        "rounds": round_rows,
        "balances": {n: int(token.functions.balanceOf(i.address).call()) for n, i in cons.orgs.items()},
        "unlearning": {
            "request_id": request_id, "org": cfg.unlearn, "state": int(req[2]),
            "new_model_cid": new_cid, "removed_root": "0x" + bytes(completed["removedRoot"]).hex(),
            "receipt_cid": bytes32_to_cid(bytes(completed["metricsHash"])),
            "inputs_before": [name_of(i.org) for i in before], "inputs_after": [name_of(i.org) for i in after],
            "rederived_model_cid": audit.cid, "rederived_matches": audit.cid == new_cid,
            "model_sha256": receipt_doc["model_sha256"],
            "perplexity": {name_of(o): v for o, v in receipt_doc["perplexity"].items()},
            "seconds": receipt_doc["unlearning_seconds"],
        },
        "anchor": anchors,
        "wall_seconds": seconds,
    }


def write_report(report: dict[str, Any], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2, sort_keys=True, default=str))
    tmp.replace(path)
    _plot(report, out)
    return path


def _plot(report: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ppl = report["unlearning"]["perplexity"]
    orgs = list(ppl)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    x = range(len(orgs))
    for k, (key, label) in enumerate([("base", "base model"), ("before", "before unlearning"),
                                      ("after", "after unlearning")]):
        axes[0].bar([i + (k - 1) * 0.27 for i in x], [ppl[o][key] for o in orgs], width=0.27, label=label)
    axes[0].set_xticks(list(x), orgs)
    axes[0].set_ylabel("perplexity on the topic's public validation texts")
    axes[0].set_title(f"Unlearning '{report['unlearning']['org']}'")
    axes[0].legend()
    rounds = report["rounds"]
    names = list(report["orgs"])
    bottom = [0.0] * len(rounds)
    for n in names:
        vals = [r["rewards"].get(n, 0) / TOKEN for r in rounds]
        axes[1].bar([f"round {r['round']}" for r in rounds], vals, bottom=bottom, label=n)
        bottom = [b + v for b, v in zip(bottom, vals)]
    axes[1].set_ylabel("reward (LLS)")
    axes[1].set_title("Rewards from exact Shapley values")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "report.png", dpi=110)
    plt.close(fig)


def print_report(report: dict[str, Any], console: Console) -> None:
    t = Table(title="Rounds (private chain)")
    for col in ("round", "submissions", "merged model CID", "val ppl", "rewards (LLS)", "rejected"):
        t.add_column(col)
    for r in report["rounds"]:
        rewards = ", ".join(f"{k}={v / TOKEN:.1f}" for k, v in r["rewards"].items())
        t.add_row(str(r["round"]), str(r["submissions"]), r["model_cid"], f"{r['val_perplexity']:.2f}",
                  rewards, str(len(r["rejected"])))
    console.print(t)
    if "agents" in report:
        print_agents(report["agents"], console)
    u = report["unlearning"]
    t2 = Table(title=f"Unlearning request {u['request_id']}: '{u['org']}' forgotten; perplexity per topic")
    for col in ("topic", "base ppl", "before", "after"):
        t2.add_column(col)
    for org, v in u["perplexity"].items():
        style = "bold red" if org == u["org"] else None
        t2.add_row(org, f"{v['base']:.2f}", f"{v['before']:.2f}", f"{v['after']:.2f}", style=style)
    console.print(t2)
    console.print(f"receipt {u['receipt_cid']}; new model CID {u['new_model_cid']}; auditor's re-derivation from the remaining adapters: "
                  f"{'[green]identical' if u['rederived_matches'] else '[red]DIFFERENT'}[/] "
                  f"({u['seconds']:.1f} s to unlearn)")
    a = report["anchor"]
    console.print(f"anchor {a['anchor_id']} on the public chain: blocks {a['blocks'][0]}-{a['blocks'][1]}, "
                  f"{a['proofs_verified_on_public_chain']}/{a['records']} record proofs verified, "
                  f"{a['leaves_recomputed']}/{a['records']} leaves recomputed from private logs")
    console.print(f"finished in {report['wall_seconds']:.0f} s")


def print_agents(table: dict[str, list[dict[str, Any]]], console: Console) -> None:
    """Each org's decision per round (level and local steps, * = explored) and what it was paid."""
    t = Table(title="Q-learning trainers: decision (local steps) and reward per round")
    rounds = sorted({d["round"] for rows in table.values() for d in rows})
    t.add_column("org")
    for r in rounds:
        t.add_column(f"round {r}")
    for org, rows in table.items():
        by_round = {d["round"]: d for d in rows}
        t.add_row(org, *[f"{d['action']} ({d['steps']}){'*' if d['explored'] else ''}: "
                         f"{int(d['tokens']) / TOKEN:.1f} LLS" if (d := by_round.get(r)) else "-" for r in rounds])
    console.print(t)


def demo_config_from_args(args: Any) -> DemoConfig:
    fields = {k: getattr(args, k) for k in ("model", "orgs", "rounds", "unlearn", "out", "steps", "seed")}
    fields["out"] = Path(fields["out"])
    return DemoConfig(**fields, agents=bool(getattr(args, "agents", False)), groups=int(getattr(args, "groups", 0)))


__all__ = ["DemoConfig", "DemoResult", "run_demo", "drive", "asdict"]
