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
/// @notice Federated rounds: open, submit, close, reject, finalize (O(1)), claim by Merkle proof.
/// @dev Storage written by one submission, the hot path (three fresh slots, the minimum for the
/// 576 bits the views return plus a CID-keyed uniqueness index):
/// - `_submissions[roundId][org]`: slot 0 the adapter CID, slot 1 {numSamples, prevRound,
///   rejected, claimed}; `prevRound` links the org's submissions into a list (no array push);
/// - `_commitmentOf[adapterCid]`: the data commitment; non-zero marks the CID as used;
/// - `_orgLog[org]`: head of the org's list (re-written, so warm after the org's first round);
/// - `_rounds[roundId]` slot 0: the submission counter (same slot as state and deadline).
/// Claiming sets `claimed` in the submission's second slot instead of a fresh slot.
contract Rounds is IRounds, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    // Same values as Membership's constants; read locally to save a call per check.
    bytes32 private constant MEMBER_ROLE = keccak256("MEMBER_ROLE");
    bytes32 private constant AGGREGATOR_ROLE = keccak256("AGGREGATOR_ROLE");

    struct Round {
        RoundState state; // slot 0
        uint64 deadline; // slot 0
        uint32 numSubmissions; // slot 0
        uint32 numRejected; // slot 0
        uint64 versionId; // slot 0
        uint128 rewardBudget; // slot 1
        uint128 claimed; // slot 1
        bytes32 configCid; // slot 2
        bytes32 modelCid; // slot 3
        bytes32 rewardsRoot; // slot 4
    }

    struct Submission {
        bytes32 adapterCid; // slot 0
        uint64 numSamples; // slot 1; non-zero iff the submission exists
        uint32 prevRound; // slot 1; the org's previous round with a submission (0: none)
        bool rejected; // slot 1
        bool claimed; // slot 1
    }

    struct OrgLog {
        uint32 lastRound; // head of the org's list of submissions
        uint32 count;
    }

    address private immutable _governor;
    IERC20 private immutable _token;
    IMembership private immutable _membership;
    IContributionRegistry private immutable _registry;

    uint32 private _roundCount;
    uint256 private _rewardPool;
    mapping(uint256 roundId => Round) private _rounds;
    mapping(uint256 roundId => mapping(address org => Submission)) private _submissions;
    mapping(bytes32 adapterCid => bytes32 dataCommitment) private _commitmentOf;
    mapping(address org => OrgLog) private _orgLog;

    /// @param governor_ may act as an aggregator; fixed for the contract's life.
    /// @param token_ the reward token.
    /// @param membership_ the roles (`MEMBER_ROLE`, `AGGREGATOR_ROLE`).
    /// @param registry_ receives a version per finalized round (grant this contract REGISTRAR_ROLE).
    constructor(address governor_, IERC20 token_, IMembership membership_, IContributionRegistry registry_) {
        if (
            governor_ == address(0) || address(token_) == address(0) || address(membership_) == address(0)
                || address(registry_) == address(0)
        ) revert RoundsZeroAddress();
        _governor = governor_;
        _token = token_;
        _membership = membership_;
        _registry = registry_;
    }

    modifier onlyAggregator() {
        _checkAggregator(msg.sender);
        _;
    }

    /// @inheritdoc IRounds
    function openRound(bytes32 configCid, uint64 deadline, uint256 rewardBudget)
        external
        onlyAggregator
        returns (uint256 roundId)
    {
        if (configCid == bytes32(0)) revert RoundsZeroConfigCid();
        if (deadline <= block.timestamp) revert RoundsDeadlineInPast(deadline, uint64(block.timestamp));
        uint256 pool = _rewardPool;
        if (rewardBudget > pool) revert RoundsInsufficientRewardPool(rewardBudget, pool);
        _rewardPool = pool - rewardBudget; // pool < 2**128 (see fundRewards), so the budget fits 128 bits
        roundId = ++_roundCount;
        Round storage r = _rounds[roundId];
        r.state = RoundState.Open;
        r.deadline = deadline;
        r.rewardBudget = uint128(rewardBudget);
        r.configCid = configCid;
        emit RoundOpened(roundId, configCid, deadline, rewardBudget);
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
        if (adapterCid == bytes32(0)) revert RoundsZeroAdapterCid(roundId);
        if (numSamples == 0) revert RoundsZeroNumSamples(roundId);
        if (dataCommitment == bytes32(0)) revert RoundsZeroDataCommitment(roundId);
        if (!_membership.hasRole(MEMBER_ROLE, msg.sender)) revert RoundsNotMember(msg.sender);
        Round storage r = _rounds[roundId];
        _requireState(roundId, r.state, RoundState.Open);
        if (block.timestamp > r.deadline) revert RoundsDeadlinePassed(roundId, r.deadline);
        Submission storage s = _submissions[roundId][msg.sender];
        if (s.numSamples != 0) revert RoundsAlreadySubmitted(roundId, msg.sender);
        if (_commitmentOf[adapterCid] != bytes32(0)) revert RoundsCidAlreadyUsed(adapterCid);

        OrgLog storage log = _orgLog[msg.sender];
        s.adapterCid = adapterCid;
        s.numSamples = numSamples;
        s.prevRound = log.lastRound;
        _commitmentOf[adapterCid] = dataCommitment;
        log.lastRound = uint32(roundId); // roundId <= _roundCount, a uint32
        ++log.count;
        ++r.numSubmissions;
        emit UpdateSubmitted(roundId, msg.sender, adapterCid, numSamples, dataCommitment);
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
    function rejectSubmission(uint256 roundId, address org, bytes32 reasonHash) external onlyAggregator {
        Round storage r = _rounds[roundId];
        _requireState(roundId, r.state, RoundState.Closed);
        Submission storage s = _submissions[roundId][org];
        if (s.numSamples == 0) revert RoundsNoSubmission(roundId, org);
        if (s.rejected) revert RoundsAlreadyRejected(roundId, org);
        s.rejected = true;
        ++r.numRejected;
        emit SubmissionRejected(roundId, org, reasonHash);
    }

    /// @inheritdoc IRounds
    function finalizeRound(uint256 roundId, bytes32 modelCid, bytes32 rewardsRoot, bytes32 metricsHash)
        external
        onlyAggregator
        returns (uint256 versionId)
    {
        Round storage r = _rounds[roundId];
        _requireState(roundId, r.state, RoundState.Closed);
        if (modelCid == bytes32(0)) revert RoundsZeroModelCid(roundId);
        r.state = RoundState.Finalized;
        r.modelCid = modelCid;
        r.rewardsRoot = rewardsRoot;
        // Interaction with the (trusted) registry; the round is already Finalized, so a re-entrant
        // call finds it in its final state.
        IContributionRegistry registry = _registry;
        versionId = registry.recordVersion(modelCid, registry.latestVersion(), roundId, metricsHash);
        r.versionId = uint64(versionId);
        emit RoundFinalized(roundId, versionId, modelCid, rewardsRoot, metricsHash);
    }

    /// @inheritdoc IRounds
    function claimReward(uint256 roundId, uint256 amount, bytes32[] calldata proof) external nonReentrant {
        if (amount == 0) revert RoundsZeroAmount();
        Round storage r = _rounds[roundId];
        _requireState(roundId, r.state, RoundState.Finalized);
        Submission storage s = _submissions[roundId][msg.sender];
        if (s.numSamples == 0) revert RoundsNoSubmission(roundId, msg.sender);
        if (s.claimed) revert RoundsAlreadyClaimed(roundId, msg.sender);
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(msg.sender, amount))));
        if (!MerkleProof.verifyCalldata(proof, r.rewardsRoot, leaf)) {
            revert RoundsInvalidProof(roundId, msg.sender, amount);
        }
        uint256 remaining = uint256(r.rewardBudget) - r.claimed;
        if (amount > remaining) revert RoundsBudgetExceeded(roundId, amount, remaining);
        s.claimed = true;
        r.claimed += uint128(amount); // amount <= remaining < 2**128
        emit RewardClaimed(roundId, msg.sender, amount);
        _token.safeTransfer(msg.sender, amount);
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
        return _submissions[roundId][org].numSamples != 0;
    }

    /// @inheritdoc IRounds
    function hasClaimed(uint256 roundId, address org) external view returns (bool) {
        return _submissions[roundId][org].claimed;
    }

    /// @inheritdoc IRounds
    function isRejected(uint256 roundId, address org) external view returns (bool) {
        return _submissions[roundId][org].rejected;
    }

    /// @inheritdoc IRounds
    function getSubmission(uint256 roundId, address org)
        external
        view
        returns (bytes32 adapterCid, uint64 numSamples, bytes32 dataCommitment, bool rejected)
    {
        Submission storage s = _submissions[roundId][org];
        adapterCid = s.adapterCid;
        if (adapterCid != bytes32(0)) dataCommitment = _commitmentOf[adapterCid];
        return (adapterCid, s.numSamples, dataCommitment, s.rejected);
    }

    /// @inheritdoc IRounds
    function contributionsOf(address org) external view returns (uint256[] memory roundIds) {
        OrgLog storage log = _orgLog[org];
        uint256 n = log.count;
        roundIds = new uint256[](n);
        uint256 roundId = log.lastRound;
        for (uint256 i = n; i > 0; --i) {
            roundIds[i - 1] = roundId;
            roundId = _submissions[roundId][org].prevRound;
        }
    }

    /// @inheritdoc IRounds
    function rewardPool() external view returns (uint256) {
        return _rewardPool;
    }

    /// @inheritdoc IRounds
    function governor() external view returns (address) {
        return _governor;
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

    function _isAggregator(address account) private view returns (bool) {
        return account == _governor || _membership.hasRole(AGGREGATOR_ROLE, account);
    }

    function _checkAggregator(address account) private view {
        if (!_isAggregator(account)) revert RoundsNotAggregator(account);
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
