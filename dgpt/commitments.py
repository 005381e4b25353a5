"""Commit-reveal hashes, the Merkle trees of a round's result and its result hash, exactly as the
contracts check them.

Pure functions: no chain needed. The trees are the ones OpenZeppelin's MerkleProof verifies: a leaf
is keccak256(keccak256(abi.encode(fields))) (hashed twice so a leaf can never pass for an inner
node), inner nodes hash their two children in sorted order.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

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


ENTRY_TYPES = ["uint256", "address", "bytes32", "uint64", "uint256", "uint256", "uint256", "bool", "uint8"]


@dataclass(frozen=True)
class EntryLeaf:
    """DGPTProtocol.EntryLeaf: one revealed submission and the verdict on it, as the chain checks it."""

    index: int
    oracle: str
    delta: bytes  # sha2-256 digest of the revealed delta CID
    num_examples: int
    weight: int  # 0: not merged
    reward: int
    reward_before: int  # sum of the rewards of the entries before this one
    slashed: bool = False
    reason: int = 0  # SlashReason, when slashed

    def __post_init__(self):
        object.__setattr__(self, "oracle", to_checksum_address(self.oracle))  # once, not at every encoding

    def as_tuple(self) -> tuple:
        return (self.index, self.oracle, self.delta, self.num_examples, self.weight, self.reward, self.reward_before,
                self.slashed, self.reason)

    @property
    def leaf(self) -> bytes:
        return keccak(keccak(abi_encode(ENTRY_TYPES, list(self.as_tuple()))))

    def to_json(self) -> dict:
        return {"index": self.index, "oracle": self.oracle, "delta": self.delta.hex(), "num_examples": self.num_examples,
                "weight": str(self.weight), "reward": str(self.reward), "reward_before": str(self.reward_before),
                "slashed": self.slashed, "reason": self.reason}

    @classmethod
    def from_json(cls, d: dict) -> EntryLeaf:
        return cls(int(d["index"]), d["oracle"], bytes.fromhex(d["delta"]), int(d["num_examples"]),
                   int(d["weight"]), int(d["reward"]), int(d["reward_before"]), bool(d["slashed"]), int(d["reason"]))


@dataclass(frozen=True)
class EntriesTree:
    """A report's entries, in oracle-address order: claims prove their leaf, challenges prove faults."""

    leaves: tuple[EntryLeaf, ...]

    @classmethod
    def build(cls, entries: list[tuple[str, str, int, int, int, int | None]]) -> EntriesTree:
        """From (oracle, delta CID, revealed count, weight, reward, slash reason or None), any order."""
        out, before = [], 0
        for i, (oracle, cid, n, weight, reward, reason) in enumerate(sorted(entries, key=lambda e: int(e[0], 16))):
            out.append(EntryLeaf(i, oracle, cid_digest(cid), n, weight, reward, before,
                                 reason is not None, int(reason or 0)))
            before += reward
        return cls(tuple(out))

    @property
    def total(self) -> int:
        return sum(e.reward for e in self.leaves)

    @cached_property
    def _levels(self) -> list[list[bytes]]:  # hashed once: the root and every proof read it
        return merkle_levels([e.leaf for e in self.leaves])

    @property
    def root(self) -> bytes:
        """32 zero bytes when nothing was revealed."""
        return self._levels[-1][0] if self.leaves else bytes(32)

    def of(self, oracle: str) -> EntryLeaf | None:
        oracle = to_checksum_address(oracle)
        return next((e for e in self.leaves if e.oracle == oracle), None)

    def proof(self, index: int) -> list[bytes]:
        """Sibling hashes from leaf `index` up to the root."""
        return merkle_proof(self._levels, index)


def cid_digest(cid: str) -> bytes:
    """The 32-byte sha2-256 digest the contracts store for a CID."""
    return cid_to_bytes(cid)[4:]


RESULT_TYPE = "(bytes,bytes,bytes32,uint32,uint96,bytes32,uint16,bytes32)"


@dataclass(frozen=True)
class Result:
    """DGPTProtocol.Result: what a publish proposes and validators attest to."""

    new_model_cid: str
    report_cid: str
    entries_root: bytes
    entry_count: int
    rewards_total: int
    slashes_root: bytes
    slash_count: int
    validation_root: bytes

    def as_tuple(self) -> tuple:
        return (cid_to_bytes(self.new_model_cid), cid_to_bytes(self.report_cid), self.entries_root, self.entry_count,
                self.rewards_total, self.slashes_root, self.slash_count, self.validation_root)

    def hash(self, round_id: int) -> bytes:
        """keccak256(abi.encode(roundId, result)): the hash the contract records and validators attest to."""
        return keccak(abi_encode(["uint64", RESULT_TYPE], [round_id, self.as_tuple()]))

    def to_json(self) -> dict:
        return {"new_model_cid": self.new_model_cid, "report_cid": self.report_cid, "entries_root": self.entries_root.hex(),
                "entry_count": self.entry_count, "rewards_total": str(self.rewards_total), "slashes_root": self.slashes_root.hex(),
                "slash_count": self.slash_count, "validation_root": self.validation_root.hex()}

    @classmethod
    def from_json(cls, d: dict) -> Result:
        return cls(d["new_model_cid"], d["report_cid"], bytes.fromhex(d["entries_root"]), int(d["entry_count"]),
                   int(d["rewards_total"]), bytes.fromhex(d["slashes_root"]), int(d["slash_count"]), bytes.fromhex(d["validation_root"]))
