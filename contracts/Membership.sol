// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";

import {IMembership} from "../interfaces/IMembership.sol";
import {IStaking} from "../interfaces/IStaking.sol";

/// @title Membership
/// @notice Roles of the consortium and the members' encryption keys; the source of truth for
/// every other contract's access checks.
contract Membership is IMembership, AccessControl {
    using EnumerableSet for EnumerableSet.AddressSet;

    /// @inheritdoc IMembership
    bytes32 public constant GOVERNOR_ROLE = keccak256("GOVERNOR_ROLE");
    /// @inheritdoc IMembership
    bytes32 public constant MEMBER_ROLE = keccak256("MEMBER_ROLE");
    /// @inheritdoc IMembership
    bytes32 public constant AGGREGATOR_ROLE = keccak256("AGGREGATOR_ROLE");
    /// @inheritdoc IMembership
    bytes32 public constant RELAYER_ROLE = keccak256("RELAYER_ROLE");

    struct Member {
        bytes32 encryptionKey; // X25519 public key
        bool removed; // removed by governance: cannot join again
        uint128 lockedStake; // stake locked in Staking at join, released by leave / removeMember
        string metadataURI;
    }

    IStaking private immutable _staking;
    uint256 private _minStake;
    EnumerableSet.AddressSet private _active;
    mapping(address org => Member) private _members;

    /// @param governor gets `DEFAULT_ADMIN_ROLE` and `GOVERNOR_ROLE`.
    /// @param staking_ the Staking contract read for admission.
    /// @param minStake_ stake needed to join.
    constructor(address governor, IStaking staking_, uint256 minStake_) {
        if (governor == address(0) || address(staking_) == address(0)) revert MembershipZeroAddress();
        _staking = staking_;
        _minStake = minStake_;
        _grantRole(DEFAULT_ADMIN_ROLE, governor);
        _grantRole(GOVERNOR_ROLE, governor);
        // Governors manage the aggregator and relayer roles with grantRole / revokeRole.
        _setRoleAdmin(AGGREGATOR_ROLE, GOVERNOR_ROLE);
        _setRoleAdmin(RELAYER_ROLE, GOVERNOR_ROLE);
    }

    /// @inheritdoc IMembership
    function join(bytes32 encryptionKey, string calldata metadataURI) external {
        Member storage m = _members[msg.sender];
        if (hasRole(MEMBER_ROLE, msg.sender)) revert MembershipAlreadyMember(msg.sender);
        if (m.removed) revert MembershipOrgRemoved(msg.sender);
        if (encryptionKey == bytes32(0)) revert MembershipZeroKey(msg.sender);
        uint256 required = _minStake;
        uint256 free = _staking.freeStakeOf(msg.sender);
        if (free < required) revert MembershipInsufficientStake(msg.sender, free, required);
        m.encryptionKey = encryptionKey;
        m.metadataURI = metadataURI;
        m.lockedStake = uint128(required); // required <= free stake < 2**128
        // slither-disable-next-line unused-return (not a member here, so the org is not in the set: always true)
        _active.add(msg.sender);
        _grantRole(MEMBER_ROLE, msg.sender);
        emit MemberJoined(msg.sender, encryptionKey, metadataURI);
        if (required != 0) _staking.lock(msg.sender, required);
    }

    /// @inheritdoc IMembership
    function leave() external {
        if (!hasRole(MEMBER_ROLE, msg.sender)) revert MembershipNotMember(msg.sender);
        uint256 unlocked = _release(msg.sender);
        emit MemberLeft(msg.sender, unlocked);
    }

    /// @inheritdoc IMembership
    function updateKey(bytes32 encryptionKey) external {
        if (!hasRole(MEMBER_ROLE, msg.sender)) revert MembershipNotMember(msg.sender);
        if (encryptionKey == bytes32(0)) revert MembershipZeroKey(msg.sender);
        _members[msg.sender].encryptionKey = encryptionKey;
        emit MemberKeyUpdated(msg.sender, encryptionKey);
    }

    /// @inheritdoc IMembership
    function removeMember(address org, bytes32 reasonHash) external onlyRole(GOVERNOR_ROLE) {
        if (!hasRole(MEMBER_ROLE, org)) revert MembershipNotMember(org);
        _members[org].removed = true;
        _release(org);
        emit MemberRemoved(org, reasonHash);
    }

    /// @inheritdoc IMembership
    function setMinStake(uint256 minStake_) external onlyRole(GOVERNOR_ROLE) {
        uint256 previous = _minStake;
        _minStake = minStake_;
        emit MinStakeUpdated(previous, minStake_);
    }

    /// @inheritdoc IAccessControl
    /// @dev Reverts for `MEMBER_ROLE` (use {join}). Granting `GOVERNOR_ROLE` does not grant
    /// `DEFAULT_ADMIN_ROLE`; grant both to hand governance over.
    function grantRole(bytes32 role, address account) public override(AccessControl, IAccessControl) {
        if (role == MEMBER_ROLE) revert MembershipRoleManagedByContract(role);
        super.grantRole(role, account);
    }

    /// @inheritdoc IAccessControl
    /// @dev Reverts for `MEMBER_ROLE` (use {removeMember}).
    function revokeRole(bytes32 role, address account) public override(AccessControl, IAccessControl) {
        if (role == MEMBER_ROLE) revert MembershipRoleManagedByContract(role);
        super.revokeRole(role, account);
    }

    /// @inheritdoc IAccessControl
    /// @dev Reverts for `MEMBER_ROLE`: a member stays accountable until governance removes it.
    function renounceRole(bytes32 role, address callerConfirmation) public override(AccessControl, IAccessControl) {
        if (role == MEMBER_ROLE) revert MembershipRoleManagedByContract(role);
        super.renounceRole(role, callerConfirmation);
    }

    /// @inheritdoc IMembership
    function isMember(address account) external view returns (bool) {
        return hasRole(MEMBER_ROLE, account);
    }

    /// @inheritdoc IMembership
    function hasMinStake(address account) external view returns (bool) {
        return _staking.stakeOf(account) >= _minStake;
    }

    /// @inheritdoc IMembership
    function encryptionKeyOf(address org) external view returns (bytes32) {
        return _members[org].encryptionKey;
    }

    /// @inheritdoc IMembership
    function metadataOf(address org) external view returns (string memory) {
        return _members[org].metadataURI;
    }

    /// @inheritdoc IMembership
    function members() external view returns (address[] memory) {
        return _active.values();
    }

    /// @inheritdoc IMembership
    function memberCount() external view returns (uint256) {
        return _active.length();
    }

    /// @inheritdoc IMembership
    function minStake() external view returns (uint256) {
        return _minStake;
    }

    /// @inheritdoc IMembership
    function staking() external view returns (address) {
        return address(_staking);
    }

    /// @inheritdoc IMembership
    function lockedStakeOf(address org) external view returns (uint256) {
        return _members[org].lockedStake;
    }

    /// @dev Ends the membership of `org` and unlocks the stake locked at its join.
    function _release(address org) private returns (uint256 unlocked) {
        Member storage m = _members[org];
        unlocked = m.lockedStake;
        m.lockedStake = 0;
        // slither-disable-next-line unused-return (called for members only, so the org is in the set: always true)
        _active.remove(org);
        _revokeRole(MEMBER_ROLE, org);
        if (unlocked != 0) _staking.unlock(org, unlocked);
    }
}
