// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Burnable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Burnable.sol";
import {ERC20Capped} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Capped.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title DGPT stake and reward token
/// @notice ERC-20 with a hard supply cap. Oracles stake it; round rewards are minted by the protocol
///         (which holds MINTER_ROLE) up to the cap; slashed stake is burned, so supply only shrinks
///         by misbehaviour and never exceeds the cap.
contract DGPTToken is ERC20Capped, ERC20Burnable, AccessControl {
    /// @notice Role allowed to mint: the admin (genesis allocation) and the protocol (round rewards).
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    /// @param cap_ Hard cap on total supply, in token units (18 decimals).
    /// @param admin Receives DEFAULT_ADMIN_ROLE and MINTER_ROLE.
    constructor(uint256 cap_, address admin) ERC20("DGPT", "DGPT") ERC20Capped(cap_) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(MINTER_ROLE, admin);
    }

    /// @notice Mint `amount` to `to`; reverts with ERC20ExceededCap past the cap.
    /// @param to Recipient.
    /// @param amount Amount in token units.
    function mint(address to, uint256 amount) external onlyRole(MINTER_ROLE) {
        _mint(to, amount);
    }

    // Both parents override _update; the cap check must run on every mint.
    function _update(address from, address to, uint256 value) internal override(ERC20, ERC20Capped) {
        super._update(from, to, value);
    }
}
