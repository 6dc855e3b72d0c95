"""One test per finding of the protocol v2 security review (issue 9), named after it.

Each test plays the attack or the failure the finding describes and asserts what must hold
afterwards; on the v1 contracts each of them fails.
"""

import brownie
import pytest
from brownie import Unlearning
from conftest import (
    ORG_SCOPE,
    ROUND_SCOPE,
    SAMPLES_SCOPE,
    ANCHOR_MAX_RANGE,
    CLAIM_WINDOW,
    MIN_STAKE,
    REQUEST_BOND,
    RESPONSE_WINDOW,
    REWARD_POOL,
    SLASH_AMOUNT,
    UNBOND_DELAY,
    ZERO32,
    advance,
    b32,
    err,
    now,
    rid32,
)
from eth_abi import encode as abi_encode
from eth_utils import keccak

from orchestrator.merkle import MerkleTree, hash_pair, reward_leaf

ORG, ROUND, SAMPLES = ORG_SCOPE, ROUND_SCOPE, SAMPLES_SCOPE
SLASHED, CLOSED, EXPIRED = 4, 5, 7


def h(b):
    return "0x" + bytes(b).hex()


def test_finding_01_requests_are_bonded_unique_and_junk_cannot_slash(
    protocol, finalized_round, members, staked_aggregator, gov, rando
):
    u, token, staking = protocol["unlearning"], protocol["token"], protocol["staking"]
    u.setDefaultAggregator(staked_aggregator, {"from": gov})
    org = members[0]
    r1 = finalized_round([org])
    # a bond is pulled from the requester
    before = token.balanceOf(org)
    req = int(u.requestUnlearning(org, SAMPLES, b32("junk"), b32("r"), {"from": org}).return_value)
    assert token.balanceOf(org) == before - REQUEST_BOND
    # at most one pending request per (org, scope, target)
    with brownie.reverts(err("UnlearningDuplicate", req)):
        u.requestUnlearning(org, SAMPLES, b32("junk"), b32("r"), {"from": org})
    # the executor cannot answer a Samples request (the org must): it cannot even acknowledge it...
    with brownie.reverts(err("UnlearningWrongScope", req, SAMPLES)):
        u.acknowledge(req, {"from": staked_aggregator})
    # ...and an unanswered one never costs the aggregator anything; the idle requester loses its bond
    by_round = int(u.requestUnlearning(org, ROUND, rid32(r1), b32("r"), {"from": org}).return_value)
    by_org = int(u.requestUnlearning(org, ORG, ZERO32, b32("r"), {"from": org}).return_value)
    u.completeUnlearning(by_org, b32("clean"), b32("x"), b32("m"), {"from": staked_aggregator})
    advance(RESPONSE_WINDOW + 1)
    tx = u.slashMissed(req, {"from": rando})
    assert "AggregatorSlashed" not in tx.events
    assert tx.events["RequestSettled"]["state"] == EXPIRED
    assert tx.events["RequestSettled"]["forfeited"] == REQUEST_BOND
    # a request whose target has nothing live left is closed without a slash
    tx = u.slashMissed(by_round, {"from": rando})
    assert "AggregatorSlashed" not in tx.events and tx.events["RequestSettled"]["state"] == CLOSED
    assert staking.stakeOf(staked_aggregator) == MIN_STAKE
    # somebody with no tokens cannot post junk at all
    with brownie.reverts():
        u.requestUnlearning(rando, ORG, ZERO32, b32("r"), {"from": rando})


def test_finding_02_round_scope_revokes_every_later_contribution_descending_from_it(
    protocol, finalized_round, members, staked_aggregator
):
    u, registry = protocol["unlearning"], protocol["registry"]
    org, other = members[0], members[1]
    r1 = finalized_round([org, other])
    r2 = finalized_round([org, other])
    r3 = finalized_round([org])
    req = int(u.requestUnlearning(org, ROUND, rid32(r2), b32("r"), {"from": org}).return_value)
    u.completeUnlearning(req, b32("clean"), b32("x"), b32("m"), {"from": staked_aggregator})
    assert [registry.isRevoked(r, org) for r in (r1, r2, r3)] == [False, True, True]
    assert [registry.isLive(r, org) for r in (r1, r2, r3)] == [True, False, False]
    assert registry.isLive(r2, other)


def _complete_org_removal_gas(protocol, org, staked_aggregator):
    u = protocol["unlearning"]
    req = int(u.requestUnlearning(org, ORG, ZERO32, b32("r"), {"from": org}).return_value)
    return u.completeUnlearning(req, b32("clean"), b32("x"), b32("m"), {"from": staked_aggregator}).gas_used


@pytest.mark.slow
def test_finding_03_org_removal_costs_the_same_gas_whatever_the_history(
    protocol, open_round, submit, members, staked_aggregator
):
    short, long, warm = members[0], members[1], members[2]
    for org in (short, warm):
        submit(open_round(), org)
    for _ in range(12):
        submit(open_round(), long)
    # the registry's first version writes fresh slots that later versions only update
    _complete_org_removal_gas(protocol, warm, staked_aggregator)
    gas_short = _complete_org_removal_gas(protocol, short, staked_aggregator)
    gas_long = _complete_org_removal_gas(protocol, long, staked_aggregator)
    # v1 looped over every round of the org (~30k gas each): 11 more rounds were ~330k more
    assert abs(gas_long - gas_short) < 2_000, (gas_short, gas_long)


def test_finding_04_a_copied_cid_does_not_block_or_displace_the_victim(protocol, open_round, members):
    rounds = protocol["rounds"]
    victim, copier = members[0], members[1]
    rid = open_round()
    cid = b32("victim-adapter")
    rounds.submitUpdate(rid, cid, 10, b32("copier-data"), {"from": copier})  # front-runs
    tx = rounds.submitUpdate(rid, cid, 10, b32("victim-data"), {"from": victim})
    assert tx.events["UpdateSubmitted"]["org"] == victim
    assert rounds.commitmentOf(rid, victim) == rounds.submissionCommitment(cid, 10, b32("victim-data"))


def test_finding_05_num_samples_is_capped_per_round(protocol, open_round, members):
    rounds = protocol["rounds"]
    rid = open_round(max_samples=10_000)
    with brownie.reverts(err("RoundsTooManySamples", rid, 2**64 - 1, 10_000)):
        rounds.submitUpdate(rid, b32("cid"), 2**64 - 1, b32("d"), {"from": members[0]})
    rounds.submitUpdate(rid, b32("cid"), 10_000, b32("d"), {"from": members[0]})


def test_finding_06_reserved_budgets_always_return_to_the_pool(
    protocol, open_round, submit, members, staked_aggregator, rando
):
    rounds = protocol["rounds"]
    # a round opened with the whole pool and no submissions is cancelled
    empty = open_round(REWARD_POOL)
    assert rounds.rewardPool() == 0
    rounds.cancelRound(empty, {"from": staked_aggregator})
    assert rounds.rewardPool() == REWARD_POOL
    # the rewards tree's total may not exceed the budget; the remainder returns at finalize
    rid = open_round(1_000)
    submit(rid, members[0])
    submit(rid, members[1])
    rounds.closeRound(rid, {"from": staked_aggregator})
    tree = MerkleTree.build([reward_leaf(members[0].address, 300), reward_leaf(members[1].address, 100)])
    with brownie.reverts(err("RoundsRewardsExceedBudget", rid, 1_001, 1_000)):
        rounds.finalizeRound(rid, b32("m"), h(tree.root), 1_001, ZERO32, {"from": staked_aggregator})
    rounds.finalizeRound(rid, b32("m"), h(tree.root), 400, ZERO32, {"from": staked_aggregator})
    assert rounds.rewardPool() == REWARD_POOL - 400
    # what is not claimed within the claim window returns too
    rounds.claimReward(rid, 300, [h(p) for p in tree.proof(reward_leaf(members[0].address, 300))], {"from": members[0]})
    advance(CLAIM_WINDOW + 1)
    tx = rounds.sweepUnclaimed(rid, {"from": rando})
    assert tx.events["RewardsReturned"]["amount"] == 100
    assert rounds.rewardPool() == REWARD_POOL - 300
    assert protocol["token"].balanceOf(rounds) == REWARD_POOL - 300


def test_finding_07_governance_follows_the_membership_role_at_call_time(
    protocol, gov, rando, members, staked_aggregator
):
    m, rounds, u = protocol["membership"], protocol["rounds"], protocol["unlearning"]
    successor = members[3]
    role = m.GOVERNOR_ROLE()
    m.grantRole(role, successor, {"from": gov})
    m.renounceRole(role, gov, {"from": gov})
    with brownie.reverts(err("UnlearningNotGovernor", gov)):
        u.setDefaultAggregator(gov, {"from": gov})
    with brownie.reverts(err("RoundsNotAggregator", gov)):
        rounds.openRound(b32("cfg"), now() + 100, 0, 100, {"from": gov})
    u.setDefaultAggregator(staked_aggregator, {"from": successor})
    rounds.openRound(b32("cfg"), now() + 100, 0, 100, {"from": successor})


def test_finding_08_a_member_stake_stays_locked_until_it_leaves(protocol, open_round, members):
    staking, m, rounds = protocol["staking"], protocol["membership"], protocol["rounds"]
    org = members[0]
    with brownie.reverts(err("StakingStakeLocked", org, MIN_STAKE, 0)):
        staking.requestUnbond(MIN_STAKE, {"from": org})
    tx = m.leave({"from": org})
    assert tx.events["MemberLeft"] == {"org": org, "unlockedStake": MIN_STAKE}
    staking.requestUnbond(MIN_STAKE, {"from": org})
    with brownie.reverts(err("RoundsNotMember", org)):
        rounds.submitUpdate(open_round(), b32("cid"), 1, b32("d"), {"from": org})


def test_finding_09_each_acknowledged_request_locks_the_slash_amount(
    protocol, finalized_round, members, staked_aggregator
):
    u, staking = protocol["unlearning"], protocol["staking"]
    rid = finalized_round(members[:3])
    reqs = [
        int(u.requestUnlearning(o, ROUND, rid32(rid), b32("r"), {"from": o}).return_value) for o in members[:3]
    ]
    for req in reqs[: MIN_STAKE // SLASH_AMOUNT]:
        u.acknowledge(req, {"from": staked_aggregator})
    assert staking.freeStakeOf(staked_aggregator) == MIN_STAKE - 2 * SLASH_AMOUNT
    with brownie.reverts(err("StakingInsufficientFreeStake", staked_aggregator, SLASH_AMOUNT, 0)):
        u.acknowledge(reqs[2], {"from": staked_aggregator})
    with brownie.reverts(err("StakingStakeLocked", staked_aggregator, 1, 0)):
        staking.requestUnbond(1, {"from": staked_aggregator})


def test_finding_10_an_aggregator_without_stake_cannot_run_rounds(protocol, gov, outsider):
    m, rounds = protocol["membership"], protocol["rounds"]
    m.grantRole(m.AGGREGATOR_ROLE(), outsider, {"from": gov})
    with brownie.reverts(err("RoundsNotAggregator", outsider)):
        rounds.openRound(b32("cfg"), now() + 100, 0, 100, {"from": outsider})
    assert not m.hasMinStake(gov)
    rounds.openRound(b32("cfg"), now() + 100, 0, 100, {"from": gov})  # the governor is excepted


def test_finding_11_a_rejected_submission_cannot_claim(protocol, open_round, submit, members, staked_aggregator):
    rounds = protocol["rounds"]
    org = members[0]
    rid = open_round(500)
    submit(rid, org)
    rounds.closeRound(rid, {"from": staked_aggregator})
    rounds.rejectSubmission(rid, org, b32("tampered"), {"from": staked_aggregator})
    leaf = reward_leaf(org.address, 500)  # a root that (wrongly) still lists it
    rounds.finalizeRound(rid, b32("m"), h(leaf), 500, ZERO32, {"from": staked_aggregator})
    with brownie.reverts(err("RoundsSubmissionRejected", rid, org)):
        rounds.claimReward(rid, 500, [], {"from": org})


def test_finding_12_a_response_window_longer_than_the_unbond_delay_is_refused(protocol, gov):
    with brownie.reverts(err("UnlearningWindowExceedsUnbond", UNBOND_DELAY + 1, UNBOND_DELAY)):
        Unlearning.deploy(
            protocol["membership"],
            protocol["staking"],
            protocol["registry"],
            protocol["rounds"],
            UNBOND_DELAY + 1,
            SLASH_AMOUNT,
            REQUEST_BOND,
            {"from": gov},
        )
    from orchestrator.chain.contracts import ProtocolParams  # the one deployment path's parameters

    with pytest.raises(ValueError, match="response_window .* exceeds unbond_delay"):
        ProtocolParams(unbond_delay=60, response_window=61)


def test_finding_13_the_answerable_aggregator_is_fixed_when_the_request_is_made(
    protocol, finalized_round, members, staked_aggregator, gov, outsider, stake_for, rando
):
    u, staking, m = protocol["unlearning"], protocol["staking"], protocol["membership"]
    m.grantRole(m.AGGREGATOR_ROLE(), outsider, {"from": gov})
    stake_for(outsider, MIN_STAKE)
    u.setDefaultAggregator(staked_aggregator, {"from": gov})
    rid = finalized_round([members[0]])
    req = int(u.requestUnlearning(members[0], ROUND, rid32(rid), b32("r"), {"from": members[0]}).return_value)
    u.setDefaultAggregator(outsider, {"from": gov})  # rotation after the request
    advance(RESPONSE_WINDOW + 1)
    tx = u.slashMissed(req, {"from": rando})
    assert tx.events["AggregatorSlashed"]["aggregator"] == staked_aggregator
    assert tx.events["RequestSettled"]["state"] == SLASHED
    assert staking.stakeOf(outsider) == MIN_STAKE


def test_finding_14_anchor_ranges_are_bounded_and_a_wrong_one_can_be_superseded(anchor, relayer, gov):
    src = 31337
    with brownie.reverts(err("AnchorRangeTooLong", 0, 2**64 - 2, ANCHOR_MAX_RANGE)):
        anchor.postRoot(src, 0, 2**64 - 2, b32("root"), {"from": relayer})
    anchor.postRoot(src, 0, 99, b32("ok"), {"from": relayer})
    anchor.postRoot(src, 100, 100 + ANCHOR_MAX_RANGE - 1, b32("wrong"), {"from": relayer})
    tx = anchor.supersede(2, b32("wrong range"), {"from": gov})
    assert tx.events["AnchorSuperseded"]["nextFrom"] == 100
    anchor.postRoot(src, 100, 150, b32("fixed"), {"from": relayer})  # anchoring goes on
    assert anchor.lastToBlock(src) == 150


def test_finding_15_verify_hashes_the_record_so_an_internal_node_is_no_leaf(anchor, relayer):
    records = [abi_encode(["uint256", "bytes32"], [i, keccak(text=f"event{i}")]) for i in range(4)]
    leaves = [keccak(keccak(r)) for r in records]
    tree = MerkleTree.build(leaves)
    anchor.postRoot(31337, 1, 10, h(tree.root), {"from": relayer})
    # the internal node over the first two leaves, with the sibling node as a one-step proof
    node01, node23 = tree.layers[1]
    assert hash_pair(node01, node23) == tree.root
    assert not anchor.verify(1, h(node01), [h(node23)])
    for record, leaf in zip(records, leaves, strict=True):
        assert anchor.verify(1, h(record), [h(p) for p in tree.proof(leaf)])
