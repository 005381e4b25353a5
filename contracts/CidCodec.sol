// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title Compact on-chain form of IPFS CIDs
/// @notice The protocol accepts binary CIDv1 with a sha2-256 multihash and the raw (0x55) or dag-pb
///         (0x70) codec: `0x01 codec 0x12 0x20 digest[32]`, 36 bytes. Storage keeps the digest and
///         the codec apart (one slot plus two bytes packed elsewhere); events carry the full CID.
///         CIDv0 (`Qm...`) is the dag-pb CIDv1 of the same digest: the Python layer converts it.
library CidCodec {
    uint16 internal constant RAW = 0x55;
    uint16 internal constant DAG_PB = 0x70;

    /// @notice The bytes are not a CIDv1 sha2-256 raw or dag-pb CID.
    error InvalidCid(bytes cid);

    /// @notice Split a binary CID into its sha2-256 digest and codec; reverts on any other form.
    function decode(bytes calldata cid) internal pure returns (bytes32 digest, uint16 codec) {
        if (cid.length != 36 || cid[0] != 0x01 || cid[2] != 0x12 || cid[3] != 0x20) revert InvalidCid(cid);
        codec = uint8(cid[1]);
        if (codec != RAW && codec != DAG_PB) revert InvalidCid(cid);
        digest = bytes32(cid[4:36]);
    }

    /// @notice Rebuild the binary CID from its stored parts.
    function encode(bytes32 digest, uint16 codec) internal pure returns (bytes memory) {
        return abi.encodePacked(uint8(0x01), uint8(codec), uint8(0x12), uint8(0x20), digest);
    }
}
