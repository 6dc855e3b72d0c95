"""Staking: stake, unbond after a delay, withdraw, slash to the treasury; every failure by custom error."""

import brownie
import pytest
from conftest import MIN_STAKE, UNBOND_DELAY, ZERO32, advance, b32, err, plain

AMOUNT = 300 * 10**18


@pytest.fixture(scope="module")
def staker(funded, orgs):
    return orgs[0]


@pytest.fixture(scope="module")
def staked(stake_for, staker):
    stake_for(staker, AMOUNT)
    return staker


def test_stake_pulls_tokens_and_emits_staked(token, staking, stake_for, staker):
    before = token.balanceOf(staker)
    tx = stake_for(staker, AMOUNT)
    assert tx.events["Staked"] == {"account": staker, "amount": AMOUNT, "newStake": AMOUNT}
    tx = stake_for(staker, 5)
    assert tx.events["Staked"]["newStake"] == AMOUNT + 5
    assert staking.stakeOf(staker) == AMOUNT + 5
    assert token.balanceOf(staker) == before - AMOUNT - 5
    assert token.balanceOf(staking) == AMOUNT + 5 == staking.totalStaked()


def test_stake_zero_reverts(staking, staker):
    with brownie.reverts(err("StakingZeroAmount")):
        staking.stake(0, {"from": staker})


def test_stake_without_allowance_reverts_and_changes_nothing(token, staking, staker):
    with brownie.reverts(err("ERC20InsufficientAllowance", staking, 0, 10)):
        staking.stake(10, {"from": staker})
    assert staking.stakeOf(staker) == 0 and staking.totalStaked() == 0


def test_request_unbond_moves_stake_to_pending(staking, staked):
    tx = staking.requestUnbond(100, {"from": staked})
    available_at = tx.timestamp + UNBOND_DELAY
    assert tx.events["UnbondRequested"] == {
        "account": staked,
        "amount": 100,
        "availableAt": available_at,
    }
    assert staking.stakeOf(staked) == AMOUNT - 100
    assert plain(staking.pendingUnbond(staked)) == (100, available_at)
    assert staking.totalStaked() == AMOUNT - 100 and staking.totalPending() == 100
    assert staking.slashableOf(staked) == AMOUNT


def test_second_unbond_request_restarts_the_delay_for_the_whole_pending(staking, staked):
    staking.requestUnbond(100, {"from": staked})
    advance(1000)
    tx = staking.requestUnbond(50, {"from": staked})
    assert plain(staking.pendingUnbond(staked)) == (150, tx.timestamp + UNBOND_DELAY)


def test_request_unbond_more_than_staked_reverts(staking, staked):
    with brownie.reverts(err("StakingInsufficientStake", staked, AMOUNT + 1, AMOUNT)):
        staking.requestUnbond(AMOUNT + 1, {"from": staked})


def test_request_unbond_zero_reverts(staking, staked):
    with brownie.reverts(err("StakingZeroAmount")):
        staking.requestUnbond(0, {"from": staked})


def test_withdraw_after_delay_returns_pending(token, staking, staked):
    staking.requestUnbond(100, {"from": staked})
    advance(UNBOND_DELAY + 1)
    before = token.balanceOf(staked)
    tx = staking.withdraw({"from": staked})
    assert tx.events["Withdrawn"] == {"account": staked, "amount": 100}
    assert token.balanceOf(staked) == before + 100
    assert plain(staking.pendingUnbond(staked)) == (0, 0)
    assert staking.totalPending() == 0


def test_withdraw_before_delay_reverts(staking, staked):
    tx = staking.requestUnbond(100, {"from": staked})
    available_at = tx.timestamp + UNBOND_DELAY
    with brownie.reverts(err("StakingUnbondNotReady", staked, available_at, tx.timestamp)):
        # the call is simulated in the same block time as the request (no sleep)
        staking.withdraw.call({"from": staked, "block_identifier": tx.block_number})
    advance(UNBOND_DELAY // 2)
    with brownie.reverts(
        revert_pattern=rf"StakingUnbondNotReady: {staked.address.lower()}, {available_at}, \d+"
    ):
        staking.withdraw({"from": staked})
    assert staking.pendingUnbond(staked)[0] == 100


def test_withdraw_without_pending_reverts(staking, staked):
    with brownie.reverts(err("StakingNothingToWithdraw", staked)):
        staking.withdraw({"from": staked})


def test_slash_takes_active_stake_first_then_pending(token, staking, staked, gov):
    staking.requestUnbond(AMOUNT - 100, {"from": staked})  # 100 active, AMOUNT-100 pending
    treasury_before = token.balanceOf(gov)
    tx = staking.slash(staked, 150, b32("reason"), {"from": gov})
    assert tx.events["Slashed"] == {"account": staked, "amount": 150, "reasonHash": b32("reason")}
    assert staking.stakeOf(staked) == 0
    assert staking.pendingUnbond(staked)[0] == AMOUNT - 150
    assert token.balanceOf(gov) == treasury_before + 150
    assert (
        token.balanceOf(staking) == staking.totalStaked() + staking.totalPending() == AMOUNT - 150
    )


def test_slash_everything_clears_the_release_time(staking, staked, gov):
    staking.requestUnbond(100, {"from": staked})
    staking.slash(staked, AMOUNT, b32("all"), {"from": gov})
    assert staking.slashableOf(staked) == 0
    assert plain(staking.pendingUnbond(staked)) == (0, 0)


def test_slash_more_than_slashable_reverts(staking, staked, gov):
    with brownie.reverts(err("StakingSlashExceedsBalance", staked, AMOUNT + 1, AMOUNT)):
        staking.slash(staked, AMOUNT + 1, b32("r"), {"from": gov})


def test_slash_zero_reverts(staking, staked, gov):
    with brownie.reverts(err("StakingZeroAmount")):
        staking.slash(staked, 0, b32("r"), {"from": gov})


def test_slash_by_non_slasher_reverts(staking, staked, rando):
    with brownie.reverts(err("AccessControlUnauthorizedAccount", rando, staking.SLASHER_ROLE())):
        staking.slash(staked, 1, b32("r"), {"from": rando})


def test_slashed_tokens_go_to_the_new_treasury(token, staking, staked, gov, rando):
    tx = staking.setTreasury(rando, {"from": gov})
    assert tx.events["TreasuryUpdated"] == {"previous": gov, "treasury": rando}
    staking.slash(staked, 7, b32("r"), {"from": gov})
    assert token.balanceOf(rando) == 7
    assert staking.treasury() == rando


def test_set_treasury_by_non_admin_reverts(staking, rando):
    with brownie.reverts(err("AccessControlUnauthorizedAccount", rando, ZERO32)):
        staking.setTreasury(rando, {"from": rando})


def test_set_treasury_to_zero_reverts(staking, gov):
    with brownie.reverts(err("StakingZeroAddress")):
        staking.setTreasury("0x" + "00" * 20, {"from": gov})


def test_views_report_constructor_arguments(staking, token, gov):
    assert staking.unbondDelay() == UNBOND_DELAY
    assert staking.token() == token
    assert staking.treasury() == gov
    assert staking.hasRole(staking.SLASHER_ROLE(), gov)
    assert staking.hasRole(staking.DEFAULT_ADMIN_ROLE(), gov)
    assert MIN_STAKE > 0
