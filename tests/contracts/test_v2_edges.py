"""Edge cases of the protocol v2 additions: every refusal of the new calls, and the corners of
stake locks, revocation ranges, claim windows and bonds."""

import brownie
import pytest
from brownie import LedgerToken, Rounds, Staking, Unlearning, accounts
from conftest import (
    ORG_SCOPE,
    ROUND_SCOPE,
    SAMPLES_SCOPE,
    CLAIM_WINDOW,
    MIN_STAKE,
    RESPONSE_WINDOW,
    SLASH_AMOUNT,
    UNBOND_DELAY,
    ZERO32,
    advance,
    b32,
    err,
    _share_pc_maps,
    plain,
    rid32,
)

from orchestrator.merkle import reward_leaf

ORG, ROUND, SAMPLES = ORG_SCOPE, ROUND_SCOPE, SAMPLES_SCOPE
CLOSED_STATE, FINALIZED, CANCELLED = 2, 3, 4


# --- Staking locks -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def locker(staking, gov):
    staking.grantRole(staking.LOCKER_ROLE(), accounts[9], {"from": gov})
    return accounts[9]


def test_lock_and_unlock_refusals(staking, locker, funded, stake_for, outsider, rando):
    stake_for(outsider, 100)
    with brownie.reverts(err("AccessControlUnauthorizedAccount", rando, staking.LOCKER_ROLE())):
        staking.lock(outsider, 1, {"from": rando})
    with brownie.reverts(err("StakingZeroAmount")):
        staking.lock(outsider, 0, {"from": locker})
    with brownie.reverts(err("StakingInsufficientFreeStake", outsider, 101, 100)):
        staking.lock(outsider, 101, {"from": locker})
    tx = staking.lock(outsider, 60, {"from": locker})
    assert tx.events["StakeLocked"] == {"account": outsider, "locker": locker, "amount": 60, "locked": 60}
    assert (staking.lockedOf(outsider), staking.freeStakeOf(outsider)) == (60, 40)
    with brownie.reverts(err("StakingZeroAmount")):
        staking.unlock(outsider, 0, {"from": locker})
    with brownie.reverts(err("StakingUnlockExceedsLocked", outsider, 61, 60)):
        staking.unlock(outsider, 61, {"from": locker})
    tx = staking.unlock(outsider, 60, {"from": locker})
    assert tx.events["StakeUnlocked"]["locked"] == 0


def test_a_slash_can_take_locked_stake_leaving_nothing_free(staking, locker, funded, stake_for, outsider, gov):
    stake_for(outsider, 100)
    staking.lock(outsider, 80, {"from": locker})
    staking.slash(outsider, 50, b32("x"), {"from": gov})
    assert (staking.stakeOf(outsider), staking.lockedOf(outsider), staking.freeStakeOf(outsider)) == (50, 80, 0)


def test_stake_beyond_128_bits_reverts(gov):
    big = LedgerToken.deploy(gov, 2**130, {"from": gov})
    s = Staking.deploy(big, gov, UNBOND_DELAY, {"from": gov})
    _share_pc_maps()  # contracts deployed inside a test (coverage, see conftest)
    big.approve(s, 2**130, {"from": gov})
    s.stake(2**128 - 1, {"from": gov})
    with brownie.reverts(err("StakingAmountTooLarge", 1)):
        s.stake(1, {"from": gov})


# --- Membership --------------------------------------------------------------------------------


def test_leave_needs_membership_and_a_zero_min_stake_locks_nothing(protocol, gov, outsider, funded, rando):
    m = protocol["membership"]
    with brownie.reverts(err("MembershipNotMember", rando)):
        m.leave({"from": rando})
    m.setMinStake(0, {"from": gov})
    tx = m.join(b32("k"), "", {"from": outsider})
    assert "StakeLocked" not in tx.events and m.lockedStakeOf(outsider) == 0
    tx = m.leave({"from": outsider})
    assert tx.events["MemberLeft"]["unlockedStake"] == 0 and "StakeUnlocked" not in tx.events
    m.join(b32("k2"), "", {"from": outsider})  # leaving is not a removal: it may join again
    assert m.isMember(outsider)


def test_removal_releases_the_stake(protocol, members, gov):
    m, staking = protocol["membership"], protocol["staking"]
    tx = m.removeMember(members[0], b32("why"), {"from": gov})
    assert tx.events["StakeUnlocked"]["amount"] == MIN_STAKE
    assert staking.freeStakeOf(members[0]) == MIN_STAKE and m.lockedStakeOf(members[0]) == 0


# --- Rounds ------------------------------------------------------------------------------------


def test_cancel_refusals_and_cancel_after_close(protocol, open_round, submit, members, staked_aggregator):
    rounds = protocol["rounds"]
    busy = open_round(100)
    submit(busy, members[0])
    with brownie.reverts(err("RoundsHasSubmissions", busy, 1)):
        rounds.cancelRound(busy, {"from": staked_aggregator})
    with brownie.reverts(err("RoundsNotAggregator", members[0])):
        rounds.cancelRound(busy, {"from": members[0]})
    empty = open_round(200)
    rounds.closeRound(empty, {"from": staked_aggregator})
    pool = rounds.rewardPool()
    tx = rounds.cancelRound(empty, {"from": staked_aggregator})
    assert tx.events["RoundCancelled"] == {"roundId": empty, "returned": 200}
    assert rounds.rewardPool() == pool + 200 and rounds.getRound(empty)[0] == CANCELLED
    with brownie.reverts(err("RoundsNotClosed", empty, CANCELLED)):
        rounds.cancelRound(empty, {"from": staked_aggregator})
    with brownie.reverts(err("RoundsNotOpen", empty, CANCELLED)):
        rounds.submitUpdate(empty, b32("c"), 1, b32("d"), {"from": members[1]})


def test_finalize_refuses_a_total_without_root(protocol, open_round, staked_aggregator):
    rounds = protocol["rounds"]
    rid = open_round(100)
    rounds.closeRound(rid, {"from": staked_aggregator})
    with brownie.reverts(err("RoundsZeroRewardsRoot", rid, 50)):
        rounds.finalizeRound(rid, b32("m"), ZERO32, 50, ZERO32, {"from": staked_aggregator})


@pytest.mark.view_coverage
def test_claim_window_and_sweep(protocol, finalized_round, members, rando):
    rounds = protocol["rounds"]
    leaf = reward_leaf(members[0].address, 70)
    rid = finalized_round([members[0]], rewards_root="0x" + leaf.hex(), budget=100, rewards_total=70)
    max_samples, finalized_at, deadline = plain(rounds.roundTerms(rid))
    assert deadline == finalized_at + CLAIM_WINDOW and finalized_at > 0
    with brownie.reverts(err("RoundsClaimWindowOpen", rid, deadline)):
        rounds.sweepUnclaimed(rid, {"from": rando})
    advance(CLAIM_WINDOW + 1)
    with brownie.reverts(err("RoundsClaimWindowClosed", rid, deadline)):
        rounds.claimReward(rid, 70, [], {"from": members[0]})
    rounds.sweepUnclaimed(rid, {"from": rando})
    with brownie.reverts(err("RoundsNothingToSweep", rid)):
        rounds.sweepUnclaimed(rid, {"from": rando})
    assert plain(rounds.getRound(rid))[6:] == (0, 0)


def test_fund_beyond_128_bits_reverts(gov, membership, registry):
    big = LedgerToken.deploy(gov, 2**130, {"from": gov})
    r = Rounds.deploy(big, membership, registry, CLAIM_WINDOW, {"from": gov})
    _share_pc_maps()
    big.approve(r, 2**130, {"from": gov})
    with brownie.reverts(err("RoundsAmountTooLarge", 2**128)):
        r.fundRewards(2**128, {"from": gov})


def test_constructors_refuse_zero_addresses(gov, token, membership, registry, staking, rounds):
    zero = "0x" + "00" * 20
    with brownie.reverts(err("RoundsZeroAddress")):
        Rounds.deploy(zero, membership, registry, CLAIM_WINDOW, {"from": gov})
    with brownie.reverts(err("UnlearningZeroAddress")):
        Unlearning.deploy(zero, staking, registry, rounds, RESPONSE_WINDOW, SLASH_AMOUNT, 1, {"from": gov})
    with brownie.reverts(err("UnlearningZeroSlashAmount")):
        Unlearning.deploy(membership, staking, registry, rounds, RESPONSE_WINDOW, 0, 1, {"from": gov})


@pytest.fixture(scope="module")
def replacer(registry, gov):
    registry.grantRole(registry.REVOKER_ROLE(), accounts[9], {"from": gov})
    return accounts[9]


def test_replace_submission_refusals(protocol, open_round, submit, members, replacer, staked_aggregator, rando):
    rounds = protocol["rounds"]
    org = members[0]
    rid = open_round(max_samples=100)
    with brownie.reverts(err("RoundsNotReplacer", rando)):
        rounds.replaceSubmission(rid, org, b32("n"), 1, b32("d"), 1, {"from": rando})
    with brownie.reverts(err("RoundsNoSubmission", rid, org)):
        rounds.replaceSubmission(rid, org, b32("n"), 1, b32("d"), 1, {"from": replacer})
    submit(rid, org, num_samples=10)
    with brownie.reverts(err("RoundsTooManySamples", rid, 101, 100)):
        rounds.replaceSubmission(rid, org, b32("n"), 101, b32("d"), 1, {"from": replacer})
    cid, data = b32(f"adapter:{rid}:{org.address}"), b32(f"data:{rid}:{org.address}")
    with brownie.reverts(err("RoundsSameSubmission", rid, org)):
        rounds.replaceSubmission(rid, org, cid, 10, data, 1, {"from": replacer})
    with brownie.reverts(err("RoundsZeroAdapterCid", rid)):
        rounds.replaceSubmission(rid, org, ZERO32, 1, b32("d"), 1, {"from": replacer})
    rounds.closeRound(rid, {"from": staked_aggregator})
    rounds.rejectSubmission(rid, org, b32("bad"), {"from": staked_aggregator})
    with brownie.reverts(err("RoundsSubmissionRejected", rid, org)):
        rounds.replaceSubmission(rid, org, b32("n"), 1, b32("d"), 1, {"from": replacer})


def test_replacement_keeps_the_claimed_flag(protocol, finalized_round, members, replacer):
    rounds = protocol["rounds"]
    org = members[0]
    leaf = reward_leaf(org.address, 40)
    rid = finalized_round([org], rewards_root="0x" + leaf.hex(), budget=40)
    rounds.claimReward(rid, 40, [], {"from": org})
    rounds.replaceSubmission(rid, org, b32("n"), 1, b32("d"), 1, {"from": replacer})
    assert rounds.hasClaimed(rid, org)
    assert rounds.commitmentOf(rid, org) == rounds.submissionCommitment(b32("n"), 1, b32("d"))


# --- Registry ranges ---------------------------------------------------------------------------


@pytest.mark.view_coverage
def test_a_range_starting_inside_the_latest_one_extends_it(registry, replacer, open_round, members):
    org = members[0]
    for _ in range(3):
        open_round()
    registry.revokeFrom(org, 2, 1, {"from": replacer})  # [2, 3]
    open_round()
    registry.revokeFrom(org, 3, 2, {"from": replacer})  # starts inside: [2, 4]
    assert plain(registry.revokedRanges(org)) == ((2,), (4,))
    assert [registry.isRevoked(r, org) for r in range(1, 6)] == [False, True, True, True, False]


# --- Unlearning --------------------------------------------------------------------------------


def test_requests_need_a_round_and_something_left(protocol, members, finalized_round, staked_aggregator):
    u = protocol["unlearning"]
    with brownie.reverts(err("UnlearningNoContribution", members[0], ORG, ZERO32)):
        u.requestUnlearning(members[0], ORG, ZERO32, b32("r"), {"from": members[0]})  # no round yet
    finalized_round([members[0]])
    req = int(u.requestUnlearning(members[0], ORG, ZERO32, b32("r"), {"from": members[0]}).return_value)
    u.completeUnlearning(req, b32("m"), b32("x"), b32("m"), {"from": staked_aggregator})
    with brownie.reverts(err("UnlearningNoContribution", members[0], SAMPLES, b32("s"))):
        u.requestUnlearning(members[0], SAMPLES, b32("s"), b32("r"), {"from": members[0]})


def test_an_acknowledged_request_whose_target_died_is_closed_and_unlocked(
    protocol, finalized_round, members, staked_aggregator, rando
):
    u, staking = protocol["unlearning"], protocol["staking"]
    org = members[0]
    rid = finalized_round([org])
    by_round = int(u.requestUnlearning(org, ROUND, rid32(rid), b32("r"), {"from": org}).return_value)
    by_samples = int(u.requestUnlearning(org, SAMPLES, b32("s"), b32("r"), {"from": org}).return_value)
    u.acknowledge(by_round, {"from": staked_aggregator})
    by_org = int(u.requestUnlearning(org, ORG, ZERO32, b32("r"), {"from": org}).return_value)
    u.completeUnlearning(by_org, b32("m"), b32("x"), b32("m"), {"from": staked_aggregator})
    assert staking.lockedOf(staked_aggregator) == SLASH_AMOUNT
    tx = u.closeRequest(by_round, {"from": rando})
    assert tx.events["StakeUnlocked"]["amount"] == SLASH_AMOUNT
    # a Samples request of an org whose contributions are all revoked is closed as well
    assert not u.hasLiveTarget(by_samples)
    u.closeRequest(by_samples, {"from": rando})
    with brownie.reverts(err("UnlearningWrongState", by_samples, 5)):
        u.replaceContribution(by_samples, rid, b32("n"), 1, b32("d"), {"from": org})


def test_acknowledging_a_dead_target_reverts(protocol, finalized_round, members, staked_aggregator):
    u = protocol["unlearning"]
    org = members[0]
    rid = finalized_round([org])
    by_round = int(u.requestUnlearning(org, ROUND, rid32(rid), b32("r"), {"from": org}).return_value)
    by_org = int(u.requestUnlearning(org, ORG, ZERO32, b32("r"), {"from": org}).return_value)
    u.completeUnlearning(by_org, b32("m"), b32("x"), b32("m"), {"from": staked_aggregator})
    with brownie.reverts(err("UnlearningNoContribution", org, ROUND, rid32(rid))):
        u.acknowledge(by_round, {"from": staked_aggregator})


def test_replace_contribution_refusals(protocol, finalized_round, members):
    u = protocol["unlearning"]
    org = members[0]
    rid = finalized_round([org])
    by_round = int(u.requestUnlearning(org, ROUND, rid32(rid), b32("r"), {"from": org}).return_value)
    with brownie.reverts(err("UnlearningWrongScope", by_round, ROUND)):
        u.replaceContribution(by_round, rid, b32("n"), 1, b32("d"), {"from": org})
    req = int(u.requestUnlearning(org, SAMPLES, b32("s"), b32("r"), {"from": org}).return_value)
    deadline = u.getRequest(req)[3]
    advance(RESPONSE_WINDOW + 1)
    with brownie.reverts(err("UnlearningDeadlinePassed", req, deadline)):
        u.replaceContribution(req, rid, b32("n"), 1, b32("d"), {"from": org})


def test_an_answered_samples_request_that_expires_refunds_the_bond(protocol, finalized_round, members, rando):
    u = protocol["unlearning"]
    org = members[0]
    rid = finalized_round([org])
    req = int(u.requestUnlearning(org, SAMPLES, b32("s"), b32("r"), {"from": org}).return_value)
    u.replaceContribution(req, rid, b32("n"), 1, b32("d"), {"from": org})
    advance(RESPONSE_WINDOW + 1)
    tx = u.slashMissed(req, {"from": rando})
    assert tx.events["RequestSettled"]["refunded"] > 0 and "AggregatorSlashed" not in tx.events


def test_void_of_an_unacknowledged_request(protocol, finalized_round, members, gov):
    u = protocol["unlearning"]
    finalized_round([members[0]])
    req = int(u.requestUnlearning(members[0], ORG, ZERO32, b32("r"), {"from": members[0]}).return_value)
    tx = u.voidRequest(req, b32("junk"), {"from": gov})
    assert tx.events["RequestSettled"]["state"] == 6 and "StakeUnlocked" not in tx.events
    with brownie.reverts(err("UnlearningWrongState", req, 6)):
        u.voidRequest(req, b32("junk"), {"from": gov})


def test_a_zero_bond_deployment_moves_no_tokens(
    protocol, finalized_round, members, staked_aggregator, gov, token, membership, staking, registry, rounds
):
    u = Unlearning.deploy(membership, staking, registry, rounds, RESPONSE_WINDOW, SLASH_AMOUNT, 0, {"from": gov})
    _share_pc_maps()
    registry.grantRole(registry.REGISTRAR_ROLE(), u, {"from": gov})
    registry.grantRole(registry.REVOKER_ROLE(), u, {"from": gov})
    staking.grantRole(staking.LOCKER_ROLE(), u, {"from": gov})
    finalized_round([members[0]])
    tx = u.requestUnlearning(members[0], ORG, ZERO32, b32("r"), {"from": members[0]})
    assert "Transfer" not in tx.events
    tx = u.completeUnlearning(int(tx.return_value), b32("m"), b32("x"), b32("m"), {"from": staked_aggregator})
    assert tx.events["RequestSettled"]["refunded"] == 0 and "Transfer" not in tx.events
