"""Typed handles on the deployed protocol: one method per contract function the roles use.

Amounts are integers in token base units (18 decimals); CIDs are strings (converted to the binary
form the contracts store); addresses are checksummed strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from eth_account.signers.local import LocalAccount
from web3 import Web3

from dgpt.chain.client import ContractRevert, Chain
from dgpt.cid import cid_from_bytes, cid_to_bytes

TOKEN = 10**18  # base units per token


class Status(IntEnum):
    """DGPTProtocol.Status: where a submission stands."""

    COMMITTED = 0
    REVEALED = 1
    SLASHED = 2


class SlashReason(IntEnum):
    """OracleRegistry.SlashReason."""

    NO_REVEAL = 0
    MALFORMED = 1
    NON_FINITE = 2
    NORM_OUT_OF_BOUND = 3


@dataclass(frozen=True)
class ProtocolParams:
    """Deployment parameters: immutable in the contracts, the bounds every key's call must respect."""

    cap: int = 1_000_000_000 * TOKEN
    genesis_supply: int = 10_000_000 * TOKEN  # minted to the admin at deployment; no mint outside the schedule after
    min_stake: int = 100 * TOKEN
    unbonding_period: int = 7 * 24 * 3600
    max_examples: int = 1_000_000  # largest example count a dataset commitment may declare
    non_reveal_penalty: int = 10 * TOKEN
    malformed_penalty: int = 50 * TOKEN
    non_finite_penalty: int = 50 * TOKEN
    norm_penalty: int = 50 * TOKEN
    min_window: int = 60  # commit and reveal windows, seconds
    max_window: int = 7 * 24 * 3600
    publish_window: int = 2 * 24 * 3600  # after the reveal deadline; then anyone may abort the round
    slash_window: int = 24 * 3600  # after publish, for the report's slashes
    max_reward_per_round: int = 1_000 * TOKEN
    emission_period: int = 24 * 3600
    max_reward_per_period: int = 10_000 * TOKEN

    def penalty(self, reason: SlashReason) -> int:
        return {SlashReason.NO_REVEAL: self.non_reveal_penalty, SlashReason.MALFORMED: self.malformed_penalty,
                SlashReason.NON_FINITE: self.non_finite_penalty, SlashReason.NORM_OUT_OF_BOUND: self.norm_penalty}[reason]

    def as_tuple(self) -> tuple:
        """DGPTProtocol.Params, in its field order."""
        return (self.min_stake, self.unbonding_period, self.max_examples, self.non_reveal_penalty, self.malformed_penalty,
                self.non_finite_penalty, self.norm_penalty, self.min_window, self.max_window, self.publish_window,
                self.slash_window, self.max_reward_per_round, self.emission_period, self.max_reward_per_period)


@dataclass(frozen=True)
class OracleInfo:
    address: str
    registered: bool
    stake: int
    unbonding: int
    unbonding_ready_at: int
    manifest_cid: str | None
    dataset_root: bytes
    num_examples: int
    last_commit_round: int


@dataclass(frozen=True)
class RoundInfo:
    round_id: int
    base_model_cid: str
    task_spec_cid: str
    commit_deadline: int
    reveal_deadline: int
    reward_budget: int
    published: bool
    new_model_cid: str | None
    report_cid: str | None
    rewards_root: bytes
    rewards_total: int
    rewards_claimed: int
    aborted: bool = False
    published_at: int = 0
    publish_deadline: int = 0
    slashes_root: bytes = bytes(32)

    @property
    def state(self) -> str:
        return "published" if self.published else "aborted" if self.aborted else "open"


@dataclass(frozen=True)
class SubmissionInfo:
    round_id: int
    oracle: str
    committed: bool
    status: Status | None
    delta_cid: str | None
    num_examples: int


@dataclass(frozen=True)
class Deployment:
    """Where the protocol lives; enough to reconnect from another process."""

    token: str
    protocol: str
    start_block: int

    def to_json(self) -> dict:
        return {"token": self.token, "protocol": self.protocol, "start_block": self.start_block}

    @classmethod
    def from_json(cls, d: dict) -> Deployment:
        return cls(Web3.to_checksum_address(d["token"]), Web3.to_checksum_address(d["protocol"]), int(d["start_block"]))


def deploy(chain: Chain, admin: LocalAccount, aggregator: str, params: ProtocolParams = ProtocolParams()) -> Protocol:
    """Deploy the token (minting the genesis supply to the admin) and the protocol, and make the
    protocol the token's only minter, once. Three transactions."""
    start_block = chain.w3.eth.block_number
    token = chain.deploy(admin, "DGPTToken", params.cap, params.genesis_supply, admin.address)
    protocol = chain.deploy(admin, "DGPTProtocol", token.address, params.as_tuple(), admin.address, Web3.to_checksum_address(aggregator))
    chain.transact(admin, token.functions.setMinter(protocol.address))
    return Protocol(chain, Deployment(token.address, protocol.address, start_block))


class Protocol:
    """The deployed token and protocol on one chain."""

    def __init__(self, chain: Chain, deployment: Deployment):
        self.chain = chain
        self.deployment = deployment
        self.token = chain.contract("DGPTToken", deployment.token)
        self.contract = chain.contract("DGPTProtocol", deployment.protocol)

    def _tx(self, account: LocalAccount, call) -> dict:
        return self.chain.transact(account, call)

    # --- token ----------------------------------------------------------------------------------

    def transfer(self, sender: LocalAccount, to: str, amount: int) -> dict:
        """Send DGPT (e.g. from the admin's genesis supply to a new oracle)."""
        balance = self.balance_of(sender.address)
        if balance < amount:  # checked first: nothing is sent
            raise ContractRevert("ERC20InsufficientBalance", {"sender": sender.address, "balance": balance, "needed": amount})
        return self._tx(sender, self.token.functions.transfer(Web3.to_checksum_address(to), amount))

    def balance_of(self, address: str) -> int:
        return self.token.functions.balanceOf(Web3.to_checksum_address(address)).call()

    def _approve(self, account: LocalAccount, amount: int) -> None:
        if self.token.functions.allowance(account.address, self.contract.address).call() < amount:
            self._tx(account, self.token.functions.approve(self.contract.address, amount))

    # --- oracle ---------------------------------------------------------------------------------

    def _check_stake(self, account: LocalAccount, amount: int, registering: bool) -> None:
        """The checks `register`/`addStake` would make, before the approval is sent: a call that
        would revert must not leave an approval transaction behind."""
        me = account.address
        registered = self.oracle(me).registered
        if registering and registered:
            raise ContractRevert("AlreadyRegistered", {"oracle": me})
        if not registering and not registered:
            raise ContractRevert("NotRegistered", {"oracle": me})
        minimum = self.min_stake()
        if registering and amount < minimum:
            raise ContractRevert("StakeBelowMinimum", {"oracle": me, "stake": amount, "minimum": minimum})
        if amount <= 0:
            raise ContractRevert("ZeroAmount", {})
        balance = self.balance_of(me)
        if balance < amount:
            raise ContractRevert("ERC20InsufficientBalance", {"sender": me, "balance": balance, "needed": amount})

    def register(self, account: LocalAccount, stake: int, manifest_cid: str, dataset_root: bytes, num_examples: int) -> dict:
        """Approve the stake if needed, then register with the dataset commitment."""
        self._check_stake(account, stake, registering=True)
        self._approve(account, stake)
        return self._tx(account, self.contract.functions.register(stake, cid_to_bytes(manifest_cid), dataset_root, num_examples))

    def update_commitment(self, account: LocalAccount, manifest_cid: str, dataset_root: bytes, num_examples: int) -> dict:
        return self._tx(account, self.contract.functions.updateCommitment(cid_to_bytes(manifest_cid), dataset_root, num_examples))

    def add_stake(self, account: LocalAccount, amount: int) -> dict:
        self._check_stake(account, amount, registering=False)
        self._approve(account, amount)
        return self._tx(account, self.contract.functions.addStake(amount))

    def request_unbond(self, account: LocalAccount, amount: int) -> dict:
        return self._tx(account, self.contract.functions.requestUnbond(amount))

    def withdraw(self, account: LocalAccount) -> dict:
        return self._tx(account, self.contract.functions.withdraw())

    def commit(self, account: LocalAccount, round_id: int, commit_hash: bytes) -> dict:
        return self._tx(account, self.contract.functions.commit(round_id, commit_hash))

    def reveal(self, account: LocalAccount, round_id: int, delta_cid: str, salt: bytes, num_examples: int) -> dict:
        return self._tx(account, self.contract.functions.reveal(round_id, cid_to_bytes(delta_cid), salt, num_examples))

    def claim(self, account: LocalAccount, round_id: int, index: int, amount: int, proof: list[bytes]) -> dict:
        return self._tx(account, self.contract.functions.claim(round_id, index, amount, proof))

    # --- aggregator -----------------------------------------------------------------------------

    def open_round(
        self,
        account: LocalAccount,
        base_model_cid: str,
        task_spec_cid: str,
        commit_duration: int,
        reveal_duration: int,
        reward_budget: int,
    ) -> int:
        """Open the next round; returns its id."""
        receipt = self._tx(
            account,
            self.contract.functions.openRound(
                cid_to_bytes(base_model_cid), cid_to_bytes(task_spec_cid), commit_duration, reveal_duration, reward_budget
            ),
        )
        return self.contract.events.RoundOpened().process_receipt(receipt)[0]["args"]["roundId"]

    def publish(
        self, account: LocalAccount, round_id: int, new_model_cid: str, report_cid: str, rewards_root: bytes, rewards_total: int,
        slashes_root: bytes = bytes(32),
    ) -> dict:
        return self._tx(
            account,
            self.contract.functions.publish(
                round_id, cid_to_bytes(new_model_cid), cid_to_bytes(report_cid), rewards_root, rewards_total, slashes_root
            ),
        )

    def slash(self, account: LocalAccount, round_id: int, oracle: str, reason: SlashReason, proof: list[bytes]) -> dict:
        """Execute a slash the round's published slashes root holds (anyone may send it)."""
        return self._tx(account, self.contract.functions.slash(round_id, Web3.to_checksum_address(oracle), int(reason), proof))

    def abort_round(self, account: LocalAccount, round_id: int) -> dict:
        return self._tx(account, self.contract.functions.abortRound(round_id))

    def slash_non_revealer(self, account: LocalAccount, round_id: int, oracle: str) -> dict:
        return self._tx(account, self.contract.functions.slashNonRevealer(round_id, Web3.to_checksum_address(oracle)))

    # --- admin ----------------------------------------------------------------------------------

    def pause(self, admin: LocalAccount) -> dict:
        return self._tx(admin, self.contract.functions.pause())

    def unpause(self, admin: LocalAccount) -> dict:
        return self._tx(admin, self.contract.functions.unpause())

    # --- views ----------------------------------------------------------------------------------

    def current_round(self) -> int:
        return self.contract.functions.currentRound().call()

    def latest_model(self) -> str | None:
        return cid_from_bytes(self.contract.functions.latestModel().call())

    def min_stake(self) -> int:
        return self.contract.functions.minStake().call()

    def max_reward_per_round(self) -> int:
        return self.contract.functions.maxRewardPerRound().call()

    def window_bounds(self) -> tuple[int, int]:
        return self.contract.functions.minWindow().call(), self.contract.functions.maxWindow().call()

    def penalty(self, reason: SlashReason) -> int:
        return self.contract.functions.penalty(int(reason)).call()

    def oracle(self, address: str) -> OracleInfo:
        address = Web3.to_checksum_address(address)
        stake, unbonding, ready_at, manifest, root, n, last = self.contract.functions.getOracle(address).call()
        return OracleInfo(address, bool(manifest), stake, unbonding, ready_at, cid_from_bytes(manifest), root, n, last)

    def round(self, round_id: int) -> RoundInfo:
        v = self.chain.call(self.contract.functions.getRound(round_id))
        return RoundInfo(
            round_id,
            cid_from_bytes(v[0]),
            cid_from_bytes(v[1]),
            v[2],
            v[3],
            v[4],
            v[5],
            cid_from_bytes(v[6]),
            cid_from_bytes(v[7]),
            v[8],
            v[9],
            v[10],
            v[11],
            v[12],
            v[13],
            v[14],
        )

    def submission(self, round_id: int, oracle: str) -> SubmissionInfo:
        oracle = Web3.to_checksum_address(oracle)
        committed, status, delta, n = self.contract.functions.getSubmission(round_id, oracle).call()
        return SubmissionInfo(round_id, oracle, committed, Status(status) if committed else None, cid_from_bytes(delta), n)

    def is_claimed(self, round_id: int, index: int) -> bool:
        return self.contract.functions.isClaimed(round_id, index).call()

    def events(self, name: str, from_block: int | None = None, to_block: int | None = None, **filters) -> list:
        """Decoded logs of a DGPTProtocol event since deployment (or `from_block`)."""
        start = self.deployment.start_block if from_block is None else from_block
        return self.chain.events(getattr(self.contract.events, name)(), start, to_block, **filters)
