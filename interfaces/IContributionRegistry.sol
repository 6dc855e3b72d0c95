// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title IContributionRegistry
/// @notice Model lineage (every version names its parent) and the revocation status of every
/// contribution. Version 0 is the base model, built from no contribution.
/// @dev Submissions are stored by Rounds as one commitment slot each (see IRounds); their
/// contents (CID, sample count, data commitment) are served from Rounds' events by the
/// orchestrator. Revocations are kept per org as round ranges `[fromRound, toRound]`, so a
/// removal costs O(1) gas whatever the org's history: an Org-scope removal revokes
/// `[1, roundCount]`, a Round-scope removal of round r revokes `[r, roundCount]` (the org's later
/// contributions descend from round r's). `toRound` is the round count at the removal, so a new
/// range always ends at or after every earlier one; a range overlapping or adjacent to the org's
/// latest one is merged into it. `rounds()` is wired once by the governor with {setRounds}.
interface IContributionRegistry {
    /// @notice `setRounds` was already called; the Rounds contract is `rounds`.
    error RegistryRoundsAlreadySet(address rounds);
    /// @notice The zero address was given where a contract is required.
    error RegistryZeroAddress();
    /// @notice A revocation range must start at round 1 or later and at most at the round
    /// count: `fromRound` is not in `[1, roundCount]`.
    error RegistryInvalidRange(uint256 fromRound, uint256 roundCount);
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
    /// @notice Every contribution of `org` in rounds `fromRound..toRound` (inclusive) was revoked by
    /// unlearning request `requestId`.
    event ContributionsRevoked(address indexed org, uint256 indexed requestId, uint256 fromRound, uint256 toRound);
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

    /// @notice Revokes every contribution of `org` in rounds `fromRound..rounds().roundCount()`.
    /// O(1) gas whatever the org's history.
    /// Requirements:
    /// - caller has `REVOKER_ROLE`; Rounds is wired; `1 <= fromRound <= roundCount`.
    /// Emits a {ContributionsRevoked} event.
    /// @return toRound the last round of the revoked range (the round count now).
    function revokeFrom(address org, uint256 fromRound, uint256 requestId) external returns (uint256 toRound);

    /// @notice Whether round `roundId` lies in a revoked range of `org` (whether or not it submitted).
    function isRevoked(uint256 roundId, address org) external view returns (bool);

    /// @notice Whether the contribution of `org` in round `roundId` is live: submitted, not
    /// rejected, not revoked. Only live contributions may enter a merge.
    function isLive(uint256 roundId, address org) external view returns (bool);

    /// @notice Highest round of an Org-scope (from round 1) revoked range of `org` (0: none):
    /// every contribution of `org` up to it is revoked.
    function revokedThrough(address org) external view returns (uint256);

    /// @notice The revoked ranges of `org`, oldest first, as parallel arrays (ranges may overlap;
    /// their union is what is revoked).
    function revokedRanges(address org) external view returns (uint256[] memory fromRounds, uint256[] memory toRounds);

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
