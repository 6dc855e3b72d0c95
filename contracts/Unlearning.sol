// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IContributionRegistry} from "../interfaces/IContributionRegistry.sol";
import {IMembership} from "../interfaces/IMembership.sol";
import {IRounds} from "../interfaces/IRounds.sol";
import {IStaking} from "../interfaces/IStaking.sol";
import {IUnlearning} from "../interfaces/IUnlearning.sol";

/// @title Unlearning
/// @notice Unlearning requests with a response deadline, receipts, and slashing on a miss.
/// @dev Needs REGISTRAR_ROLE and REVOKER_ROLE on the registry and SLASHER_ROLE on Staking.
/// Slash reasons are `bytes32(requestId)`. Tokens never pass through this contract.
contract Unlearning is IUnlearning {
    bytes32 private constant AGGREGATOR_ROLE = keccak256("AGGREGATOR_ROLE");

    struct Request {
        address org; // slot 0
        Scope scope; // slot 0
        RequestState state; // slot 0
        uint64 deadline; // slot 0
        address aggregator; // slot 1: acknowledged, completed or slashed by / for
        bytes32 target; // slot 2
        bytes32 newModelCid; // slot 3
    }

    address private immutable _governor;
    IMembership private immutable _membership;
    IStaking private immutable _staking;
    IContributionRegistry private immutable _registry;
    IRounds private immutable _rounds;
    uint64 private immutable _responseWindow;
    uint256 private immutable _slashAmount;

    address private _defaultAggregator;
    uint256 private _requestCount;
    mapping(uint256 requestId => Request) private _requests;

    constructor(
        address governor_,
        IMembership membership_,
        IStaking staking_,
        IContributionRegistry registry_,
        IRounds rounds_,
        uint64 responseWindow_,
        uint256 slashAmount_
    ) {
        if (
            governor_ == address(0) || address(membership_) == address(0) || address(staking_) == address(0)
                || address(registry_) == address(0) || address(rounds_) == address(0)
        ) revert UnlearningZeroAddress();
        _governor = governor_;
        _membership = membership_;
        _staking = staking_;
        _registry = registry_;
        _rounds = rounds_;
        _responseWindow = responseWindow_;
        _slashAmount = slashAmount_;
    }

    modifier onlyStakedAggregator() {
        if (!_membership.hasRole(AGGREGATOR_ROLE, msg.sender) || !_membership.hasMinStake(msg.sender)) {
            revert UnlearningNotStakedAggregator(msg.sender);
        }
        _;
    }

    /// @inheritdoc IUnlearning
    function requestUnlearning(address org, Scope scope, bytes32 target, bytes32 reasonHash)
        external
        returns (uint256 requestId)
    {
        if (msg.sender != org && msg.sender != _governor) revert UnlearningNotAuthorized(msg.sender, org);
        if (scope == Scope.Org) {
            if (target != bytes32(0)) revert UnlearningInvalidTarget(scope, target);
            if (!_hasLiveContribution(org)) revert UnlearningNoContribution(org, scope, target);
        } else if (scope == Scope.Round) {
            uint256 roundId = uint256(target);
            if (roundId == 0 || roundId > _rounds.roundCount()) revert UnlearningInvalidTarget(scope, target);
            if (!_isLive(roundId, org)) revert UnlearningNoContribution(org, scope, target);
        } else {
            if (target == bytes32(0)) revert UnlearningInvalidTarget(scope, target);
            if (!_hasLiveContribution(org)) revert UnlearningNoContribution(org, scope, target);
        }
        requestId = ++_requestCount;
        uint64 deadline = uint64(block.timestamp) + _responseWindow;
        Request storage q = _requests[requestId];
        q.org = org;
        q.scope = scope;
        q.state = RequestState.Requested;
        q.deadline = deadline;
        q.target = target;
        emit UnlearningRequested(requestId, org, scope, target, reasonHash, deadline);
    }

    /// @inheritdoc IUnlearning
    function acknowledge(uint256 requestId) external onlyStakedAggregator {
        Request storage q = _existing(requestId);
        if (q.state != RequestState.Requested) revert UnlearningWrongState(requestId, q.state);
        if (block.timestamp > q.deadline) revert UnlearningDeadlinePassed(requestId, q.deadline);
        q.state = RequestState.Acknowledged;
        q.aggregator = msg.sender;
        emit UnlearningAcknowledged(requestId, msg.sender);
    }

    /// @inheritdoc IUnlearning
    function completeUnlearning(uint256 requestId, bytes32 newModelCid, bytes32 removedRoot, bytes32 metricsHash)
        external
        onlyStakedAggregator
        returns (uint256 versionId)
    {
        Request storage q = _existing(requestId);
        RequestState state = q.state;
        if (state != RequestState.Requested && state != RequestState.Acknowledged) {
            revert UnlearningWrongState(requestId, state);
        }
        if (block.timestamp > q.deadline) revert UnlearningDeadlinePassed(requestId, q.deadline);
        if (newModelCid == bytes32(0)) revert UnlearningZeroModelCid(requestId);
        q.state = RequestState.Completed;
        q.aggregator = msg.sender;
        q.newModelCid = newModelCid;

        // Interactions with the trusted registry only; state is final before them.
        address org = q.org;
        if (q.scope == Scope.Org) {
            uint256[] memory roundIds = _rounds.contributionsOf(org);
            for (uint256 i; i < roundIds.length; ++i) {
                if (_isLive(roundIds[i], org)) _registry.revoke(roundIds[i], org, requestId);
            }
        } else if (q.scope == Scope.Round) {
            uint256 roundId = uint256(q.target);
            // An earlier Org request may have revoked it meanwhile: the receipt still stands.
            if (_isLive(roundId, org)) _registry.revoke(roundId, org, requestId);
        }
        versionId = _registry.recordVersion(newModelCid, _registry.latestVersion(), 0, metricsHash);
        emit UnlearningCompleted(requestId, versionId, newModelCid, removedRoot, metricsHash);
    }

    /// @inheritdoc IUnlearning
    function slashMissed(uint256 requestId) external {
        Request storage q = _existing(requestId);
        RequestState state = q.state;
        if (state != RequestState.Requested && state != RequestState.Acknowledged) {
            revert UnlearningWrongState(requestId, state);
        }
        if (block.timestamp <= q.deadline) revert UnlearningDeadlineNotReached(requestId, q.deadline);
        address aggregator = state == RequestState.Acknowledged ? q.aggregator : _defaultAggregator;
        if (aggregator == address(0)) revert UnlearningNoAggregator(requestId);
        uint256 slashable = _staking.slashableOf(aggregator);
        uint256 amount = _slashAmount < slashable ? _slashAmount : slashable;
        q.state = RequestState.Slashed;
        q.aggregator = aggregator;
        emit AggregatorSlashed(requestId, aggregator, amount);
        if (amount != 0) _staking.slash(aggregator, amount, bytes32(requestId));
    }

    /// @inheritdoc IUnlearning
    function setDefaultAggregator(address aggregator) external {
        if (msg.sender != _governor) revert UnlearningNotGovernor(msg.sender);
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
    function governor() external view returns (address) {
        return _governor;
    }

    function _existing(uint256 requestId) private view returns (Request storage q) {
        q = _requests[requestId];
        if (q.state == RequestState.None) revert UnlearningUnknownRequest(requestId);
    }

    /// @dev Submitted, not rejected by the aggregator, not revoked by an earlier request.
    function _isLive(uint256 roundId, address org) private view returns (bool) {
        return _rounds.hasSubmitted(roundId, org) && !_rounds.isRejected(roundId, org)
            && !_registry.isRevoked(roundId, org);
    }

    function _hasLiveContribution(address org) private view returns (bool) {
        uint256[] memory roundIds = _rounds.contributionsOf(org);
        for (uint256 i; i < roundIds.length; ++i) {
            if (_isLive(roundIds[i], org)) return true;
        }
        return false;
    }
}
