// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title Multicall3 (the subset LedgerLoRA's daemons use)
/// @notice Batches many view calls into one `eth_call`, so a daemon reads a round's state for
///         hundreds of organisations in one JSON-RPC round trip instead of one per read.
/// @dev ABI-compatible with the canonical Multicall3 deployed at
///      0xcA11bde05977b3631167028862bE2a173976CA11 on most public EVM chains for `aggregate3`,
///      `getBlockNumber` and `getChainId`, so the same client code works against either. The
///      deploy scripts deploy this contract on local chains (anvil, py-evm), where the canonical
///      one does not exist. It holds no state and no funds; `aggregate3` is not payable.
contract Multicall3 {
    struct Call3 {
        address target;
        bool allowFailure;
        bytes callData;
    }

    struct Result {
        bool success;
        bytes returnData;
    }

    /// @notice A call with `allowFailure == false` reverted; `index` is its position in the batch.
    error Multicall3CallFailed(uint256 index);

    /// @notice Performs every call in order and returns each one's success flag and return data.
    /// @dev Reverts with `Multicall3CallFailed(i)` when call `i` fails and did not allow failure.
    ///      The loop is bounded by the caller's calldata (and so by the block gas limit).
    function aggregate3(Call3[] calldata calls) external returns (Result[] memory returnData) {
        uint256 length = calls.length;
        returnData = new Result[](length);
        for (uint256 i = 0; i < length; ++i) {
            Call3 calldata call = calls[i];
            (bool success, bytes memory data) = call.target.call(call.callData);
            if (!success && !call.allowFailure) revert Multicall3CallFailed(i);
            returnData[i] = Result(success, data);
        }
    }

    /// @notice The current block number (to pin a batch of reads to a block).
    function getBlockNumber() external view returns (uint256 blockNumber) {
        blockNumber = block.number;
    }

    /// @notice The chain id.
    function getChainId() external view returns (uint256 chainid) {
        chainid = block.chainid;
    }
}
