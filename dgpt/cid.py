"""CIDs as strings (what people and IPFS tools show) and in the binary form the contracts store.

On chain every CID is binary CIDv1 with a sha2-256 multihash and the raw or dag-pb codec (36 bytes).
A CIDv0 (`Qm...`) is the dag-pb CIDv1 of the same multihash, so it converts without loss; the chain
hands back CIDv1 in base32, the form `ipfs add --cid-version 1` prints.
"""

from __future__ import annotations

import base64

from multiformats import CID

from dgpt.errors import DGPTError

RAW = 0x55
DAG_PB = 0x70
SHA2_256 = 0x12


def parse_cid(text: str) -> CID:
    """Parse a CID string (v0 or v1, any multibase); raise DGPTError naming it if it is not one."""
    try:
        return CID.decode(text.strip())
    except Exception as exc:  # multiformats raises several types for malformed input
        raise DGPTError(f"not a CID: {text!r} ({exc})") from None


def cid_to_bytes(cid: str | CID) -> bytes:
    """Binary CIDv1 for the chain; rejects hashes and codecs the contracts do not accept."""
    c = parse_cid(cid) if isinstance(cid, str) else cid
    if c.hashfun.code != SHA2_256 or c.codec.code not in (RAW, DAG_PB):
        raise DGPTError(f"CID {c} uses {c.hashfun.name}/{c.codec.name}; the chain accepts sha2-256 raw or dag-pb only")
    return bytes(c.set(version=1))


def cid_from_bytes(data: bytes) -> str | None:
    """The base32 CIDv1 string of a binary CID read from the chain; None for the empty value.

    Multibase base32 is "b" then RFC 4648 base32, lower case, unpadded. Done by hand because every
    chain read goes through here and the multiformats parser costs ~1 ms a CID; the contracts
    store only CIDv1 they have checked, and a test compares this with multiformats."""
    if not data:
        return None
    data = bytes(data)
    if data[0] != 1:  # not a binary CIDv1: let multiformats say what is wrong
        return CID.decode(data).encode("base32")
    return "b" + base64.b32encode(data).decode("ascii").lower().rstrip("=")


def normalize_cid(cid: str) -> str:
    """The canonical string of a CID: CIDv1 base32 (a v0 CID becomes its dag-pb v1 form)."""
    return cid_from_bytes(cid_to_bytes(cid))


def raw_cid(data: bytes) -> str:
    """CIDv1 (raw codec, sha2-256) of bytes that fit one 256 KiB chunk: what `ipfs add --cid-version 1` prints."""
    import hashlib

    from multiformats import multihash

    if len(data) > 262_144:
        raise ValueError("content over 262144 bytes is a UnixFS DAG: use the store to compute its CID")
    digest = multihash.wrap(hashlib.sha256(data).digest(), "sha2-256")
    return CID("base32", 1, "raw", digest).encode()
