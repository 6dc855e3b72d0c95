// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title IStaking
/// @notice Stake of the consortium's organisations and aggregators, in the LedgerLoRA token.
/// @dev Invariant: `token.balanceOf(staking) == totalStaked() + totalPending()` (tokens sent to
/// the contract by plain transfer are the only exception). Stakes can be slashed by holders of
/// `SLASHER_ROLE` (the governor and the Unlearning contract); slashed tokens go to `treasury()`.
interface IStaking {
    /// @notice `amount` is zero.
    error StakingZeroAmount();
    /// @notice `account` asked to unbond `requested` but has only `available` active stake.
    error StakingInsufficientStake(address account, uint256 requested, uint256 available);
    /// @notice `account` has no pending unbond to withdraw.
    error StakingNothingToWithdraw(address account);
    /// @notice The pending unbond of `account` becomes available at `availableAt`, not before.
    error StakingUnbondNotReady(address account, uint64 availableAt, uint64 nowTimestamp);
    /// @notice A slash of `requested` exceeds the `available` stake plus pending unbond of `account`.
    error StakingSlashExceedsBalance(address account, uint256 requested, uint256 available);
    /// @notice A balance would not fit the packed 128-bit storage: `amount` is too large.
    error StakingAmountTooLarge(uint256 amount);
    /// @notice The zero address was given where an account is required.
    error StakingZeroAddress();
    /// @notice `account` asked to unbond `requested` but only `free` of its stake is not locked.
    error StakingStakeLocked(address account, uint256 requested, uint256 free);
    /// @notice Locking `requested` more stake of `account` exceeds its free stake `free`.
    error StakingInsufficientFreeStake(address account, uint256 requested, uint256 free);
    /// @notice Unlocking `requested` exceeds the `locked` stake of `account`.
    error StakingUnlockExceedsLocked(address account, uint256 requested, uint256 locked);

    /// @notice `account` staked `amount`; its active stake is now `newStake`.
    event Staked(address indexed account, uint256 amount, uint256 newStake);
    /// @notice `account` moved `amount` from active stake to a pending unbond withdrawable at `availableAt`.
    event UnbondRequested(address indexed account, uint256 amount, uint64 availableAt);
    /// @notice `account` withdrew `amount` of matured pending unbond.
    event Withdrawn(address indexed account, uint256 amount);
    /// @notice `amount` of the stake of `account` went to the treasury, for the reason `reasonHash`.
    event Slashed(address indexed account, uint256 amount, bytes32 reasonHash);
    /// @notice The treasury receiving slashed tokens changed from `previous` to `treasury`.
    event TreasuryUpdated(address indexed previous, address indexed treasury);

    /// @notice `locker` locked `amount` of the stake of `account`; `locked` is now locked in all.
    event StakeLocked(address indexed account, address indexed locker, uint256 amount, uint256 locked);
    /// @notice `locker` unlocked `amount` of the stake of `account`; `locked` stays locked in all.
    event StakeUnlocked(address indexed account, address indexed locker, uint256 amount, uint256 locked);

    /// @notice Role allowed to call {slash}.
    function SLASHER_ROLE() external view returns (bytes32);
    /// @notice Role allowed to call {lock} / {unlock} (Membership: a member's minimum stake;
    /// Unlearning: `slashAmount` per acknowledged open request).
    function LOCKER_ROLE() external view returns (bytes32);

    /// @notice Locks `amount` of the free active stake of `account`: it cannot be unbonded until unlocked.
    /// Requirements:
    /// - caller has `LOCKER_ROLE`; `amount <= freeStakeOf(account)`.
    /// Emits a {StakeLocked} event.
    function lock(address account, uint256 amount) external;

    /// @notice Releases `amount` of the locked stake of `account`.
    /// Requirements:
    /// - caller has `LOCKER_ROLE`; `amount <= lockedOf(account)`.
    /// Emits a {StakeUnlocked} event.
    function unlock(address account, uint256 amount) external;

    /// @notice Stake of `account` locked by lockers (may exceed its active stake after a slash).
    function lockedOf(address account) external view returns (uint256);

    /// @notice Active stake of `account` that is not locked (what {requestUnbond} may move).
    function freeStakeOf(address account) external view returns (uint256);

    /// @notice Stakes `amount` tokens of the caller (pulled with `transferFrom`).
    /// Requirements:
    /// - `amount` > 0 and the caller approved at least `amount` to this contract.
    /// Emits a {Staked} event.
    function stake(uint256 amount) external;

    /// @notice Moves `amount` of the caller's active stake to its pending unbond. The whole pending
    /// amount (earlier requests included) becomes withdrawable `unbondDelay()` seconds from now.
    /// Requirements:
    /// - `0 < amount <= freeStakeOf(caller)` (locked stake cannot be unbonded).
    /// Emits an {UnbondRequested} event.
    function requestUnbond(uint256 amount) external;

    /// @notice Transfers the caller's whole pending unbond back to it.
    /// Requirements:
    /// - a pending unbond exists and `block.timestamp >= availableAt`.
    /// Emits a {Withdrawn} event.
    function withdraw() external;

    /// @notice Sends `amount` of the stake of `account` to the treasury, taking the active stake
    /// first and then the pending unbond.
    /// Requirements:
    /// - caller has `SLASHER_ROLE`;
    /// - `0 < amount <= stakeOf(account) + pending unbond of account`.
    /// Emits a {Slashed} event.
    function slash(address account, uint256 amount, bytes32 reasonHash) external;

    /// @notice Sets the address that receives slashed tokens.
    /// Requirements:
    /// - caller has `DEFAULT_ADMIN_ROLE` (the governor); `treasury` is not the zero address.
    /// Emits a {TreasuryUpdated} event.
    function setTreasury(address treasury) external;

    /// @notice Active (bonded) stake of `account`.
    function stakeOf(address account) external view returns (uint256);

    /// @notice Pending unbond of `account` and the time from which it can be withdrawn.
    function pendingUnbond(address account) external view returns (uint256 amount, uint64 availableAt);

    /// @notice Active stake plus pending unbond of `account`: the most that can be slashed.
    function slashableOf(address account) external view returns (uint256);

    /// @notice Seconds between an unbond request and the withdrawal.
    function unbondDelay() external view returns (uint64);

    /// @notice Sum of all active stakes.
    function totalStaked() external view returns (uint256);

    /// @notice Sum of all pending unbonds.
    function totalPending() external view returns (uint256);

    /// @notice Receiver of slashed tokens.
    function treasury() external view returns (address);

    /// @notice The staked ERC-20 token.
    function token() external view returns (address);
}
