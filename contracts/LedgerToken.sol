// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title LedgerToken
/// @notice The consortium's ERC-20 ("LedgerLoRA Stake", LLS), used for stakes and round rewards.
/// @dev Fixed supply: everything is minted to `admin` at deployment; no mint, no burn, no pause.
contract LedgerToken is ERC20 {
    /// @param admin receives the whole supply (distributes test tokens on local networks).
    /// @param initialSupply total supply, in the smallest unit (18 decimals).
    constructor(address admin, uint256 initialSupply) ERC20("LedgerLoRA Stake", "LLS") {
        _mint(admin, initialSupply);
    }
}
