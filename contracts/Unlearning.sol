// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {IContributionRegistry} from "../interfaces/IContributionRegistry.sol";
import {IMembership} from "../interfaces/IMembership.sol";
import {IRounds} from "../interfaces/IRounds.sol";
import {IStaking} from "../interfaces/IStaking.sol";
import {IUnlearning} from "../interfaces/IUnlearning.sol";

/// @title Unlearning
/// @notice Bonded unlearning requests with a response deadline, receipts, sample-level
/// replacements by the org's own trainer, replays by the other members of a grouped
/// collaboration, and slashing of the answerable aggregator on a miss.
/// @dev Needs REGISTRAR_ROLE and REVOKER_ROLE on the registry (REVOKER_ROLE also lets it replace
/// submissions in Rounds) and SLASHER_ROLE and LOCKER_ROLE on Staking. Slash reasons are
/// `bytes32(requestId)`. Holds the requesters' bonds only.
contract Unlearning is IUnlearning, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    bytes32 private constant AGGREGATOR_ROLE = keccak256("AGGREGATOR_ROLE");
    bytes32 private constant GOVERNOR_ROLE = keccak256("GOVERNOR_ROLE");

    struct Request {
        address org; // slot 0
        Scope scope; // slot 0
        RequestState state; // slot 0
        uint64 deadline; // slot 0
        address aggregator; // slot 1: answerable (fixed at request / acknowledger), then completer
        uint32 replacements; // slot 1: contributions replaced (Samples) or replayed (Org / Round)
        uint64 roundsAtRequest; // slot 1: round count when requested (Org / Samples liveness)
        bytes32 target; // slot 2
        bytes32 newModelCid; // slot 3
        address requester; // slot 4: posted the bond
    }

    IMembership private immutable _membership;
    IStaking private immutable _staking;
    IContributionRegistry private immutable _registry;
    IRounds private immutable _rounds;
    IERC20 private immutable _token;
    uint64 private immutable _responseWindow;
    uint256 private immutable _slashAmount;
    uint256 private immutable _requestBond;

    address private _defaultAggregator;
    uint256 private _requestCount;
    mapping(uint256 requestId => Request) private _requests;
    mapping(bytes32 key => uint256 requestId) private _pending;

    /// @param membership_ roles (`GOVERNOR_ROLE`, `AGGREGATOR_ROLE`) and `hasMinStake`, read at call time.
    /// @param staking_ slashed and locked stakes; its token is the bond token.
    /// @param registry_ revocations and versions.
    /// @param rounds_ the submissions.
    /// @param responseWindow_ seconds to answer a request; at most `staking_.unbondDelay()`.
    /// @param slashAmount_ taken from an aggregator that misses a deadline (> 0).
    /// @param requestBond_ posted by each requester.
    constructor(
        IMembership membership_,
        IStaking staking_,
        IContributionRegistry registry_,
        IRounds rounds_,
        uint64 responseWindow_,
        uint256 slashAmount_,
        uint256 requestBond_
    ) {
        if (
            address(membership_) == address(0) || address(staking_) == address(0)
                || address(registry_) == address(0) || address(rounds_) == address(0)
        ) revert UnlearningZeroAddress();
        uint64 unbondDelay = staking_.unbondDelay();
        if (responseWindow_ > unbondDelay) revert UnlearningWindowExceedsUnbond(responseWindow_, unbondDelay);
        if (slashAmount_ == 0) revert UnlearningZeroSlashAmount();
        _membership = membership_;
        _staking = staking_;
        _registry = registry_;
        _rounds = rounds_;
        _token = IERC20(staking_.token());
        _responseWindow = responseWindow_;
        _slashAmount = slashAmount_;
        _requestBond = requestBond_;
    }

    modifier onlyStakedAggregator() {
        if (!_membership.hasRole(AGGREGATOR_ROLE, msg.sender) || !_membership.hasMinStake(msg.sender)) {
            revert UnlearningNotStakedAggregator(msg.sender);
        }
        _;
    }

    modifier onlyGovernor() {
        if (!_membership.hasRole(GOVERNOR_ROLE, msg.sender)) revert UnlearningNotGovernor(msg.sender);
        _;
    }

    /// @inheritdoc IUnlearning
    function requestUnlearning(address org, Scope scope, bytes32 target, bytes32 reasonHash)
        external
        nonReentrant
        returns (uint256 requestId)
    {
        if (msg.sender != org && !_membership.hasRole(GOVERNOR_ROLE, msg.sender)) {
            revert UnlearningNotAuthorized(msg.sender, org);
        }
        uint256 roundCount = _rounds.roundCount();
        if (scope == Scope.Round) {
            uint256 roundId = uint256(target);
            if (roundId == 0 || roundId > roundCount) revert UnlearningInvalidTarget(scope, target);
            if (!_registry.isLive(roundId, org)) revert UnlearningNoContribution(org, scope, target);
        } else {
            if ((scope == Scope.Org) != (target == bytes32(0))) revert UnlearningInvalidTarget(scope, target);
            if (
                _membership.encryptionKeyOf(org) == bytes32(0) || roundCount == 0
                    || _registry.revokedThrough(org) >= roundCount
            ) revert UnlearningNoContribution(org, scope, target);
        }
        bytes32 key = _key(org, scope, target);
        uint256 existing = _pending[key];
        if (existing != 0) revert UnlearningDuplicate(existing);

        requestId = ++_requestCount;
        _pending[key] = requestId;
        uint64 deadline = uint64(block.timestamp) + _responseWindow;
        address answerable = scope == Scope.Samples ? address(0) : _defaultAggregator;
        Request storage q = _requests[requestId];
        q.org = org;
        q.scope = scope;
        q.state = RequestState.Requested;
        q.deadline = deadline;
        q.aggregator = answerable;
        q.roundsAtRequest = uint64(roundCount);
        q.target = target;
        q.requester = msg.sender;
        uint256 bond = _requestBond;
        emit UnlearningRequested(requestId, org, scope, target, reasonHash, deadline);
        emit RequestBonded(requestId, msg.sender, answerable, bond);
        if (bond != 0) _token.safeTransferFrom(msg.sender, address(this), bond);
    }

    /// @inheritdoc IUnlearning
    function acknowledge(uint256 requestId) external onlyStakedAggregator {
        Request storage q = _existing(requestId);
        if (q.state != RequestState.Requested) revert UnlearningWrongState(requestId, q.state);
        if (q.scope == Scope.Samples) revert UnlearningWrongScope(requestId, q.scope);
        if (block.timestamp > q.deadline) revert UnlearningDeadlinePassed(requestId, q.deadline);
        if (!_hasLiveTarget(q)) revert UnlearningNoContribution(q.org, q.scope, q.target);
        q.state = RequestState.Acknowledged;
        q.aggregator = msg.sender;
        emit UnlearningAcknowledged(requestId, msg.sender);
        _staking.lock(msg.sender, _slashAmount);
    }

    /// @inheritdoc IUnlearning
    function replaceContribution(
        uint256 requestId,
        uint256 roundId,
        bytes32 adapterCid,
        uint64 numSamples,
        bytes32 dataCommitment
    ) external {
        Request storage q = _existing(requestId);
        address org = q.org;
        if (msg.sender != org) revert UnlearningNotRequestOrg(msg.sender, org);
        if (q.scope != Scope.Samples) revert UnlearningWrongScope(requestId, q.scope);
        if (q.state != RequestState.Requested) revert UnlearningWrongState(requestId, q.state);
        _replace(requestId, q, roundId, org, adapterCid, numSamples, dataCommitment);
    }

    /// @inheritdoc IUnlearning
    function replayContribution(
        uint256 requestId,
        uint256 roundId,
        bytes32 adapterCid,
        uint64 numSamples,
        bytes32 dataCommitment
    ) external {
        Request storage q = _existing(requestId);
        Scope scope = q.scope;
        if (scope == Scope.Samples) revert UnlearningWrongScope(requestId, scope);
        if (msg.sender == q.org) revert UnlearningRequestOrgReplay(requestId, msg.sender);
        _requirePending(requestId, q.state);
        uint256 fromRound = scope == Scope.Org ? 1 : uint256(q.target);
        if (roundId < fromRound || roundId > q.roundsAtRequest) {
            revert UnlearningReplayOutOfRange(requestId, roundId, fromRound, q.roundsAtRequest);
        }
        _replace(requestId, q, roundId, msg.sender, adapterCid, numSamples, dataCommitment);
    }

    /// @inheritdoc IUnlearning
    function completeUnlearning(uint256 requestId, bytes32 newModelCid, bytes32 removedRoot, bytes32 metricsHash)
        external
        onlyStakedAggregator
        nonReentrant
        returns (uint256 versionId)
    {
        Request storage q = _existing(requestId);
        RequestState state = q.state;
        _requirePending(requestId, state);
        if (block.timestamp > q.deadline) revert UnlearningDeadlinePassed(requestId, q.deadline);
        if (newModelCid == bytes32(0)) revert UnlearningZeroModelCid(requestId);
        Scope scope = q.scope;
        if (scope == Scope.Samples && q.replacements == 0) revert UnlearningNotReplaced(requestId);
        address acknowledger = q.aggregator;
        q.state = RequestState.Completed;
        q.aggregator = msg.sender;
        q.newModelCid = newModelCid;
        delete _pending[_key(q.org, scope, q.target)];

        // Interactions with the trusted registry and Staking; state is final before them.
        // The revoked range's end (returned) is in the registry's ContributionsRevoked event.
        if (scope == Scope.Org) {
            // slither-disable-next-line unused-return (range end is emitted by the registry)
            _registry.revokeFrom(q.org, 1, requestId);
        } else if (scope == Scope.Round) {
            // slither-disable-next-line unused-return (range end is emitted by the registry)
            _registry.revokeFrom(q.org, uint256(q.target), requestId);
        }
        versionId = _registry.recordVersion(newModelCid, _registry.latestVersion(), 0, metricsHash);
        emit UnlearningCompleted(requestId, versionId, newModelCid, removedRoot, metricsHash);
        if (state == RequestState.Acknowledged) _staking.unlock(acknowledger, _slashAmount);
        _settle(requestId, q, RequestState.Completed, true);
    }

    /// @inheritdoc IUnlearning
    function slashMissed(uint256 requestId) external nonReentrant {
        Request storage q = _existing(requestId);
        RequestState state = q.state;
        _requirePending(requestId, state);
        if (block.timestamp <= q.deadline) revert UnlearningDeadlineNotReached(requestId, q.deadline);
        if (q.scope == Scope.Samples) {
            _finish(q, RequestState.Expired);
            _settle(requestId, q, RequestState.Expired, q.replacements != 0);
            return;
        }
        if (!_hasLiveTarget(q)) {
            _close(requestId, q, state);
            return;
        }
        address aggregator = q.aggregator;
        if (aggregator == address(0)) {
            _finish(q, RequestState.Expired);
            _settle(requestId, q, RequestState.Expired, true);
            return;
        }
        _finish(q, RequestState.Slashed);
        if (state == RequestState.Acknowledged) _staking.unlock(aggregator, _slashAmount);
        uint256 slashable = _staking.slashableOf(aggregator);
        uint256 amount = _slashAmount < slashable ? _slashAmount : slashable;
        emit AggregatorSlashed(requestId, aggregator, amount);
        if (amount != 0) _staking.slash(aggregator, amount, bytes32(requestId));
        _settle(requestId, q, RequestState.Slashed, true);
    }

    /// @inheritdoc IUnlearning
    function closeRequest(uint256 requestId) external nonReentrant {
        Request storage q = _existing(requestId);
        RequestState state = q.state;
        _requirePending(requestId, state);
        if (_hasLiveTarget(q)) revert UnlearningStillLive(requestId);
        _close(requestId, q, state);
    }

    /// @inheritdoc IUnlearning
    function voidRequest(uint256 requestId, bytes32 reasonHash) external onlyGovernor nonReentrant {
        Request storage q = _existing(requestId);
        RequestState state = q.state;
        _requirePending(requestId, state);
        _finish(q, RequestState.Voided);
        emit RequestVoided(requestId, reasonHash);
        if (state == RequestState.Acknowledged) _staking.unlock(q.aggregator, _slashAmount);
        _settle(requestId, q, RequestState.Voided, false);
    }

    /// @inheritdoc IUnlearning
    function setDefaultAggregator(address aggregator) external onlyGovernor {
        address previous = _defaultAggregator;
        _defaultAggregator = aggregator;
        emit DefaultAggregatorSet(previous, aggregator);
    }

    /// @inheritdoc IUnlearning
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
        )
    {
        Request storage q = _requests[requestId];
        return (q.org, q.scope, q.state, q.deadline, q.aggregator, q.target, q.newModelCid);
    }

    /// @inheritdoc IUnlearning
    function requestInfo(uint256 requestId) external view returns (address requester, uint256 replacements) {
        Request storage q = _requests[requestId];
        return (q.requester, q.replacements);
    }

    /// @inheritdoc IUnlearning
    function pendingRequest(address org, Scope scope, bytes32 target) external view returns (uint256) {
        return _pending[_key(org, scope, target)];
    }

    /// @inheritdoc IUnlearning
    function hasLiveTarget(uint256 requestId) external view returns (bool) {
        return _hasLiveTarget(_existing(requestId));
    }

    /// @inheritdoc IUnlearning
    function requestCount() external view returns (uint256) {
        return _requestCount;
    }

    /// @inheritdoc IUnlearning
    function defaultAggregator() external view returns (address) {
        return _defaultAggregator;
    }

    /// @inheritdoc IUnlearning
    function responseWindow() external view returns (uint64) {
        return _responseWindow;
    }

    /// @inheritdoc IUnlearning
    function slashAmount() external view returns (uint256) {
        return _slashAmount;
    }

    /// @inheritdoc IUnlearning
    function requestBond() external view returns (uint256) {
        return _requestBond;
    }

    /// @inheritdoc IUnlearning
    function token() external view returns (address) {
        return address(_token);
    }

    /// @dev Shared tail of {replaceContribution} and {replayContribution}: the deadline, the
    /// liveness of `org`'s contribution in `roundId`, then the effects and the call to Rounds.
    function _replace(
        uint256 requestId,
        Request storage q,
        uint256 roundId,
        address org,
        bytes32 adapterCid,
        uint64 numSamples,
        bytes32 dataCommitment
    ) private {
        if (block.timestamp > q.deadline) revert UnlearningDeadlinePassed(requestId, q.deadline);
        if (!_registry.isLive(roundId, org)) revert UnlearningNotLive(roundId, org);
        ++q.replacements;
        emit ContributionReplaced(requestId, roundId, org);
        _rounds.replaceSubmission(roundId, org, adapterCid, numSamples, dataCommitment, requestId);
    }

    function _existing(uint256 requestId) private view returns (Request storage q) {
        q = _requests[requestId];
        if (q.state == RequestState.None) revert UnlearningUnknownRequest(requestId);
    }

    function _requirePending(uint256 requestId, RequestState state) private pure {
        if (state != RequestState.Requested && state != RequestState.Acknowledged) {
            revert UnlearningWrongState(requestId, state);
        }
    }

    /// @dev Round: the target round's contribution is live. Org / Samples: not every round the
    /// org could have contributed to when the request was made is revoked by an Org removal.
    function _hasLiveTarget(Request storage q) private view returns (bool) {
        if (q.scope == Scope.Round) return _registry.isLive(uint256(q.target), q.org);
        return _registry.revokedThrough(q.org) < q.roundsAtRequest;
    }

    function _key(address org, Scope scope, bytes32 target) private pure returns (bytes32) {
        return keccak256(abi.encode(org, scope, target));
    }

    /// @dev Moves a pending request to its final state and frees its (org, scope, target) slot.
    function _finish(Request storage q, RequestState finalState) private {
        q.state = finalState;
        delete _pending[_key(q.org, q.scope, q.target)];
    }

    function _close(uint256 requestId, Request storage q, RequestState state) private {
        _finish(q, RequestState.Closed);
        if (state == RequestState.Acknowledged) _staking.unlock(q.aggregator, _slashAmount);
        _settle(requestId, q, RequestState.Closed, true);
    }

    /// @dev Refunds the bond to the requester or forfeits it to Staking's treasury.
    function _settle(uint256 requestId, Request storage q, RequestState finalState, bool refund) private {
        uint256 bond = _requestBond;
        address requester = q.requester;
        emit RequestSettled(requestId, finalState, requester, refund ? bond : 0, refund ? 0 : bond);
        if (bond == 0) return;
        _token.safeTransfer(refund ? requester : _staking.treasury(), bond);
    }
}
