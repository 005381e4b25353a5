"""Commit hashes and the rewards tree, checked without a chain."""

from __future__ import annotations

import pytest
from eth_utils import keccak

from dgpt.cid import cid_from_bytes, cid_to_bytes, raw_cid
from dgpt.commitments import RewardsTree, commit_hash, reward_leaf
from dgpt.errors import DGPTError

ACCOUNTS = [f"0x{i:040x}" for i in range(1, 12)]


def verify(proof: list[bytes], root: bytes, leaf: bytes) -> bool:
    """OpenZeppelin MerkleProof.verify, transcribed."""
    node = leaf
    for sibling in proof:
        node = keccak(min(node, sibling) + max(node, sibling))
    return node == root


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 11])
def test_every_leaf_proves_against_the_root(n):
    tree = RewardsTree.build({a: (i + 1) * 10 for i, a in enumerate(ACCOUNTS[:n])})
    assert tree.total == sum((i + 1) * 10 for i in range(n))
    for i, (account, amount) in enumerate(zip(tree.oracles, tree.amounts)):
        assert verify(tree.proof(i), tree.root, reward_leaf(i, account, amount))
        assert not verify(tree.proof(i), tree.root, reward_leaf(i, account, amount + 1))


def test_tree_is_deterministic_and_drops_zero_rewards():
    rewards = {ACCOUNTS[2]: 5, ACCOUNTS[0]: 7, ACCOUNTS[1]: 0}
    tree = RewardsTree.build(rewards)
    assert tree.root == RewardsTree.build(dict(reversed(list(rewards.items())))).root
    assert len(tree.oracles) == 2 and tree.index_of(ACCOUNTS[1]) is None
    assert RewardsTree.build({}).root == bytes(32)


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


def test_cid_round_trips_through_the_binary_form():
    v0 = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
    b = cid_to_bytes(v0)
    assert len(b) == 36 and b[:4] == bytes([1, 0x70, 0x12, 0x20])
    assert cid_to_bytes(cid_from_bytes(b)) == b
    v1 = raw_cid(b"x")
    assert cid_from_bytes(cid_to_bytes(v1)) == v1
    with pytest.raises(DGPTError, match="not a CID"):
        cid_to_bytes("not-a-cid")
