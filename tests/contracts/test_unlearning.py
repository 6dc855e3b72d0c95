"""Unlearning: bonded requests (Org / Round / Samples), acknowledge with a stake lock, receipts
before the deadline, sample-level replacement by the org, settlement of overdue requests."""

import brownie
import pytest
from conftest import (
    ORG_SCOPE,
    ROUND_SCOPE,
    SAMPLES_SCOPE,
    MIN_STAKE,
    REQUEST_BOND,
    RESPONSE_WINDOW,
    SLASH_AMOUNT,
    ZERO32,
    advance,
    b32,
    err,
    plain,
    rid32,
)

ORG, ROUND, SAMPLES = ORG_SCOPE, ROUND_SCOPE, SAMPLES_SCOPE
REQUESTED, ACKNOWLEDGED, COMPLETED, SLASHED, CLOSED, VOIDED, EXPIRED = 1, 2, 3, 4, 5, 6, 7
ZERO_ADDRESS = "0x" + "00" * 20


@pytest.fixture(scope="module")
def history(finalized_round, members):
    """Two finalized rounds: org 0 in both, org 1 in the first only."""
    r1 = finalized_round(members[:2])
    r2 = finalized_round(members[:1])
    return r1, r2


@pytest.fixture(scope="module")
def new_request(protocol, history, members):
    """Factory: ``org`` requests ``scope``/``target``; returns the request id."""

    def _request(org=None, scope=ORG, target=ZERO32, sender=None):
        org = org or members[0]
        tx = protocol["unlearning"].requestUnlearning(
            org, scope, target, b32("gdpr"), {"from": sender or org}
        )
        return int(tx.return_value)

    return _request


@pytest.fixture
def with_default(protocol, staked_aggregator, gov):
    protocol["unlearning"].setDefaultAggregator(staked_aggregator, {"from": gov})
    return staked_aggregator


# --- request -----------------------------------------------------------------------------------


def test_org_requests_removal_of_all_its_contributions(protocol, history, members, with_default):
    u, token = protocol["unlearning"], protocol["token"]
    before = token.balanceOf(members[0])
    tx = u.requestUnlearning(members[0], ORG, ZERO32, b32("gdpr"), {"from": members[0]})
    deadline = tx.timestamp + RESPONSE_WINDOW
    assert tx.return_value == 1
    assert tx.events["UnlearningRequested"] == {
        "requestId": 1,
        "org": members[0],
        "scope": ORG,
        "target": ZERO32,
        "reasonHash": b32("gdpr"),
        "deadline": deadline,
    }
    assert tx.events["RequestBonded"] == {
        "requestId": 1,
        "requester": members[0],
        "aggregator": with_default,
        "bond": REQUEST_BOND,
    }
    assert plain(u.getRequest(1)) == (
        members[0].address,
        ORG,
        REQUESTED,
        deadline,
        with_default.address,
        ZERO32,
        ZERO32,
    )
    assert plain(u.requestInfo(1)) == (members[0].address, 0)
    assert u.pendingRequest(members[0], ORG, ZERO32) == 1
    assert u.hasLiveTarget(1)
    assert u.requestCount() == 1
    assert token.balanceOf(members[0]) == before - REQUEST_BOND
    assert token.balanceOf(u) == REQUEST_BOND


def test_governor_requests_for_a_data_subject(protocol, history, members, gov):
    r1, _ = history
    tx = protocol["unlearning"].requestUnlearning(
        members[1], ROUND, rid32(r1), b32("subject"), {"from": gov}
    )
    assert tx.events["UnlearningRequested"]["org"] == members[1]
    assert tx.events["UnlearningRequested"]["target"] == rid32(r1)
    assert tx.events["RequestBonded"]["requester"] == gov


def test_samples_scope_needs_a_non_zero_root(protocol, history, members):
    u = protocol["unlearning"]
    tx = u.requestUnlearning(
        members[0], SAMPLES, b32("samples-root"), b32("r"), {"from": members[0]}
    )
    assert tx.events["UnlearningRequested"]["scope"] == SAMPLES
    assert tx.events["RequestBonded"]["aggregator"] == ZERO_ADDRESS  # never an aggregator's
    with brownie.reverts(err("UnlearningInvalidTarget", SAMPLES, ZERO32)):
        u.requestUnlearning(members[0], SAMPLES, ZERO32, b32("r"), {"from": members[0]})


def test_request_for_another_org_reverts(protocol, history, members):
    with brownie.reverts(err("UnlearningNotAuthorized", members[1], members[0])):
        protocol["unlearning"].requestUnlearning(
            members[0], ORG, ZERO32, b32("r"), {"from": members[1]}
        )


def test_request_without_contribution_reverts(protocol, history, members, rando):
    u = protocol["unlearning"]
    _, r2 = history
    with brownie.reverts(err("UnlearningNoContribution", members[1], ROUND, rid32(r2))):
        u.requestUnlearning(members[1], ROUND, rid32(r2), b32("r"), {"from": members[1]})
    with brownie.reverts(err("UnlearningNoContribution", rando, SAMPLES, b32("s"))):
        u.requestUnlearning(rando, SAMPLES, b32("s"), b32("r"), {"from": rando})
    with brownie.reverts(err("UnlearningNoContribution", rando, ORG, ZERO32)):
        u.requestUnlearning(rando, ORG, ZERO32, b32("r"), {"from": rando})


def test_request_with_bad_target_reverts(protocol, history, members):
    u = protocol["unlearning"]
    with brownie.reverts(err("UnlearningInvalidTarget", ORG, b32("x"))):
        u.requestUnlearning(members[0], ORG, b32("x"), b32("r"), {"from": members[0]})
    with brownie.reverts(err("UnlearningInvalidTarget", ROUND, rid32(0))):
        u.requestUnlearning(members[0], ROUND, rid32(0), b32("r"), {"from": members[0]})
    with brownie.reverts(err("UnlearningInvalidTarget", ROUND, rid32(99))):
        u.requestUnlearning(members[0], ROUND, rid32(99), b32("r"), {"from": members[0]})


def test_duplicate_pending_request_reverts_until_settled(protocol, new_request, staked_aggregator, members):
    u = protocol["unlearning"]
    req = new_request()
    with brownie.reverts(err("UnlearningDuplicate", req)):
        u.requestUnlearning(members[0], ORG, ZERO32, b32("again"), {"from": members[0]})
    assert new_request(scope=SAMPLES, target=b32("s")) == req + 1  # another scope is fine
    u.completeUnlearning(req, b32("m"), b32("r"), b32("m"), {"from": staked_aggregator})
    assert u.pendingRequest(members[0], ORG, ZERO32) == 0


# --- acknowledge -------------------------------------------------------------------------------


def test_acknowledge_records_the_responsible_aggregator_and_locks_stake(
    protocol, new_request, staked_aggregator
):
    u, staking, req = protocol["unlearning"], protocol["staking"], new_request()
    tx = u.acknowledge(req, {"from": staked_aggregator})
    assert tx.events["UnlearningAcknowledged"] == {
        "requestId": req,
        "aggregator": staked_aggregator,
    }
    assert tx.events["StakeLocked"]["amount"] == SLASH_AMOUNT
    assert staking.lockedOf(staked_aggregator) == SLASH_AMOUNT
    org, scope, state, deadline, aggregator, target, model = plain(u.getRequest(req))
    assert (state, aggregator) == (ACKNOWLEDGED, staked_aggregator.address)
    with brownie.reverts(err("UnlearningWrongState", req, ACKNOWLEDGED)):
        u.acknowledge(req, {"from": staked_aggregator})


def test_acknowledge_needs_a_staked_aggregator(
    protocol, new_request, staked_aggregator, members, gov
):
    u, req = protocol["unlearning"], new_request()
    with brownie.reverts(err("UnlearningNotStakedAggregator", members[1])):
        u.acknowledge(req, {"from": members[1]})  # staked, but not an aggregator
    protocol["staking"].requestUnbond(1, {"from": staked_aggregator})  # now below the minimum stake
    with brownie.reverts(err("UnlearningNotStakedAggregator", staked_aggregator)):
        u.acknowledge(req, {"from": staked_aggregator})


def test_acknowledge_samples_scope_reverts(protocol, new_request, staked_aggregator):
    u, req = protocol["unlearning"], new_request(scope=SAMPLES, target=b32("s"))
    with brownie.reverts(err("UnlearningWrongScope", req, SAMPLES)):
        u.acknowledge(req, {"from": staked_aggregator})


def test_acknowledge_after_deadline_or_unknown_reverts(protocol, new_request, staked_aggregator):
    u, req = protocol["unlearning"], new_request()
    deadline = u.getRequest(req)[3]
    advance(RESPONSE_WINDOW + 1)
    with brownie.reverts(err("UnlearningDeadlinePassed", req, deadline)):
        u.acknowledge(req, {"from": staked_aggregator})
    with brownie.reverts(err("UnlearningUnknownRequest", 99)):
        u.acknowledge(99, {"from": staked_aggregator})


# --- complete ----------------------------------------------------------------------------------


def test_complete_org_scope_revokes_every_contribution_and_records_version(
    protocol, history, new_request, staked_aggregator, members
):
    u, registry, staking, token = (
        protocol["unlearning"], protocol["registry"], protocol["staking"], protocol["token"]
    )
    r1, r2 = history
    req = new_request()
    u.acknowledge(req, {"from": staked_aggregator})
    latest = registry.latestVersion()
    before = token.balanceOf(members[0])
    tx = u.completeUnlearning(
        req, b32("clean"), b32("removed"), b32("metrics"), {"from": staked_aggregator}
    )
    assert tx.return_value == latest + 1
    assert tx.events["UnlearningCompleted"] == {
        "requestId": req,
        "versionId": latest + 1,
        "newModelCid": b32("clean"),
        "removedRoot": b32("removed"),
        "metricsHash": b32("metrics"),
    }
    assert tx.events["ContributionsRevoked"] == {
        "org": members[0], "requestId": req, "fromRound": 1, "toRound": r2
    }
    assert tx.events["RequestSettled"] == {
        "requestId": req, "state": COMPLETED, "requester": members[0], "refunded": REQUEST_BOND, "forfeited": 0
    }
    assert token.balanceOf(members[0]) == before + REQUEST_BOND
    assert staking.lockedOf(staked_aggregator) == 0
    assert registry.isRevoked(r1, members[0]) and registry.isRevoked(r2, members[0])
    assert not registry.isLive(r1, members[0]) and registry.isLive(r1, members[1])
    assert not registry.isRevoked(r1, members[1])
    assert registry.revokedThrough(members[0]) == r2
    assert plain(registry.getVersion(latest + 1))[:3] == (b32("clean"), latest, 0)
    assert plain(u.getRequest(req))[2:] == (
        COMPLETED,
        u.getRequest(req)[3],
        staked_aggregator.address,
        ZERO32,
        b32("clean"),
    )


def test_complete_round_scope_revokes_that_round_and_later(
    protocol, history, new_request, staked_aggregator, members
):
    u, registry = protocol["unlearning"], protocol["registry"]
    r1, r2 = history
    req = new_request(scope=ROUND, target=rid32(r2))
    tx = u.completeUnlearning(
        req, b32("clean"), b32("removed"), b32("m"), {"from": staked_aggregator}
    )
    assert tx.events["ContributionsRevoked"]["fromRound"] == r2
    assert registry.isRevoked(r2, members[0]) and not registry.isRevoked(r1, members[0])
    assert plain(registry.revokedRanges(members[0])) == ((r2,), (r2,))
    # the revoked round can no longer be asked for; the org still has a live one
    with brownie.reverts(err("UnlearningNoContribution", members[0], ROUND, rid32(r2))):
        u.requestUnlearning(members[0], ROUND, rid32(r2), b32("r"), {"from": members[0]})


def test_samples_scope_is_answered_by_the_org_replacing_its_contribution(
    protocol, history, new_request, staked_aggregator, members, rando
):
    u, registry, rounds = protocol["unlearning"], protocol["registry"], protocol["rounds"]
    r1, r2 = history
    req = new_request(scope=SAMPLES, target=b32("samples"))
    with brownie.reverts(err("UnlearningNotReplaced", req)):
        u.completeUnlearning(req, b32("clean"), b32("samples"), b32("m"), {"from": staked_aggregator})
    with brownie.reverts(err("UnlearningNotRequestOrg", staked_aggregator, members[0])):
        u.replaceContribution(req, r1, b32("new"), 90, b32("newdata"), {"from": staked_aggregator})
    with brownie.reverts(err("UnlearningNotLive", 99, members[0])):
        u.replaceContribution(req, 99, b32("n"), 1, b32("d"), {"from": members[0]})
    old = rounds.commitmentOf(r1, members[0])
    tx = u.replaceContribution(req, r1, b32("new"), 90, b32("newdata"), {"from": members[0]})
    assert tx.events["ContributionReplaced"] == {"requestId": req, "roundId": r1, "org": members[0]}
    assert tx.events["SubmissionReplaced"] == {
        "roundId": r1,
        "org": members[0],
        "requestId": req,
        "adapterCid": b32("new"),
        "numSamples": 90,
        "dataCommitment": b32("newdata"),
    }
    assert rounds.commitmentOf(r1, members[0]) == rounds.submissionCommitment(b32("new"), 90, b32("newdata"))
    assert rounds.commitmentOf(r1, members[0]) != old
    assert plain(u.requestInfo(req)) == (members[0].address, 1)
    tx = u.completeUnlearning(req, b32("clean"), b32("samples"), b32("m"), {"from": staked_aggregator})
    assert "ContributionsRevoked" not in tx.events
    assert "VersionRecorded" in tx.events
    assert registry.isLive(r1, members[0]) and registry.isLive(r2, members[0])  # the new one is live


def test_round_request_already_covered_by_org_request_is_closed(
    protocol, history, new_request, staked_aggregator, rando, members
):
    u = protocol["unlearning"]
    _, r2 = history
    by_round = new_request(scope=ROUND, target=rid32(r2))
    by_org = new_request()
    u.completeUnlearning(by_org, b32("a"), b32("r"), b32("m"), {"from": staked_aggregator})
    assert not u.hasLiveTarget(by_round)
    tx = u.closeRequest(by_round, {"from": rando})
    assert tx.events["RequestSettled"]["state"] == CLOSED
    assert u.getRequest(by_round)[2] == CLOSED
    with brownie.reverts(err("UnlearningStillLive", by_org + 1)):
        u.closeRequest(new_request(org=members[1], scope=ROUND, target=rid32(1)), {"from": rando})


def test_complete_after_deadline_reverts(protocol, new_request, staked_aggregator):
    u, req = protocol["unlearning"], new_request()
    u.acknowledge(req, {"from": staked_aggregator})
    deadline = u.getRequest(req)[3]
    advance(RESPONSE_WINDOW + 1)
    with brownie.reverts(err("UnlearningDeadlinePassed", req, deadline)):
        u.completeUnlearning(req, b32("late"), b32("r"), b32("m"), {"from": staked_aggregator})


def test_complete_failures(protocol, new_request, staked_aggregator, members):
    u, req = protocol["unlearning"], new_request()
    with brownie.reverts(err("UnlearningNotStakedAggregator", members[0])):
        u.completeUnlearning(req, b32("m"), b32("r"), b32("m"), {"from": members[0]})
    with brownie.reverts(err("UnlearningZeroModelCid", req)):
        u.completeUnlearning(req, ZERO32, b32("r"), b32("m"), {"from": staked_aggregator})
    u.completeUnlearning(req, b32("m"), b32("r"), b32("m"), {"from": staked_aggregator})
    with brownie.reverts(err("UnlearningWrongState", req, COMPLETED)):
        u.completeUnlearning(req, b32("m"), b32("r"), b32("m"), {"from": staked_aggregator})
    with brownie.reverts(err("UnlearningUnknownRequest", 77)):
        u.completeUnlearning(77, b32("m"), b32("r"), b32("m"), {"from": staked_aggregator})


# --- slash / settle ----------------------------------------------------------------------------


def test_missed_deadline_slashes_the_acknowledging_aggregator(
    protocol, new_request, staked_aggregator, rando, gov, members
):
    u, staking, token = protocol["unlearning"], protocol["staking"], protocol["token"]
    req = new_request()
    u.acknowledge(req, {"from": staked_aggregator})
    advance(RESPONSE_WINDOW + 1)
    treasury_before = token.balanceOf(gov)
    tx = u.slashMissed(req, {"from": rando})
    assert tx.events["AggregatorSlashed"] == {
        "requestId": req,
        "aggregator": staked_aggregator,
        "amount": SLASH_AMOUNT,
    }
    assert tx.events["Slashed"] == {
        "account": staked_aggregator,
        "amount": SLASH_AMOUNT,
        "reasonHash": "0x" + req.to_bytes(32, "big").hex(),
    }
    assert tx.events["RequestSettled"]["refunded"] == REQUEST_BOND
    assert staking.stakeOf(staked_aggregator) == MIN_STAKE - SLASH_AMOUNT
    assert staking.lockedOf(staked_aggregator) == 0
    assert token.balanceOf(gov) == treasury_before + SLASH_AMOUNT
    assert u.getRequest(req)[2] == SLASHED
    with brownie.reverts(err("UnlearningWrongState", req, SLASHED)):
        u.slashMissed(req, {"from": rando})


def test_unacknowledged_miss_slashes_the_aggregator_fixed_at_request(
    protocol, new_request, staked_aggregator, rando, gov
):
    u = protocol["unlearning"]
    orphan = new_request()  # no default aggregator yet
    tx = u.setDefaultAggregator(staked_aggregator, {"from": gov})
    assert tx.events["DefaultAggregatorSet"] == {
        "previous": ZERO_ADDRESS,
        "aggregator": staked_aggregator,
    }
    advance(RESPONSE_WINDOW + 1)
    tx = u.slashMissed(orphan, {"from": rando})  # nobody was answerable: expires, bond refunded
    assert "AggregatorSlashed" not in tx.events
    assert tx.events["RequestSettled"]["state"] == EXPIRED
    req = new_request()
    advance(RESPONSE_WINDOW + 1)
    tx = u.slashMissed(req, {"from": rando})
    assert tx.events["AggregatorSlashed"]["aggregator"] == staked_aggregator
    assert plain(u.getRequest(req))[4] == staked_aggregator.address


def test_slash_is_capped_at_the_aggregator_stake(protocol, new_request, staked_aggregator, rando, gov):
    u, staking = protocol["unlearning"], protocol["staking"]
    u.setDefaultAggregator(staked_aggregator, {"from": gov})
    req = new_request()
    staking.requestUnbond(MIN_STAKE - 10, {"from": staked_aggregator})  # 10 active, rest pending
    staking.slash(staked_aggregator, MIN_STAKE - 20, b32("earlier"), {"from": gov})
    assert staking.slashableOf(staked_aggregator) == 20
    advance(RESPONSE_WINDOW + 1)
    tx = u.slashMissed(req, {"from": rando})
    assert tx.events["AggregatorSlashed"]["amount"] == 20
    assert staking.slashableOf(staked_aggregator) == 0
    # with nothing left the request is still settled, for 0
    req2 = new_request()
    advance(RESPONSE_WINDOW + 1)
    tx = u.slashMissed(req2, {"from": rando})
    assert tx.events["AggregatorSlashed"]["amount"] == 0 and "Slashed" not in tx.events


def test_slash_before_deadline_reverts(protocol, new_request, staked_aggregator, rando):
    u, req = protocol["unlearning"], new_request()
    u.acknowledge(req, {"from": staked_aggregator})
    deadline = u.getRequest(req)[3]
    with brownie.reverts(err("UnlearningDeadlineNotReached", req, deadline)):
        u.slashMissed(req, {"from": rando})


def test_completed_request_cannot_be_slashed(protocol, new_request, staked_aggregator, rando):
    u, req = protocol["unlearning"], new_request()
    u.completeUnlearning(req, b32("m"), b32("r"), b32("m"), {"from": staked_aggregator})
    advance(RESPONSE_WINDOW + 1)
    with brownie.reverts(err("UnlearningWrongState", req, COMPLETED)):
        u.slashMissed(req, {"from": rando})


def test_governor_voids_a_junk_request_and_keeps_the_bond(
    protocol, new_request, staked_aggregator, gov, rando, members
):
    u, token, staking = protocol["unlearning"], protocol["token"], protocol["staking"]
    req = new_request()
    u.acknowledge(req, {"from": staked_aggregator})
    with brownie.reverts(err("UnlearningNotGovernor", rando)):
        u.voidRequest(req, b32("junk"), {"from": rando})
    treasury = token.balanceOf(gov)
    tx = u.voidRequest(req, b32("junk"), {"from": gov})
    assert tx.events["RequestVoided"] == {"requestId": req, "reasonHash": b32("junk")}
    assert tx.events["RequestSettled"]["forfeited"] == REQUEST_BOND
    assert token.balanceOf(gov) == treasury + REQUEST_BOND
    assert staking.lockedOf(staked_aggregator) == 0
    assert u.getRequest(req)[2] == VOIDED


def test_set_default_aggregator_by_non_governor_reverts(protocol, rando):
    with brownie.reverts(err("UnlearningNotGovernor", rando)):
        protocol["unlearning"].setDefaultAggregator(rando, {"from": rando})


def test_views_report_constructor_arguments(protocol, gov):
    u = protocol["unlearning"]
    assert (u.responseWindow(), u.slashAmount(), u.requestBond(), u.token(), u.defaultAggregator()) == (
        RESPONSE_WINDOW,
        SLASH_AMOUNT,
        REQUEST_BOND,
        protocol["token"].address,
        ZERO_ADDRESS,
    )
