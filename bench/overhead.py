"""Per-round orchestration overhead on anvil, beside the round's learning time.

Usage: python bench/overhead.py [--orgs 5 20 100] [--model tiny]

For each consortium size: deploy on a fresh anvil, onboard N orgs (each from its own key), then
run one round with the real daemons over JSON-RPC: the aggregator opens it, every trainer trains
(1 step of the tiny model), seals, stores and submits; the aggregator closes, fetches, verifies,
merges, scores, finalizes; every trainer claims. Learning time (training, merge, scoring, eval)
is timed inside the daemons; overhead = round wall time - learning time, i.e. the chain, the
store, encryption and the event loop. Also measured: how long after an event is mined a daemon
polling every 0.2 s starts acting on it (reaction latency), median over the orgs.
Targets (issue 5): <= 2 s overhead per round at 20 orgs; reaction within 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.chain.anvil import AnvilProcess  # noqa: E402
from orchestrator.chain.connection import connect, funded_accounts  # noqa: E402
from orchestrator.daemons.aggregator import AggregatorDaemon, RoundPlan  # noqa: E402
from orchestrator.daemons.consortium import deploy_consortium  # noqa: E402
from orchestrator.daemons.rewards import rewards_settled  # noqa: E402
from orchestrator.daemons.roundconfig import RoundConfig  # noqa: E402
from orchestrator.daemons.trainer import TrainerDaemon  # noqa: E402
from orchestrator.learning.api import TrainConfig  # noqa: E402
from orchestrator.learning.data import TOPICS, load_org_data  # noqa: E402
from orchestrator.merkle import data_commitment  # noqa: E402
from orchestrator.storage.embedded import EmbeddedStore  # noqa: E402


def one_size(n: int, model: str, work: Path) -> dict[str, float]:
    with AnvilProcess(accounts=3) as node:
        w3 = connect(node.url)
        accounts = funded_accounts(w3, 3 + n, amount_wei=10**19)
        names = [f"org{i:03d}" for i in range(n)]
        store = EmbeddedStore(work / "ipfs")
        t0 = time.perf_counter()
        cons = deploy_consortium(w3, w3, accounts, names, store)
        setup_s = time.perf_counter() - t0
        texts = {name: load_org_data(TOPICS[i % len(TOPICS)], max_train=8).train for i, name in enumerate(names)}
        val = load_org_data("tech", max_train=8).val[:4]
        train = TrainConfig(steps=1, batch_size=2, seq_len=32)
        cfg = RoundConfig(model=model, train=train.to_dict(), eval_seq_len=32, eval_batch_size=8,
                          aggregator_keys={cons.aggregator.address: cons.aggregator.enc_public.hex()})
        agg = AggregatorDaemon(cons.node(cons.aggregator, work / "agg"), cons.aggregator.enc_private,
                               RoundPlan(rounds=1, config=cfg), val)
        trainers = [TrainerDaemon(cons.node(cons.orgs[nm], work / nm), nm, texts[nm],
                                  data_commitment(texts[nm]), cons.orgs[nm].enc_private) for nm in names]
        # warm the model cache so loading is not charged to the first round
        from orchestrator.learning.models import load_model
        load_model(model)
        rounds = cons.protocol.contract("Rounds")
        busy = {d.name: 0.0 for d in [agg, *trainers]}

        def tick(d) -> None:
            t = time.perf_counter()
            d.tick()
            busy[d.name] += time.perf_counter() - t

        started = time.perf_counter()
        tick(agg)  # opens
        while True:
            for t in trainers:
                tick(t)
            tick(agg)
            if rewards_settled(rounds, store, 1):
                break
        wall = time.perf_counter() - started
        learn = {d.name: sum(a.get("learning_seconds", 0.0) for a in d.actions) for d in [agg, *trainers]}
        learning = sum(learn.values())
        # Each daemon runs in its own process in a deployment: the round's critical path is the
        # aggregator's own work plus the slowest trainer's, not the sum over all trainers.
        agg_over = busy[agg.name] - learn[agg.name]
        trainer_over = max(busy[t.name] - learn[t.name] for t in trainers)
        latency = reaction_latency(cons, work)
        return {"orgs": n, "setup_s": setup_s, "round_wall_s": wall, "learning_s": learning,
                "overhead_s": wall - learning, "overhead_per_org_ms": 1000 * (wall - learning) / n,
                "critical_overhead_s": agg_over + trainer_over, "aggregator_overhead_s": agg_over,
                "trainer_overhead_s": trainer_over, "reaction_s": latency}


def reaction_latency(cons, work: Path) -> float:
    """Time from a RoundOpened being mined to a polling daemon's handler starting."""
    from orchestrator.daemons.base import Daemon

    seen: dict[str, float] = {}

    class Probe(Daemon):
        role = "probe"

        def subscriptions(self):
            return [(self.node.contract("Rounds"), "RoundOpened")]

        def handlers(self):
            return {"RoundOpened": lambda ev: seen.setdefault(str(ev.args["roundId"]), time.perf_counter())}

    samples = []
    probe = Probe(cons.node(cons.relayer, work / "probe"))
    probe.tick()
    stop = threading.Event()
    thread = threading.Thread(target=probe.run_forever, args=(stop, 0.2), daemon=True)
    thread.start()
    rounds = cons.protocol.contract("Rounds")
    from orchestrator.chain.tx import Transactor

    tx = Transactor(cons.private, cons.aggregator.account)
    for _ in range(5):
        now = cons.private.eth.get_block("latest")["timestamp"]
        receipt = tx.transact(rounds.functions.openRound(b"\x07" * 32, now + 3600, 0, 10**6))
        mined = time.perf_counter()
        rid = str(rounds.events.RoundOpened().process_receipt(receipt)[0]["args"]["roundId"])
        while rid not in seen:
            time.sleep(0.01)
        samples.append(seen[rid] - mined)
    stop.set()
    thread.join(timeout=5)
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--orgs", type=int, nargs="+", default=[5, 20, 100])
    ap.add_argument("--model", default="tiny")
    args = ap.parse_args()
    rows = []
    for n in args.orgs:
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(one_size(n, args.model, Path(tmp)))
        r = rows[-1]
        print(f"{r['orgs']:4d} orgs: all daemons in one process: round {r['round_wall_s']:7.2f} s = learning "
              f"{r['learning_s']:7.2f} s + orchestration {r['overhead_s']:6.2f} s (fraction "
              f"{r['overhead_s'] / r['round_wall_s']:.2f}); one process per daemon: critical-path overhead "
              f"{r['critical_overhead_s']:.2f} s (aggregator {r['aggregator_overhead_s']:.2f} + slowest trainer "
              f"{r['trainer_overhead_s']:.2f}); reaction {r['reaction_s'] * 1000:.0f} ms", flush=True)
    print("\n| orgs | round wall, 1 process (s) | learning (s) | overhead, 1 process (s) | overhead fraction | "
          "critical-path overhead (s) | reaction (ms) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['orgs']} | {r['round_wall_s']:.2f} | {r['learning_s']:.2f} | {r['overhead_s']:.2f} | "
              f"{r['overhead_s'] / r['round_wall_s']:.2f} | {r['critical_overhead_s']:.2f} | {r['reaction_s'] * 1000:.0f} |")


if __name__ == "__main__":
    main()
