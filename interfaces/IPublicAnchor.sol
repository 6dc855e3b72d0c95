// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title IPublicAnchor
/// @notice Deployed on a public chain: the relayer posts the Merkle root of the private chain's
/// records over consecutive block ranges, and anyone verifies an inclusion proof with a view call.
/// @dev Proofs follow OpenZeppelin's MerkleProof (sorted pairs); leaves are whatever the relayer
/// hashed (the orchestrator uses double-hashed leaves, see orchestrator/merkle.py).
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

    /// @notice Root `root` of the records of blocks `fromBlock..toBlock` of chain `sourceChainId` was anchored as `anchorId`.
    event RootAnchored(
        uint256 indexed anchorId, uint256 indexed sourceChainId, uint64 fromBlock, uint64 toBlock, bytes32 root
    );

    /// @notice Role of the relayer.
    function RELAYER_ROLE() external view returns (bytes32);

    /// @notice Posts the root of the records of blocks `fromBlock..toBlock` (inclusive) of `sourceChainId`.
    /// Requirements:
    /// - caller has `RELAYER_ROLE`; `root` != 0; `fromBlock <= toBlock < 2**64 - 1`;
    /// - `fromBlock == lastToBlock(sourceChainId) + 1` unless it is the chain's first anchor.
    /// Emits a {RootAnchored} event.
    /// @return anchorId the new anchor's id (1, 2, ...).
    function postRoot(uint256 sourceChainId, uint64 fromBlock, uint64 toBlock, bytes32 root)
        external
        returns (uint256 anchorId);

    /// @notice Whether `proof` shows `leaf` under the root of anchor `anchorId`.
    /// Requirements:
    /// - anchor `anchorId` exists.
    function verify(uint256 anchorId, bytes32 leaf, bytes32[] calldata proof) external view returns (bool);

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
