"""Rounds: open -> submit -> close -> reject -> finalize (O(1)) -> claim with Merkle proofs."""

import brownie
import pytest
from conftest import CLAIM_WINDOW, MAX_SAMPLES, REWARD_POOL, ROUND_SECONDS, ZERO32, advance, b32, err, now, plain

from eth_abi import encode as abi_encode
from eth_utils import keccak

from orchestrator.merkle import MerkleTree, reward_leaf

OPEN, CLOSED, FINALIZED, CANCELLED = 1, 2, 3, 4
M = MAX_SAMPLES


def commitment(cid, num_samples, data_commitment):
    """The one-slot submission commitment, recomputed the way a Python client does."""
    raw = abi_encode(["bytes32", "uint64", "bytes32"], [bytes.fromhex(cid[2:]), num_samples, bytes.fromhex(data_commitment[2:])])
    return "0x" + ((int.from_bytes(keccak(raw), "big") & ~3).to_bytes(32, "big")).hex()


def hexs(values):
    return ["0x" + v.hex() for v in values]


# --- open --------------------------------------------------------------------------------------


def test_open_round_reserves_budget_and_emits(protocol, staked_aggregator):
    rounds = protocol["rounds"]
    deadline = now() + ROUND_SECONDS
    tx = rounds.openRound(b32("cfg"), deadline, 1000, M, {"from": staked_aggregator})
    assert tx.return_value == 1
    assert tx.events["RoundOpened"] == {
        "roundId": 1,
        "configCid": b32("cfg"),
        "deadline": deadline,
        "rewardBudget": 1000,
        "maxSamples": M,
    }
    assert plain(rounds.getRound(1)) == (OPEN, deadline, 0, b32("cfg"), ZERO32, ZERO32, 1000, 0)
    assert rounds.roundCount() == 1
    assert rounds.rewardPool() == REWARD_POOL - 1000


def test_governor_can_open_a_round(protocol, gov, open_round):
    rounds = protocol["rounds"]
    tx = rounds.openRound(b32("cfg"), now() + 100, 0, M, {"from": gov})
    assert tx.return_value == 1
    assert open_round() == 2  # ids are consecutive


def test_open_round_by_non_aggregator_reverts(protocol, members):
    with brownie.reverts(err("RoundsNotAggregator", members[0])):
        protocol["rounds"].openRound(b32("cfg"), now() + 100, 0, M, {"from": members[0]})


def test_open_round_with_past_deadline_reverts(protocol, staked_aggregator):
    deadline = now() - 10
    with brownie.reverts(revert_pattern=rf"RoundsDeadlineInPast: {deadline}, \d+"):
        protocol["rounds"].openRound(b32("cfg"), deadline, 0, M, {"from": staked_aggregator})
    assert protocol["rounds"].roundCount() == 0


def test_open_round_with_zero_config_cid_reverts(protocol, staked_aggregator):
    with brownie.reverts(err("RoundsZeroConfigCid")):
        protocol["rounds"].openRound(ZERO32, now() + 100, 0, M, {"from": staked_aggregator})


def test_open_round_over_the_pool_reverts(protocol, staked_aggregator):
    with brownie.reverts(err("RoundsInsufficientRewardPool", REWARD_POOL + 1, REWARD_POOL)):
        protocol["rounds"].openRound(
            b32("cfg"), now() + 100, REWARD_POOL + 1, M, {"from": staked_aggregator}
        )


def test_fund_rewards_by_anyone(protocol, outsider):
    token, rounds = protocol["token"], protocol["rounds"]
    token.approve(rounds, 77, {"from": outsider})
    tx = rounds.fundRewards(77, {"from": outsider})
    assert tx.events["RewardsFunded"] == {
        "funder": outsider,
        "amount": 77,
        "pool": REWARD_POOL + 77,
    }
    assert token.balanceOf(rounds) == REWARD_POOL + 77


def test_fund_rewards_zero_reverts(protocol, outsider):
    with brownie.reverts(err("RoundsZeroAmount")):
        protocol["rounds"].fundRewards(0, {"from": outsider})


# --- submit ------------------------------------------------------------------------------------


def test_submit_update_records_contribution(protocol, open_round, members):
    rounds, org = protocol["rounds"], members[0]
    rid = open_round()
    tx = rounds.submitUpdate(rid, b32("cid"), 42, b32("commit"), {"from": org})
    assert tx.events["UpdateSubmitted"] == {
        "roundId": rid,
        "org": org,
        "adapterCid": b32("cid"),
        "numSamples": 42,
        "dataCommitment": b32("commit"),
    }
    assert rounds.hasSubmitted(rid, org)
    assert plain(rounds.commitmentOf(rid, org)) == commitment(b32("cid"), 42, b32("commit"))
    assert plain(rounds.submissionCommitment(b32("cid"), 42, b32("commit"))) == commitment(
        b32("cid"), 42, b32("commit")
    )
    assert rounds.getRound(rid)[2] == 1
    assert plain(rounds.commitmentOf(rid, members[1])) == ZERO32


@pytest.mark.view_coverage
def test_submit_over_the_round_sample_cap_reverts(protocol, open_round, members):
    rounds = protocol["rounds"]
    rid = open_round(max_samples=500)
    assert plain(rounds.roundTerms(rid)) == (500, 0, 0)
    with brownie.reverts(err("RoundsTooManySamples", rid, 501, 500)):
        rounds.submitUpdate(rid, b32("cid"), 501, b32("c"), {"from": members[0]})
    rounds.submitUpdate(rid, b32("cid"), 500, b32("c"), {"from": members[0]})


def test_open_round_with_zero_sample_cap_reverts(protocol, staked_aggregator):
    with brownie.reverts(err("RoundsZeroMaxSamples")):
        protocol["rounds"].openRound(b32("cfg"), now() + 100, 0, 0, {"from": staked_aggregator})


def test_submit_twice_in_a_round_reverts(protocol, open_round, submit, members):
    rid = open_round()
    submit(rid, members[0])
    with brownie.reverts(err("RoundsAlreadySubmitted", rid, members[0])):
        protocol["rounds"].submitUpdate(rid, b32("other"), 1, b32("c"), {"from": members[0]})


def test_submit_after_deadline_reverts(protocol, open_round, members):
    rid = open_round()
    deadline = protocol["rounds"].getRound(rid)[1]
    advance(ROUND_SECONDS + 1)
    with brownie.reverts(err("RoundsDeadlinePassed", rid, deadline)):
        protocol["rounds"].submitUpdate(rid, b32("cid"), 1, b32("c"), {"from": members[0]})


def test_submit_by_non_member_reverts(protocol, open_round, outsider, funded, stake_for):
    rid = open_round()
    stake_for(outsider, 10**21)  # stake alone does not make a member
    with brownie.reverts(err("RoundsNotMember", outsider)):
        protocol["rounds"].submitUpdate(rid, b32("cid"), 1, b32("c"), {"from": outsider})


def test_removed_member_cannot_submit(protocol, open_round, members, gov):
    rid = open_round()
    protocol["membership"].removeMember(members[0], b32("r"), {"from": gov})
    with brownie.reverts(err("RoundsNotMember", members[0])):
        protocol["rounds"].submitUpdate(rid, b32("cid"), 1, b32("c"), {"from": members[0]})


def test_submit_to_unknown_round_reverts(protocol, members):
    with brownie.reverts(err("RoundsUnknownRound", 99)):
        protocol["rounds"].submitUpdate(99, b32("cid"), 1, b32("c"), {"from": members[0]})


def test_submit_zero_values_revert(protocol, open_round, members):
    rounds, rid, org = protocol["rounds"], open_round(), members[0]
    with brownie.reverts(err("RoundsZeroAdapterCid", rid)):
        rounds.submitUpdate(rid, ZERO32, 1, b32("c"), {"from": org})
    with brownie.reverts(err("RoundsZeroNumSamples", rid)):
        rounds.submitUpdate(rid, b32("cid"), 0, b32("c"), {"from": org})
    with brownie.reverts(err("RoundsZeroDataCommitment", rid)):
        rounds.submitUpdate(rid, b32("cid"), 1, ZERO32, {"from": org})
    assert not rounds.hasSubmitted(rid, org)


def test_same_cid_is_per_org_and_round(protocol, open_round, members):
    rounds = protocol["rounds"]
    r1, r2 = open_round(), open_round()
    rounds.submitUpdate(r1, b32("cid"), 1, b32("c"), {"from": members[0]})
    rounds.submitUpdate(r1, b32("cid"), 1, b32("c2"), {"from": members[1]})
    rounds.submitUpdate(r2, b32("cid"), 1, b32("c2"), {"from": members[0]})
    assert rounds.commitmentOf(r1, members[0]) != rounds.commitmentOf(r1, members[1])


def test_submit_to_closed_round_reverts(protocol, open_round, members, staked_aggregator):
    rid = open_round()
    protocol["rounds"].closeRound(rid, {"from": staked_aggregator})
    with brownie.reverts(err("RoundsNotOpen", rid, CLOSED)):
        protocol["rounds"].submitUpdate(rid, b32("cid"), 1, b32("c"), {"from": members[0]})


# --- close / reject ----------------------------------------------------------------------------


def test_close_round_by_aggregator_before_deadline(
    protocol, open_round, submit, members, staked_aggregator
):
    rid = open_round()
    submit(rid, members[0])
    submit(rid, members[1])
    tx = protocol["rounds"].closeRound(rid, {"from": staked_aggregator})
    assert tx.events["RoundClosed"] == {"roundId": rid, "numSubmissions": 2}
    assert protocol["rounds"].getRound(rid)[0] == CLOSED


def test_anyone_closes_after_deadline_not_before(protocol, open_round, rando):
    rid = open_round()
    deadline = protocol["rounds"].getRound(rid)[1]
    with brownie.reverts(err("RoundsDeadlineNotReached", rid, deadline)):
        protocol["rounds"].closeRound(rid, {"from": rando})
    advance(ROUND_SECONDS + 1)
    tx = protocol["rounds"].closeRound(rid, {"from": rando})
    assert tx.events["RoundClosed"]["roundId"] == rid


def test_close_twice_or_unknown_reverts(protocol, open_round, staked_aggregator):
    rid = open_round()
    protocol["rounds"].closeRound(rid, {"from": staked_aggregator})
    with brownie.reverts(err("RoundsNotOpen", rid, CLOSED)):
        protocol["rounds"].closeRound(rid, {"from": staked_aggregator})
    with brownie.reverts(err("RoundsUnknownRound", 5)):
        protocol["rounds"].closeRound(5, {"from": staked_aggregator})


def test_reject_submission_while_closed(protocol, open_round, submit, members, staked_aggregator):
    rounds, rid = protocol["rounds"], open_round()
    submit(rid, members[0])
    rounds.closeRound(rid, {"from": staked_aggregator})
    tx = rounds.rejectSubmission(rid, members[0], b32("tampered"), {"from": staked_aggregator})
    assert tx.events["SubmissionRejected"] == {
        "roundId": rid,
        "org": members[0],
        "reasonHash": b32("tampered"),
    }
    assert rounds.isRejected(rid, members[0])
    assert rounds.numRejected(rid) == 1
    # the rejected flag does not change the commitment the view reports
    cid, commit = b32(f"adapter:{rid}:{members[0].address}"), b32(f"data:{rid}:{members[0].address}")
    assert plain(rounds.commitmentOf(rid, members[0])) == commitment(cid, 100, commit)
    with brownie.reverts(err("RoundsAlreadyRejected", rid, members[0])):
        rounds.rejectSubmission(rid, members[0], b32("again"), {"from": staked_aggregator})


def test_reject_failures(protocol, open_round, submit, members, staked_aggregator):
    rounds, rid = protocol["rounds"], open_round()
    submit(rid, members[0])
    with brownie.reverts(err("RoundsNotClosed", rid, OPEN)):
        rounds.rejectSubmission(rid, members[0], b32("r"), {"from": staked_aggregator})
    rounds.closeRound(rid, {"from": staked_aggregator})
    with brownie.reverts(err("RoundsNotAggregator", members[1])):
        rounds.rejectSubmission(rid, members[0], b32("r"), {"from": members[1]})
    with brownie.reverts(err("RoundsNoSubmission", rid, members[1])):
        rounds.rejectSubmission(rid, members[1], b32("r"), {"from": staked_aggregator})


# --- finalize ----------------------------------------------------------------------------------


def test_finalize_records_version_with_latest_parent(
    protocol, open_round, submit, members, staked_aggregator
):
    rounds, registry = protocol["rounds"], protocol["registry"]
    rid = open_round()
    submit(rid, members[0])
    rounds.closeRound(rid, {"from": staked_aggregator})
    tx = rounds.finalizeRound(
        rid, b32("model"), b32("root"), 0, b32("metrics"), {"from": staked_aggregator}
    )
    assert tx.return_value == 1
    assert tx.events["RoundFinalized"] == {
        "roundId": rid,
        "versionId": 1,
        "modelCid": b32("model"),
        "rewardsRoot": b32("root"),
        "rewardsTotal": 0,
        "metricsHash": b32("metrics"),
    }
    assert tx.events["VersionRecorded"] == {
        "versionId": 1,
        "parentVersion": 0,
        "roundId": rid,
        "modelCid": b32("model"),
        "metricsHash": b32("metrics"),
    }
    state, _, n, _, model, root, _, _ = plain(rounds.getRound(rid))
    assert (state, n, model, root) == (FINALIZED, 1, b32("model"), b32("root"))
    assert rounds.versionOf(rid) == 1
    assert plain(registry.getVersion(1))[:3] == (b32("model"), 0, rid)


def test_second_finalized_round_is_child_of_first(protocol, finalized_round, members):
    r1 = finalized_round([members[0]])
    r2 = finalized_round([members[1]])
    registry = protocol["registry"]
    assert plain(registry.getVersion(2))[1:3] == (1, r2)
    assert plain(registry.getVersion(1))[1:3] == (0, r1)
    assert plain(registry.lineage(2)) == (1, 0)


def test_finalize_twice_reverts(protocol, finalized_round, members, staked_aggregator):
    rid = finalized_round([members[0]])
    with brownie.reverts(err("RoundsNotClosed", rid, FINALIZED)):
        protocol["rounds"].finalizeRound(rid, b32("m"), ZERO32, 0, ZERO32, {"from": staked_aggregator})


def test_finalize_open_round_reverts(protocol, open_round, staked_aggregator):
    rid = open_round()
    with brownie.reverts(err("RoundsNotClosed", rid, OPEN)):
        protocol["rounds"].finalizeRound(rid, b32("m"), ZERO32, 0, ZERO32, {"from": staked_aggregator})


def test_finalize_by_non_aggregator_and_zero_model_revert(
    protocol, open_round, staked_aggregator, members
):
    rounds, rid = protocol["rounds"], open_round()
    rounds.closeRound(rid, {"from": staked_aggregator})
    with brownie.reverts(err("RoundsNotAggregator", members[0])):
        rounds.finalizeRound(rid, b32("m"), ZERO32, 0, ZERO32, {"from": members[0]})
    with brownie.reverts(err("RoundsZeroModelCid", rid)):
        rounds.finalizeRound(rid, ZERO32, ZERO32, 0, ZERO32, {"from": staked_aggregator})
    assert rounds.getRound(rid)[0] == CLOSED


def test_finalize_without_registrar_role_reverts_atomically(
    protocol, open_round, staked_aggregator, gov
):
    rounds, registry = protocol["rounds"], protocol["registry"]
    registry.revokeRole(registry.REGISTRAR_ROLE(), rounds, {"from": gov})
    rid = open_round()
    rounds.closeRound(rid, {"from": staked_aggregator})
    with brownie.reverts(
        err("AccessControlUnauthorizedAccount", rounds, registry.REGISTRAR_ROLE())
    ):
        rounds.finalizeRound(rid, b32("m"), ZERO32, 0, ZERO32, {"from": staked_aggregator})
    assert rounds.getRound(rid)[0] == CLOSED  # no partial state


# --- claim -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rewards(members):
    amounts = {members[0].address: 300, members[1].address: 200, members[2].address: 100}
    tree = MerkleTree.build([reward_leaf(org, amount) for org, amount in amounts.items()])
    return amounts, tree


@pytest.fixture(scope="module")
def rewarded_round(finalized_round, members, rewards):
    amounts, tree = rewards
    return finalized_round(
        members[:3], rewards_root="0x" + tree.root.hex(), budget=sum(amounts.values())
    )


def proof_for(tree, org, amount):
    return hexs(tree.proof(reward_leaf(org.address, amount)))


def test_claim_reward_with_python_built_proof(protocol, rewarded_round, rewards, members):
    amounts, tree = rewards
    token, rounds, org = protocol["token"], protocol["rounds"], members[0]
    before = token.balanceOf(org)
    tx = rounds.claimReward(rewarded_round, 300, proof_for(tree, org, 300), {"from": org})
    assert tx.events["RewardClaimed"] == {"roundId": rewarded_round, "org": org, "amount": 300}
    assert token.balanceOf(org) == before + 300
    assert rounds.hasClaimed(rewarded_round, org)
    assert rounds.getRound(rewarded_round)[7] == 300


def test_all_orgs_claim_exactly_the_budget(protocol, rewarded_round, rewards, members):
    amounts, tree = rewards
    rounds = protocol["rounds"]
    for org in members[:3]:
        rounds.claimReward(
            rewarded_round,
            amounts[org.address],
            proof_for(tree, org, amounts[org.address]),
            {"from": org},
        )
    _, _, _, _, _, _, budget, claimed = plain(rounds.getRound(rewarded_round))
    assert claimed == budget == 600


def test_claim_twice_reverts(protocol, rewarded_round, rewards, members):
    _, tree = rewards
    rounds, org = protocol["rounds"], members[0]
    rounds.claimReward(rewarded_round, 300, proof_for(tree, org, 300), {"from": org})
    with brownie.reverts(err("RoundsAlreadyClaimed", rewarded_round, org)):
        rounds.claimReward(rewarded_round, 300, proof_for(tree, org, 300), {"from": org})


def test_proof_of_another_org_reverts(protocol, rewarded_round, rewards, members):
    _, tree = rewards
    with brownie.reverts(err("RoundsInvalidProof", rewarded_round, members[1], 300)):
        protocol["rounds"].claimReward(
            rewarded_round, 300, proof_for(tree, members[0], 300), {"from": members[1]}
        )


def test_inflated_amount_reverts(protocol, rewarded_round, rewards, members):
    _, tree = rewards
    with brownie.reverts(err("RoundsInvalidProof", rewarded_round, members[0], 301)):
        protocol["rounds"].claimReward(
            rewarded_round, 301, proof_for(tree, members[0], 300), {"from": members[0]}
        )


def test_empty_proof_reverts(protocol, rewarded_round, members):
    with brownie.reverts(err("RoundsInvalidProof", rewarded_round, members[0], 300)):
        protocol["rounds"].claimReward(rewarded_round, 300, [], {"from": members[0]})


def test_non_submitter_cannot_claim(protocol, rewarded_round, members):
    with brownie.reverts(err("RoundsNoSubmission", rewarded_round, members[3])):
        protocol["rounds"].claimReward(rewarded_round, 1, [], {"from": members[3]})


def test_claim_before_finalize_reverts(protocol, open_round, submit, members):
    rid = open_round()
    submit(rid, members[0])
    with brownie.reverts(err("RoundsNotFinalized", rid, OPEN)):
        protocol["rounds"].claimReward(rid, 1, [], {"from": members[0]})
    with brownie.reverts(err("RoundsUnknownRound", 42)):
        protocol["rounds"].claimReward(42, 1, [], {"from": members[0]})


def test_claims_never_exceed_budget(protocol, finalized_round, members):
    # The aggregator's tree promises 500 + 400 but the round only reserved 600.
    amounts = {members[0].address: 500, members[1].address: 400}
    tree = MerkleTree.build([reward_leaf(o, a) for o, a in amounts.items()])
    rid = finalized_round(members[:2], rewards_root="0x" + tree.root.hex(), budget=600)
    rounds = protocol["rounds"]
    rounds.claimReward(rid, 500, proof_for(tree, members[0], 500), {"from": members[0]})
    with brownie.reverts(err("RoundsBudgetExceeded", rid, 400, 100)):
        rounds.claimReward(rid, 400, proof_for(tree, members[1], 400), {"from": members[1]})
    assert protocol["token"].balanceOf(rounds) == REWARD_POOL - 500


def test_single_leaf_tree_claims_with_empty_proof(protocol, finalized_round, members):
    leaf = reward_leaf(members[0].address, 50)
    rid = finalized_round([members[0]], rewards_root="0x" + leaf.hex(), budget=50)
    tx = protocol["rounds"].claimReward(rid, 50, [], {"from": members[0]})
    assert tx.events["RewardClaimed"]["amount"] == 50


def test_claim_zero_reverts(protocol, rewarded_round, members):
    with brownie.reverts(err("RoundsZeroAmount")):
        protocol["rounds"].claimReward(rewarded_round, 0, [], {"from": members[0]})


def test_views_report_wiring(protocol, gov):
    rounds = protocol["rounds"]
    assert (rounds.claimWindow(), rounds.token(), rounds.membership(), rounds.registry()) == (
        CLAIM_WINDOW,
        protocol["token"].address,
        protocol["membership"].address,
        protocol["registry"].address,
    )


def test_unknown_round_reverts_everywhere(protocol, staked_aggregator, members):
    rounds = protocol["rounds"]
    with brownie.reverts(err("RoundsUnknownRound", 3)):
        rounds.rejectSubmission(3, members[0], b32("r"), {"from": staked_aggregator})
    with brownie.reverts(err("RoundsUnknownRound", 3)):
        rounds.finalizeRound(3, b32("m"), ZERO32, 0, ZERO32, {"from": staked_aggregator})
    assert plain(rounds.getRound(3)) == (0, 0, 0, ZERO32, ZERO32, ZERO32, 0, 0)
