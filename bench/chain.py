"""Chain-layer overheads: Transactor vs bare web3, EventScanner vs bare get_logs.

    python bench/chain.py [--txs 100] [--events 500]

For each backend (in-process py-evm, a fresh anvil) it measures, in the same run:
  * transactions/s of ``Transactor.transact`` (estimate + fees + local signing + nonce + receipt)
    against the baseline ``contract.functions.ping(...).transact()`` from the node's unlocked
    account (the node signs; web3 estimates gas), printing ratio = ours / baseline time;
  * events/s of ``EventScanner.poll`` + ``mark_processed`` over ``--events`` events against a bare
    ``eth_getLogs`` + ``process_log`` of the same range.
Needs the build artifacts (``make setup``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.chain import (  # noqa: E402
    AnvilProcess,
    EventScanner,
    Transactor,
    connect,
    funded_accounts,
    load_artifact,
)

BUILD = Path(__file__).resolve().parents[1] / "build" / "contracts"
TAG = b"\x01" * 32


def bench(label: str, w3, n_txs: int, n_events: int) -> None:
    (account,) = funded_accounts(w3, 1, seed="bench")
    tx = Transactor(w3, account, build_dir=BUILD)
    probe = tx.deploy(load_artifact("ChainProbe", BUILD))
    faucet = w3.eth.accounts[0]

    t0 = time.perf_counter()
    for i in range(n_txs):
        w3.eth.wait_for_transaction_receipt(probe.functions.ping(i, TAG).transact({"from": faucet}),
                                            poll_latency=0.01)
    base = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(n_txs):
        tx.transact(probe.functions.ping(i, TAG))
    ours = time.perf_counter() - t0
    print(f"{label:12s} transact      {n_txs / ours:7.1f} tx/s  baseline web3 {n_txs / base:7.1f} tx/s  "
          f"ratio {ours / base:.2f}x")

    first = w3.eth.block_number + 1
    per_tx = 50
    for k in range(n_events // per_tx):
        tx.transact(probe.functions.pingMany(k * per_tx, per_tx, TAG))
    last = w3.eth.block_number
    t0 = time.perf_counter()
    logs = w3.eth.get_logs({"fromBlock": first, "toBlock": last, "address": probe.address})
    decoded = [probe.events.Pinged().process_log(entry) for entry in logs]
    base = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        scanner = EventScanner(w3, [(probe, "Pinged")], Path(tmp) / "s.db", "bench", start_block=first)
        t0 = time.perf_counter()
        events = scanner.poll()
        for event in events:
            scanner.mark_processed(event)
        ours = time.perf_counter() - t0
        scanner.close()
    assert len(events) == len(decoded) == (n_events // per_tx) * per_tx
    print(f"{label:12s} scan+persist  {len(events) / ours:7.0f} ev/s  baseline get_logs {len(decoded) / base:7.0f} ev/s  "
          f"ratio {ours / base:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--txs", type=int, default=100)
    parser.add_argument("--events", type=int, default=500)
    args = parser.parse_args()
    bench("in-process", connect(), args.txs, args.events)
    with AnvilProcess() as node:
        bench("anvil", connect(node.url), args.txs, args.events)


if __name__ == "__main__":
    main()
