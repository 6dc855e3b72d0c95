// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {IContributionRegistry} from "../interfaces/IContributionRegistry.sol";
import {IMembership} from "../interfaces/IMembership.sol";
import {IRounds} from "../interfaces/IRounds.sol";

/// @title Rounds
/// @notice Federated rounds: open, submit, close, reject, finalize (O(1)), claim by Merkle proof,
/// cancel an empty round, sweep what was not claimed in time.
/// @dev Storage written by one submission, the hot path: ONE fresh slot,
/// `_submissions[roundId][org]` = the submission's commitment (two low bits: rejected, claimed),
/// and the round's counter in `_rounds[roundId]` slot 0 (same slot as state, deadline and cap).
/// Claiming sets a bit of that slot (no fresh slot). Governance and aggregator rights are read
/// from Membership at call time.
contract Rounds is IRounds, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    // Same values as Membership's / the registry's constants; read locally to save a call per check.
    bytes32 private constant MEMBER_ROLE = keccak256("MEMBER_ROLE");
    bytes32 private constant AGGREGATOR_ROLE = keccak256("AGGREGATOR_ROLE");
    bytes32 private constant GOVERNOR_ROLE = keccak256("GOVERNOR_ROLE");
    bytes32 private constant REVOKER_ROLE = keccak256("REVOKER_ROLE");

    uint256 private constant REJECTED = 1;
    uint256 private constant CLAIMED = 2;
    uint256 private constant FLAGS = 3;

    struct Round {
        RoundState state; // slot 0
        uint64 deadline; // slot 0
        uint32 numSubmissions; // slot 0
        uint32 numRejected; // slot 0
        uint64 maxSamples; // slot 0
        uint48 finalizedAt; // slot 0
        uint128 rewardBudget; // slot 1: reserved budget, the rewards total once finalized
        uint128 claimed; // slot 1
        bytes32 configCid; // slot 2
        bytes32 modelCid; // slot 3
        bytes32 rewardsRoot; // slot 4
        uint64 versionId; // slot 5
    }

    IERC20 private immutable _token;
    IMembership private immutable _membership;
    IContributionRegistry private immutable _registry;
    uint64 private immutable _claimWindow;

    uint32 private _roundCount;
    uint256 private _rewardPool;
    mapping(uint256 roundId => Round) private _rounds;
    mapping(uint256 roundId => mapping(address org => bytes32 commitment)) private _submissions;

    /// @param token_ the reward token.
    /// @param membership_ the roles (`GOVERNOR_ROLE`, `MEMBER_ROLE`, `AGGREGATOR_ROLE`) and `hasMinStake`.
    /// @param registry_ receives a version per finalized round (grant this contract REGISTRAR_ROLE);
    /// its `REVOKER_ROLE` holders (Unlearning) may replace submissions.
    /// @param claimWindow_ seconds after finalization during which rewards can be claimed.
    constructor(IERC20 token_, IMembership membership_, IContributionRegistry registry_, uint64 claimWindow_) {
        if (address(token_) == address(0) || address(membership_) == address(0) || address(registry_) == address(0))
        {
            revert RoundsZeroAddress();
        }
        _token = token_;
        _membership = membership_;
        _registry = registry_;
        _claimWindow = claimWindow_;
    }

    modifier onlyAggregator() {
        _checkAggregator(msg.sender);
        _;
    }

    /// @inheritdoc IRounds
    function openRound(bytes32 configCid, uint64 deadline, uint256 rewardBudget, uint64 maxSamples)
        external
        onlyAggregator
        returns (uint256 roundId)
    {
        if (configCid == bytes32(0)) revert RoundsZeroConfigCid();
        if (deadline <= block.timestamp) revert RoundsDeadlineInPast(deadline, uint64(block.timestamp));
        if (maxSamples == 0) revert RoundsZeroMaxSamples();
        uint256 pool = _rewardPool;
        if (rewardBudget > pool) revert RoundsInsufficientRewardPool(rewardBudget, pool);
        _rewardPool = pool - rewardBudget; // pool < 2**128 (see fundRewards), so the budget fits 128 bits
        roundId = ++_roundCount;
        Round storage r = _rounds[roundId];
        r.state = RoundState.Open;
        r.deadline = deadline;
        r.maxSamples = maxSamples;
        r.rewardBudget = uint128(rewardBudget);
        r.configCid = configCid;
        emit RoundOpened(roundId, configCid, deadline, rewardBudget, maxSamples);
    }

    /// @inheritdoc IRounds
    function fundRewards(uint256 amount) external nonReentrant {
        if (amount == 0) revert RoundsZeroAmount();
        uint256 pool = _rewardPool + amount;
        if (pool > type(uint128).max) revert RoundsAmountTooLarge(amount);
        _rewardPool = pool;
        emit RewardsFunded(msg.sender, amount, pool);
        _token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @inheritdoc IRounds
    function submitUpdate(uint256 roundId, bytes32 adapterCid, uint64 numSamples, bytes32 dataCommitment)
        external
    {
        _checkFields(roundId, adapterCid, numSamples, dataCommitment);
        if (!_membership.hasRole(MEMBER_ROLE, msg.sender)) revert RoundsNotMember(msg.sender);
        Round storage r = _rounds[roundId];
        _requireState(roundId, r.state, RoundState.Open);
        if (block.timestamp > r.deadline) revert RoundsDeadlinePassed(roundId, r.deadline);
        if (numSamples > r.maxSamples) revert RoundsTooManySamples(roundId, numSamples, r.maxSamples);
        mapping(address => bytes32) storage subs = _submissions[roundId];
        if (subs[msg.sender] != bytes32(0)) revert RoundsAlreadySubmitted(roundId, msg.sender);
        subs[msg.sender] = _commitment(adapterCid, numSamples, dataCommitment);
        ++r.numSubmissions;
        emit UpdateSubmitted(roundId, msg.sender, adapterCid, numSamples, dataCommitment);
    }

    /// @inheritdoc IRounds
    function replaceSubmission(
        uint256 roundId,
        address org,
        bytes32 adapterCid,
        uint64 numSamples,
        bytes32 dataCommitment,
        uint256 requestId
    ) external {
        if (!IAccessControl(address(_registry)).hasRole(REVOKER_ROLE, msg.sender)) revert RoundsNotReplacer(msg.sender);
        _checkFields(roundId, adapterCid, numSamples, dataCommitment);
        Round storage r = _rounds[roundId];
        if (numSamples > r.maxSamples) revert RoundsTooManySamples(roundId, numSamples, r.maxSamples);
        bytes32 old = _submissions[roundId][org];
        if (old == bytes32(0)) revert RoundsNoSubmission(roundId, org);
        if (uint256(old) & REJECTED != 0) revert RoundsSubmissionRejected(roundId, org);
        bytes32 fresh = _commitment(adapterCid, numSamples, dataCommitment);
        if (fresh == _clean(old)) revert RoundsSameSubmission(roundId, org);
        _submissions[roundId][org] = bytes32(uint256(fresh) | (uint256(old) & CLAIMED));
        emit SubmissionReplaced(roundId, org, requestId, adapterCid, numSamples, dataCommitment);
    }

    /// @inheritdoc IRounds
    function closeRound(uint256 roundId) external {
        Round storage r = _rounds[roundId];
        _requireState(roundId, r.state, RoundState.Open);
        if (block.timestamp <= r.deadline && !_isAggregator(msg.sender)) {
            revert RoundsDeadlineNotReached(roundId, r.deadline);
        }
        r.state = RoundState.Closed;
        emit RoundClosed(roundId, r.numSubmissions);
    }

    /// @inheritdoc IRounds
    function cancelRound(uint256 roundId) external onlyAggregator {
        Round storage r = _rounds[roundId];
        RoundState state = r.state;
        if (state != RoundState.Open) _requireState(roundId, state, RoundState.Closed);
        if (r.numSubmissions != 0) revert RoundsHasSubmissions(roundId, r.numSubmissions);
        uint256 budget = r.rewardBudget;
        r.state = RoundState.Cancelled;
        r.rewardBudget = 0;
        _rewardPool += budget;
        emit RoundCancelled(roundId, budget);
    }

    /// @inheritdoc IRounds
    function rejectSubmission(uint256 roundId, address org, bytes32 reasonHash) external onlyAggregator {
        Round storage r = _rounds[roundId];
        _requireState(roundId, r.state, RoundState.Closed);
        bytes32 s = _submissions[roundId][org];
        if (s == bytes32(0)) revert RoundsNoSubmission(roundId, org);
        if (uint256(s) & REJECTED != 0) revert RoundsAlreadyRejected(roundId, org);
        _submissions[roundId][org] = bytes32(uint256(s) | REJECTED);
        ++r.numRejected;
        emit SubmissionRejected(roundId, org, reasonHash);
    }

    /// @inheritdoc IRounds
    /// @dev slither reentrancy-no-eth (accepted): `versionId` is written after the call to the
    /// registry because the registry assigns it. The registry is fixed at construction and trusted
    /// (it only writes its own storage), and the round is already Finalized before the call, so a
    /// re-entrant call finds it in its final state and can change nothing of it.
    // slither-disable-next-line reentrancy-no-eth
    function finalizeRound(
        uint256 roundId,
        bytes32 modelCid,
        bytes32 rewardsRoot,
        uint256 rewardsTotal,
        bytes32 metricsHash
    ) external onlyAggregator returns (uint256 versionId) {
        Round storage r = _rounds[roundId];
        _requireState(roundId, r.state, RoundState.Closed);
        if (modelCid == bytes32(0)) revert RoundsZeroModelCid(roundId);
        uint256 budget = r.rewardBudget;
        if (rewardsTotal > budget) revert RoundsRewardsExceedBudget(roundId, rewardsTotal, budget);
        if (rewardsTotal != 0 && rewardsRoot == bytes32(0)) revert RoundsZeroRewardsRoot(roundId, rewardsTotal);
        r.state = RoundState.Finalized;
        r.finalizedAt = uint48(block.timestamp);
        r.modelCid = modelCid;
        r.rewardsRoot = rewardsRoot;
        r.rewardBudget = uint128(rewardsTotal); // <= budget < 2**128
        uint256 remainder = budget - rewardsTotal;
        uint256 pool = _rewardPool + remainder;
        _rewardPool = pool;
        // Interaction with the (trusted) registry; the round is already Finalized, so a re-entrant
        // call finds it in its final state.
        IContributionRegistry registry_ = _registry;
        versionId = registry_.recordVersion(modelCid, registry_.latestVersion(), roundId, metricsHash);
        r.versionId = uint64(versionId);
        emit RoundFinalized(roundId, versionId, modelCid, rewardsRoot, rewardsTotal, metricsHash);
        if (remainder != 0) emit RewardsReturned(roundId, remainder, pool);
    }

    /// @inheritdoc IRounds
    function claimReward(uint256 roundId, uint256 amount, bytes32[] calldata proof) external nonReentrant {
        if (amount == 0) revert RoundsZeroAmount();
        Round storage r = _rounds[roundId];
        _requireState(roundId, r.state, RoundState.Finalized);
        uint64 closesAt = uint64(r.finalizedAt) + _claimWindow;
        if (block.timestamp > closesAt) revert RoundsClaimWindowClosed(roundId, closesAt);
        bytes32 s = _submissions[roundId][msg.sender];
        if (s == bytes32(0)) revert RoundsNoSubmission(roundId, msg.sender);
        if (uint256(s) & REJECTED != 0) revert RoundsSubmissionRejected(roundId, msg.sender);
        if (uint256(s) & CLAIMED != 0) revert RoundsAlreadyClaimed(roundId, msg.sender);
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(msg.sender, amount))));
        if (!MerkleProof.verifyCalldata(proof, r.rewardsRoot, leaf)) {
            revert RoundsInvalidProof(roundId, msg.sender, amount);
        }
        uint256 remaining = uint256(r.rewardBudget) - r.claimed;
        if (amount > remaining) revert RoundsBudgetExceeded(roundId, amount, remaining);
        _submissions[roundId][msg.sender] = bytes32(uint256(s) | CLAIMED);
        r.claimed += uint128(amount); // amount <= remaining < 2**128
        emit RewardClaimed(roundId, msg.sender, amount);
        _token.safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc IRounds
    function sweepUnclaimed(uint256 roundId) external {
        Round storage r = _rounds[roundId];
        _requireState(roundId, r.state, RoundState.Finalized);
        uint64 closesAt = uint64(r.finalizedAt) + _claimWindow;
        if (block.timestamp <= closesAt) revert RoundsClaimWindowOpen(roundId, closesAt);
        uint128 claimed = r.claimed;
        uint256 remaining = uint256(r.rewardBudget) - claimed;
        if (remaining == 0) revert RoundsNothingToSweep(roundId);
        r.rewardBudget = claimed;
        uint256 pool = _rewardPool + remaining;
        _rewardPool = pool;
        emit RewardsReturned(roundId, remaining, pool);
    }

    /// @inheritdoc IRounds
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
        )
    {
        Round storage r = _rounds[roundId];
        return (
            r.state, r.deadline, r.numSubmissions, r.configCid, r.modelCid, r.rewardsRoot, r.rewardBudget, r.claimed
        );
    }

    /// @inheritdoc IRounds
    function roundTerms(uint256 roundId)
        external
        view
        returns (uint64 maxSamples, uint64 finalizedAt, uint64 claimDeadline)
    {
        Round storage r = _rounds[roundId];
        maxSamples = r.maxSamples;
        finalizedAt = r.finalizedAt;
        if (r.state == RoundState.Finalized) claimDeadline = finalizedAt + _claimWindow;
    }

    /// @inheritdoc IRounds
    function versionOf(uint256 roundId) external view returns (uint256) {
        return _rounds[roundId].versionId;
    }

    /// @inheritdoc IRounds
    function numRejected(uint256 roundId) external view returns (uint256) {
        return _rounds[roundId].numRejected;
    }

    /// @inheritdoc IRounds
    function roundCount() external view returns (uint256) {
        return _roundCount;
    }

    /// @inheritdoc IRounds
    function hasSubmitted(uint256 roundId, address org) external view returns (bool) {
        return _submissions[roundId][org] != bytes32(0);
    }

    /// @inheritdoc IRounds
    function hasClaimed(uint256 roundId, address org) external view returns (bool) {
        return uint256(_submissions[roundId][org]) & CLAIMED != 0;
    }

    /// @inheritdoc IRounds
    function isRejected(uint256 roundId, address org) external view returns (bool) {
        return uint256(_submissions[roundId][org]) & REJECTED != 0;
    }

    /// @inheritdoc IRounds
    function commitmentOf(uint256 roundId, address org) external view returns (bytes32) {
        return _clean(_submissions[roundId][org]);
    }

    /// @inheritdoc IRounds
    function submissionCommitment(bytes32 adapterCid, uint64 numSamples, bytes32 dataCommitment)
        external
        pure
        returns (bytes32)
    {
        return _commitment(adapterCid, numSamples, dataCommitment);
    }

    /// @inheritdoc IRounds
    function rewardPool() external view returns (uint256) {
        return _rewardPool;
    }

    /// @inheritdoc IRounds
    function claimWindow() external view returns (uint64) {
        return _claimWindow;
    }

    /// @inheritdoc IRounds
    function token() external view returns (address) {
        return address(_token);
    }

    /// @inheritdoc IRounds
    function membership() external view returns (address) {
        return address(_membership);
    }

    /// @inheritdoc IRounds
    function registry() external view returns (address) {
        return address(_registry);
    }

    /// @dev The governor (read at call time), or an aggregator that holds the minimum stake.
    function _isAggregator(address account) private view returns (bool) {
        IMembership m = _membership;
        if (m.hasRole(GOVERNOR_ROLE, account)) return true;
        return m.hasRole(AGGREGATOR_ROLE, account) && m.hasMinStake(account);
    }

    function _checkAggregator(address account) private view {
        if (!_isAggregator(account)) revert RoundsNotAggregator(account);
    }

    function _checkFields(uint256 roundId, bytes32 adapterCid, uint64 numSamples, bytes32 dataCommitment)
        private
        pure
    {
        if (adapterCid == bytes32(0)) revert RoundsZeroAdapterCid(roundId);
        if (numSamples == 0) revert RoundsZeroNumSamples(roundId);
        if (dataCommitment == bytes32(0)) revert RoundsZeroDataCommitment(roundId);
    }

    function _commitment(bytes32 adapterCid, uint64 numSamples, bytes32 dataCommitment)
        private
        pure
        returns (bytes32)
    {
        return _clean(keccak256(abi.encode(adapterCid, numSamples, dataCommitment)));
    }

    function _clean(bytes32 slot) private pure returns (bytes32) {
        return bytes32(uint256(slot) & ~FLAGS);
    }

    /// @dev Reverts with RoundsUnknownRound for a round that was never opened, otherwise with the
    /// error naming the state that was expected.
    function _requireState(uint256 roundId, RoundState state, RoundState expected) private pure {
        if (state == expected) return;
        if (state == RoundState.None) revert RoundsUnknownRound(roundId);
        if (expected == RoundState.Open) revert RoundsNotOpen(roundId, state);
        if (expected == RoundState.Closed) revert RoundsNotClosed(roundId, state);
        revert RoundsNotFinalized(roundId, state);
    }
}
