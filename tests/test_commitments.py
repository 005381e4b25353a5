"""Commit hashes, the entries tree and the result hash, checked without a chain."""

from __future__ import annotations

import pytest
from eth_utils import keccak

from dgpt.cid import cid_from_bytes, cid_to_bytes, raw_cid
from dgpt.commitments import EntriesTree, Result, commit_hash
from dgpt.errors import DGPTError

ACCOUNTS = [f"0x{i:040x}" for i in range(1, 12)]


def verify(proof: list[bytes], root: bytes, leaf: bytes) -> bool:
    """OpenZeppelin MerkleProof.verify, transcribed."""
    node = leaf
    for sibling in proof:
        node = keccak(min(node, sibling) + max(node, sibling))
    return node == root


def rows(n: int) -> list[tuple]:
    return [(a, raw_cid(a.encode()), 10 + i, 10 + i if i % 2 == 0 else 0, (i + 1) * 10 if i % 2 == 0 else 0, None if i != 1 else 2)
            for i, a in enumerate(ACCOUNTS[:n])]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 11])
def test_every_entry_proves_against_the_root_with_running_sums(n):
    tree = EntriesTree.build(list(reversed(rows(n))))
    assert tree.total == sum(r[4] for r in rows(n))
    before = 0
    for i, e in enumerate(tree.leaves):
        assert e.index == i and e.reward_before == before
        before += e.reward
        assert verify(tree.proof(i), tree.root, e.leaf)
        from dataclasses import replace

        assert not verify(tree.proof(i), tree.root, replace(e, reward=e.reward + 1).leaf)
        assert not verify(tree.proof(i), tree.root, replace(e, slashed=not e.slashed).leaf)
    assert [int(e.oracle, 16) for e in tree.leaves] == sorted(int(e.oracle, 16) for e in tree.leaves)


def test_entries_sort_by_address_value_not_by_checksummed_text():
    # '0xB...' sorts before '0xa...' as text; the contract compares uint160 values.
    lo, hi = "0xa000000000000000000000000000000000000001", "0xB000000000000000000000000000000000000001"
    tree = EntriesTree.build([(hi, raw_cid(b"h"), 1, 0, 0, None), (lo, raw_cid(b"l"), 1, 0, 0, None)])
    assert int(tree.leaves[0].oracle, 16) < int(tree.leaves[1].oracle, 16)
    assert EntriesTree.build([]).root == bytes(32)


def test_result_hash_binds_every_field():
    base = Result(raw_cid(b"m"), raw_cid(b"r"), b"\x01" * 32, 3, 10, b"\x02" * 32, 1, b"\x03" * 32)
    from dataclasses import fields, replace

    changed = {replace(base, **{f.name: (raw_cid(b"x") if isinstance(getattr(base, f.name), str) else
                                         b"\x09" * 32 if isinstance(getattr(base, f.name), bytes) else getattr(base, f.name) + 1)}).hash(1)
               for f in fields(base)}
    assert len(changed | {base.hash(1), base.hash(2)}) == len(fields(base)) + 2
    assert Result.from_json(base.to_json()) == base


def test_commit_hash_binds_every_field():
    cid = raw_cid(b"delta")
    base = commit_hash(1, ACCOUNTS[0], cid, b"\x01" * 32, 10)
    assert len({
        base,
        commit_hash(2, ACCOUNTS[0], cid, b"\x01" * 32, 10),
        commit_hash(1, ACCOUNTS[1], cid, b"\x01" * 32, 10),
        commit_hash(1, ACCOUNTS[0], raw_cid(b"other"), b"\x01" * 32, 10),
        commit_hash(1, ACCOUNTS[0], cid, b"\x02" * 32, 10),
        commit_hash(1, ACCOUNTS[0], cid, b"\x01" * 32, 11),
    }) == 6
    with pytest.raises(ValueError):
        commit_hash(1, ACCOUNTS[0], cid, b"short", 10)


def test_the_chain_cid_string_is_what_multiformats_gives():
    from multiformats import CID

    for data in (b"x", b"delta" * 1000, b""):
        for cid in (raw_cid(data), "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"):
            b = cid_to_bytes(cid)
            assert cid_from_bytes(b) == CID.decode(b).encode("base32")


def test_cid_round_trips_through_the_binary_form():
    v0 = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
    b = cid_to_bytes(v0)
    assert len(b) == 36 and b[:4] == bytes([1, 0x70, 0x12, 0x20])
    assert cid_to_bytes(cid_from_bytes(b)) == b
    v1 = raw_cid(b"x")
    assert cid_from_bytes(cid_to_bytes(v1)) == v1
    with pytest.raises(DGPTError, match="not a CID"):
        cid_to_bytes("not-a-cid")
