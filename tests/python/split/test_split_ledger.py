"""A split training run as a round on the in-process chain, and forgetting a split-mode org.

Real parts throughout: server and client processes (tiny model, BBC data), the in-process
py-evm chain with the consortium's contracts, the embedded blockstore, the consortium's own
aggregator, trainer (claims) and unlearning daemons.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from orchestrator.daemons import modelbook
from orchestrator.split.ledger import forget, open_ledger, run_split_round
from orchestrator.split.runner import SplitTrainConfig

CFG = SplitTrainConfig(
    model="tiny",
    clients=3,
    mode="sequential",
    server_lora="per-client",
    steps=3,
    batch_size=2,
    seq_len=32,
    baseline=False,
    check_equivalence=False,
)


@pytest.mark.slow
def test_split_round_on_chain_and_forgetting_a_split_org_equals_a_run_without_it(
    tmp_path: Path,
) -> None:
    ledger = open_ledger(CFG, tmp_path / "with")
    result = run_split_round(CFG, ledger)
    cons = ledger.consortium
    rounds = cons.protocol.contract("Rounds")
    round_id = result["round"]

    # the round: opened by the aggregator, one submission per client from its own wallet
    opened = rounds.events.RoundOpened().get_logs(from_block=0)
    assert [int(e["args"]["roundId"]) for e in opened] == [round_id]
    logs = rounds.events.UpdateSubmitted().get_logs(from_block=0)
    by_org = {e["args"]["org"]: e for e in logs}
    assert set(by_org) == {cons.orgs[n].address for n in ("client-0", "client-1", "client-2")}
    for name, sub in result["submissions"].items():
        tx = cons.private.eth.get_transaction(by_org[cons.orgs[name].address]["transactionHash"])
        assert tx["from"] == cons.orgs[name].address  # signed by the client's wallet
    # finalized with a merged model of exactly these adapters, and rewards claimed
    assert rounds.functions.getRound(round_id).call()[0] == 3  # Finalized
    report = result["round_report"]
    inputs = modelbook.current_inputs(ledger.aggregator().node)
    assert {i.adapter_cid for i in inputs} == {s["adapter_cid"] for s in result["submissions"].values()}
    assert {i["adapter_cid"] for i in report["inputs"]} == {i.adapter_cid for i in inputs}
    # rewards as for any round (the aggregator's contribution values; a harmful adapter
    # earns nothing): every rewarded client claimed from its wallet
    assert set(result["rewards"]) <= set(result["submissions"])
    assert all(result["claimed"][n] for n in result["rewards"])
    assert result["split"]["client_errors"] == {}

    # client-1 asks to be forgotten; the ordinary executor re-merges without it ...
    done = forget(ledger, "client-1")
    receipt = done["receipt"]
    assert [r["org"] for r in receipt["removed"]] == [cons.orgs["client-1"].address]
    assert receipt["model_sha256"] != report["model_sha256"]

    # ... and that model is hash-equal to a split run in which client-1 never took part
    without = dataclasses.replace(CFG, exclude=(1,))
    other = run_split_round(without, open_ledger(without, tmp_path / "without"))
    assert sorted(other["submissions"]) == ["client-0", "client-2"]
    assert other["round_report"]["model_sha256"] == receipt["model_sha256"]
    for name in ("client-0", "client-2"):
        assert other["submissions"][name]["sha256"] == result["submissions"][name]["sha256"]
