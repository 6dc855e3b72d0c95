"""Token-moving functions refuse re-entry (ReentrancyGuardTransient).

Uses contracts/test/ReentrantToken.sol, a mock: the real LedgerToken has no hook, so a re-entrant
token transfer cannot be produced otherwise.
"""

import brownie
import pytest
from brownie import ReentrantToken, Rounds, Staking
from conftest import CLAIM_WINDOW, UNBOND_DELAY, advance, err

AMOUNT = 1000


@pytest.fixture(scope="module")
def evil(gov):
    return ReentrantToken.deploy(gov, 10**24, {"from": gov})


def test_withdraw_cannot_be_reentered(evil, gov, orgs):
    staking = Staking.deploy(evil, gov, UNBOND_DELAY, {"from": gov})
    staker = orgs[0]
    evil.transfer(staker, AMOUNT, {"from": gov})
    evil.approve(staking, AMOUNT, {"from": staker})
    staking.stake(AMOUNT, {"from": staker})
    staking.requestUnbond(AMOUNT, {"from": staker})
    advance(UNBOND_DELAY + 1)
    evil.arm(staking, staking.withdraw.encode_input(), {"from": staker})
    with brownie.reverts(err("ReentrancyGuardReentrantCall")):
        staking.withdraw({"from": staker})
    assert staking.pendingUnbond(staker)[0] == AMOUNT  # nothing paid out twice, nothing lost
    assert evil.balanceOf(staking) == AMOUNT


def test_fund_rewards_cannot_be_reentered(evil, gov, membership, registry):
    rounds = Rounds.deploy(evil, membership, registry, CLAIM_WINDOW, {"from": gov})
    evil.approve(rounds, 2 * AMOUNT, {"from": gov})
    evil.arm(rounds, rounds.fundRewards.encode_input(AMOUNT), {"from": gov})
    with brownie.reverts(err("ReentrancyGuardReentrantCall")):
        rounds.fundRewards(AMOUNT, {"from": gov})
    assert rounds.rewardPool() == 0
