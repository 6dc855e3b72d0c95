"""Per-round overhead of LedgerLoRA against Flower's, measured side by side in one run.

Usage: python bench/flower_compare.py [--orgs 5 20 100] [--deploy-max 5] [--repeats 3] [--json out.json]

Rows (one local step of the tiny model in every one, same data, same LoRA):
  (a1) plain Flower FedAvg on the Simulation Engine, no ledger. Flower 1.42's Simulation Engine
       only ships a Ray backend and Ray is not installed here, so this row runs Flower's own
       simulation runtime (``flwr.simulation.run_simulation``: in-memory SuperLink state, VCE
       workers, InMemoryGrid) with a one-worker in-thread backend put where the Ray backend is
       loaded; one worker is what Ray's default client resources (2 CPUs per ClientApp) give on
       2 cores. Ray's actor transport is the part not measured (it only adds time).
  (a2) plain Flower FedAvg on the Deployment Engine, no ledger: flower-superlink, one
       flower-supernode per org, ``flwr run`` (orchestrator.flower.local.LocalFederation).
  (b)  LedgerLoRA on the Deployment Engine: the same, with ``ledger = true`` (orchestrator.flower)
       on an anvil chain and a shared on-disk blockstore.
  (c)  LedgerLoRA's own daemons (bench/overhead.py's round: critical-path overhead).

Per-round overhead = the round's wall time minus its learning time. Flower rows: the second of
two rounds (steady state) from configure_train to the end of the evaluate phase; learning = the
clients' train_adapter calls (their sum with one simulation worker, the slowest one on the
Deployment Engine, where the nodes train at the same time) plus, in (b), the aggregator's merge,
scoring and evaluation. Every configuration runs ``--repeats`` times; the medians are reported.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "examples" / "flower_app"))
sys.path.insert(0, str(REPO / "bench"))

APP = REPO / "examples" / "flower_app"
TRAIN = {"ledger-model": "tiny", "ledger-steps": 1, "ledger-seq-len": 32, "ledger-batch-size": 2}
ROUNDS = 2


# -- (a1) Flower's simulation runtime with an in-thread backend in place of Ray ------------------
def _install_thread_backend() -> None:
    from flwr.server.superlink.fleet.vce.backend.backend import Backend

    class ThreadBackend(Backend):
        """Runs each ClientApp call in the VCE worker's own thread (one worker)."""

        def __init__(self, backend_config: Any) -> None:
            self.app: Any = None

        def build(self, app_fn: Any) -> None:
            self.app = app_fn()

        @property
        def num_workers(self) -> int:
            return 1

        def is_worker_idle(self) -> bool:
            return True

        def terminate(self) -> None:
            pass

        def process_message(self, message: Any, context: Any) -> tuple[Any, Any]:
            return self.app(message, context), context

    module = types.ModuleType("flwr.server.superlink.fleet.vce.backend.raybackend")
    module.RayBackend = ThreadBackend  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    if "ray" not in sys.modules:  # run_simulation checks find_spec("ray") before loading the backend
        ray = types.ModuleType("ray")
        ray.__spec__ = importlib.machinery.ModuleSpec("ray", None)
        sys.modules["ray"] = ray


def simulation_round(n: int) -> dict[str, float]:
    from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp
    from flwr.serverapp import ServerApp
    from flwr.simulation import run_simulation
    from ledgerlora_app.plain import train_plain
    from ledgerlora_app.server_app import LoraFedAvg

    _install_thread_backend()
    stats: list[list[dict[str, float]]] = []
    server = ServerApp()

    @server.main()
    def _main(grid: Any, context: Any) -> None:
        strategy = LoraFedAvg(min_train_nodes=n, min_available_nodes=n, min_evaluate_nodes=n)
        strategy.start(grid=grid, initial_arrays=ArrayRecord(), num_rounds=ROUNDS)
        stats.append(strategy.stats)

    client = ClientApp()

    @client.train()
    def _train(msg: Any, context: Any) -> Any:
        view = types.SimpleNamespace(run_config={**context.run_config, **TRAIN}, node_config=context.node_config)
        return train_plain(msg, view)  # type: ignore[arg-type]

    @client.evaluate()
    def _evaluate(msg: Any, context: Any) -> Any:
        return Message(content=RecordDict({"metrics": MetricRecord({"num-examples": 1})}), reply_to=msg)

    run_simulation(server_app=server, client_app=client, num_supernodes=n)
    if not stats or len(stats[0]) != ROUNDS:
        raise RuntimeError(f"the simulation of {n} clients did not complete {ROUNDS} rounds")
    last = stats[0][-1]
    if last["replies"] != n:
        raise RuntimeError(f"only {last['replies']:.0f} of {n} simulated clients replied; see the log above")
    return {"round_s": last["seconds"], "learning_s": last["clients_learning_sum_s"],
            "overhead_s": last["seconds"] - last["clients_learning_sum_s"]}


# -- (a2) and (b): the Deployment Engine ------------------------------------------------------------
def deployment_round(n: int, ledger: bool, work: Path) -> dict[str, float]:
    from orchestrator.chain.anvil import AnvilProcess
    from orchestrator.chain.connection import connect, funded_accounts
    from orchestrator.daemons.consortium import deploy_consortium
    from orchestrator.flower.local import LocalFederation
    from orchestrator.learning.data import TOPICS
    from orchestrator.storage.embedded import EmbeddedStore

    names = [f"org{i:03d}" for i in range(n)]
    topics = [TOPICS[i % len(TOPICS)] for i in range(n)]
    with AnvilProcess(accounts=3) as chain:
        run_config: dict[str, Any] = {"ledger": ledger, "num-server-rounds": ROUNDS, "min-nodes": n, **TRAIN}
        server_env: dict[str, str] = {}
        node_env: list[dict[str, str]] = [{} for _ in names]
        if ledger:
            w3 = connect(chain.url)
            cons = deploy_consortium(w3, w3, funded_accounts(w3, 3 + n, amount_wei=10**19), names,
                                     EmbeddedStore(work / "ipfs"))
            manifest = cons.protocol.manifest.write(work / "deployments" / f"{cons.protocol.manifest.chain_id}.json")
            server_env = {"ORCH_PRIVATE_KEY": cons.aggregator.account.key.hex(),
                          "ORCH_ENC_KEY": cons.aggregator.enc_private.hex()}
            node_env = [{"ORCH_PRIVATE_KEY": cons.orgs[nm].account.key.hex(),
                         "ORCH_ENC_KEY": cons.orgs[nm].enc_private.hex()} for nm in names]
            run_config.update({"ledger-rpc-url": chain.url, "ledger-manifest": str(manifest),
                               "ledger-ipfs-dir": str(work / "ipfs"), "ledger-state-dir": str(work / "aggregator")})
        nodes = [({"ledger-org": topics[i], "ledger-state-dir": str(work / nm), "partition-id": i,
                   "num-partitions": n}, node_env[i]) for i, nm in enumerate(names)]
        with LocalFederation(work / "flower", nodes, server_env) as fed:
            _, output = fed.run(APP, run_config, timeout=3000)
    line = next(x for x in reversed(output.splitlines()) if '"round_stats"' in x)
    last = json.loads(line[line.index("{"):])["round_stats"][-1]
    if last.get("replies", n) != n:
        raise RuntimeError(f"only {last['replies']} of {n} SuperNodes replied; logs in {work}")
    learning = last["clients_learning_max_s"] + last["aggregator_learning_s"]
    return {"round_s": last["seconds"], "learning_s": learning, "overhead_s": last["seconds"] - learning}


# -- (c): LedgerLoRA's daemons ---------------------------------------------------------------------
def daemons_round(n: int, work: Path) -> dict[str, float]:
    from overhead import one_size

    r = one_size(n, "tiny", work)
    return {"round_s": r["round_wall_s"], "learning_s": r["learning_s"], "overhead_s": r["critical_overhead_s"]}


# -- growth of the aggregator's overhead with the number of orgs (simulated orgs on anvil) ----------
def aggregator_overhead(n: int, work: Path) -> dict[str, float]:
    """The aggregator's non-learning work for one round of ``n`` simulated orgs on anvil.

    A simulated org trains nothing: it seals one pre-trained tiny adapter for itself (bound to
    its round and address, as a real org's), stores it and submits it from its own wallet. The
    timed part is what the aggregator's ``RoundClosed`` handler does before learning starts:
    verify every submission (fetch, decrypt, check the binding, validate; reject bad ones),
    read each member's live contribution from the chain, fetch the merge inputs and read the
    merge recipients' keys. The merge, scoring and evaluation are learning and not timed.
    """
    from orchestrator.chain.anvil import AnvilProcess
    from orchestrator.chain.connection import connect, funded_accounts
    from orchestrator.daemons import modelbook
    from orchestrator.daemons.aggregator import AggregatorDaemon, RoundPlan
    from orchestrator.daemons.consortium import deploy_consortium
    from orchestrator.daemons.roundconfig import RoundConfig
    from orchestrator.learning.api import TrainConfig, load_org_data, train_adapter
    from orchestrator.merkle import data_commitment
    from orchestrator.storage import adapters as sealed
    from orchestrator.storage.cid import cid_to_bytes32
    from orchestrator.storage.embedded import EmbeddedStore

    texts = load_org_data("business", max_train=8).train
    train = TrainConfig(steps=1, batch_size=2, seq_len=32)
    adapter = train_adapter("tiny", texts, train, work / "adapter", progress=False).adapter_dir
    names = [f"org{i:03d}" for i in range(n)]
    with AnvilProcess(accounts=3) as chain:
        w3 = connect(chain.url)
        cons = deploy_consortium(w3, w3, funded_accounts(w3, 3 + n, amount_wei=10**19), names,
                                 EmbeddedStore(work / "ipfs"))
        cfg = RoundConfig(model="tiny", train=train.to_dict(), eval_seq_len=32,
                          aggregator_keys={cons.aggregator.address: cons.aggregator.enc_public.hex()})
        agg = AggregatorDaemon(cons.node(cons.aggregator, work / "agg"), cons.aggregator.enc_private,
                               RoundPlan(rounds=1, config=cfg), texts[:2])
        round_id = agg.open_round()
        rounds = cons.protocol.contract("Rounds")
        commitment = data_commitment(texts)
        for name in names:
            org = cons.orgs[name]
            node = cons.node(org, work / name)
            recipients = {**cfg.recipient_keys(), org.address.lower(): org.enc_public}
            cid = sealed.store_adapter(node.store, adapter, recipients,
                                       context=modelbook.binding(node, round_id, org.address))
            node.send(rounds.functions.submitUpdate(round_id, cid_to_bytes32(cid), len(texts), commitment))
        agg.node.send(rounds.functions.closeRound(round_id))
        started = time.perf_counter()
        rejected = agg._verify_submissions(round_id)
        inputs = modelbook.current_inputs(agg.node, up_to_round=round_id)
        modelbook.fetch_inputs(agg.node, inputs, agg.encryption_key, agg.work / "adapters")
        modelbook.merge_recipients(agg.node, cfg.recipient_keys())
        seconds = time.perf_counter() - started
    if rejected or len(inputs) != n:
        raise RuntimeError(f"{n} simulated orgs: {len(rejected)} rejected, {len(inputs)} inputs")
    return {"orgs": n, "aggregator_overhead_s": seconds, "per_org_ms": 1000 * seconds / n}


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]} | {"runs": len(runs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--orgs", type=int, nargs="+", default=[5, 20, 100])
    ap.add_argument("--deploy-max", type=int, default=5,
                    help="largest consortium run on the Deployment Engine (each SuperNode is a ~380 MiB "
                         "process plus a fresh ClientApp process per message; default 5)")
    ap.add_argument("--rows", default="a1,a2,b,c", help="which rows to run (default a1,a2,b,c)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per configuration; medians reported (default 3)")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--scale", type=int, nargs="*", default=None,
                    help="instead: the aggregator's overhead for these numbers of simulated orgs on anvil "
                         "(e.g. 50 100 200 500); growth no faster than linear = flat or falling ms per org")
    args = ap.parse_args()
    if args.scale:
        scale_rows = []
        for n in args.scale:
            runs = []
            for _ in range(args.repeats):
                with tempfile.TemporaryDirectory() as tmp:
                    runs.append(aggregator_overhead(n, Path(tmp)))
                print(f"{n} simulated orgs: {json.dumps(runs[-1])}", flush=True)
            scale_rows.append(median_of(runs))
        print("\n| simulated orgs | aggregator overhead (s) | per org (ms) |\n|---:|---:|---:|")
        for r in scale_rows:
            print(f"| {r['orgs']:.0f} | {r['aggregator_overhead_s']:.2f} | {r['per_org_ms']:.1f} |")
        if args.json:
            Path(args.json).write_text(json.dumps(scale_rows, indent=1))
        return
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    rows = set(args.rows.split(","))
    results: dict[int, dict[str, dict[str, float] | str]] = {}
    for n in args.orgs:
        res: dict[str, dict[str, float] | str] = {}
        for row in ("a1", "a2", "b", "c"):
            if row not in rows:
                continue
            if row in ("a2", "b") and n > args.deploy_max:
                res[row] = f"not run: {n} SuperNodes exceed --deploy-max {args.deploy_max} on this machine"
                continue
            runs = []
            for _ in range(args.repeats):
                with tempfile.TemporaryDirectory() as tmp:
                    if row == "a1":
                        runs.append(simulation_round(n))
                    elif row == "c":
                        runs.append(daemons_round(n, Path(tmp)))
                    else:
                        runs.append(deployment_round(n, row == "b", Path(tmp)))
                print(f"{n} orgs {row}: {json.dumps(runs[-1])}", flush=True)
            res[row] = median_of(runs)
        results[n] = res
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"started {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print("\n| orgs | (a1) Flower sim overhead (s) | (a2) Flower deploy overhead (s) | (b) LedgerLoRA on Flower deploy "
          "overhead (s) | (c) LedgerLoRA daemons overhead (s) | (c)/(a1) | (b)/(a2) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")

    def cell(r: Any) -> str:
        return f"{r['overhead_s']:.2f} (round {r['round_s']:.2f})" if isinstance(r, dict) else "n/a"

    def ratio(x: Any, y: Any) -> str:
        ok = isinstance(x, dict) and isinstance(y, dict) and y["overhead_s"] > 0
        return f"{x['overhead_s'] / y['overhead_s']:.2f}" if ok else "n/a"

    for n, res in results.items():
        print(f"| {n} | {cell(res.get('a1'))} | {cell(res.get('a2'))} | {cell(res.get('b'))} | {cell(res.get('c'))} | "
              f"{ratio(res.get('c'), res.get('a1'))} | {ratio(res.get('b'), res.get('a2'))} |")
    for n, res in results.items():
        for row, r in res.items():
            if isinstance(r, str):
                print(f"{n} orgs ({row}): {r}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
