"""LedgerLoRA on Flower's Deployment Engine, with Flower's real processes on loopback.

One ``flower-superlink``, three ``flower-supernode``s (one per org, each holding only its own
keys in its environment) and ``flwr run`` of examples/flower_app in deployment mode, against a
real anvil chain and a shared on-disk blockstore (the in-process py-evm chain cannot be reached
from other processes). Then the unchanged unlearning executor serves an org's request on the
Flower-driven consortium and an auditor re-derives the receipt's model from the chain.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from orchestrator.chain.anvil import AnvilProcess, find_anvil
from orchestrator.chain.connection import connect, funded_accounts
from orchestrator.daemons import modelbook
from orchestrator.daemons.consortium import deploy_consortium, request_unlearning
from orchestrator.daemons.demo import drive
from orchestrator.daemons.rewards import rewards_settled, round_report
from orchestrator.daemons.unlearner import REQ_COMPLETED, SCOPE_ORG, UnlearningDaemon
from orchestrator.flower.local import LocalFederation
from orchestrator.flower.onchain import submissions_on_chain
from orchestrator.storage.cid import bytes32_to_cid
from orchestrator.storage.embedded import EmbeddedStore

REPO = Path(__file__).resolve().parents[3]
APP = REPO / "examples" / "flower_app"
ORGS = ["business", "entertainment", "politics"]
ROUND_FINALIZED = 3


def _have(tool: str) -> bool:
    if tool == "anvil":
        try:
            find_anvil()
            return True
        except Exception:
            return False
    return shutil.which(tool) is not None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not _have("anvil"), reason="anvil not installed: run `make setup` (npm @foundry-rs/anvil)"),
    pytest.mark.skipif(not _have("flower-superlink"), reason="flwr not installed: run `make setup` (flwr==1.42.0)"),
]


@pytest.fixture(scope="module")
def flower_round(tmp_path_factory: pytest.TempPathFactory):
    """One LedgerLoRA round driven by `flwr run` on a SuperLink with three SuperNodes."""
    tmp = Path(tmp_path_factory.mktemp("flower"))
    with AnvilProcess() as chain:
        w3 = connect(chain.url)
        cons = deploy_consortium(w3, w3, funded_accounts(w3, 3 + len(ORGS)), ORGS, EmbeddedStore(tmp / "ipfs"))
        manifest = cons.protocol.manifest.write(tmp / "deployments" / f"{cons.protocol.manifest.chain_id}.json")
        agg = cons.aggregator
        nodes = [({"ledger-org": org, "ledger-state-dir": str(tmp / f"org-{org}")},
                  {"ORCH_PRIVATE_KEY": ident.account.key.hex(), "ORCH_ENC_KEY": ident.enc_private.hex()})
                 for org, ident in cons.orgs.items()]
        server_env = {"ORCH_PRIVATE_KEY": agg.account.key.hex(), "ORCH_ENC_KEY": agg.enc_private.hex()}
        run_config = {"ledger": True, "num-server-rounds": 1, "ledger-rpc-url": chain.url,
                      "ledger-manifest": str(manifest), "ledger-ipfs-dir": str(tmp / "ipfs"),
                      "ledger-state-dir": str(tmp / "aggregator")}
        with LocalFederation(tmp / "flower", nodes, server_env) as fed:
            seconds, output = fed.run(APP, run_config, timeout=240)
        yield cons, tmp, seconds, output


def test_flwr_run_finalizes_a_round_on_chain_with_the_three_orgs_cids(flower_round) -> None:
    cons, tmp, _, output = flower_round
    rounds = cons.protocol.contract("Rounds")
    assert int(rounds.functions.roundCount().call()) == 1
    assert rounds.functions.getRound(1).call()[0] == ROUND_FINALIZED
    submitted = submissions_on_chain(_reader(cons, tmp / "reader"), 1)
    assert sorted(submitted, key=str.lower) == sorted((o.address for o in cons.orgs.values()), key=str.lower)
    assert len(set(submitted.values())) == 3
    # The merged model on chain is the exact stack of exactly those three adapters.
    report = round_report(rounds, cons.store, 1)
    assert report is not None
    assert {i["org"]: i["adapter_cid"] for i in report["inputs"]} == submitted
    finalized = rounds.events.RoundFinalized().get_logs(from_block=0)[0]["args"]
    assert bytes32_to_cid(bytes(finalized["modelCid"])) == report["model_cid"]
    # Flower's evaluate phase settled the round: every org checked the root and claimed.
    assert rewards_settled(rounds, cons.store, 1)
    ledger_line = next(line for line in output.splitlines() if '"ledger_rounds"' in line)
    printed = json.loads(ledger_line[ledger_line.index("{"):])["ledger_rounds"][0]
    assert printed["model_cid"] == report["model_cid"] and printed["submissions"] == submitted


def test_unlearning_on_the_flower_driven_consortium_completes_with_a_rederivable_receipt(flower_round) -> None:
    cons, tmp, _, _ = flower_round
    node = _reader(cons, tmp / "unlearner")
    before = modelbook.current_inputs(node)
    unlearning = cons.protocol.contract("Unlearning")
    forgotten = cons.orgs["politics"]
    request_id = request_unlearning(cons.private, cons.protocol, forgotten.account, forgotten.address, SCOPE_ORG)
    executor = UnlearningDaemon(node, cons.aggregator.enc_private, cons.aggregator_keys(), {})
    drive([executor], lambda: unlearning.functions.getRequest(request_id).call()[2] == REQ_COMPLETED, max_ticks=20)
    new_cid = bytes32_to_cid(bytes(unlearning.functions.getRequest(request_id).call()[6]))
    after = modelbook.current_inputs(node)
    assert {i.org for i in before} - {i.org for i in after} == {forgotten.address}
    audit = modelbook.rederive(node, after, modelbook.merge_recipients(node, cons.aggregator_keys()),
                               cons.aggregator.enc_private, tmp / "auditor")
    assert audit.cid == new_cid


def _reader(cons, state: Path):
    return cons.node(cons.aggregator, state)
