"""Grouped collaboration (SISA over organisations) in the live consortium, end to end.

Real parts throughout: the in-process py-evm chain with the compiled contracts, the embedded
store, the tiny model, every daemon role. 4 orgs in 2 groups (round-robin over the sorted
names: business + politics, entertainment + sport), 2 rounds; business asks to be forgotten
(Org scope). Only politics (business's group) replays, and only round 2 (its round-1 adapter
started from the group's seeded initial adapter, which business never touched). The receipt's
model is re-derived by the auditor and is bit-identical to an offline grouped federation
(``federation.run_rounds``) of the three remaining orgs with the same texts, seeds and configs;
no round opens during the replay, and the next round (business trains again, from its group's
replayed adapter) equals that federation with business joining then.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orchestrator.chain.submissions import reader_for
from orchestrator.daemons import grouped
from orchestrator.daemons.consortium import Consortium, request_unlearning
from orchestrator.daemons.demo import DemoConfig, Setup, build_setup, drive
from orchestrator.daemons.roundconfig import RoundConfig
from orchestrator.daemons.unlearner import REQ_COMPLETED, SCOPE_ORG
from orchestrator.dashboard.audit import audit_receipt
from orchestrator.errors import ConfigError
from orchestrator.storage.cid import bytes32_to_cid

ROUND_FINALIZED = 3
NAMES = ["business", "entertainment", "politics", "sport"]


def _finalized(setup: Setup, round_id: int) -> bool:
    rounds = setup.consortium.protocol.contract("Rounds")
    return rounds.functions.roundCount().call() >= round_id and \
        rounds.functions.getRound(round_id).call()[0] == ROUND_FINALIZED


def _report(setup: Setup, round_id: int) -> dict:
    rounds = setup.consortium.protocol.contract("Rounds")
    fin = rounds.events.RoundFinalized().get_logs(from_block=0, argument_filters={"roundId": round_id})[0]["args"]
    return json.loads(setup.consortium.store.cat(bytes32_to_cid(bytes(fin["metricsHash"]))))


def _trainings(setup: Setup) -> dict[str, int]:
    """Adapters each org trained (one per submission and one per replay)."""
    return {n: sum(a["action"] in ("submitted", "replayed") for a in t.actions) for n, t in setup.trainers.items()}


def _receipt(cons: Consortium, unlearning: Any) -> dict:
    """The receipt document of the (only) completed request."""
    done = unlearning.events.UnlearningCompleted().get_logs(from_block=0)[0]["args"]
    return json.loads(cons.store.cat(bytes32_to_cid(bytes(done["metricsHash"]))))


def _receipt_replays(cons: Consortium, unlearning: Any) -> list[tuple[str, int]]:
    return sorted((r["org"], r["round"]) for r in _receipt(cons, unlearning)["replays"])


def _offline(setup: Setup, rounds: int, work: Path, joins: dict[str, int] | None = None) -> list[str]:
    """Tensor hash of each round's model of the offline grouped federation of the four orgs
    (same texts, seeds, configs and groups; ``joins``: an org's first round, 0-based)."""
    from orchestrator.learning.api import TrainConfig, adapter_sha256
    from orchestrator.learning.federation import assign_groups, run_rounds

    config = setup.aggregator.plan.config
    assert config is not None
    records = run_rounds("tiny", {n: setup.trainers[n].texts for n in NAMES}, TrainConfig.from_dict(config.train),
                         rounds, work, mode="grouped", groups=assign_groups(NAMES, 2), joins=joins)
    return [adapter_sha256(rec.merged) for rec in records]


@pytest.mark.slow
def test_grouped_consortium_forgets_an_org_by_replaying_only_its_group(tmp_path: Path) -> None:
    cfg = DemoConfig(model="tiny", orgs=4, rounds=2, unlearn="business", out=tmp_path, steps=2, groups=2)
    setup = build_setup(cfg, tmp_path / "state")
    setup.unlearner.audit = {}  # the receipt's membership attack is tested elsewhere; it costs time here
    cons = setup.consortium
    agg_node = setup.aggregator.node
    config = setup.aggregator.plan.config
    assert config is not None and config.mode == "grouped"
    assert {n: config.group_of(cons.orgs[n].address) for n in NAMES} == \
        {"business": 0, "entertainment": 1, "politics": 0, "sport": 1}

    drive(setup.daemons, lambda: _finalized(setup, 2), max_ticks=40)
    report = _report(setup, 2)
    assert report["mode"] == "grouped"
    assert [(g["group"], g["round"], sorted(g["members"])) for g in report["groups"]] == [
        (0, 2, sorted([cons.orgs["business"].address, cons.orgs["politics"].address])),
        (1, 2, sorted([cons.orgs["entertainment"].address, cons.orgs["sport"].address]))]

    reader = reader_for(cons.protocol)
    untouched = {(r, n): reader.get(r, cons.orgs[n].address) for r in (1, 2) for n in ("entertainment", "sport")}
    politics_r1 = reader.get(1, cons.orgs["politics"].address)
    trained = _trainings(setup)
    assert trained == {n: 2 for n in NAMES}

    business = cons.orgs["business"]
    request_id = request_unlearning(cons.private, cons.protocol, business.account, business.address, SCOPE_ORG)
    unlearning = cons.protocol.contract("Unlearning")
    setup.aggregator.plan = replace(setup.aggregator.plan, rounds=3)  # a third round, once it may open
    drive(setup.daemons, lambda: unlearning.functions.getRequest(request_id).call()[2] == REQ_COMPLETED, max_ticks=10)
    # No round opened while the group replayed (it would have descended from business).
    assert cons.protocol.contract("Rounds").functions.roundCount().call() == 2

    # Only business's group replayed, and only what descends from business: politics, round 2.
    replays = [(n, a["round"]) for n, t in setup.trainers.items() for a in t.actions if a["action"] == "replayed"]
    assert replays == [("politics", 2)]
    assert {n: c - trained[n] for n, c in _trainings(setup).items()} == \
        {"business": 0, "entertainment": 0, "politics": 1, "sport": 0}
    replayed = reader.get(2, cons.orgs["politics"].address)
    assert replayed.kind == "replaced" and replayed.request_id == request_id
    assert reader.get(1, cons.orgs["politics"].address) == politics_r1  # round 1 never saw business
    assert {k: reader.get(k[0], cons.orgs[k[1]].address) for k in untouched} == untouched  # other group untouched

    request = unlearning.functions.getRequest(request_id).call()
    receipt = _receipt(cons, unlearning)
    assert receipt["mode"] == "grouped" and receipt["group"] == 0
    assert {(r["org"], r["round"]) for r in receipt["removed"]} == {(business.address, 1), (business.address, 2)}
    assert [(r["org"], r["round"]) for r in receipt["replaced"]] == [(cons.orgs["politics"].address, 2)]
    assert [(g["group"], g["round"], g["members"]) for g in receipt["groups"]] == [
        (0, 2, [cons.orgs["politics"].address]),
        (1, 2, sorted([cons.orgs["entertainment"].address, cons.orgs["sport"].address], key=str.lower))]

    # An auditor re-derives the receipt's model from the chain and the store.
    audit = audit_receipt(cons.protocol, cons.store, request_id, cons.aggregator.address, cons.aggregator.enc_private,
                          tmp_path / "auditor")
    assert audit["ok"], audit["checks"]
    rederived = grouped.rederive(agg_node, grouped.group_inputs(agg_node, config.groups),
                                 grouped.modelbook.merge_recipients(agg_node, cons.aggregator_keys()),
                                 cons.aggregator.enc_private, tmp_path / "rederive")
    assert bytes32_to_cid(bytes(request[6])) == rederived.cid
    # ... and it is the offline grouped federation in which business took no part in rounds 1-2;
    # in round 3 business trains again, from its group's replayed adapter: that federation with
    # business joining in round 3.
    drive(setup.daemons, lambda: _finalized(setup, 3), max_ticks=40)
    offline = _offline(setup, 3, tmp_path / "offline-joins", joins={"business": 2})
    assert receipt["model_sha256"] == offline[1]
    assert _report(setup, 3)["model_sha256"] == offline[2]  # a grouped round with every member in it
    assert offline[1] != report["model_sha256"]  # forgetting business changed the model


def test_round_config_groups_are_validated_with_one_line_errors() -> None:
    keys = {"0x" + "11" * 20: "22" * 32}
    member = "0x" + "ab" * 20
    ok = RoundConfig(model="tiny", mode="grouped", aggregator_keys=keys, groups={member: 1})
    assert ok.group_of(member.upper().replace("0X", "0x")) == 1 and ok.group_members(1) == [member]
    assert RoundConfig.from_bytes(ok.to_bytes()) == ok
    bad = [
        ({"mode": "grouped"}, "needs groups"),
        ({"mode": "isolated", "groups": {member: 0}}, "only used in mode 'grouped'"),
        ({"mode": "grouped", "groups": {"0x" + "AB" * 20: 0}}, "lower-case"),
        ({"mode": "grouped", "groups": {"business": 0}}, "lower-case 0x-prefixed"),
        ({"mode": "grouped", "groups": {member: -1}}, "integer >= 0"),
        ({"mode": "grouped", "groups": {member: True}}, "integer >= 0"),
    ]
    for fields, message in bad:
        with pytest.raises(ConfigError, match=message) as info:
            RoundConfig(model="tiny", aggregator_keys=keys, **fields)
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="--groups must be between 0"):
        DemoConfig(model="tiny", orgs=2, unlearn="business", groups=3)


def test_groups_file_of_the_aggregator_is_read_with_one_line_errors(tmp_path: Path) -> None:
    from orchestrator.daemons.cli import _load_groups

    good = tmp_path / "groups.json"
    good.write_text(json.dumps({"0x" + "AB" * 20: 1}))
    assert _load_groups(str(good)) == {"0x" + "ab" * 20: 1}
    for name, text, message in [("bad.json", "{", "cannot read a JSON object"),
                                ("list.json", "[1]", "must be a JSON object of address -> group, got list")]:
        (tmp_path / name).write_text(text)
        with pytest.raises(ConfigError, match=message) as info:
            _load_groups(str(tmp_path / name))
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="cannot read"):
        _load_groups(str(tmp_path / "missing.json"))


@pytest.mark.slow
def test_round_scope_replay_needs_only_the_group_rounds_after_the_target(tmp_path: Path) -> None:
    """Which replays a grouped request needs, on the chain alone (submissions by hand, no
    training): a Round request for round 2 of business needs politics's round 3 only (its round
    2 started from the group's round-1 adapter); an Org request needs politics's rounds 2 and 3;
    the other group is never asked. After politics's replay the group inputs as the removal will
    leave them hold the replay."""
    from orchestrator.daemons.consortium import send
    from orchestrator.daemons.unlearner import SCOPE_ROUND
    from orchestrator.storage.cid import cid_to_bytes32

    cfg = DemoConfig(model="tiny", orgs=4, rounds=3, unlearn="business", out=tmp_path, steps=1, groups=2)
    setup = build_setup(cfg, tmp_path / "state", trainer_names=[])
    cons = setup.consortium
    node = setup.aggregator.node
    config = setup.aggregator.plan.config
    assert config is not None
    rounds = cons.protocol.contract("Rounds")
    unlearning = cons.protocol.contract("Unlearning")
    agg = cons.aggregator.account

    def digest(text: str) -> bytes:
        return hashlib.sha256(text.encode()).digest()

    for r in (1, 2, 3):
        setup.aggregator.open_round()
        for n in NAMES:
            send(cons.private, cons.orgs[n].account, rounds.functions.submitUpdate(r, digest(f"{n}{r}"), 10, digest(n)))
        send(cons.private, agg, rounds.functions.closeRound(r))
        send(cons.private, agg, rounds.functions.finalizeRound(r, digest(f"model{r}"), b"\0" * 32, 0, digest(f"m{r}")))
    business, politics = cons.orgs["business"].address, cons.orgs["politics"].address

    by_round = request_unlearning(cons.private, cons.protocol, cons.orgs["business"].account, business, SCOPE_ROUND,
                                  (2).to_bytes(32, "big"))
    by_org = request_unlearning(cons.private, cons.protocol, cons.orgs["business"].account, business, SCOPE_ORG)
    assert grouped.rounds_at_request(node, by_round) == 3

    def status(request_id: int, scope: int, target: bytes) -> grouped.ReplayStatus:
        return grouped.replay_status(node, config, request_id, business, scope, target, 3)

    assert status(by_round, SCOPE_ROUND, (2).to_bytes(32, "big")) == grouped.ReplayStatus(0, 2, [(politics, 3)], [])
    assert status(by_org, SCOPE_ORG, b"\0" * 32).needed == [(politics, 2), (politics, 3)]

    send(cons.private, cons.orgs["politics"].account, unlearning.functions.replayContribution(
        by_round, 3, digest("politics3-replay"), 10, digest("politics")))
    done = status(by_round, SCOPE_ROUND, (2).to_bytes(32, "big"))
    assert done.complete and done.done == [(politics, 3)]
    assert not status(by_org, SCOPE_ORG, b"\0" * 32).complete  # a replay for another request does not count
    after = grouped.group_inputs(node, config.groups, removing=(business, 2))
    assert [(g.group, g.round, [(i.org, i.adapter_cid) for i in g.inputs]) for g in after] == [
        (0, 3, [(politics, bytes32_to_cid(digest("politics3-replay")))]),
        (1, 3, sorted([(cons.orgs[n].address, bytes32_to_cid(digest(f"{n}3"))) for n in ("entertainment", "sport")],
                      key=lambda x: x[0].lower()))]
    # Round 2 of business's group without business: politics's original (it did not descend from business).
    assert [(i.org, i.adapter_cid) for i in grouped.group_inputs(node, config.groups, up_to_round=2,
                                                                  removing=(business, 2), only=0)[0].inputs] == \
        [(politics, bytes32_to_cid(digest("politics2")))]
    assert [(i.org, i.round) for i in grouped.replaced_originals(node, by_round)] == [(politics, 3)]
    assert cid_to_bytes32(grouped.replaced_originals(node, by_round)[0].adapter_cid) == digest("politics3")


@pytest.mark.slow
def test_one_group_replays_in_lockstep_and_equals_a_federation_without_the_org(tmp_path: Path) -> None:
    """G = 1 (collaborative FedAvg of everyone), 3 orgs, 3 rounds; business is forgotten. Its two
    peers replay rounds 2 and 3 in lockstep: a member's round 3 waits until every peer's round 2
    replay is on chain (its init is their FedAvg). The receipt's model equals the offline
    federation of the two others, bit for bit."""
    from orchestrator.learning.api import TrainConfig, adapter_sha256
    from orchestrator.learning.federation import run_rounds

    cfg = DemoConfig(model="tiny", orgs=3, rounds=3, unlearn="business", out=tmp_path, steps=2, groups=1)
    setup = build_setup(cfg, tmp_path / "state")
    setup.unlearner.audit = {}
    cons = setup.consortium
    drive(setup.daemons, lambda: _finalized(setup, 3), max_ticks=60)
    business = cons.orgs["business"]
    request_id = request_unlearning(cons.private, cons.protocol, business.account, business.address, SCOPE_ORG)
    unlearning = cons.protocol.contract("Unlearning")
    drive(setup.daemons, lambda: unlearning.functions.getRequest(request_id).call()[2] == REQ_COMPLETED, max_ticks=10)

    replays = [(n, a["round"]) for n, t in setup.trainers.items() for a in t.actions if a["action"] == "replayed"]
    assert sorted(replays) == [("entertainment", 2), ("entertainment", 3), ("politics", 2), ("politics", 3)]
    # lockstep: each round-3 replay was sent after both round-2 replays (block order on chain)
    reader = reader_for(cons.protocol)
    blocks = {(n, r): reader.get(r, cons.orgs[n].address).block for n, r in replays}
    assert max(blocks[(n, 2)] for n in ("entertainment", "politics")) < \
        min(blocks[(n, 3)] for n in ("entertainment", "politics"))
    # the executor saw the replay incomplete and waited (it completes only once all four are in)
    waits = [a for a in setup.unlearner.actions if a["action"] == "awaiting-replays"]
    assert waits and all({(p["org"], p["round"]) for p in w["pending"]} for w in waits)
    assert _receipt_replays(cons, unlearning) == sorted((cons.orgs[n].address, r) for n, r in replays)

    config = setup.aggregator.plan.config
    assert config is not None
    records = run_rounds("tiny", {n: setup.trainers[n].texts for n in ("entertainment", "politics")},
                         TrainConfig.from_dict(config.train), 3, tmp_path / "offline", mode="grouped",
                         groups={"entertainment": 0, "politics": 0})
    receipt = _receipt(cons, unlearning)
    assert receipt["model_sha256"] == adapter_sha256(records[-1].merged)
    audit = audit_receipt(cons.protocol, cons.store, request_id, cons.aggregator.address, cons.aggregator.enc_private,
                          tmp_path / "auditor")
    assert audit["ok"], audit["checks"]
