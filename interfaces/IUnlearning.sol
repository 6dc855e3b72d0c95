// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title IUnlearning
/// @notice Right-to-be-forgotten requests with a deadline and a requester bond. An org (or the
/// governor, for a data subject) asks for the removal of all its contributions (Org), of one
/// round's contribution and every later one of the org that descends from it (Round), or of a
/// sample set inside its contributions (Samples, by the Merkle root of the samples).
/// - Org / Round: the answerable aggregator is fixed when the request is made (the default
///   aggregator then); a staked aggregator may acknowledge (locking `slashAmount()` of its free
///   stake) and becomes answerable. A receipt (new model CID, root of what was removed, metrics
///   hash) is due before the deadline, otherwise anyone can have the answerable aggregator slashed.
/// - Samples: answered by the org's own trainer, which replaces its contribution of each affected
///   round ({replaceContribution}: new CID, new data commitment without the removed samples);
///   the aggregator re-merges and completes. Never slashable against an aggregator.
/// The bond (`requestBond()`, pulled from the caller) is refunded on every final state except
/// Voided (judged void by the governor) and Expired without a replacement (a Samples request the
/// org never answered); a forfeited bond goes to Staking's treasury.
/// At most one pending request per (org, scope, target). A pending request whose target has
/// nothing live left is Closed without a slash (bond refunded).
/// @dev Receipts are the {UnlearningCompleted} events; every final transition also emits
/// {RequestSettled}. Completing an Org request revokes the org's rounds `[1, roundCount]`, a Round
/// request for round r revokes `[r, roundCount]` in the registry (O(1) gas); every completion
/// records a new model version (round id 0) whose parent is the registry's latest version.
/// Governance is read from Membership's `GOVERNOR_ROLE` at call time.
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
        Slashed,
        Closed,
        Voided,
        Expired
    }

    /// @notice `caller` may not request unlearning for `org` (only `org` itself or a governor may).
    error UnlearningNotAuthorized(address caller, address org);
    /// @notice `caller` does not hold `GOVERNOR_ROLE` in Membership.
    error UnlearningNotGovernor(address caller);
    /// @notice `caller` is not an aggregator holding the minimum stake.
    error UnlearningNotStakedAggregator(address caller);
    /// @notice `target` is not valid for `scope` (must be 0 for Org, a round id for Round, non-zero for Samples).
    error UnlearningInvalidTarget(Scope scope, bytes32 target);
    /// @notice `org` has nothing live matching `scope` / `target` (Round: no live contribution in
    /// that round; Org / Samples: `org` never joined, or all its contributions are revoked).
    error UnlearningNoContribution(address org, Scope scope, bytes32 target);
    /// @notice Request `requestId` for the same (org, scope, target) is still pending.
    error UnlearningDuplicate(uint256 requestId);
    /// @notice Request `requestId` does not exist.
    error UnlearningUnknownRequest(uint256 requestId);
    /// @notice Request `requestId` is in `state`, which does not allow this call.
    error UnlearningWrongState(uint256 requestId, RequestState state);
    /// @notice Request `requestId` has scope `scope`, which does not allow this call.
    error UnlearningWrongScope(uint256 requestId, Scope scope);
    /// @notice The deadline `deadline` of request `requestId` has passed.
    error UnlearningDeadlinePassed(uint256 requestId, uint64 deadline);
    /// @notice The deadline `deadline` of request `requestId` has not passed yet.
    error UnlearningDeadlineNotReached(uint256 requestId, uint64 deadline);
    /// @notice The new model CID of the receipt for request `requestId` is zero.
    error UnlearningZeroModelCid(uint256 requestId);
    /// @notice `caller` is not the org `org` of the Samples request (only its own trainer replaces).
    error UnlearningNotRequestOrg(address caller, address org);
    /// @notice `caller` is the org of request `requestId`: the org being forgotten cannot replay.
    error UnlearningRequestOrgReplay(uint256 requestId, address caller);
    /// @notice Round `roundId` cannot be replayed for request `requestId`: only rounds
    /// `[fromRound, roundsAtRequest]` (Org: from 1; Round r: from r; up to the round count when
    /// the request was made).
    error UnlearningReplayOutOfRange(uint256 requestId, uint256 roundId, uint256 fromRound, uint256 roundsAtRequest);
    /// @notice Samples request `requestId` cannot complete before the org replaced a contribution.
    error UnlearningNotReplaced(uint256 requestId);
    /// @notice The contribution of `org` in round `roundId` is not live (cannot be replaced).
    error UnlearningNotLive(uint256 roundId, address org);
    /// @notice Request `requestId` still has a live target and cannot be closed.
    error UnlearningStillLive(uint256 requestId);
    /// @notice `responseWindow` is longer than Staking's `unbondDelay`: an acknowledger could
    /// withdraw before it can be slashed.
    error UnlearningWindowExceedsUnbond(uint64 responseWindow, uint64 unbondDelay);
    /// @notice `slashAmount` is zero.
    error UnlearningZeroSlashAmount();
    /// @notice The zero address was given where a contract is required.
    error UnlearningZeroAddress();

    /// @notice `org` asked to unlearn `scope` / `target` for the reason `reasonHash`; a receipt is due by `deadline`.
    event UnlearningRequested(
        uint256 indexed requestId, address indexed org, Scope scope, bytes32 target, bytes32 reasonHash, uint64 deadline
    );
    /// @notice `requester` posted `bond` for request `requestId`; `aggregator` is answerable (0: none;
    /// Samples requests have none).
    event RequestBonded(uint256 indexed requestId, address indexed requester, address indexed aggregator, uint256 bond);
    /// @notice `aggregator` took responsibility for request `requestId` (and locked `slashAmount()` of stake).
    event UnlearningAcknowledged(uint256 indexed requestId, address indexed aggregator);
    /// @notice For request `requestId`, `org` replaced its contribution in round `roundId`: the
    /// request's org for a Samples request ({replaceContribution}), another member replaying its
    /// round for an Org / Round request ({replayContribution}). The new CID and data commitment
    /// are in Rounds' `SubmissionReplaced`.
    event ContributionReplaced(uint256 indexed requestId, uint256 indexed roundId, address indexed org);
    /// @notice Receipt of request `requestId`: version `versionId` (model `newModelCid`) without the
    /// data committed by `removedRoot`, verified by the figures hashed in `metricsHash`.
    event UnlearningCompleted(
        uint256 indexed requestId, uint256 indexed versionId, bytes32 newModelCid, bytes32 removedRoot, bytes32 metricsHash
    );
    /// @notice `aggregator` lost `amount` of stake for missing the deadline of request `requestId`.
    event AggregatorSlashed(uint256 indexed requestId, address indexed aggregator, uint256 amount);
    /// @notice The governor judged request `requestId` void for the reason `reasonHash`.
    event RequestVoided(uint256 indexed requestId, bytes32 reasonHash);
    /// @notice Request `requestId` reached its final state `state`; `refunded` of the bond went back to
    /// `requester`, `forfeited` to the treasury. Emitted exactly once per request.
    event RequestSettled(
        uint256 indexed requestId, RequestState state, address indexed requester, uint256 refunded, uint256 forfeited
    );
    /// @notice The aggregator answerable for new requests changed from `previous` to `aggregator`.
    event DefaultAggregatorSet(address indexed previous, address indexed aggregator);

    /// @notice Opens an unlearning request with deadline `block.timestamp + responseWindow()` and
    /// pulls `requestBond()` from the caller (approve it to this contract first).
    /// `target`: 0 for Org, `bytes32(roundId)` for Round, the samples' Merkle root for Samples.
    /// Requirements:
    /// - caller is `org` or holds `GOVERNOR_ROLE`;
    /// - Round: `org` has a live contribution in that round; Org / Samples: `org` joined at some time
    ///   and not all its contributions are revoked;
    /// - no pending request for the same (org, scope, target).
    /// Emits {UnlearningRequested} and {RequestBonded}.
    /// @return requestId the new request's id (1, 2, ...).
    function requestUnlearning(address org, Scope scope, bytes32 target, bytes32 reasonHash)
        external
        returns (uint256 requestId);

    /// @notice The calling aggregator becomes answerable for Org / Round request `requestId` and
    /// locks `slashAmount()` of its free stake until the request ends.
    /// Requirements:
    /// - caller has `AGGREGATOR_ROLE`, the minimum stake and `slashAmount()` of free stake;
    /// - the request is Requested, its scope is not Samples, its target is still live;
    /// - the deadline has not passed.
    /// Emits an {UnlearningAcknowledged} event.
    function acknowledge(uint256 requestId) external;

    /// @notice The org's own trainer answers Samples request `requestId` by replacing its
    /// contribution in round `roundId` (new adapter CID, sample count, data commitment that
    /// excludes the removed samples). The replaced contribution is revoked.
    /// Requirements:
    /// - caller is the request's org; the request is a pending Samples request before its deadline;
    /// - the org's contribution in `roundId` is live; Rounds' replaceSubmission requirements.
    /// Emits {ContributionReplaced} (and Rounds' `SubmissionReplaced`).
    function replaceContribution(
        uint256 requestId,
        uint256 roundId,
        bytes32 adapterCid,
        uint64 numSamples,
        bytes32 dataCommitment
    ) external;

    /// @notice Grouped collaboration: while the Org / Round request `requestId` is pending, a
    /// member other than the request's org replaces its own contribution of round `roundId` by
    /// its replay without the forgotten org (members of the org's group retrain the rounds that
    /// descend from the removed contributions; the executor merges the replays off chain and
    /// decides when the replay is complete).
    /// Requirements:
    /// - the request is a pending (Requested or Acknowledged) Org or Round request before its deadline;
    /// - caller is not the request's org;
    /// - `roundId` is in `[fromRound, roundsAtRequest]` (Org: from 1; Round r: from r);
    /// - the caller's contribution in `roundId` is live; Rounds' replaceSubmission requirements.
    /// Emits {ContributionReplaced} (and Rounds' `SubmissionReplaced` with `requestId`).
    function replayContribution(
        uint256 requestId,
        uint256 roundId,
        bytes32 adapterCid,
        uint64 numSamples,
        bytes32 dataCommitment
    ) external;

    /// @notice Posts the receipt of request `requestId`, revokes the removed contributions (Org:
    /// rounds `[1, roundCount]` of the org; Round r: `[r, roundCount]`; Samples: none, the
    /// replacements already took the old ones out), records the new model version, releases the
    /// acknowledger's locked stake and refunds the bond.
    /// Requirements:
    /// - caller has `AGGREGATOR_ROLE` and the minimum stake;
    /// - the request is Requested or Acknowledged and `block.timestamp <= deadline`;
    /// - Samples: at least one contribution was replaced; `newModelCid` != 0.
    /// Emits {UnlearningCompleted}, {RequestSettled} (and the registry's `ContributionsRevoked` / `VersionRecorded`).
    /// @return versionId the registry version of the new model.
    function completeUnlearning(uint256 requestId, bytes32 newModelCid, bytes32 removedRoot, bytes32 metricsHash)
        external
        returns (uint256 versionId);

    /// @notice Settles an overdue request. Anyone may call. In order:
    /// - Samples: Expired (no slash); bond refunded if a contribution was replaced, else forfeited;
    /// - nothing live left: Closed, no slash, bond refunded;
    /// - no answerable aggregator: Expired, bond refunded;
    /// - otherwise the answerable aggregator (fixed at request, or the acknowledger) loses
    ///   `slashAmount()` (capped at its stake plus pending unbond): Slashed, bond refunded.
    /// Requirements:
    /// - the request is Requested or Acknowledged and `block.timestamp > deadline`.
    /// Emits {RequestSettled} (and {AggregatorSlashed}, Staking's `Slashed` when slashed).
    function slashMissed(uint256 requestId) external;

    /// @notice Closes pending request `requestId` whose target has nothing live left (revoked by
    /// another request, or rejected): no slash, bond refunded. Anyone may call.
    /// Requirements:
    /// - the request is Requested or Acknowledged; nothing live left for it.
    /// Emits {RequestSettled}.
    function closeRequest(uint256 requestId) external;

    /// @notice The governor judges pending request `requestId` void (junk): the bond is forfeited
    /// to the treasury; an acknowledger's locked stake is released.
    /// Requirements:
    /// - caller holds `GOVERNOR_ROLE`; the request is Requested or Acknowledged.
    /// Emits {RequestVoided} and {RequestSettled}.
    function voidRequest(uint256 requestId, bytes32 reasonHash) external;

    /// @notice Sets the aggregator answerable for new requests (existing requests keep theirs).
    /// Requirements:
    /// - caller holds `GOVERNOR_ROLE`.
    /// Emits a {DefaultAggregatorSet} event.
    function setDefaultAggregator(address aggregator) external;

    /// @notice Request `requestId` (all zero / None if it does not exist). `aggregator` is the
    /// answerable one (fixed at request, replaced by an acknowledger), then whoever completed it.
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

    /// @notice Who posted the bond of request `requestId` and how many contributions were replaced for it.
    function requestInfo(uint256 requestId) external view returns (address requester, uint256 replacements);

    /// @notice The pending request for (org, scope, target), 0 if none.
    function pendingRequest(address org, Scope scope, bytes32 target) external view returns (uint256);

    /// @notice Whether pending request `requestId` still has something live to remove.
    function hasLiveTarget(uint256 requestId) external view returns (bool);

    /// @notice Number of requests so far (the latest request id).
    function requestCount() external view returns (uint256);

    /// @notice Aggregator answerable for new requests.
    function defaultAggregator() external view returns (address);

    /// @notice Seconds between a request and its deadline (<= Staking's `unbondDelay`).
    function responseWindow() external view returns (uint64);

    /// @notice Stake taken from an aggregator that misses a deadline (and locked per acknowledged request).
    function slashAmount() external view returns (uint256);

    /// @notice Tokens a requester posts per request.
    function requestBond() external view returns (uint256);

    /// @notice The bond token (Staking's token).
    function token() external view returns (address);
}
