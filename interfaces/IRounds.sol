// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title IRounds
/// @notice Federated training rounds: open (config CID, deadline, reward budget, per-submission
/// sample cap) -> members submit (adapter CID, sample count, data commitment) -> close -> finalize
/// (merged model CID, rewards Merkle root and total, metrics) in O(1) gas -> each org claims its
/// reward with a Merkle proof within the claim window; what is not claimed returns to the pool.
/// @dev CIDs are the 32-byte sha2-256 digests of CIDv0 multihashes. Roles are read from
/// Membership at call time: `GOVERNOR_ROLE` may act as an aggregator; an `AGGREGATOR_ROLE`
/// holder must also hold the minimum stake (`hasMinStake`); submitting needs `MEMBER_ROLE`.
/// A submission is stored as ONE slot, its commitment
/// `keccak256(abi.encode(adapterCid, numSamples, dataCommitment))` with the two low bits cleared
/// (bit 0 marks it rejected, bit 1 claimed); the CID, count and data commitment themselves are in
/// the {UpdateSubmitted} / {SubmissionReplaced} events and are checked against {commitmentOf}.
/// Reward leaves are `keccak256(bytes.concat(keccak256(abi.encode(org, amount))))`
/// (OpenZeppelin StandardMerkleTree); only orgs with a non-rejected submission can claim.
interface IRounds {
    enum RoundState {
        None,
        Open,
        Closed,
        Finalized,
        Cancelled
    }

    /// @notice `caller` is neither the governor nor an aggregator holding the minimum stake.
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
    /// @notice `numSamples` exceeds the cap `maxSamples` set when round `roundId` was opened.
    error RoundsTooManySamples(uint256 roundId, uint64 numSamples, uint64 maxSamples);
    /// @notice The per-submission sample cap of a new round is zero.
    error RoundsZeroMaxSamples();
    /// @notice `org` has no submission in round `roundId`.
    error RoundsNoSubmission(uint256 roundId, address org);
    /// @notice The submission of `org` in round `roundId` is already rejected.
    error RoundsAlreadyRejected(uint256 roundId, address org);
    /// @notice The submission of `org` in round `roundId` was rejected: it earns nothing and cannot be replaced.
    error RoundsSubmissionRejected(uint256 roundId, address org);
    /// @notice A replacement for `org` in round `roundId` commits to exactly what is already there.
    error RoundsSameSubmission(uint256 roundId, address org);
    /// @notice `caller` may not replace submissions (only holders of the registry's `REVOKER_ROLE`: Unlearning).
    error RoundsNotReplacer(address caller);
    /// @notice The merged model CID given to finalize round `roundId` is zero.
    error RoundsZeroModelCid(uint256 roundId);
    /// @notice The rewards tree of round `roundId` pays `rewardsTotal`, more than its budget `budget`.
    error RoundsRewardsExceedBudget(uint256 roundId, uint256 rewardsTotal, uint256 budget);
    /// @notice Round `roundId` pays `rewardsTotal` but its rewards root is zero.
    error RoundsZeroRewardsRoot(uint256 roundId, uint256 rewardsTotal);
    /// @notice Round `roundId` has `numSubmissions` submissions and cannot be cancelled.
    error RoundsHasSubmissions(uint256 roundId, uint256 numSubmissions);
    /// @notice A budget of `requested` exceeds the unreserved reward pool `available`.
    error RoundsInsufficientRewardPool(uint256 requested, uint256 available);
    /// @notice `org` already claimed its reward of round `roundId`.
    error RoundsAlreadyClaimed(uint256 roundId, address org);
    /// @notice The proof does not show a leaf (`org`, `amount`) under the rewards root of round `roundId`.
    error RoundsInvalidProof(uint256 roundId, address org, uint256 amount);
    /// @notice Claiming `amount` in round `roundId` would exceed its budget; `remaining` is left.
    error RoundsBudgetExceeded(uint256 roundId, uint256 amount, uint256 remaining);
    /// @notice The claim window of round `roundId` closed at `closedAt`.
    error RoundsClaimWindowClosed(uint256 roundId, uint64 closedAt);
    /// @notice The claim window of round `roundId` is open until `closesAt`.
    error RoundsClaimWindowOpen(uint256 roundId, uint64 closesAt);
    /// @notice Round `roundId` has no unclaimed reward left to return.
    error RoundsNothingToSweep(uint256 roundId);
    /// @notice `amount` is zero.
    error RoundsZeroAmount();
    /// @notice `amount` does not fit the packed 128-bit storage.
    error RoundsAmountTooLarge(uint256 amount);
    /// @notice The zero address was given where a contract is required.
    error RoundsZeroAddress();

    /// @notice Round `roundId` opened with config `configCid`, submissions until `deadline`,
    /// `rewardBudget` reserved, at most `maxSamples` samples counted per submission.
    event RoundOpened(
        uint256 indexed roundId, bytes32 configCid, uint64 deadline, uint256 rewardBudget, uint64 maxSamples
    );
    /// @notice `org` submitted adapter `adapterCid` trained on `numSamples` samples committed by `dataCommitment`.
    event UpdateSubmitted(
        uint256 indexed roundId, address indexed org, bytes32 adapterCid, uint64 numSamples, bytes32 dataCommitment
    );
    /// @notice In answer to Samples-scope unlearning request `requestId`, the contribution of `org`
    /// in round `roundId` was replaced by adapter `adapterCid` (`numSamples` samples, `dataCommitment`);
    /// the replaced one is revoked (it is no longer the round's contribution of `org`).
    event SubmissionReplaced(
        uint256 indexed roundId,
        address indexed org,
        uint256 indexed requestId,
        bytes32 adapterCid,
        uint64 numSamples,
        bytes32 dataCommitment
    );
    /// @notice Round `roundId` closed with `numSubmissions` submissions.
    event RoundClosed(uint256 indexed roundId, uint256 numSubmissions);
    /// @notice The submission of `org` in round `roundId` was excluded for the reason `reasonHash`.
    event SubmissionRejected(uint256 indexed roundId, address indexed org, bytes32 reasonHash);
    /// @notice Round `roundId` produced version `versionId` (model `modelCid`), rewards `rewardsRoot`
    /// paying `rewardsTotal` in all, metrics `metricsHash`.
    event RoundFinalized(
        uint256 indexed roundId,
        uint256 indexed versionId,
        bytes32 modelCid,
        bytes32 rewardsRoot,
        uint256 rewardsTotal,
        bytes32 metricsHash
    );
    /// @notice Round `roundId` was cancelled (no submissions); its budget `returned` went back to the pool.
    event RoundCancelled(uint256 indexed roundId, uint256 returned);
    /// @notice `amount` of the budget of round `roundId` went back to the pool (finalize remainder or
    /// unclaimed after the claim window); `pool` is now unreserved.
    event RewardsReturned(uint256 indexed roundId, uint256 amount, uint256 pool);
    /// @notice `org` claimed `amount` of the rewards of round `roundId`.
    event RewardClaimed(uint256 indexed roundId, address indexed org, uint256 amount);
    /// @notice `funder` added `amount` to the reward pool; `pool` is now unreserved.
    event RewardsFunded(address indexed funder, uint256 amount, uint256 pool);

    /// @notice Opens a round.
    /// Requirements:
    /// - caller is the governor or an aggregator with the minimum stake;
    /// - `configCid` != 0; `deadline > block.timestamp`; `rewardBudget <= rewardPool()`; `maxSamples` != 0.
    /// Emits a {RoundOpened} event.
    /// @return roundId the new round's id (1, 2, ...).
    function openRound(bytes32 configCid, uint64 deadline, uint256 rewardBudget, uint64 maxSamples)
        external
        returns (uint256 roundId);

    /// @notice Adds `amount` tokens (pulled with `transferFrom`) to the unreserved reward pool. Anyone may fund.
    /// Requirements:
    /// - `amount` > 0 and approved to this contract.
    /// Emits a {RewardsFunded} event.
    function fundRewards(uint256 amount) external;

    /// @notice The calling member submits its adapter for round `roundId`. Stores one slot, the
    /// commitment (see the contract's notes); at most 70,000 gas for every submission.
    /// Requirements:
    /// - caller has `MEMBER_ROLE`; the round is Open and `block.timestamp <= deadline`;
    /// - the caller did not submit to this round; `adapterCid`, `numSamples`, `dataCommitment` != 0;
    /// - `numSamples <= maxSamples` of the round.
    /// Two orgs may submit the same CID: uniqueness is per (org, round), and the sealed adapter's
    /// header binds it to its submitter and round, so the aggregator rejects a copied blob.
    /// Emits an {UpdateSubmitted} event.
    function submitUpdate(uint256 roundId, bytes32 adapterCid, uint64 numSamples, bytes32 dataCommitment) external;

    /// @notice Replaces the contribution of `org` in round `roundId` in answer to the Samples-scope
    /// unlearning request `requestId` (called by Unlearning for the org's own trainer). Keeps the
    /// claimed flag.
    /// Requirements:
    /// - caller holds the registry's `REVOKER_ROLE`;
    /// - `org` has a non-rejected submission in round `roundId`; the new one differs from it;
    /// - `adapterCid`, `numSamples`, `dataCommitment` != 0; `numSamples <= maxSamples` of the round.
    /// Emits a {SubmissionReplaced} event.
    function replaceSubmission(
        uint256 roundId,
        address org,
        bytes32 adapterCid,
        uint64 numSamples,
        bytes32 dataCommitment,
        uint256 requestId
    ) external;

    /// @notice Closes round `roundId` to submissions.
    /// Requirements:
    /// - the round is Open;
    /// - caller is an aggregator or the governor, or anyone once `block.timestamp > deadline`.
    /// Emits a {RoundClosed} event.
    function closeRound(uint256 roundId) external;

    /// @notice Cancels round `roundId`, which received no submission; its budget returns to the pool.
    /// Requirements:
    /// - caller is an aggregator or the governor; the round is Open or Closed with no submission.
    /// Emits a {RoundCancelled} event.
    function cancelRound(uint256 roundId) external;

    /// @notice Excludes the submission of `org` from round `roundId` (bad or tampered adapter).
    /// Requirements:
    /// - caller is an aggregator or the governor; the round is Closed;
    /// - `org` submitted to it and was not rejected yet.
    /// Emits a {SubmissionRejected} event.
    function rejectSubmission(uint256 roundId, address org, bytes32 reasonHash) external;

    /// @notice Finalizes round `roundId` and records its model as a new version whose parent is the
    /// registry's latest version. The rewards tree pays `rewardsTotal`; the rest of the budget
    /// returns to the pool. O(1) gas whatever the number of submissions.
    /// Requirements:
    /// - caller is an aggregator or the governor; the round is Closed; `modelCid` != 0;
    /// - `rewardsTotal <= ` the round's budget; `rewardsRoot` != 0 when `rewardsTotal` != 0.
    /// Emits a {RoundFinalized} event (and {RewardsReturned} when something returns to the pool).
    /// @return versionId the registry version of the merged model.
    function finalizeRound(
        uint256 roundId,
        bytes32 modelCid,
        bytes32 rewardsRoot,
        uint256 rewardsTotal,
        bytes32 metricsHash
    ) external returns (uint256 versionId);

    /// @notice The caller claims `amount` of the rewards of round `roundId`.
    /// Requirements:
    /// - the round is Finalized and its claim window (`claimWindow()` after finalization) is open;
    /// - the caller has a non-rejected submission in it and has not claimed;
    /// - `proof` shows leaf (caller, amount) under the round's rewards root;
    /// - the round's claims stay within its rewards total.
    /// Emits a {RewardClaimed} event.
    function claimReward(uint256 roundId, uint256 amount, bytes32[] calldata proof) external;

    /// @notice Returns what round `roundId` left unclaimed to the pool once its claim window closed. Anyone may call.
    /// Requirements:
    /// - the round is Finalized; `block.timestamp > ` its claim deadline; something is unclaimed.
    /// Emits a {RewardsReturned} event.
    function sweepUnclaimed(uint256 roundId) external;

    /// @notice Round `roundId` (all zero / None if it does not exist). `rewardBudget` is the
    /// reserved budget until finalization, then the rewards total (what was claimed, after a sweep).
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

    /// @notice The sample cap of round `roundId`, when it was finalized (0: not yet) and the end of
    /// its claim window (0: not finalized).
    function roundTerms(uint256 roundId)
        external
        view
        returns (uint64 maxSamples, uint64 finalizedAt, uint64 claimDeadline);

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

    /// @notice The commitment of the current submission of `org` in round `roundId` (0 if none):
    /// equals `submissionCommitment(adapterCid, numSamples, dataCommitment)` of its latest
    /// {UpdateSubmitted} or {SubmissionReplaced} event.
    function commitmentOf(uint256 roundId, address org) external view returns (bytes32);

    /// @notice `keccak256(abi.encode(adapterCid, numSamples, dataCommitment))` with its two low bits cleared.
    function submissionCommitment(bytes32 adapterCid, uint64 numSamples, bytes32 dataCommitment)
        external
        pure
        returns (bytes32);

    /// @notice Tokens funded and not reserved by any round.
    function rewardPool() external view returns (uint256);

    /// @notice Seconds after finalization during which rewards can be claimed.
    function claimWindow() external view returns (uint64);

    /// @notice The reward token.
    function token() external view returns (address);

    /// @notice The Membership contract whose roles are checked.
    function membership() external view returns (address);

    /// @notice The registry that records the versions.
    function registry() external view returns (address);
}
