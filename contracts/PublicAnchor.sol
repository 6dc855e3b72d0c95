// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

import {IPublicAnchor} from "../interfaces/IPublicAnchor.sol";

/// @title PublicAnchor
/// @notice Public-chain anchor of the private chain's records: contiguous block ranges, one root each.
/// @dev An anchor takes two slots: the root, and {sourceChainId, fromBlock, toBlock, postedAt} in
/// 4 x 64 bits. Per chain, `_nextFrom` is `lastToBlock + 1` (0 while nothing was anchored).
contract PublicAnchor is IPublicAnchor, AccessControl {
    /// @inheritdoc IPublicAnchor
    bytes32 public constant RELAYER_ROLE = keccak256("RELAYER_ROLE");

    struct Anchor {
        bytes32 root; // slot 0
        uint64 sourceChainId; // slot 1
        uint64 fromBlock; // slot 1
        uint64 toBlock; // slot 1
        uint64 postedAt; // slot 1
        uint64 prevAnchorId; // slot 2: the chain's previous live anchor (0: none)
        bool superseded; // slot 2
    }

    uint256 private _anchorCount;
    mapping(uint256 anchorId => Anchor) private _anchors;
    mapping(uint256 sourceChainId => uint64) private _nextFrom;
    mapping(uint256 sourceChainId => uint256) private _latest;
    uint64 private immutable _maxRange;

    /// @param governor gets `DEFAULT_ADMIN_ROLE`: grants `RELAYER_ROLE`, supersedes anchors.
    /// @param maxRange_ maximum number of blocks in one anchored range (> 0).
    constructor(address governor, uint64 maxRange_) {
        if (governor == address(0)) revert AnchorZeroAddress();
        if (maxRange_ == 0) revert AnchorZeroMaxRange();
        _maxRange = maxRange_;
        _grantRole(DEFAULT_ADMIN_ROLE, governor);
    }

    /// @inheritdoc IPublicAnchor
    function postRoot(uint256 sourceChainId, uint64 fromBlock, uint64 toBlock, bytes32 root)
        external
        onlyRole(RELAYER_ROLE)
        returns (uint256 anchorId)
    {
        if (sourceChainId == 0 || sourceChainId > type(uint64).max) revert AnchorInvalidChainId(sourceChainId);
        if (root == bytes32(0)) revert AnchorZeroRoot();
        if (fromBlock > toBlock || toBlock == type(uint64).max) revert AnchorInvalidRange(fromBlock, toBlock);
        if (toBlock - fromBlock >= _maxRange) revert AnchorRangeTooLong(fromBlock, toBlock, _maxRange);
        uint64 expected = _nextFrom[sourceChainId];
        if (expected != 0 && fromBlock != expected) revert AnchorNotContiguous(sourceChainId, expected, fromBlock);
        _nextFrom[sourceChainId] = toBlock + 1;
        anchorId = ++_anchorCount;
        _anchors[anchorId] = Anchor({
            root: root,
            sourceChainId: uint64(sourceChainId),
            fromBlock: fromBlock,
            toBlock: toBlock,
            postedAt: uint64(block.timestamp),
            prevAnchorId: uint64(_latest[sourceChainId]),
            superseded: false
        });
        _latest[sourceChainId] = anchorId;
        emit RootAnchored(anchorId, sourceChainId, fromBlock, toBlock, root);
    }

    /// @inheritdoc IPublicAnchor
    function supersede(uint256 anchorId, bytes32 reasonHash) external onlyRole(DEFAULT_ADMIN_ROLE) {
        Anchor storage a = _anchors[anchorId];
        if (a.root == bytes32(0)) revert AnchorUnknown(anchorId);
        uint256 chainId = a.sourceChainId;
        uint256 latest = _latest[chainId];
        if (latest != anchorId) revert AnchorNotLatest(anchorId, latest);
        a.superseded = true;
        uint64 prev = a.prevAnchorId;
        _latest[chainId] = prev;
        // Anchors of a chain are contiguous: the previous live one ends right before this one.
        uint64 nextFrom = prev == 0 ? 0 : a.fromBlock;
        _nextFrom[chainId] = nextFrom;
        emit AnchorSuperseded(anchorId, chainId, nextFrom, reasonHash);
    }

    /// @inheritdoc IPublicAnchor
    function verify(uint256 anchorId, bytes calldata record, bytes32[] calldata proof) external view returns (bool) {
        Anchor storage a = _anchors[anchorId];
        bytes32 root = a.root;
        if (root == bytes32(0)) revert AnchorUnknown(anchorId);
        if (a.superseded) revert AnchorIsSuperseded(anchorId);
        bytes32 leaf = keccak256(bytes.concat(keccak256(record)));
        return MerkleProof.verifyCalldata(proof, root, leaf);
    }

    /// @inheritdoc IPublicAnchor
    function isSuperseded(uint256 anchorId) external view returns (bool) {
        return _anchors[anchorId].superseded;
    }

    /// @inheritdoc IPublicAnchor
    function maxRange() external view returns (uint64) {
        return _maxRange;
    }

    /// @inheritdoc IPublicAnchor
    function getAnchor(uint256 anchorId)
        external
        view
        returns (uint256 sourceChainId, uint64 fromBlock, uint64 toBlock, bytes32 root, uint64 postedAt)
    {
        Anchor storage a = _anchors[anchorId];
        return (a.sourceChainId, a.fromBlock, a.toBlock, a.root, a.postedAt);
    }

    /// @inheritdoc IPublicAnchor
    function anchorCount() external view returns (uint256) {
        return _anchorCount;
    }

    /// @inheritdoc IPublicAnchor
    function lastToBlock(uint256 sourceChainId) external view returns (uint64) {
        uint64 next = _nextFrom[sourceChainId];
        return next == 0 ? 0 : next - 1;
    }

    /// @inheritdoc IPublicAnchor
    function hasAnchors(uint256 sourceChainId) external view returns (bool) {
        return _nextFrom[sourceChainId] != 0;
    }
}
