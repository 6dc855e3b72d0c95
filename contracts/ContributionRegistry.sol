// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

import {IContributionRegistry} from "../interfaces/IContributionRegistry.sol";
import {IRounds} from "../interfaces/IRounds.sol";

/// @title ContributionRegistry
/// @notice Model lineage and contribution revocations; contribution views over Rounds' storage.
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

    IRounds private _rounds;
    uint256 private _latestVersion;
    mapping(uint256 versionId => Version) private _versions;
    mapping(uint256 roundId => mapping(address org => bool)) private _revoked;

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
    function revoke(uint256 roundId, address org, uint256 requestId) external onlyRole(REVOKER_ROLE) {
        IRounds rounds_ = _rounds;
        if (
            address(rounds_) == address(0) || !rounds_.hasSubmitted(roundId, org)
                || rounds_.isRejected(roundId, org)
        ) revert RegistryUnknownContribution(roundId, org);
        if (_revoked[roundId][org]) revert RegistryAlreadyRevoked(roundId, org);
        _revoked[roundId][org] = true;
        emit ContributionRevoked(roundId, org, requestId);
    }

    /// @inheritdoc IContributionRegistry
    function contributionsOf(address org) external view returns (uint256[] memory roundIds) {
        if (address(_rounds) == address(0)) return roundIds;
        return _rounds.contributionsOf(org);
    }

    /// @inheritdoc IContributionRegistry
    function getContribution(uint256 roundId, address org)
        external
        view
        returns (bytes32 adapterCid, uint64 numSamples, bytes32 dataCommitment, bool revoked)
    {
        if (address(_rounds) != address(0)) {
            (adapterCid, numSamples, dataCommitment,) = _rounds.getSubmission(roundId, org);
        }
        revoked = _revoked[roundId][org];
    }

    /// @inheritdoc IContributionRegistry
    function isRevoked(uint256 roundId, address org) external view returns (bool) {
        return _revoked[roundId][org];
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
        uint256 n;
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
