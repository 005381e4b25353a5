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
from dgpt.commitments import EntryLeaf, Result

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


class Outcome(IntEnum):
    """DGPTProtocol.Outcome: how a proposal ended."""

    PENDING = 0
    FINAL = 1
    VOIDED_BY_PROOF = 2
    VOIDED_BY_QUORUM = 3
    EXPIRED = 4


class Fault(IntEnum):
    """DGPTProtocol.Fault: what a challenge proved."""

    ENTRY_NOT_REVEALED = 0
    ENTRY_NOT_THE_REVEALED_ONE = 1
    ENTRY_PAST_COUNT = 2
    WEIGHT_ABOVE_COUNT = 3
    REWARD_NOT_MERGED = 4
    REWARDS_BEFORE_FIRST = 5
    TOTAL_MISMATCH = 6
    ENTRIES_OUT_OF_ORDER = 7
    RUNNING_SUM_MISMATCH = 8
    SLASH_NOT_REVEALED = 9
    SLASH_UNSUPPORTED = 10


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
    slash_window: int = 24 * 3600  # after finality, for the report's slashes
    max_reward_per_round: int = 1_000 * TOKEN
    emission_period: int = 24 * 3600
    max_reward_per_period: int = 10_000 * TOKEN
    # Disputes (README, "Keys, bonds and what each protects against").
    challenge_window: int = 24 * 3600  # after a publish: proofs and attestations; then finalize
    publish_bond: int = 100 * TOKEN  # locked by a publish on top of the budget and the proposed slashes
    challenger_share_bps: int = 5_000  # of a voided proposal's bond, to who voided it; the rest is burned
    validator_seats: int = 3  # n
    validator_quorum: int = 2  # m agreeing attestations make a proposal final (0: none needed)
    validator_bond: int = 100 * TOKEN
    validator_penalty: int = 20 * TOKEN  # burned from an attestation the outcome contradicts
    validator_fee: int = 1 * TOKEN  # per agreeing attestation to a final proposal, from the round's budget

    def penalty(self, reason: SlashReason) -> int:
        return {SlashReason.NO_REVEAL: self.non_reveal_penalty, SlashReason.MALFORMED: self.malformed_penalty,
                SlashReason.NON_FINITE: self.non_finite_penalty, SlashReason.NORM_OUT_OF_BOUND: self.norm_penalty}[reason]

    def as_tuple(self) -> tuple:
        """DGPTProtocol.Params, in its field order."""
        return (self.min_stake, self.unbonding_period, self.max_examples, self.non_reveal_penalty, self.malformed_penalty,
                self.non_finite_penalty, self.norm_penalty, self.min_window, self.max_window, self.publish_window,
                self.slash_window, self.max_reward_per_round, self.emission_period, self.max_reward_per_period,
                self.challenge_window, self.publish_bond, self.challenger_share_bps, self.validator_seats, self.validator_quorum,
                self.validator_bond, self.validator_penalty, self.validator_fee)

    def publish_bond_for(self, reward_budget: int, slash_count: int) -> int:
        """The bond a publish locks: DGPTProtocol.publish's `required`."""
        worst = max(self.malformed_penalty, self.non_finite_penalty, self.norm_penalty)
        return self.publish_bond + reward_budget + slash_count * worst


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
    """DGPTProtocol.RoundView: a round, its live or final proposal and the attestations to it."""

    round_id: int
    base_model_cid: str
    task_spec_cid: str
    commit_deadline: int
    reveal_deadline: int
    reward_budget: int
    aborted: bool
    revealed_count: int
    proposals: int  # made so far; the live one is number `proposals`
    proposed: bool  # a live proposal awaits finality
    final: bool
    proposed_at: int
    finalized_at: int
    voided_at: int
    publish_deadline: int
    challenge_deadline: int
    publisher: str | None
    new_model_cid: str | None  # of the live or final proposal
    report_cid: str | None
    result_hash: bytes
    entries_root: bytes
    entry_count: int
    rewards_total: int
    rewards_claimed: int
    slashes_root: bytes
    slash_count: int
    agree: int
    disagree: int

    @property
    def published(self) -> bool:
        """A live or final proposal exists (its report and model can be fetched)."""
        return self.proposed or self.final

    @property
    def state(self) -> str:
        """open (commits, reveals, then awaiting a proposal), proposed, challenged, final, voided, aborted."""
        if self.final:
            return "final"
        if self.aborted:
            return "aborted"
        if self.proposed:
            return "challenged" if self.disagree else "proposed"
        return "voided" if self.voided_at else "open"


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


def deploy(chain: Chain, admin: LocalAccount, aggregator: str, params: ProtocolParams = ProtocolParams(),
           validators: tuple[str, ...] = ()) -> Protocol:
    """Deploy the token (minting the genesis supply to the admin) and the protocol, make the protocol
    the token's only minter, once, and seat `validators`."""
    start_block = chain.w3.eth.block_number
    token = chain.deploy(admin, "DGPTToken", params.cap, params.genesis_supply, admin.address)
    protocol = chain.deploy(admin, "DGPTProtocol", token.address, params.as_tuple(), admin.address, Web3.to_checksum_address(aggregator))
    chain.transact(admin, token.functions.setMinter(protocol.address))
    p = Protocol(chain, Deployment(token.address, protocol.address, start_block))
    for v in validators:
        p.set_validator(admin, v, True)
    return p


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

    def claim(self, account: LocalAccount, round_id: int, entry: EntryLeaf, proof: list[bytes]) -> dict:
        """Claim `entry`'s reward from a final round (the entry is the caller's, in the report's entries tree)."""
        return self._tx(account, self.contract.functions.claim(round_id, entry.as_tuple(), proof))

    # --- bonds, validators, disputes ----------------------------------------------------------------

    def bond(self, address: str) -> tuple[int, int]:
        """(amount, locked) of an account's bond."""
        amount, locked = self.contract.functions.bonds(Web3.to_checksum_address(address)).call()
        return amount, locked

    def deposit_bond(self, account: LocalAccount, amount: int) -> dict:
        balance = self.balance_of(account.address)
        if amount <= 0:
            raise ContractRevert("ZeroAmount", {})
        if balance < amount:  # checked first: no approval is left behind
            raise ContractRevert("ERC20InsufficientBalance", {"sender": account.address, "balance": balance, "needed": amount})
        self._approve(account, amount)
        return self._tx(account, self.contract.functions.depositBond(amount))

    def withdraw_bond(self, account: LocalAccount, amount: int) -> dict:
        return self._tx(account, self.contract.functions.withdrawBond(amount))

    def set_validator(self, admin: LocalAccount, validator: str, seated: bool) -> dict:
        return self._tx(admin, self.contract.functions.setValidator(Web3.to_checksum_address(validator), seated))

    def is_validator(self, address: str) -> bool:
        return self.contract.functions.isValidator(Web3.to_checksum_address(address)).call()

    def attest(self, account: LocalAccount, round_id: int, result_hash: bytes) -> dict:
        return self._tx(account, self.contract.functions.attest(round_id, result_hash))

    def attestation(self, round_id: int, proposal: int, validator: str) -> bytes:
        """The result hash a validator attested to for a proposal (zero bytes: none, or settled)."""
        return self.contract.functions.attestations(round_id, proposal, Web3.to_checksum_address(validator)).call()

    def settlement(self, round_id: int, proposal: int) -> tuple[bytes, Outcome, int]:
        h, outcome, share = self.contract.functions.settlements(round_id, proposal).call()
        return h, Outcome(outcome), share

    def finalize(self, account: LocalAccount, round_id: int) -> dict:
        return self._tx(account, self.contract.functions.finalize(round_id))

    def settle_attestation(self, account: LocalAccount, round_id: int, proposal: int, validator: str) -> dict:
        return self._tx(account, self.contract.functions.settleAttestation(round_id, proposal, Web3.to_checksum_address(validator)))

    def challenge_entry(self, account: LocalAccount, round_id: int, entry: EntryLeaf, proof: list[bytes]) -> dict:
        return self._tx(account, self.contract.functions.challengeEntry(round_id, entry.as_tuple(), proof))

    def challenge_entries(self, account: LocalAccount, round_id: int, a: EntryLeaf, proof_a: list[bytes],
                          b: EntryLeaf, proof_b: list[bytes]) -> dict:
        return self._tx(account, self.contract.functions.challengeEntries(round_id, a.as_tuple(), proof_a, b.as_tuple(), proof_b))

    def challenge_slash(self, account: LocalAccount, round_id: int, oracle: str, reason: SlashReason, slash_proof: list[bytes],
                        entry: EntryLeaf | None, entry_proof: list[bytes]) -> dict:
        entry = entry or EntryLeaf(0, oracle, bytes(32), 0, 0, 0, 0)  # unused when the oracle revealed nothing
        return self._tx(account, self.contract.functions.challengeSlash(
            round_id, Web3.to_checksum_address(oracle), int(reason), slash_proof, entry.as_tuple(), entry_proof))

    def publish_bond_for(self, reward_budget: int, slash_count: int) -> int:
        """The bond a publish locks, from the deployment's parameters."""
        worst = max(self.penalty(r) for r in (SlashReason.MALFORMED, SlashReason.NON_FINITE, SlashReason.NORM_OUT_OF_BOUND))
        return self.contract.functions.publishBond().call() + reward_budget + slash_count * worst

    def oracle_budget(self, info: RoundInfo) -> int:
        """What a round may pay its oracles: its budget less the validators' fees it reserves
        (DGPTProtocol._feeOf per seat)."""
        f = self.contract.functions
        seats = f.validatorSeats().call()
        fee = min(f.validatorFee().call(), info.reward_budget // seats) if seats else 0
        return info.reward_budget - fee * seats

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

    def publish(self, account: LocalAccount, round_id: int, result: Result) -> dict:
        """Propose the round's result; it takes effect when final (after the challenge window)."""
        return self._tx(account, self.contract.functions.publish(round_id, result.as_tuple()))

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
        v = list(self.chain.call(self.contract.functions.getRound(round_id)))
        v[0], v[1], v[16], v[17] = (cid_from_bytes(v[i]) for i in (0, 1, 16, 17))
        v[15] = v[15] if int(v[15], 16) else None
        return RoundInfo(round_id, *v)

    def submission(self, round_id: int, oracle: str) -> SubmissionInfo:
        oracle = Web3.to_checksum_address(oracle)
        committed, status, delta, n = self.contract.functions.getSubmission(round_id, oracle).call()
        return SubmissionInfo(round_id, oracle, committed, Status(status) if committed else None, cid_from_bytes(delta), n)

    def is_claimed(self, round_id: int, index: int) -> bool:
        """Whether entry `index` of a final round has been claimed."""
        return self.contract.functions.isClaimed(round_id, index).call()

    def events(self, name: str, from_block: int | None = None, to_block: int | None = None, **filters) -> list:
        """Decoded logs of a DGPTProtocol event since deployment (or `from_block`)."""
        start = self.deployment.start_block if from_block is None else from_block
        return self.chain.events(getattr(self.contract.events, name)(), start, to_block, **filters)
