// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title ReentrantToken (test only)
/// @notice An ERC-20 that, once armed, calls `target` with `payload` from inside its next token
/// movement, the way a malicious token (or an ERC-777-style hook) would re-enter the protocol.
/// @dev The real LedgerToken cannot re-enter, so this fault cannot be produced otherwise.
contract ReentrantToken is ERC20 {
    address private _target;
    bytes private _payload;
    bool private _armed;

    constructor(address holder, uint256 supply) ERC20("Reentrant", "RE") {
        _mint(holder, supply);
    }

    /// @notice The next transfer calls `target` with `payload` and bubbles up its revert.
    function arm(address target, bytes calldata payload) external {
        _target = target;
        _payload = payload;
        _armed = true;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (_armed) {
            _armed = false;
            (bool ok, bytes memory ret) = _target.call(_payload);
            if (!ok) {
                assembly ("memory-safe") {
                    revert(add(ret, 32), mload(ret))
                }
            }
        }
    }
}
