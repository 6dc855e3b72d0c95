// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title IUnlearning
/// @notice Right-to-be-forgotten requests with a deadline. An org (or the governor, for a data
/// subject) asks for the removal of all its contributions, of one round's contribution, or of a
/// sample set inside its contributions (by the Merkle root of the samples). A staked aggregator
/// acknowledges and must post a receipt (new model CID, root of what was removed, metrics hash)
/// before the deadline; otherwise anyone can have it slashed.
/// @dev Receipts are the {UnlearningCompleted} events. Completing an Org or Round request revokes
/// the contributions in the registry; every completion records a new model version (round id 0)
/// whose parent is the registry's latest version.
interface IUnlearning {
    enum Scope {
        Org,
        Round,
        Samples
    }

    enum RequestState {
        None,
        Requested,
        Acknowledged,
        Completed,
        Slashed
    }

    /// @notice `caller` may not request unlearning for `org` (only `org` itself or the governor may).
    error UnlearningNotAuthorized(address caller, address org);
    /// @notice `caller` is not the governor.
    error UnlearningNotGovernor(address caller);
    /// @notice `caller` is not an aggregator holding the minimum stake.
    error UnlearningNotStakedAggregator(address caller);
    /// @notice `target` is not valid for `scope` (must be 0 for Org, a round id for Round, non-zero for Samples).
    error UnlearningInvalidTarget(Scope scope, bytes32 target);
    /// @notice `org` has no live (submitted, not rejected, not revoked) contribution matching `scope` / `target`.
    error UnlearningNoContribution(address org, Scope scope, bytes32 target);
    /// @notice Request `requestId` does not exist.
    error UnlearningUnknownRequest(uint256 requestId);
    /// @notice Request `requestId` is in `state`, which does not allow this call.
    error UnlearningWrongState(uint256 requestId, RequestState state);
    /// @notice The deadline `deadline` of request `requestId` has passed.
    error UnlearningDeadlinePassed(uint256 requestId, uint64 deadline);
    /// @notice The deadline `deadline` of request `requestId` has not passed yet.
    error UnlearningDeadlineNotReached(uint256 requestId, uint64 deadline);
    /// @notice The new model CID of the receipt for request `requestId` is zero.
    error UnlearningZeroModelCid(uint256 requestId);
    /// @notice Nobody acknowledged request `requestId` and no default aggregator is set.
    error UnlearningNoAggregator(uint256 requestId);
    /// @notice The zero address was given where a contract is required.
    error UnlearningZeroAddress();

    /// @notice `org` asked to unlearn `scope` / `target` for the reason `reasonHash`; a receipt is due by `deadline`.
    event UnlearningRequested(
        uint256 indexed requestId, address indexed org, Scope scope, bytes32 target, bytes32 reasonHash, uint64 deadline
    );
    /// @notice `aggregator` took responsibility for request `requestId`.
    event UnlearningAcknowledged(uint256 indexed requestId, address indexed aggregator);
    /// @notice Receipt of request `requestId`: version `versionId` (model `newModelCid`) without the
    /// data committed by `removedRoot`, verified by the figures hashed in `metricsHash`.
    event UnlearningCompleted(
        uint256 indexed requestId, uint256 indexed versionId, bytes32 newModelCid, bytes32 removedRoot, bytes32 metricsHash
    );
    /// @notice `aggregator` lost `amount` of stake for missing the deadline of request `requestId`.
    event AggregatorSlashed(uint256 indexed requestId, address indexed aggregator, uint256 amount);
    /// @notice The aggregator answerable for unacknowledged requests changed from `previous` to `aggregator`.
    event DefaultAggregatorSet(address indexed previous, address indexed aggregator);

    /// @notice Opens an unlearning request with deadline `block.timestamp + responseWindow()`.
    /// `target`: 0 for Org, `bytes32(roundId)` for Round, the samples' Merkle root for Samples.
    /// Requirements:
    /// - caller is `org` or the governor;
    /// - `org` has a live contribution (for Round: in that round).
    /// Emits an {UnlearningRequested} event.
    /// @return requestId the new request's id (1, 2, ...).
    function requestUnlearning(address org, Scope scope, bytes32 target, bytes32 reasonHash)
        external
        returns (uint256 requestId);

    /// @notice The calling aggregator becomes answerable for request `requestId`.
    /// Requirements:
    /// - caller has `AGGREGATOR_ROLE` and the minimum stake; the request is Requested;
    /// - the deadline has not passed.
    /// Emits an {UnlearningAcknowledged} event.
    function acknowledge(uint256 requestId) external;

    /// @notice Posts the receipt of request `requestId`, revokes the removed contributions (Org: all
    /// live ones of the org; Round: that round's; Samples: none) and records the new model version.
    /// Requirements:
    /// - caller has `AGGREGATOR_ROLE` and the minimum stake;
    /// - the request is Requested or Acknowledged and `block.timestamp <= deadline`;
    /// - `newModelCid` != 0.
    /// Emits an {UnlearningCompleted} event (and the registry's `ContributionRevoked` / `VersionRecorded`).
    /// @return versionId the registry version of the new model.
    function completeUnlearning(uint256 requestId, bytes32 newModelCid, bytes32 removedRoot, bytes32 metricsHash)
        external
        returns (uint256 versionId);

    /// @notice Slashes the answerable aggregator of an overdue request by `slashAmount()` (capped at
    /// its stake plus pending unbond). Anyone may call.
    /// Requirements:
    /// - the request is Requested or Acknowledged and `block.timestamp > deadline`;
    /// - an aggregator acknowledged it or a default aggregator is set.
    /// Emits an {AggregatorSlashed} event (and Staking's `Slashed` when the amount is not 0).
    function slashMissed(uint256 requestId) external;

    /// @notice Sets the aggregator answerable for requests nobody acknowledged.
    /// Requirements:
    /// - caller is the governor.
    /// Emits a {DefaultAggregatorSet} event.
    function setDefaultAggregator(address aggregator) external;

    /// @notice Request `requestId` (all zero / None if it does not exist).
    function getRequest(uint256 requestId)
        external
        view
        returns (
            address org,
            Scope scope,
            RequestState state,
            uint64 deadline,
            address aggregator,
            bytes32 target,
            bytes32 newModelCid
        );

    /// @notice Number of requests so far (the latest request id).
    function requestCount() external view returns (uint256);

    /// @notice Aggregator answerable for unacknowledged requests.
    function defaultAggregator() external view returns (address);

    /// @notice Seconds between a request and its deadline.
    function responseWindow() external view returns (uint64);

    /// @notice Stake taken from an aggregator that misses a deadline.
    function slashAmount() external view returns (uint256);

    /// @notice The governor fixed at deployment.
    function governor() external view returns (address);
}
