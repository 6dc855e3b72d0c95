// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {IStaking} from "../interfaces/IStaking.sol";

/// @title Staking
/// @notice Bonded stake of members and aggregators, unbonding after a delay, slashable.
/// @dev One storage slot per account (`Position`): 128-bit active stake + 128-bit pending unbond
/// would leave no room for the release time, so the release time shares a second slot. Totals are
/// kept so that `token.balanceOf(this) == _totalStaked + _totalPending` can be checked on chain.
contract Staking is IStaking, AccessControl, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @inheritdoc IStaking
    bytes32 public constant SLASHER_ROLE = keccak256("SLASHER_ROLE");
    /// @inheritdoc IStaking
    bytes32 public constant LOCKER_ROLE = keccak256("LOCKER_ROLE");

    struct Position {
        uint128 staked; // slot 0
        uint128 pending; // slot 0
        uint64 availableAt; // slot 1: when `pending` can be withdrawn
        uint128 locked; // slot 1: active stake that cannot be unbonded (see lock / unlock)
    }

    IERC20 private immutable _token;
    uint64 private immutable _unbondDelay;

    address private _treasury;
    uint256 private _totalStaked;
    uint256 private _totalPending;
    mapping(address account => Position) private _positions;

    /// @param token_ the staked token.
    /// @param governor gets `DEFAULT_ADMIN_ROLE` and `SLASHER_ROLE`, and is the first treasury.
    /// @param unbondDelay_ seconds between an unbond request and its withdrawal.
    constructor(IERC20 token_, address governor, uint64 unbondDelay_) {
        if (address(token_) == address(0) || governor == address(0)) revert StakingZeroAddress();
        _token = token_;
        _unbondDelay = unbondDelay_;
        _treasury = governor;
        _grantRole(DEFAULT_ADMIN_ROLE, governor);
        _grantRole(SLASHER_ROLE, governor);
    }

    /// @inheritdoc IStaking
    function stake(uint256 amount) external nonReentrant {
        if (amount == 0) revert StakingZeroAmount();
        Position storage p = _positions[msg.sender];
        uint256 newStake = uint256(p.staked) + amount;
        if (newStake > type(uint128).max) revert StakingAmountTooLarge(amount);
        p.staked = uint128(newStake);
        _totalStaked += amount;
        emit Staked(msg.sender, amount, newStake);
        _token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @inheritdoc IStaking
    function requestUnbond(uint256 amount) external {
        if (amount == 0) revert StakingZeroAmount();
        Position storage p = _positions[msg.sender];
        uint256 staked = p.staked;
        if (amount > staked) revert StakingInsufficientStake(msg.sender, amount, staked);
        uint256 free = _free(p);
        if (amount > free) revert StakingStakeLocked(msg.sender, amount, free);
        uint64 availableAt = uint64(block.timestamp) + _unbondDelay;
        // amount <= staked < 2**128 and pending + staked never exceeds what was staked.
        p.staked = uint128(staked - amount);
        p.pending += uint128(amount);
        p.availableAt = availableAt;
        _totalStaked -= amount;
        _totalPending += amount;
        emit UnbondRequested(msg.sender, amount, availableAt);
    }

    /// @inheritdoc IStaking
    function withdraw() external nonReentrant {
        Position storage p = _positions[msg.sender];
        uint256 amount = p.pending;
        if (amount == 0) revert StakingNothingToWithdraw(msg.sender);
        if (block.timestamp < p.availableAt) {
            revert StakingUnbondNotReady(msg.sender, p.availableAt, uint64(block.timestamp));
        }
        p.pending = 0;
        p.availableAt = 0;
        _totalPending -= amount;
        emit Withdrawn(msg.sender, amount);
        _token.safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc IStaking
    function slash(address account, uint256 amount, bytes32 reasonHash)
        external
        nonReentrant
        onlyRole(SLASHER_ROLE)
    {
        if (amount == 0) revert StakingZeroAmount();
        Position storage p = _positions[account];
        uint256 staked = p.staked;
        uint256 pending = p.pending;
        if (amount > staked + pending) revert StakingSlashExceedsBalance(account, amount, staked + pending);
        uint256 fromStake = amount < staked ? amount : staked;
        uint256 fromPending = amount - fromStake;
        p.staked = uint128(staked - fromStake);
        _totalStaked -= fromStake;
        if (fromPending != 0) {
            p.pending = uint128(pending - fromPending);
            _totalPending -= fromPending;
            if (pending == fromPending) p.availableAt = 0;
        }
        emit Slashed(account, amount, reasonHash);
        _token.safeTransfer(_treasury, amount);
    }

    /// @inheritdoc IStaking
    function lock(address account, uint256 amount) external onlyRole(LOCKER_ROLE) {
        if (amount == 0) revert StakingZeroAmount();
        Position storage p = _positions[account];
        uint256 free = _free(p);
        if (amount > free) revert StakingInsufficientFreeStake(account, amount, free);
        uint256 locked = p.locked + amount; // <= staked < 2**128
        p.locked = uint128(locked);
        emit StakeLocked(account, msg.sender, amount, locked);
    }

    /// @inheritdoc IStaking
    function unlock(address account, uint256 amount) external onlyRole(LOCKER_ROLE) {
        if (amount == 0) revert StakingZeroAmount();
        Position storage p = _positions[account];
        uint256 locked = p.locked;
        if (amount > locked) revert StakingUnlockExceedsLocked(account, amount, locked);
        locked -= amount;
        p.locked = uint128(locked);
        emit StakeUnlocked(account, msg.sender, amount, locked);
    }

    /// @inheritdoc IStaking
    function setTreasury(address treasury_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (treasury_ == address(0)) revert StakingZeroAddress();
        address previous = _treasury;
        _treasury = treasury_;
        emit TreasuryUpdated(previous, treasury_);
    }

    /// @inheritdoc IStaking
    function stakeOf(address account) external view returns (uint256) {
        return _positions[account].staked;
    }

    /// @inheritdoc IStaking
    function pendingUnbond(address account) external view returns (uint256 amount, uint64 availableAt) {
        Position storage p = _positions[account];
        return (p.pending, p.availableAt);
    }

    /// @inheritdoc IStaking
    function slashableOf(address account) external view returns (uint256) {
        Position storage p = _positions[account];
        return uint256(p.staked) + p.pending;
    }

    /// @inheritdoc IStaking
    function lockedOf(address account) external view returns (uint256) {
        return _positions[account].locked;
    }

    /// @inheritdoc IStaking
    function freeStakeOf(address account) external view returns (uint256) {
        return _free(_positions[account]);
    }

    /// @inheritdoc IStaking
    function unbondDelay() external view returns (uint64) {
        return _unbondDelay;
    }

    /// @inheritdoc IStaking
    function totalStaked() external view returns (uint256) {
        return _totalStaked;
    }

    /// @inheritdoc IStaking
    function totalPending() external view returns (uint256) {
        return _totalPending;
    }

    /// @inheritdoc IStaking
    function treasury() external view returns (address) {
        return _treasury;
    }

    /// @inheritdoc IStaking
    function token() external view returns (address) {
        return address(_token);
    }

    function _free(Position storage p) private view returns (uint256) {
        uint256 staked = p.staked;
        uint256 locked = p.locked;
        return staked > locked ? staked - locked : 0;
    }
}
