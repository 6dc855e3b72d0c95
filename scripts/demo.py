"""The demo consortium on brownie's development network, each daemon its own OS process.

Usage: ``brownie run scripts/demo.py`` (brownie starts anvil). A second anvil plays the public
chain holding the anchor. Every org stakes and joins from its own brownie account; then the
aggregator, the unlearning executor, the relayer and one trainer per org run as separate
``python -m orchestrator daemon`` processes over JSON-RPC, sharing only the chains and the
on-disk blockstore. Settings: ``ORCH_DEMO_MODEL`` (tiny | smollm2, default tiny),
``ORCH_DEMO_ROUNDS`` (default 2), ``ORCH_DEMO_OUT`` (default out/brownie-demo).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deploy import MANIFEST_DIR, deploy_all, dev_key, is_local, local_params  # noqa: E402

from orchestrator.chain.artifacts import Manifest  # noqa: E402
from orchestrator.learning.data import TOPICS  # noqa: E402  (torch-free)


def main() -> None:
    from brownie import accounts, chain, network

    from orchestrator.chain.anvil import AnvilProcess
    from orchestrator.chain.connection import connect
    from orchestrator.chain.contracts import deploy_anchor
    from orchestrator.chain.tx import Transactor
    from orchestrator.daemons.processes import spawn, wait_for
    from orchestrator.storage import adapters as sealed
    from orchestrator.storage.cid import bytes32_to_cid

    model = os.environ.get("ORCH_DEMO_MODEL", "tiny")
    n_rounds = int(os.environ.get("ORCH_DEMO_ROUNDS", "2"))
    out = Path(os.environ.get("ORCH_DEMO_OUT", "out/brownie-demo")).resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    if not is_local(network.show_active()):
        raise SystemExit("scripts/demo.py runs on a local development network (it uses unlocked test accounts)")

    deployer = accounts[0]
    orgs = {t: accounts[1 + i] for i, t in enumerate(TOPICS)}
    manifest = Manifest.path_for(chain.id, MANIFEST_DIR)
    contracts, _ = deploy_all(deployer, local_params(deployer, network.show_active(), list(orgs.values())), manifest)
    membership, staking, token = contracts["Membership"], contracts["Staking"], contracts["LedgerToken"]
    keys = {t: sealed.generate_keypair() for t in TOPICS}
    agg_private, _ = sealed.generate_keypair()
    for topic, acct in orgs.items():  # each org acts from its own wallet
        token.approve(staking, membership.minStake(), {"from": acct})
        staking.stake(membership.minStake(), {"from": acct})
        membership.join(keys[topic][1], f"ledgerlora://org/{topic}", {"from": acct})
    print(f"deployed on chain {chain.id}; {len(orgs)} orgs staked and joined; manifest {manifest}")

    rpc = network.web3.provider.endpoint_uri
    pw3_private = connect(rpc)
    with AnvilProcess(chain_id=31338) as public_node:
        pw3 = connect(public_node.url)
        relayer_key = dev_key(deployer)
        from eth_account import Account

        anchor_manifest = deploy_anchor(pw3, Transactor(pw3, Account.from_key(relayer_key)),
                                        deployer.address, manifest_path=out / "anchor.json")
        print(f"PublicAnchor on chain {pw3.eth.chain_id} at {anchor_manifest.address('PublicAnchor')}")
        common = {"ipfs_dir": out / "ipfs"}
        procs = [
            spawn("aggregator", "aggregator", rpc, manifest, dev_key(deployer), out / "aggregator",
                  ["--model", model, "--rounds", str(n_rounds)], enc_key=agg_private, **common),
            spawn("unlearner", "unlearner", rpc, manifest, dev_key(deployer), out / "unlearner",
                  [], enc_key=agg_private, **common),
            spawn("relayer", "relayer", rpc, manifest, relayer_key, out / "relayer",
                  ["--public-rpc-url", public_node.url, "--anchor-manifest", str(out / "anchor.json"),
                   "--interval", "2"], **common),
        ] + [
            spawn("trainer", f"trainer-{t}", rpc, manifest, dev_key(acct), out / f"org-{t}", ["--org", t],
                  enc_key=keys[t][0], **common)
            for t, acct in orgs.items()
        ]
        rounds, unlearning = contracts["Rounds"], contracts["Unlearning"]
        try:
            from orchestrator.daemons.rewards import rewards_settled
            from orchestrator.storage.embedded import EmbeddedStore

            rounds_w3 = pw3_private.eth.contract(address=rounds.address, abi=rounds.abi)
            store = EmbeddedStore(out / "ipfs")

            def rounds_done() -> bool:
                return rounds.roundCount() >= n_rounds and all(
                    rewards_settled(rounds_w3, store, r) for r in range(1, n_rounds + 1))

            took = wait_for(rounds_done, 1800, f"{n_rounds} rounds finalized and claimed", procs, interval=1)
            print(f"{n_rounds} rounds finalized and every reward claimed in {took:.0f} s")
            token.approve(unlearning, unlearning.requestBond(), {"from": orgs["sport"]})  # the request bond
            tx = unlearning.requestUnlearning(orgs["sport"], 0, b"\x00" * 32, b"\x01" * 32, {"from": orgs["sport"]})
            request_id = tx.events["UnlearningRequested"]["requestId"]
            took = wait_for(lambda: unlearning.getRequest(request_id)[2] == 3, 900, "unlearning completed", procs)
            req = unlearning.getRequest(request_id)
            print(f"unlearning request {request_id} (sport) completed in {took:.0f} s: new model {bytes32_to_cid(bytes(req[6]))}")
            anchor = pw3.eth.contract(address=anchor_manifest.address("PublicAnchor"),
                                      abi=json.loads(Path("build/contracts/PublicAnchor.json").read_text())["abi"])
            head = chain.height
            wait_for(lambda: anchor.functions.lastToBlock(chain.id).call() >= head - 1, 120,
                     "the relayer to anchor the private chain", procs)
            print(f"anchored up to block {anchor.functions.lastToBlock(chain.id).call()} on the public chain; "
                  f"{anchor.functions.anchorCount().call()} anchors")
        finally:
            for p in procs:
                p.stop()
        print(f"daemon logs and state under {out}")
