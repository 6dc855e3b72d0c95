// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";

/// @title IMembership
/// @notice The consortium's roles (governor, member org, aggregator, relayer) and each member's
/// X25519 encryption public key and metadata. Admission needs `minStake()` of free stake in
/// Staking, which stays locked while the org is a member ({leave} or {removeMember} unlocks it).
/// @dev Needs `LOCKER_ROLE` on Staking. `MEMBER_ROLE` is managed only through {join}, {leave} and
/// {removeMember}: `grantRole`,
/// `revokeRole` and `renounceRole` revert for it so the member list and keys stay consistent.
/// The governor grants `AGGREGATOR_ROLE` and `RELAYER_ROLE` with `grantRole`.
interface IMembership is IAccessControl {
    /// @notice `org` is already a member.
    error MembershipAlreadyMember(address org);
    /// @notice `org` is not a member.
    error MembershipNotMember(address org);
    /// @notice `org` has `staked` of free (unlocked) stake, less than the required `minStake`.
    error MembershipInsufficientStake(address org, uint256 staked, uint256 minStake);
    /// @notice The encryption key is zero.
    error MembershipZeroKey(address org);
    /// @notice `org` was removed by governance and cannot join again.
    error MembershipOrgRemoved(address org);
    /// @notice `role` is managed by dedicated functions (join / removeMember), not by AccessControl calls.
    error MembershipRoleManagedByContract(bytes32 role);
    /// @notice The zero address was given where a contract is required.
    error MembershipZeroAddress();

    /// @notice `org` joined with X25519 public key `encryptionKey` and metadata at `metadataURI`.
    event MemberJoined(address indexed org, bytes32 encryptionKey, string metadataURI);
    /// @notice `org` replaced its encryption key with `encryptionKey`.
    event MemberKeyUpdated(address indexed org, bytes32 encryptionKey);
    /// @notice Governance removed `org` for the reason `reasonHash`; its locked stake was released.
    event MemberRemoved(address indexed org, bytes32 reasonHash);
    /// @notice `org` left the consortium; `unlockedStake` of its stake was released (it may join again).
    event MemberLeft(address indexed org, uint256 unlockedStake);
    /// @notice The minimum stake changed from `previous` to `minStake`.
    event MinStakeUpdated(uint256 previous, uint256 minStake);

    /// @notice Governance role (its holders also hold `DEFAULT_ADMIN_ROLE`).
    function GOVERNOR_ROLE() external view returns (bytes32);
    /// @notice Role of member organisations.
    function MEMBER_ROLE() external view returns (bytes32);
    /// @notice Role of aggregators (open/close/finalize rounds, execute unlearning).
    function AGGREGATOR_ROLE() external view returns (bytes32);
    /// @notice Role of the public-anchor relayer.
    function RELAYER_ROLE() external view returns (bytes32);

    /// @notice The caller joins as a member organisation.
    /// Requirements:
    /// - the caller is not a member and was never removed;
    /// - `staking.freeStakeOf(caller) >= minStake()`: that much is locked in Staking while a member;
    /// - `encryptionKey` != 0.
    /// Emits a {MemberJoined} event (and AccessControl's `RoleGranted`, Staking's `StakeLocked`).
    function join(bytes32 encryptionKey, string calldata metadataURI) external;

    /// @notice The calling member leaves: its role is revoked and the stake locked at {join} is
    /// released (it can then unbond it). It may join again later. Its contributions stay on record.
    /// Requirements:
    /// - the caller is a member.
    /// Emits a {MemberLeft} event (and AccessControl's `RoleRevoked`, Staking's `StakeUnlocked`).
    function leave() external;

    /// @notice Stake of `org` that Membership keeps locked in Staking (0 for a non-member).
    function lockedStakeOf(address org) external view returns (uint256);

    /// @notice The calling member replaces its encryption key.
    /// Requirements:
    /// - the caller is a member; `encryptionKey` != 0.
    /// Emits a {MemberKeyUpdated} event.
    function updateKey(bytes32 encryptionKey) external;

    /// @notice Governance removes `org`; it cannot join again. Its locked stake is released.
    /// Requirements:
    /// - caller has `GOVERNOR_ROLE`; `org` is a member.
    /// Emits a {MemberRemoved} event (and AccessControl's `RoleRevoked`).
    function removeMember(address org, bytes32 reasonHash) external;

    /// @notice Sets the stake required to join (and for aggregators to act). Members keep the
    /// amount locked when they joined.
    /// Requirements:
    /// - caller has `GOVERNOR_ROLE`.
    /// Emits a {MinStakeUpdated} event.
    function setMinStake(uint256 minStake) external;

    /// @notice Whether `account` is an active member.
    function isMember(address account) external view returns (bool);

    /// @notice Whether `account` holds at least `minStake()` in Staking.
    function hasMinStake(address account) external view returns (bool);

    /// @notice The registered X25519 public key of `org` (kept after removal; 0 if it never joined).
    function encryptionKeyOf(address org) external view returns (bytes32);

    /// @notice The metadata URI of `org` (kept after removal).
    function metadataOf(address org) external view returns (string memory);

    /// @notice Active members, in no particular order.
    function members() external view returns (address[] memory);

    /// @notice Number of active members.
    function memberCount() external view returns (uint256);

    /// @notice Stake needed to join.
    function minStake() external view returns (uint256);

    /// @notice The Staking contract read for admission.
    function staking() external view returns (address);
}
