// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Burnable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Burnable.sol";
import {ERC20Capped} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Capped.sol";

/// @title DGPT stake and reward token
/// @notice ERC-20 with a hard supply cap. The genesis supply is minted once, at deployment; after
///         that only the minter (the protocol, set once by the deployer) mints, and the protocol
///         mints only within its emission schedule. Nobody else can ever mint. Slashed stake is burned.
contract DGPTToken is ERC20Capped, ERC20Burnable {
    /// @notice The only address that may mint after deployment (zero until set).
    address public minter;
    address private immutable _deployer;

    error NotMinter(address caller);
    error MinterAlreadySet(address minter);
    error NotDeployer(address caller);
    error ZeroMinter();

    event MinterSet(address indexed minter);

    /// @param cap_ Hard cap on total supply, in token units (18 decimals).
    /// @param genesisSupply Minted to `genesisHolder` now; the only mint outside the protocol's schedule.
    /// @param genesisHolder Receives the genesis supply.
    constructor(uint256 cap_, uint256 genesisSupply, address genesisHolder) ERC20("DGPT", "DGPT") ERC20Capped(cap_) {
        _deployer = msg.sender;
        if (genesisSupply != 0) _mint(genesisHolder, genesisSupply);
    }

    /// @notice Name the minter, once, from the deploying account (the protocol is deployed after the token).
    function setMinter(address minter_) external {
        if (msg.sender != _deployer) revert NotDeployer(msg.sender);
        if (minter != address(0)) revert MinterAlreadySet(minter);
        if (minter_ == address(0)) revert ZeroMinter();
        minter = minter_;
        emit MinterSet(minter_);
    }

    /// @notice Mint `amount` to `to` (the minter only); reverts with ERC20ExceededCap past the cap.
    function mint(address to, uint256 amount) external {
        if (msg.sender != minter) revert NotMinter(msg.sender);
        _mint(to, amount);
    }

    // Both parents override _update; the cap check must run on every mint.
    function _update(address from, address to, uint256 value) internal override(ERC20, ERC20Capped) {
        super._update(from, to, value);
    }
}
