"""Gas of the protocol's hot paths on a local anvil chain: ``python bench/gas.py``.

Prints a Markdown table (the one in docs/BENCHMARKS.md, "Gas (contracts)"): submitUpdate (an
org's first and later submissions: median and maximum), finalizeRound with 5, 50 and 500
submissions, claimReward (proof depths 3 and 9), the unlearning calls (Org-scope completion for
an org with one round and for one with every round; the sample-level replacement; a grouped
replay by another member) and
PublicAnchor.postRoot. Each figure is shown against its target and against a baseline measured
in the same run (a plain ERC-20 transfer).
Figures are whole-transaction gas (21,000 intrinsic + calldata + execution), as a wallet pays.

``brownie run $PWD/bench/gas.py`` works too (brownie resolves relative paths only under scripts/).
Set ``ORCH_GAS_MAX_ORGS`` to a smaller number (e.g. 50) for a quick run.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import statistics
import sys
from pathlib import Path
from typing import Any

from brownie import accounts, web3
from eth_utils import keccak

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.merkle import MerkleTree, reward_leaf  # noqa: E402

TARGETS = {"submitUpdate": 70_000, "claimReward": 65_000}
SIZES = (5, 50, 500)


def _load_deploy() -> Any:
    spec = importlib.util.spec_from_file_location(
        "ledgerlora_deploy", ROOT / "scripts" / "deploy.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def b32(label: str) -> bytes:
    return keccak(text=label)


def now() -> int:
    return int(web3.eth.get_block("latest").timestamp)


def advance(seconds: int) -> None:
    web3.provider.make_request("evm_setNextBlockTimestamp", [now() + seconds])
    web3.provider.make_request("evm_mine", [])


def tx_opts(sender: Any) -> dict[str, Any]:
    return {"from": sender, "silent": True}


def raw(contract: Any) -> Any:
    """A plain web3 contract: hundreds of org transactions go through web3 directly, because
    brownie's confirmation thread reports some as "dropped" on a loaded machine."""
    return web3.eth.contract(address=contract.address, abi=contract.abi)


def send(fn: Any, sender: str) -> Any:
    receipt = web3.eth.wait_for_transaction_receipt(fn.transact({"from": sender}))
    if receipt.status != 1:
        raise RuntimeError(f"transaction from {sender} reverted: {receipt.transactionHash.hex()}")
    return receipt


def calldata_gas(txid: Any) -> int:
    """Intrinsic gas of a call: 21,000 + 4 per zero and 16 per non-zero calldata byte."""
    data = bytes(web3.eth.get_transaction(txid)["input"])
    return 21_000 + sum(4 if b == 0 else 16 for b in data)


class Org(str):
    """An org's address (impersonated on anvil) with the ``address`` attribute brownie expects."""

    @property
    def address(self) -> str:
        return str(self)


def main() -> None:
    # brownie prints every transaction; keep only the table on stdout.
    with contextlib.redirect_stdout(io.StringIO()):
        rows, finalize, complete, baseline = measure()
    print("| Call | Gas (whole tx) | x ERC-20 transfer | Target | Meets |")
    print("|---|---:|---:|---:|---|")
    for name, gas, target in rows:
        limit = int(target.replace(",", "")) if target[0].isdigit() else None
        meets = "-" if limit is None else ("yes" if gas <= limit else f"no (+{gas - limit:,})")
        if target.startswith("same"):
            # whole-tx gas differs by a few units with the zero bytes of the CIDs in calldata
            spread = max(finalize.values()) - min(finalize.values())
            meets = "yes" if spread == 0 else "no"
            target = f"O(1): execution spread {spread}"
        elif target.startswith("history"):
            spread = max(complete.values()) - min(complete.values())
            meets = "yes" if spread == 0 else "no"
            target = f"O(1) in the org's rounds: execution spread {spread}"
        print(f"| {name} | {gas:,} | {gas / baseline:.2f} | {target} | {meets} |")


def measure() -> tuple[list[tuple[str, int, str]], dict[int, int], dict[int, int], int]:
    deploy = _load_deploy()
    max_orgs = int(os.environ.get("ORCH_GAS_MAX_ORGS", max(SIZES)))
    sizes = [n for n in SIZES if n <= max_orgs]
    params = deploy.ProtocolParams(initial_supply=10**9 * 10**18, orgs=[], local=True)
    gov = accounts[0]
    c, _ = deploy.deploy_all(gov, params)
    token, staking, membership, rounds, unlearning = (
        c["LedgerToken"],
        c["Staking"],
        c["Membership"],
        c["Rounds"],
        c["Unlearning"],
    )
    from brownie import PublicAnchor

    anchor = PublicAnchor.deploy(gov, params.anchor_max_range, tx_opts(gov))
    anchor.grantRole(anchor.RELAYER_ROLE(), gov, tx_opts(gov))
    rows: list[tuple[str, int, str]] = []

    baseline = token.transfer(accounts[1], 10**18, tx_opts(gov)).gas_used  # to a fresh holder
    rows.append(("ERC-20 transfer to a new holder (baseline)", baseline, "-"))

    # Orgs: deterministic keys, ETH via anvil_setBalance, tokens, stake, join. Every org keeps
    # 1 LLS in its wallet except orgs[1], whose empty wallet shows the ERC-20's fresh-slot cost.
    print(f"preparing {max_orgs} member orgs ...", file=sys.stderr, flush=True)
    orgs: list[Org] = []
    web3.provider.make_request("anvil_autoImpersonateAccount", [True])
    # From here on every transaction goes through web3 directly: on a long run brownie's
    # confirmation thread reports some transactions as "dropped" although anvil mined them.
    funder = Org(web3.to_checksum_address(keccak(text="ledgerlora-gas-funder")[-20:]))
    web3.provider.make_request("anvil_setBalance", [funder, hex(10**20)])
    token.transfer(funder, max_orgs * (params.min_stake + 10**18) + 5 * params.request_bond, tx_opts(gov))
    w_token, w_staking, w_membership, w_rounds = (
        raw(token),
        raw(staking),
        raw(membership),
        raw(rounds),
    )
    w_unlearning, w_anchor = raw(unlearning), raw(anchor)
    g = gov.address
    for i in range(max_orgs):
        org = Org(web3.to_checksum_address(keccak(text=f"ledgerlora-gas-org-{i}")[-20:]))
        web3.provider.make_request("anvil_setBalance", [org, hex(10**20)])
        requester = i in (0, max_orgs - 1)  # they pay unlearning bonds below
        extra = (0 if i == 1 else 10**18) + (params.request_bond if requester else 0)
        send(w_token.functions.transfer(org, params.min_stake + extra), funder)
        if requester:
            send(w_token.functions.approve(unlearning.address, params.request_bond), org)
        send(w_token.functions.approve(staking.address, params.min_stake), org)
        send(w_staking.functions.stake(params.min_stake), org)
        send(w_membership.functions.join(b32(f"key{i}"), ""), org)
        orgs.append(org)
        if (i + 1) % 100 == 0:
            print(f"  {i + 1} orgs joined", file=sys.stderr, flush=True)

    # Warm-up: the registry's first version writes fresh slots that later versions only update;
    # an empty round takes that one-off cost so the sizes below compare like for like.
    max_samples = 10**6
    send(w_rounds.functions.openRound(b32("warm-up"), now() + 10**6, 0, max_samples), g)
    rid = rounds.roundCount()
    send(w_rounds.functions.closeRound(rid), g)
    fn = w_rounds.functions.finalizeRound(rid, b32("m0"), b"\x00" * 32, 0, b32("x0"))
    first_version = send(fn, g).gasUsed
    first_submit: list[int] = []
    later_submit: list[int] = []
    finalize: dict[int, int] = {}
    finalize_exec: dict[int, int] = {}
    trees: dict[int, tuple[int, MerkleTree]] = {}
    seen: set[str] = set()
    for n in sizes:
        # budget = rewards total (1 LLS per org): every size takes the same finalize path
        send(w_rounds.functions.openRound(b32(f"cfg{n}"), now() + 10**6, 10**18 * n, max_samples), g)
        rid = rounds.roundCount()
        print(f"round with {n} submissions ...", file=sys.stderr, flush=True)
        for i, org in enumerate(orgs[:n]):
            fn = w_rounds.functions.submitUpdate(
                rid, b32(f"a{rid}:{i}"), 1000 + i, b32(f"d{rid}:{i}")
            )
            gas = send(fn, org).gasUsed
            (later_submit if org in seen else first_submit).append(gas)
            seen.add(org)
        send(w_rounds.functions.closeRound(rid), g)
        tree = MerkleTree.build([reward_leaf(org.address, 10**18) for org in orgs[:n]])
        fn = w_rounds.functions.finalizeRound(rid, b32(f"m{n}"), tree.root, 10**18 * n, b32(f"x{n}"))
        receipt = send(fn, g)
        finalize[n] = receipt.gasUsed
        finalize_exec[n] = receipt.gasUsed - calldata_gas(receipt.transactionHash)
        trees[n] = (rid, tree)

    target = f"{TARGETS['submitUpdate']:,}"
    rows.append((f"submitUpdate, an org's first (median of {len(first_submit)})",
                 int(statistics.median(first_submit)), target))
    rows.append((f"submitUpdate, an org's first (maximum of {len(first_submit)})", max(first_submit), target))
    if later_submit:
        rows.append((f"submitUpdate, an org's later rounds (median of {len(later_submit)})",
                     int(statistics.median(later_submit)), target))
        rows.append((f"submitUpdate, an org's later rounds (maximum of {len(later_submit)})",
                     max(later_submit), target))
    rows.append(
        ("finalizeRound, first version (warm-up: 0 submissions, zero root)", first_version, "-")
    )
    for n in sizes:
        rows.append(
            (
                f"finalizeRound, {n} submissions (execution gas {finalize_exec[n]:,})",
                finalize[n],
                "same for all sizes",
            )
        )

    for n in sizes:
        rid, tree = trees[n]
        org = orgs[0]
        proof = tree.proof(reward_leaf(org.address, 10**18))
        gas = send(w_rounds.functions.claimReward(rid, 10**18, proof), org).gasUsed
        rows.append((f"claimReward, {n}-leaf tree (proof of {len(proof)})", gas, f"{TARGETS['claimReward']:,}"))
    rid, tree = trees[sizes[0]]
    proof = tree.proof(reward_leaf(orgs[1].address, 10**18))
    gas = send(w_rounds.functions.claimReward(rid, 10**18, proof), orgs[1]).gasUsed
    rows.append((f"claimReward to an empty wallet (not a holder), {sizes[0]}-leaf tree", gas, "-"))

    # Org-scope unlearning of org 0 (in every round) and of the last org (in the largest round
    # only): the completion costs the same whatever the org's history.
    u = w_unlearning.functions
    complete: dict[int, int] = {}
    for org, label in ((orgs[-1], "1 round"), (orgs[0], f"{len(sizes)} rounds")):
        gas = send(u.requestUnlearning(org, 0, b"\x00" * 32, b32("gdpr")), org).gasUsed
        rows.append((f"requestUnlearning (Org scope, bond {params.request_bond // 10**18} LLS)", gas, "-"))
        req = unlearning.requestCount()
        rows.append(("acknowledge (locks the slash amount)", send(u.acknowledge(req), g).gasUsed, "-"))
        receipt = send(u.completeUnlearning(req, b32(f"clean{req}"), b32("removed"), b32("metrics")), g)
        complete[len(complete)] = receipt.gasUsed - calldata_gas(receipt.transactionHash)
        rows.append((f"completeUnlearning (Org scope, an org with {label})", receipt.gasUsed, "history"))

    # Sample-level request: the org replaces its contribution, the aggregator completes.
    org = orgs[2]
    send(w_token.functions.transfer(org, params.request_bond), funder)
    send(w_token.functions.approve(unlearning.address, params.request_bond), org)
    gas = send(u.requestUnlearning(org, 2, b32("samples"), b32("gdpr")), org).gasUsed
    rows.append(("requestUnlearning (Samples scope)", gas, "-"))
    req2 = unlearning.requestCount()
    last = trees[sizes[-1]][0]
    gas = send(u.replaceContribution(req2, last, b32("replaced"), 999, b32("new-data")), org).gasUsed
    rows.append(("replaceContribution (the org's trainer)", gas, "-"))
    gas = send(u.completeUnlearning(req2, b32("clean2"), b32("samples"), b32("m2")), g).gasUsed
    rows.append(("completeUnlearning (Samples scope, after the replacement)", gas, "-"))
    # Grouped collaboration: another member of the forgotten org's group replays its round
    # (Org-scope request of org 3; org 4 submitted in the same round).
    forgotten, peer = orgs[3], orgs[4]
    send(w_token.functions.transfer(forgotten, params.request_bond), funder)
    send(w_token.functions.approve(unlearning.address, params.request_bond), forgotten)
    send(u.requestUnlearning(forgotten, 0, b"\x00" * 32, b32("gdpr")), forgotten)
    req4 = unlearning.requestCount()
    gas = send(u.replayContribution(req4, last, b32("replayed"), 1004, b32("replay-data")), peer).gasUsed
    rows.append(("replayContribution (a member of the forgotten org's group)", gas, "-"))
    send(u.completeUnlearning(req4, b32("clean4"), b32("removed4"), b32("m4")), g)
    send(w_token.functions.transfer(org, params.request_bond), funder)
    send(w_token.functions.approve(unlearning.address, params.request_bond), org)
    send(u.requestUnlearning(org, 1, last.to_bytes(32, "big"), b32("r")), org)
    req3 = unlearning.requestCount()
    send(u.acknowledge(req3), g)
    advance(params.response_window + 1)
    rows.append(("slashMissed (acknowledged Round request)", send(u.slashMissed(req3), funder).gasUsed, "-"))

    a = w_anchor.functions
    gas = send(a.postRoot(31337, 0, 99, b32("r0")), g).gasUsed
    rows.append(("postRoot (first range of a chain)", gas, "-"))
    gas = send(a.postRoot(31337, 100, 199, b32("r1")), g).gasUsed
    rows.append(("postRoot (next range)", gas, "-"))

    return rows, finalize_exec, complete, baseline


if __name__ == "__main__":
    from brownie import network, project

    loaded = project.load(ROOT, name="LedgerLoRA")
    loaded._add_to_main_namespace()  # what `brownie run` does: contracts importable from brownie
    network.connect("development")
    try:
        main()
    finally:
        network.disconnect()
