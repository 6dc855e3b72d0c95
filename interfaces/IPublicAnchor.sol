// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title IPublicAnchor
/// @notice Deployed on a public chain: the relayer posts the Merkle root of the private chain's
/// records over consecutive block ranges, and anyone verifies an inclusion proof with a view call.
/// @dev Proofs follow OpenZeppelin's MerkleProof (sorted pairs). A leaf is the double hash
/// `keccak256(bytes.concat(keccak256(record)))` of the ABI-encoded record, computed by {verify}
/// itself, so an internal node can never pass as a leaf (see orchestrator/merkle.py). A range is
/// at most `maxRange()` blocks long; the governor can supersede the latest anchor of a chain
/// (a wrong range), which rewinds that chain to the superseded anchor's first block.
interface IPublicAnchor {
    /// @notice The root is zero.
    error AnchorZeroRoot();
    /// @notice `fromBlock` > `toBlock`.
    error AnchorInvalidRange(uint64 fromBlock, uint64 toBlock);
    /// @notice For chain `sourceChainId` the next range must start at `expectedFrom`, not `fromBlock`.
    error AnchorNotContiguous(uint256 sourceChainId, uint64 expectedFrom, uint64 fromBlock);
    /// @notice `sourceChainId` is zero or does not fit 64 bits.
    error AnchorInvalidChainId(uint256 sourceChainId);
    /// @notice Anchor `anchorId` does not exist.
    error AnchorUnknown(uint256 anchorId);
    /// @notice The governor is the zero address.
    error AnchorZeroAddress();
    /// @notice The range `fromBlock..toBlock` is longer than the maximum `maxRange` blocks.
    error AnchorRangeTooLong(uint64 fromBlock, uint64 toBlock, uint64 maxRange);
    /// @notice The maximum range length given to the constructor is zero.
    error AnchorZeroMaxRange();
    /// @notice Anchor `anchorId` was superseded by the governor and proves nothing.
    error AnchorIsSuperseded(uint256 anchorId);
    /// @notice Only the latest live anchor `latest` of its chain can be superseded, not `anchorId`.
    error AnchorNotLatest(uint256 anchorId, uint256 latest);

    /// @notice Root `root` of the records of blocks `fromBlock..toBlock` of chain `sourceChainId` was anchored as `anchorId`.
    event RootAnchored(
        uint256 indexed anchorId, uint256 indexed sourceChainId, uint64 fromBlock, uint64 toBlock, bytes32 root
    );

    /// @notice The governor superseded anchor `anchorId` of chain `sourceChainId` (reason
    /// `reasonHash`); the chain's next range starts again at `nextFrom` (0: like a first anchor).
    event AnchorSuperseded(
        uint256 indexed anchorId, uint256 indexed sourceChainId, uint64 nextFrom, bytes32 reasonHash
    );

    /// @notice Role of the relayer.
    function RELAYER_ROLE() external view returns (bytes32);

    /// @notice Posts the root of the records of blocks `fromBlock..toBlock` (inclusive) of `sourceChainId`.
    /// Requirements:
    /// - caller has `RELAYER_ROLE`; `root` != 0; `fromBlock <= toBlock < 2**64 - 1`;
    /// - `toBlock - fromBlock + 1 <= maxRange()`;
    /// - `fromBlock == lastToBlock(sourceChainId) + 1` unless it is the chain's first anchor.
    /// Emits a {RootAnchored} event.
    /// @return anchorId the new anchor's id (1, 2, ...).
    function postRoot(uint256 sourceChainId, uint64 fromBlock, uint64 toBlock, bytes32 root)
        external
        returns (uint256 anchorId);

    /// @notice Marks the latest live anchor of its chain as superseded (a wrong range or root) and
    /// rewinds the chain: the next {postRoot} must start at the superseded anchor's `fromBlock`
    /// (or anywhere, if it was the chain's first live anchor).
    /// Requirements:
    /// - caller has `DEFAULT_ADMIN_ROLE`; `anchorId` is the latest live anchor of its chain.
    /// Emits an {AnchorSuperseded} event.
    function supersede(uint256 anchorId, bytes32 reasonHash) external;

    /// @notice Whether `proof` shows the record `record` (ABI-encoded bytes; the relayer encodes
    /// `(uint256 chainId, uint256 blockNumber, bytes32 txHash, uint256 logIndex, address emitter,
    /// bytes32 eventDigest)`) under the root of anchor `anchorId`. The leaf is hashed here.
    /// Requirements:
    /// - anchor `anchorId` exists and is not superseded.
    function verify(uint256 anchorId, bytes calldata record, bytes32[] calldata proof) external view returns (bool);

    /// @notice Whether anchor `anchorId` was superseded.
    function isSuperseded(uint256 anchorId) external view returns (bool);

    /// @notice Maximum number of blocks in one anchored range.
    function maxRange() external view returns (uint64);

    /// @notice Anchor `anchorId` (all zero if it does not exist).
    function getAnchor(uint256 anchorId)
        external
        view
        returns (uint256 sourceChainId, uint64 fromBlock, uint64 toBlock, bytes32 root, uint64 postedAt);

    /// @notice Number of anchors posted (the latest anchor id).
    function anchorCount() external view returns (uint256);

    /// @notice Last block anchored for `sourceChainId` (0 if none; see {hasAnchors}).
    function lastToBlock(uint256 sourceChainId) external view returns (uint64);

    /// @notice Whether any range of `sourceChainId` was anchored.
    function hasAnchors(uint256 sourceChainId) external view returns (bool);
}
