"""Commit-reveal hashes and the rewards Merkle tree, exactly as the contracts check them.

Pure functions: no chain needed. The rewards tree is the one OpenZeppelin's MerkleProof verifies:
a leaf is keccak256(keccak256(abi.encode(index, oracle, amount))) (hashed twice so a leaf can never
pass for an inner node), inner nodes hash their two children in sorted order.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from dgpt.cid import cid_to_bytes


def commit_hash(round_id: int, oracle: str, delta_cid: str, salt: bytes, num_examples: int) -> bytes:
    """The hash an oracle commits: DGPTProtocol.commitHashOf(roundId, oracle, deltaCid, salt, numExamples)."""
    if len(salt) != 32:
        raise ValueError(f"salt must be 32 bytes, got {len(salt)}")
    return keccak(
        abi_encode(
            ["uint64", "address", "bytes", "bytes32", "uint64"],
            [round_id, to_checksum_address(oracle), cid_to_bytes(delta_cid), salt, num_examples],
        )
    )


def reward_leaf(index: int, oracle: str, amount: int) -> bytes:
    return keccak(keccak(abi_encode(["uint256", "address", "uint256"], [index, to_checksum_address(oracle), amount])))


def _parent(a: bytes, b: bytes) -> bytes:
    return keccak(min(a, b) + max(a, b))


def merkle_levels(leaves: list[bytes]) -> list[list[bytes]]:
    """Every level from the leaves up to the root, as OpenZeppelin's MerkleProof checks them."""
    level, levels = leaves, [leaves]
    while len(level) > 1:
        # An odd node out moves up unchanged; MerkleProof then simply has one sibling fewer.
        level = [_parent(level[i], level[i + 1]) if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
        levels.append(level)
    return levels


def merkle_proof(levels: list[list[bytes]], index: int) -> list[bytes]:
    """Sibling hashes from leaf `index` up to the root."""
    proof = []
    for level in levels[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            proof.append(level[sibling])
        index //= 2
    return proof


def slash_leaf(oracle: str, reason: int) -> bytes:
    return keccak(keccak(abi_encode(["address", "uint8"], [to_checksum_address(oracle), int(reason)])))


@dataclass(frozen=True)
class SlashesTree:
    """The slashes a round's report commits to: leaf i is (oracles[i], reasons[i])."""

    oracles: tuple[str, ...]
    reasons: tuple[int, ...]

    @classmethod
    def build(cls, slashes: list[tuple[str, int]]) -> SlashesTree:
        items = sorted((to_checksum_address(o), int(r)) for o, r in slashes)
        return cls(tuple(o for o, _ in items), tuple(r for _, r in items))

    def _levels(self) -> list[list[bytes]]:
        return merkle_levels([slash_leaf(o, r) for o, r in zip(self.oracles, self.reasons)])

    @property
    def root(self) -> bytes:
        """32 zero bytes when nothing is slashed."""
        return self._levels()[-1][0] if self.oracles else bytes(32)

    def proof(self, oracle: str, reason: int) -> list[bytes]:
        i = list(zip(self.oracles, self.reasons)).index((to_checksum_address(oracle), int(reason)))
        return merkle_proof(self._levels(), i)


@dataclass(frozen=True)
class RewardsTree:
    """Rewards of one round: leaf i pays `amounts[i]` to `oracles[i]`."""

    oracles: tuple[str, ...]
    amounts: tuple[int, ...]

    @classmethod
    def build(cls, rewards: dict[str, int]) -> RewardsTree:
        """One leaf per oracle with a positive reward, in address order so the root is deterministic."""
        items = sorted((to_checksum_address(a), int(v)) for a, v in rewards.items() if int(v) > 0)
        return cls(tuple(a for a, _ in items), tuple(v for _, v in items))

    @property
    def total(self) -> int:
        return sum(self.amounts)

    def _levels(self) -> list[list[bytes]]:
        return merkle_levels([reward_leaf(i, a, v) for i, (a, v) in enumerate(zip(self.oracles, self.amounts))])

    @property
    def root(self) -> bytes:
        """The Merkle root published on chain (32 zero bytes when nobody is paid)."""
        return self._levels()[-1][0] if self.oracles else bytes(32)

    def index_of(self, oracle: str) -> int | None:
        oracle = to_checksum_address(oracle)
        return self.oracles.index(oracle) if oracle in self.oracles else None

    def proof(self, index: int) -> list[bytes]:
        """Sibling hashes from leaf `index` up to the root."""
        return merkle_proof(self._levels(), index)

    def to_json(self) -> list[dict]:
        return [{"index": i, "oracle": a, "amount": str(v)} for i, (a, v) in enumerate(zip(self.oracles, self.amounts))]

    @classmethod
    def from_json(cls, leaves: list[dict]) -> RewardsTree:
        if [leaf["index"] for leaf in leaves] != list(range(len(leaves))):
            raise ValueError("rewards leaves are not indexed 0..n-1 in order")
        return cls(tuple(to_checksum_address(leaf["oracle"]) for leaf in leaves), tuple(int(leaf["amount"]) for leaf in leaves))
