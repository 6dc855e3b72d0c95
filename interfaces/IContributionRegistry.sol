// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title IContributionRegistry
/// @notice Model lineage (every version names its parent) and the revocation status of every
/// contribution. Version 0 is the base model, built from no contribution.
/// @dev Submissions themselves are stored by Rounds, where they are written (one storage layout,
/// cheapest submitUpdate); this registry reads them through `rounds()` so that every contribution
/// view lives here: {contributionsOf}, {getContribution}, {isRevoked}. `rounds()` is wired once by
/// the governor with {setRounds}.
interface IContributionRegistry {
    /// @notice `setRounds` was already called; the Rounds contract is `rounds`.
    error RegistryRoundsAlreadySet(address rounds);
    /// @notice The zero address was given where a contract is required.
    error RegistryZeroAddress();
    /// @notice `org` has no (non-rejected) contribution in round `roundId`.
    error RegistryUnknownContribution(uint256 roundId, address org);
    /// @notice The contribution of `org` in round `roundId` is already revoked.
    error RegistryAlreadyRevoked(uint256 roundId, address org);
    /// @notice `parentVersion` does not exist (the latest version is `latestVersion`).
    error RegistryUnknownVersion(uint256 parentVersion, uint256 latestVersion);
    /// @notice The model CID is zero.
    error RegistryZeroModelCid();
    /// @notice The base model (version 0) can only be set before any version is recorded; latest is `latestVersion`.
    error RegistryBaseModelLocked(uint256 latestVersion);

    /// @notice Version `versionId` with model `modelCid` was recorded, child of `parentVersion`,
    /// produced by round `roundId` (0 for an unlearning version), with metrics `metricsHash`.
    event VersionRecorded(
        uint256 indexed versionId,
        uint256 indexed parentVersion,
        uint256 indexed roundId,
        bytes32 modelCid,
        bytes32 metricsHash
    );
    /// @notice The contribution of `org` in round `roundId` was revoked by unlearning request `requestId`.
    event ContributionRevoked(uint256 indexed roundId, address indexed org, uint256 indexed requestId);
    /// @notice The Rounds contract holding the submissions was set to `rounds`.
    event RoundsSet(address indexed rounds);
    /// @notice The base model (version 0) CID was set to `modelCid`.
    event BaseModelSet(bytes32 modelCid);

    /// @notice Role allowed to record versions (Rounds, Unlearning).
    function REGISTRAR_ROLE() external view returns (bytes32);
    /// @notice Role allowed to revoke contributions (Unlearning).
    function REVOKER_ROLE() external view returns (bytes32);

    /// @notice Wires the Rounds contract whose submissions are the contributions. Once only.
    /// Requirements:
    /// - caller has `DEFAULT_ADMIN_ROLE`; not set before; `rounds` != 0.
    /// Emits a {RoundsSet} event.
    function setRounds(address rounds) external;

    /// @notice Sets the CID of version 0, the base model.
    /// Requirements:
    /// - caller has `DEFAULT_ADMIN_ROLE`; no version recorded yet; `modelCid` != 0.
    /// Emits a {BaseModelSet} event.
    function setBaseModel(bytes32 modelCid) external;

    /// @notice Records a new model version.
    /// Requirements:
    /// - caller has `REGISTRAR_ROLE`; `modelCid` != 0; `parentVersion <= latestVersion()`.
    /// Emits a {VersionRecorded} event.
    /// @return versionId the new version's id (1, 2, ...).
    function recordVersion(bytes32 modelCid, uint256 parentVersion, uint256 roundId, bytes32 metricsHash)
        external
        returns (uint256 versionId);

    /// @notice Marks the contribution of `org` in round `roundId` as revoked.
    /// Requirements:
    /// - caller has `REVOKER_ROLE`; the contribution exists, was not rejected and is not revoked.
    /// Emits a {ContributionRevoked} event.
    function revoke(uint256 roundId, address org, uint256 requestId) external;

    /// @notice Round ids in which `org` submitted, oldest first (rejected and revoked ones included).
    function contributionsOf(address org) external view returns (uint256[] memory roundIds);

    /// @notice The contribution of `org` in round `roundId` (all zero if there is none).
    function getContribution(uint256 roundId, address org)
        external
        view
        returns (bytes32 adapterCid, uint64 numSamples, bytes32 dataCommitment, bool revoked);

    /// @notice Whether the contribution of `org` in round `roundId` was revoked.
    function isRevoked(uint256 roundId, address org) external view returns (bool);

    /// @notice Version `versionId` (version 0 is the base model; its parent and round are 0).
    function getVersion(uint256 versionId)
        external
        view
        returns (bytes32 modelCid, uint256 parentVersion, uint256 roundId, uint64 createdAt);

    /// @notice Metrics hash recorded with version `versionId`.
    function versionMetrics(uint256 versionId) external view returns (bytes32);

    /// @notice Ancestors of `versionId`, nearest first: [parent, grandparent, ..., 0]; empty for 0.
    function lineage(uint256 versionId) external view returns (uint256[] memory ancestors);

    /// @notice Id of the newest version (0 while only the base model exists).
    function latestVersion() external view returns (uint256);

    /// @notice The Rounds contract holding the submissions (0 until {setRounds}).
    function rounds() external view returns (address);
}
