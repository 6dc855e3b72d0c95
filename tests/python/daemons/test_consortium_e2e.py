"""End to end on the in-process chains with the tiny model: the consortium as the demo runs it.

Everything here is checked against the chain and the store, independently of the daemons'
own bookkeeping: the merged models are re-computed with the learning API directly, reward
proofs are rebuilt from the published reports, anchor proofs are verified by the public chain.
"""

from __future__ import annotations

import json

from orchestrator.daemons.demo import DemoResult
from orchestrator.daemons.rewards import RewardTable
from orchestrator.daemons.unlearner import REQ_COMPLETED
from orchestrator.learning.api import adapter_sha256, merge_adapters
from orchestrator.merkle import reward_leaf, verify
from orchestrator.storage import adapters as sealed
from orchestrator.storage.cid import bytes32_to_cid, compute_cid

ROUND_FINALIZED = 3


def test_every_round_finalizes_with_one_submission_per_org(tiny_demo: DemoResult) -> None:
    rounds = tiny_demo.consortium.protocol.contract("Rounds")
    assert rounds.functions.roundCount().call() == 2
    for r in (1, 2):
        state, _deadline, submissions = rounds.functions.getRound(r).call()[:3]
        assert state == ROUND_FINALIZED
        assert submissions == 3
        logs = rounds.events.UpdateSubmitted().get_logs(from_block=0, argument_filters={"roundId": r})
        assert sorted(ev["args"]["org"] for ev in logs) == sorted(o.address for o in tiny_demo.consortium.orgs.values())


def test_rewards_are_claimed_with_proofs_that_match_the_onchain_root(tiny_demo: DemoResult) -> None:
    cons = tiny_demo.consortium
    rounds = cons.protocol.contract("Rounds")
    for r in (1, 2):
        fin = rounds.events.RoundFinalized().get_logs(from_block=0, argument_filters={"roundId": r})[0]["args"]
        report = json.loads(cons.store.cat(bytes32_to_cid(bytes(fin["metricsHash"]))))
        table = RewardTable.from_json(report["rewards"])
        assert table.root == bytes(fin["rewardsRoot"])
        claims = {ev["args"]["org"]: ev["args"]["amount"]
                  for ev in rounds.events.RewardClaimed().get_logs(from_block=0, argument_filters={"roundId": r})}
        assert claims == table.amounts
        for org, amount in claims.items():
            assert verify(table.proof(org), bytes(fin["rewardsRoot"]), reward_leaf(org, amount))
        assert sum(claims.values()) <= rounds.functions.getRound(r).call()[6]


def test_round_model_cid_is_the_exact_stack_of_the_submitted_adapters(tiny_demo: DemoResult, tmp_path) -> None:
    cons = tiny_demo.consortium
    agg = cons.aggregator
    rounds = cons.protocol.contract("Rounds")
    fin = rounds.events.RoundFinalized().get_logs(from_block=0, argument_filters={"roundId": 2})[0]["args"]
    report = json.loads(cons.store.cat(bytes32_to_cid(bytes(fin["metricsHash"]))))
    subs = rounds.events.UpdateSubmitted().get_logs(from_block=0, argument_filters={"roundId": 2})
    by_org = {ev["args"]["org"]: ev for ev in subs}
    ordered = sorted(by_org, key=str.lower)
    total = sum(by_org[o]["args"]["numSamples"] for o in ordered)
    dirs = [sealed.fetch_adapter(cons.store, bytes32_to_cid(bytes(by_org[o]["args"]["adapterCid"])),
                                 agg.address.lower(), agg.enc_private, tmp_path / o) for o in ordered]
    merged = merge_adapters(dirs, [by_org[o]["args"]["numSamples"] / total for o in ordered], tmp_path / "m")
    assert compute_cid(sealed.pack_adapter(merged)) == report["model_plain_cid"]
    assert adapter_sha256(merged) == report["model_sha256"]


def test_unlearning_receipt_model_equals_the_remerge_of_the_remaining_adapters(tiny_demo: DemoResult, tmp_path) -> None:
    cons = tiny_demo.consortium
    agg = cons.aggregator
    forgotten = cons.orgs["politics"]
    unlearning = cons.protocol.contract("Unlearning")
    rounds = cons.protocol.contract("Rounds")
    req = unlearning.functions.getRequest(tiny_demo.report["unlearning"]["request_id"]).call()
    assert req[0] == forgotten.address and req[2] == REQ_COMPLETED
    remaining = sorted((o for o in cons.orgs.values() if o.address != forgotten.address), key=lambda o: o.address.lower())
    subs = {ev["args"]["org"]: ev["args"] for ev in rounds.events.UpdateSubmitted().get_logs(
        from_block=0, argument_filters={"roundId": 2})}
    total = sum(subs[o.address]["numSamples"] for o in remaining)
    dirs = [sealed.fetch_adapter(cons.store, bytes32_to_cid(bytes(subs[o.address]["adapterCid"])),
                                 agg.address.lower(), agg.enc_private, tmp_path / o.name) for o in remaining]
    merged = merge_adapters(dirs, [subs[o.address]["numSamples"] / total for o in remaining], tmp_path / "m")
    onchain_cid = bytes32_to_cid(bytes(req[6]))
    blob = cons.store.cat(onchain_cid)
    # Same plaintext, and -- sealed deterministically for the same recipients -- the same CID.
    recipients = {r: None for r in sealed.sealed_recipients(blob)}
    opened = sealed.open_sealed(blob, agg.address.lower(), agg.enc_private)
    assert opened == sealed.pack_adapter(merged)
    keys = {agg.address.lower(): agg.enc_public} | {o.address.lower(): o.enc_public for o in cons.orgs.values()}
    assert sorted(keys) == sorted(recipients)
    assert sealed.store_adapter(cons.store, merged, keys, deterministic=True) == onchain_cid


def test_unlearning_revokes_every_contribution_of_the_org_and_keeps_the_others(tiny_demo: DemoResult) -> None:
    cons = tiny_demo.consortium
    registry = cons.protocol.contract("ContributionRegistry")
    for name, org in cons.orgs.items():
        for r in (1, 2):
            assert registry.functions.isRevoked(r, org.address).call() == (name == "politics")
    assert tiny_demo.report["unlearning"]["inputs_after"] == [
        n for n in tiny_demo.report["unlearning"]["inputs_before"] if n != "politics"]


def test_forgotten_topic_perplexity_moves_back_toward_the_base_model(tiny_demo: DemoResult) -> None:
    ppl = tiny_demo.report["unlearning"]["perplexity"]["politics"]
    # Training on politics lowered its perplexity; removing politics gives most of that back.
    assert ppl["before"] < ppl["base"]
    assert ppl["after"] > ppl["before"]


def test_every_anchored_record_verifies_on_the_public_chain(tiny_demo: DemoResult) -> None:
    anchor = tiny_demo.report["anchor"]
    assert anchor["records"] > 0
    assert anchor["proofs_verified_on_public_chain"] == anchor["records"]
    assert anchor["leaves_recomputed"] == anchor["records"]
    public_anchor = tiny_demo.consortium.anchor.contract("PublicAnchor")
    batch = json.loads(tiny_demo.consortium.store.cat(anchor["batch_cid"]))
    rec = batch["records"][0]
    record = bytes.fromhex(rec["record"][2:])
    proof = [bytes.fromhex(p[2:]) for p in rec["proof"]]
    assert public_anchor.functions.verify(anchor["anchor_id"], record, proof).call()
    forged = record[:-1] + bytes([record[-1] ^ 1])  # another event digest
    assert not public_anchor.functions.verify(anchor["anchor_id"], forged, proof).call()


def test_report_is_written_with_plot(tiny_demo: DemoResult) -> None:
    assert tiny_demo.report_path is not None
    written = json.loads(tiny_demo.report_path.read_text())
    assert written["unlearning"]["rederived_matches"] is True
    png = tiny_demo.report_path.with_name("report.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unlearning_receipt_carries_the_calibrated_evidence(tiny_demo: DemoResult) -> None:
    """The live receipt holds learning.verify's evidence: calibrated attack before/after with 95%
    bootstrap intervals on the forgotten org's disclosed texts, canary exposure, provenance and
    a metrics hash that recomputes from the figures (no wall time in it)."""
    from orchestrator.learning.verify import metrics_hash

    doc = json.loads(tiny_demo.consortium.store.cat(tiny_demo.report["unlearning"]["receipt_cid"]))
    ev = doc["evidence"]
    assert ev["attack"]["members"] == 32 and ev["attack"]["nonmembers"] == 32
    for model in ("before", "after"):
        lo, hi = ev["attack"]["per_model"][model]["ci95"]
        assert 0 <= lo <= ev["attack"]["per_model"][model]["auc"] <= hi <= 1
    assert set(ev["canaries"]["exposure_bits"]) == {"base", "before", "after"}
    assert ev["provenance"]["device"] == "cpu" and ev["retrain_spread"] is None
    assert ev["metrics_sha256"] == metrics_hash({k: v for k, v in ev.items() if k != "metrics_sha256"})
