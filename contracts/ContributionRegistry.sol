// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

import {IContributionRegistry} from "../interfaces/IContributionRegistry.sol";
import {IRounds} from "../interfaces/IRounds.sol";

/// @title ContributionRegistry
/// @notice Model lineage and contribution revocations (per-org round ranges, O(1) to add).
contract ContributionRegistry is IContributionRegistry, AccessControl {
    /// @inheritdoc IContributionRegistry
    bytes32 public constant REGISTRAR_ROLE = keccak256("REGISTRAR_ROLE");
    /// @inheritdoc IContributionRegistry
    bytes32 public constant REVOKER_ROLE = keccak256("REVOKER_ROLE");

    struct Version {
        bytes32 modelCid; // slot 0
        bytes32 metricsHash; // slot 1
        uint64 parentVersion; // slot 2 (versions are counted one by one: 64 bits never overflow)
        uint64 roundId; // slot 2 (0 for versions made by unlearning)
        uint64 createdAt; // slot 2
    }

    struct Range {
        uint64 fromRound;
        uint64 toRound;
    }

    IRounds private _rounds;
    uint256 private _latestVersion;
    mapping(uint256 versionId => Version) private _versions;
    // slither-disable-next-line uninitialized-state (false positive: written by push / through a storage pointer in revokeFrom)
    mapping(address org => Range[]) private _ranges;
    mapping(address org => uint256) private _revokedThrough;

    /// @param governor gets `DEFAULT_ADMIN_ROLE` (grants REGISTRAR / REVOKER, wires Rounds).
    constructor(address governor) {
        if (governor == address(0)) revert RegistryZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, governor);
        _versions[0].createdAt = uint64(block.timestamp);
    }

    /// @inheritdoc IContributionRegistry
    function setRounds(address rounds_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (address(_rounds) != address(0)) revert RegistryRoundsAlreadySet(address(_rounds));
        if (rounds_ == address(0)) revert RegistryZeroAddress();
        _rounds = IRounds(rounds_);
        emit RoundsSet(rounds_);
    }

    /// @inheritdoc IContributionRegistry
    function setBaseModel(bytes32 modelCid) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (_latestVersion != 0) revert RegistryBaseModelLocked(_latestVersion);
        if (modelCid == bytes32(0)) revert RegistryZeroModelCid();
        _versions[0].modelCid = modelCid;
        emit BaseModelSet(modelCid);
    }

    /// @inheritdoc IContributionRegistry
    function recordVersion(bytes32 modelCid, uint256 parentVersion, uint256 roundId, bytes32 metricsHash)
        external
        onlyRole(REGISTRAR_ROLE)
        returns (uint256 versionId)
    {
        if (modelCid == bytes32(0)) revert RegistryZeroModelCid();
        uint256 latest = _latestVersion;
        if (parentVersion > latest) revert RegistryUnknownVersion(parentVersion, latest);
        versionId = latest + 1;
        _latestVersion = versionId;
        _versions[versionId] = Version({
            modelCid: modelCid,
            metricsHash: metricsHash,
            parentVersion: uint64(parentVersion),
            roundId: uint64(roundId),
            createdAt: uint64(block.timestamp)
        });
        emit VersionRecorded(versionId, parentVersion, roundId, modelCid, metricsHash);
    }

    /// @inheritdoc IContributionRegistry
    function revokeFrom(address org, uint256 fromRound, uint256 requestId)
        external
        onlyRole(REVOKER_ROLE)
        returns (uint256 toRound)
    {
        IRounds rounds_ = _rounds;
        if (address(rounds_) == address(0)) revert RegistryZeroAddress();
        toRound = rounds_.roundCount();
        if (fromRound == 0 || fromRound > toRound) revert RegistryInvalidRange(fromRound, toRound);
        Range[] storage ranges = _ranges[org];
        uint256 n = ranges.length;
        // toRound >= every earlier range's toRound (round counts only grow): merge into the
        // latest range when they overlap or touch, otherwise append. Round ids fit 64 bits.
        uint256 start = fromRound;
        if (n != 0 && ranges[n - 1].toRound + 1 >= fromRound) {
            Range storage last = ranges[n - 1];
            if (fromRound < last.fromRound) last.fromRound = uint64(fromRound);
            else start = last.fromRound;
            last.toRound = uint64(toRound);
        } else {
            ranges.push(Range(uint64(fromRound), uint64(toRound)));
        }
        // The merged range starts at round 1: every round up to toRound is revoked.
        if (start == 1) _revokedThrough[org] = toRound;
        emit ContributionsRevoked(org, requestId, fromRound, toRound);
    }

    /// @inheritdoc IContributionRegistry
    function isRevoked(uint256 roundId, address org) public view returns (bool) {
        if (roundId <= _revokedThrough[org]) return roundId != 0;
        Range[] storage ranges = _ranges[org];
        // Newest first: the latest range is the widest and answers most queries at once.
        for (uint256 i = ranges.length; i > 0; --i) {
            Range storage r = ranges[i - 1];
            if (roundId >= r.fromRound && roundId <= r.toRound) return true;
        }
        return false;
    }

    /// @inheritdoc IContributionRegistry
    function isLive(uint256 roundId, address org) external view returns (bool) {
        IRounds rounds_ = _rounds;
        if (address(rounds_) == address(0)) return false;
        return rounds_.hasSubmitted(roundId, org) && !rounds_.isRejected(roundId, org) && !isRevoked(roundId, org);
    }

    /// @inheritdoc IContributionRegistry
    function revokedThrough(address org) external view returns (uint256) {
        return _revokedThrough[org];
    }

    /// @inheritdoc IContributionRegistry
    function revokedRanges(address org)
        external
        view
        returns (uint256[] memory fromRounds, uint256[] memory toRounds)
    {
        Range[] storage ranges = _ranges[org];
        uint256 n = ranges.length;
        fromRounds = new uint256[](n);
        toRounds = new uint256[](n);
        for (uint256 i; i < n; ++i) {
            fromRounds[i] = ranges[i].fromRound;
            toRounds[i] = ranges[i].toRound;
        }
    }

    /// @inheritdoc IContributionRegistry
    function getVersion(uint256 versionId)
        external
        view
        returns (bytes32 modelCid, uint256 parentVersion, uint256 roundId, uint64 createdAt)
    {
        Version storage v = _versions[versionId];
        return (v.modelCid, v.parentVersion, v.roundId, v.createdAt);
    }

    /// @inheritdoc IContributionRegistry
    function versionMetrics(uint256 versionId) external view returns (bytes32) {
        return _versions[versionId].metricsHash;
    }

    /// @inheritdoc IContributionRegistry
    function lineage(uint256 versionId) external view returns (uint256[] memory ancestors) {
        if (versionId == 0 || versionId > _latestVersion) return ancestors;
        uint256 n = 0;
        for (uint256 v = versionId; v != 0; v = _versions[v].parentVersion) ++n;
        ancestors = new uint256[](n);
        uint256 v2 = versionId;
        for (uint256 i; i < n; ++i) {
            v2 = _versions[v2].parentVersion;
            ancestors[i] = v2;
        }
    }

    /// @inheritdoc IContributionRegistry
    function latestVersion() external view returns (uint256) {
        return _latestVersion;
    }

    /// @inheritdoc IContributionRegistry
    function rounds() external view returns (address) {
        return address(_rounds);
    }
}
