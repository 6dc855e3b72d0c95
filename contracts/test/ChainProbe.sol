// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title ChainProbe
/// @notice Test-only contract for the Python chain layer (orchestrator/chain, tests/python/chain):
///         events with indexed fields, a custom error carrying (uint256, bytes32), the two built-in
///         revert kinds Error(string) and Panic(uint256), an owner-only setter and the Cancun
///         opcodes (PUSH0, MCOPY, TSTORE/TLOAD) so the tests can prove the in-process EVM runs them.
/// @dev Not part of the protocol and never deployed outside tests.
contract ChainProbe {
    /// @notice `reject` always reverts with this error, so revert decoding can be checked.
    error ChainProbeRejected(uint256 id, bytes32 tag);
    /// @notice A caller other than the deployer called an owner-only function.
    error ChainProbeNotOwner(address caller);

    /// @notice Emitted once per ping; `id` and `sender` are indexed so scanners can filter.
    event Pinged(uint256 indexed id, address indexed sender, bytes32 tag);
    /// @notice Emitted after the owner changed the stored value.
    event ValueSet(address indexed setter, uint256 oldValue, uint256 newValue);

    address private immutable _owner;
    uint256 private _value;
    uint256 private _pings;

    constructor() {
        _owner = msg.sender;
    }

    /// @notice Counts a ping and emits `Pinged(id, msg.sender, tag)`.
    function ping(uint256 id, bytes32 tag) external {
        _pings += 1;
        emit Pinged(id, msg.sender, tag);
    }

    /// @notice Emits `count` Pinged events with ids firstId .. firstId + count - 1 in one transaction.
    function pingMany(uint256 firstId, uint256 count, bytes32 tag) external {
        _pings += count;
        for (uint256 i = 0; i < count; ++i) {
            emit Pinged(firstId + i, msg.sender, tag);
        }
    }

    /// @notice Always reverts with `ChainProbeRejected(id, tag)`.
    function reject(uint256 id, bytes32 tag) external pure {
        revert ChainProbeRejected(id, tag);
    }

    /// @notice Always reverts with the built-in Error(string); exists only to test its decoding.
    function rejectWithReason(string calldata reason) external pure {
        revert(reason);
    }

    /// @notice Reverts with Panic(0x12) (division by zero) when `divisor` is 0.
    function divide(uint256 numerator, uint256 divisor) external pure returns (uint256) {
        return numerator / divisor;
    }

    /// @notice Owner-only setter. Requirements: caller is the deployer. Emits ValueSet.
    function setValue(uint256 newValue) external {
        if (msg.sender != _owner) revert ChainProbeNotOwner(msg.sender);
        uint256 old = _value;
        _value = newValue;
        emit ValueSet(msg.sender, old, newValue);
    }

    /// @notice Writes `x` to transient storage and reads it back (TSTORE/TLOAD, Cancun).
    function transientEcho(uint256 x) external returns (uint256 y) {
        assembly {
            tstore(0, x)
            y := tload(0)
        }
    }

    /// @notice Returns `data` twice, concatenated; memory-to-memory copies compile to MCOPY.
    function doubled(bytes calldata data) external pure returns (bytes memory) {
        bytes memory m = data;
        return bytes.concat(m, m);
    }

    function owner() external view returns (address) {
        return _owner;
    }

    function value() external view returns (uint256) {
        return _value;
    }

    function pings() external view returns (uint256) {
        return _pings;
    }
}
