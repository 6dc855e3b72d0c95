"""Grouped collaboration: the other members of a forgotten org's group replay their rounds
without it (``Unlearning.replayContribution``), only while an Org / Round request is pending and
before its deadline, only for the rounds that can descend from what is removed."""

import brownie
from conftest import ORG_SCOPE, RESPONSE_WINDOW, ROUND_SCOPE, SAMPLES_SCOPE, ZERO32, advance, b32, err, rid32

ORG, ROUND, SAMPLES = ORG_SCOPE, ROUND_SCOPE, SAMPLES_SCOPE
ACKNOWLEDGED, COMPLETED = 2, 3


def _org_request(u, org):
    return int(u.requestUnlearning(org, ORG, ZERO32, b32("r"), {"from": org}).return_value)


def test_a_group_member_replays_its_round_for_an_org_request(protocol, finalized_round, members, staked_aggregator):
    u, rounds, registry = protocol["unlearning"], protocol["rounds"], protocol["registry"]
    forgotten, peer = members[0], members[1]
    r1 = finalized_round([forgotten, peer])
    r2 = finalized_round([forgotten, peer])
    req = _org_request(u, forgotten)
    u.acknowledge(req, {"from": staked_aggregator})  # an acknowledged request still takes replays
    tx = u.replayContribution(req, r2, b32("replayed"), 80, b32("peer-data"), {"from": peer})
    assert tx.events["ContributionReplaced"] == {"requestId": req, "roundId": r2, "org": peer}
    assert tx.events["SubmissionReplaced"] == {
        "roundId": r2, "org": peer, "requestId": req, "adapterCid": b32("replayed"), "numSamples": 80,
        "dataCommitment": b32("peer-data"),
    }
    assert u.requestInfo(req)[1] == 1
    assert u.getRequest(req)[2] == ACKNOWLEDGED
    u.completeUnlearning(req, b32("m"), b32("x"), b32("m"), {"from": staked_aggregator})
    # the replayed contribution stays live; the forgotten org's are revoked
    assert registry.isLive(r2, peer) and registry.isLive(r1, peer)
    assert not registry.isLive(r1, forgotten) and not registry.isLive(r2, forgotten)
    assert rounds.commitmentOf(r2, peer) != rounds.commitmentOf(r1, peer)


def test_replay_refusals(protocol, finalized_round, open_round, submit, members, staked_aggregator, rando):
    u = protocol["unlearning"]
    forgotten, peer = members[0], members[1]
    r1 = finalized_round([forgotten, peer])
    r2 = finalized_round([forgotten, peer])
    samples = int(u.requestUnlearning(forgotten, SAMPLES, b32("s"), b32("r"), {"from": forgotten}).return_value)
    with brownie.reverts(err("UnlearningWrongScope", samples, SAMPLES)):
        u.replayContribution(samples, r1, b32("n"), 1, b32("d"), {"from": peer})
    by_round = int(u.requestUnlearning(forgotten, ROUND, rid32(r2), b32("r"), {"from": forgotten}).return_value)
    with brownie.reverts(err("UnlearningRequestOrgReplay", by_round, forgotten)):
        u.replayContribution(by_round, r2, b32("n"), 1, b32("d"), {"from": forgotten})
    with brownie.reverts(err("UnlearningReplayOutOfRange", by_round, r1, r2, r2)):
        u.replayContribution(by_round, r1, b32("n"), 1, b32("d"), {"from": peer})  # before the target
    r3 = open_round()  # opened after the request: nothing in it can descend from what is removed
    submit(r3, peer)
    with brownie.reverts(err("UnlearningReplayOutOfRange", by_round, r3, r2, r2)):
        u.replayContribution(by_round, r3, b32("n"), 1, b32("d"), {"from": peer})
    with brownie.reverts(err("UnlearningNotLive", r2, rando)):
        u.replayContribution(by_round, r2, b32("n"), 1, b32("d"), {"from": rando})  # no contribution there
    with brownie.reverts(err("UnlearningUnknownRequest", 99)):
        u.replayContribution(99, r2, b32("n"), 1, b32("d"), {"from": peer})
    by_org = _org_request(u, forgotten)
    with brownie.reverts(err("UnlearningReplayOutOfRange", by_org, 0, 1, r3)):
        u.replayContribution(by_org, 0, b32("n"), 1, b32("d"), {"from": peer})
    deadline = u.getRequest(by_org)[3]
    advance(RESPONSE_WINDOW + 1)
    with brownie.reverts(err("UnlearningDeadlinePassed", by_org, deadline)):
        u.replayContribution(by_org, r1, b32("n"), 1, b32("d"), {"from": peer})


def test_no_replay_after_the_request_is_final(protocol, finalized_round, members, staked_aggregator):
    u = protocol["unlearning"]
    forgotten, peer = members[0], members[1]
    r1 = finalized_round([forgotten, peer])
    req = _org_request(u, forgotten)
    u.completeUnlearning(req, b32("m"), b32("x"), b32("m"), {"from": staked_aggregator})
    with brownie.reverts(err("UnlearningWrongState", req, COMPLETED)):
        u.replayContribution(req, r1, b32("n"), 1, b32("d"), {"from": peer})
