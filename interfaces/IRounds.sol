// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title IRounds
/// @notice Federated training rounds: open (config CID, deadline, reward budget) -> members submit
/// (adapter CID, sample count, data commitment) -> close -> finalize (merged model CID, rewards
/// Merkle root, metrics) in O(1) gas -> each org claims its reward with a Merkle proof.
/// @dev CIDs are the 32-byte sha2-256 digests of CIDv0 multihashes. Roles are read from
/// Membership (`AGGREGATOR_ROLE`, `MEMBER_ROLE`); the governor is fixed at deployment.
/// Reward leaves are `keccak256(bytes.concat(keccak256(abi.encode(org, amount))))`
/// (OpenZeppelin StandardMerkleTree); only orgs that submitted to the round can claim.
interface IRounds {
    enum RoundState {
        None,
        Open,
        Closed,
        Finalized
    }

    /// @notice `caller` is neither an aggregator nor the governor.
    error RoundsNotAggregator(address caller);
    /// @notice `caller` is not a member organisation.
    error RoundsNotMember(address caller);
    /// @notice Round `roundId` does not exist.
    error RoundsUnknownRound(uint256 roundId);
    /// @notice Round `roundId` is in `state`, not Open.
    error RoundsNotOpen(uint256 roundId, RoundState state);
    /// @notice Round `roundId` is in `state`, not Closed.
    error RoundsNotClosed(uint256 roundId, RoundState state);
    /// @notice Round `roundId` is in `state`, not Finalized.
    error RoundsNotFinalized(uint256 roundId, RoundState state);
    /// @notice The config CID of a new round is zero.
    error RoundsZeroConfigCid();
    /// @notice The deadline `deadline` is not after the current time `nowTimestamp`.
    error RoundsDeadlineInPast(uint64 deadline, uint64 nowTimestamp);
    /// @notice Round `roundId` stopped accepting submissions at `deadline`.
    error RoundsDeadlinePassed(uint256 roundId, uint64 deadline);
    /// @notice Only an aggregator or the governor may close round `roundId` before `deadline`.
    error RoundsDeadlineNotReached(uint256 roundId, uint64 deadline);
    /// @notice `org` already submitted to round `roundId`.
    error RoundsAlreadySubmitted(uint256 roundId, address org);
    /// @notice The adapter CID submitted to round `roundId` is zero.
    error RoundsZeroAdapterCid(uint256 roundId);
    /// @notice The sample count submitted to round `roundId` is zero.
    error RoundsZeroNumSamples(uint256 roundId);
    /// @notice The data commitment submitted to round `roundId` is zero.
    error RoundsZeroDataCommitment(uint256 roundId);
    /// @notice `adapterCid` was already submitted (in this or an earlier round).
    error RoundsCidAlreadyUsed(bytes32 adapterCid);
    /// @notice `org` has no submission in round `roundId`.
    error RoundsNoSubmission(uint256 roundId, address org);
    /// @notice The submission of `org` in round `roundId` is already rejected.
    error RoundsAlreadyRejected(uint256 roundId, address org);
    /// @notice The merged model CID given to finalize round `roundId` is zero.
    error RoundsZeroModelCid(uint256 roundId);
    /// @notice A budget of `requested` exceeds the unreserved reward pool `available`.
    error RoundsInsufficientRewardPool(uint256 requested, uint256 available);
    /// @notice `org` already claimed its reward of round `roundId`.
    error RoundsAlreadyClaimed(uint256 roundId, address org);
    /// @notice The proof does not show a leaf (`org`, `amount`) under the rewards root of round `roundId`.
    error RoundsInvalidProof(uint256 roundId, address org, uint256 amount);
    /// @notice Claiming `amount` in round `roundId` would exceed its budget; `remaining` is left.
    error RoundsBudgetExceeded(uint256 roundId, uint256 amount, uint256 remaining);
    /// @notice `amount` is zero.
    error RoundsZeroAmount();
    /// @notice `amount` does not fit the packed 128-bit storage.
    error RoundsAmountTooLarge(uint256 amount);
    /// @notice The zero address was given where a contract is required.
    error RoundsZeroAddress();

    /// @notice Round `roundId` opened with config `configCid`, submissions until `deadline`, `rewardBudget` reserved.
    event RoundOpened(uint256 indexed roundId, bytes32 configCid, uint64 deadline, uint256 rewardBudget);
    /// @notice `org` submitted adapter `adapterCid` trained on `numSamples` samples committed by `dataCommitment`.
    event UpdateSubmitted(
        uint256 indexed roundId, address indexed org, bytes32 adapterCid, uint64 numSamples, bytes32 dataCommitment
    );
    /// @notice Round `roundId` closed with `numSubmissions` submissions.
    event RoundClosed(uint256 indexed roundId, uint256 numSubmissions);
    /// @notice The submission of `org` in round `roundId` was excluded for the reason `reasonHash`.
    event SubmissionRejected(uint256 indexed roundId, address indexed org, bytes32 reasonHash);
    /// @notice Round `roundId` produced version `versionId` (model `modelCid`), rewards `rewardsRoot`, metrics `metricsHash`.
    event RoundFinalized(
        uint256 indexed roundId, uint256 indexed versionId, bytes32 modelCid, bytes32 rewardsRoot, bytes32 metricsHash
    );
    /// @notice `org` claimed `amount` of the rewards of round `roundId`.
    event RewardClaimed(uint256 indexed roundId, address indexed org, uint256 amount);
    /// @notice `funder` added `amount` to the reward pool; `pool` is now unreserved.
    event RewardsFunded(address indexed funder, uint256 amount, uint256 pool);

    /// @notice Opens a round.
    /// Requirements:
    /// - caller has `AGGREGATOR_ROLE` in Membership or is the governor;
    /// - `configCid` != 0; `deadline > block.timestamp`; `rewardBudget <= rewardPool()`.
    /// Emits a {RoundOpened} event.
    /// @return roundId the new round's id (1, 2, ...).
    function openRound(bytes32 configCid, uint64 deadline, uint256 rewardBudget) external returns (uint256 roundId);

    /// @notice Adds `amount` tokens (pulled with `transferFrom`) to the unreserved reward pool. Anyone may fund.
    /// Requirements:
    /// - `amount` > 0 and approved to this contract.
    /// Emits a {RewardsFunded} event.
    function fundRewards(uint256 amount) external;

    /// @notice The calling member submits its adapter for round `roundId`.
    /// Requirements:
    /// - caller has `MEMBER_ROLE`; the round is Open and `block.timestamp <= deadline`;
    /// - the caller did not submit to this round; `adapterCid`, `numSamples`, `dataCommitment` != 0;
    /// - `adapterCid` was never submitted before.
    /// Emits an {UpdateSubmitted} event.
    function submitUpdate(uint256 roundId, bytes32 adapterCid, uint64 numSamples, bytes32 dataCommitment) external;

    /// @notice Closes round `roundId` to submissions.
    /// Requirements:
    /// - the round is Open;
    /// - caller is an aggregator or the governor, or anyone once `block.timestamp > deadline`.
    /// Emits a {RoundClosed} event.
    function closeRound(uint256 roundId) external;

    /// @notice Excludes the submission of `org` from round `roundId` (bad or tampered adapter).
    /// Requirements:
    /// - caller is an aggregator or the governor; the round is Closed;
    /// - `org` submitted to it and was not rejected yet.
    /// Emits a {SubmissionRejected} event.
    function rejectSubmission(uint256 roundId, address org, bytes32 reasonHash) external;

    /// @notice Finalizes round `roundId` and records its model as a new version whose parent is the
    /// registry's latest version. O(1) gas whatever the number of submissions.
    /// Requirements:
    /// - caller is an aggregator or the governor; the round is Closed; `modelCid` != 0.
    /// Emits a {RoundFinalized} event.
    /// @return versionId the registry version of the merged model.
    function finalizeRound(uint256 roundId, bytes32 modelCid, bytes32 rewardsRoot, bytes32 metricsHash)
        external
        returns (uint256 versionId);

    /// @notice The caller claims `amount` of the rewards of round `roundId`.
    /// Requirements:
    /// - the round is Finalized; the caller submitted to it and has not claimed;
    /// - `proof` shows leaf (caller, amount) under the round's rewards root;
    /// - the round's claims stay within its budget.
    /// Emits a {RewardClaimed} event.
    function claimReward(uint256 roundId, uint256 amount, bytes32[] calldata proof) external;

    /// @notice Round `roundId` (all zero / None if it does not exist).
    function getRound(uint256 roundId)
        external
        view
        returns (
            RoundState state,
            uint64 deadline,
            uint32 numSubmissions,
            bytes32 configCid,
            bytes32 modelCid,
            bytes32 rewardsRoot,
            uint256 rewardBudget,
            uint256 claimed
        );

    /// @notice The registry version produced by round `roundId` (0 until it is finalized).
    function versionOf(uint256 roundId) external view returns (uint256);

    /// @notice Number of submissions of round `roundId` rejected so far.
    function numRejected(uint256 roundId) external view returns (uint256);

    /// @notice Number of rounds opened so far (the latest round id).
    function roundCount() external view returns (uint256);

    /// @notice Whether `org` submitted to round `roundId`.
    function hasSubmitted(uint256 roundId, address org) external view returns (bool);

    /// @notice Whether `org` claimed its reward of round `roundId`.
    function hasClaimed(uint256 roundId, address org) external view returns (bool);

    /// @notice Whether the submission of `org` in round `roundId` was rejected.
    function isRejected(uint256 roundId, address org) external view returns (bool);

    /// @notice The submission of `org` in round `roundId` (all zero if none).
    function getSubmission(uint256 roundId, address org)
        external
        view
        returns (bytes32 adapterCid, uint64 numSamples, bytes32 dataCommitment, bool rejected);

    /// @notice Round ids in which `org` submitted, oldest first.
    function contributionsOf(address org) external view returns (uint256[] memory roundIds);

    /// @notice Tokens funded and not reserved by any round.
    function rewardPool() external view returns (uint256);

    /// @notice The governor fixed at deployment.
    function governor() external view returns (address);

    /// @notice The reward token.
    function token() external view returns (address);

    /// @notice The Membership contract whose roles are checked.
    function membership() external view returns (address);

    /// @notice The registry that records the versions.
    function registry() external view returns (address);
}
