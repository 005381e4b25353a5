// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {DGPTToken} from "./DGPTToken.sol";
import {CidCodec} from "./CidCodec.sol";
import {OracleRegistry} from "./OracleRegistry.sol";

/// @title DGPT training rounds: commit, reveal, propose, challenge, finalize, claim
/// @notice One round at a time. The aggregator opens a round on the latest final model with a task
///         spec, windows and a reward budget, all within bounds fixed at deployment. Oracles commit a
///         hash binding their delta CID, then reveal it. After the reveal deadline a bonded
///         aggregator proposes the result: the merged model, the report, the Merkle root of the
///         report's entries (one per revealed submission: its verdict, merge weight and reward), the
///         rewards total and the Merkle root of the slashes. Nothing takes effect yet. During the
///         challenge window anyone may void the proposal with a proof the contract checks against
///         the committed roots and its own records (a fake, missing or repeated entry, a weight above
///         the revealed count, a reward to an unmerged entry, totals that do not add up, a slash no
///         entry supports), and the validators attest to the hash of the result they recomputed. A
///         proposal contradicted by a quorum of validators, or by a proof, is void: the aggregator's
///         bond is slashed (a share to whoever showed it), nothing is paid or slashed, and a corrected
///         proposal may follow on the same reveals. A proposal that outlives the window with a quorum
///         of agreeing validators (or with no quorum required) is final: its rewards are minted for
///         the oracles to claim, its slashes may be executed, and its model is the next base. A round
///         with no final proposal in its publish window can be aborted by anyone: stakes unlock.
contract DGPTProtocol is OracleRegistry {
    using SafeERC20 for IERC20;

    /// @notice Deployment parameters: every bound a key's call must respect.
    struct Params {
        uint256 minStake; // smallest stake that may register and commit
        uint256 unbondingPeriod; // seconds between requestUnbond and withdraw
        uint64 maxExamples; // largest example count a dataset commitment may declare
        uint256 nonRevealPenalty; // burned from a committed non-revealer
        uint256 malformedPenalty; // burned for a Malformed delta
        uint256 nonFinitePenalty; // burned for a NonFinite delta
        uint256 normPenalty; // burned for a NormOutOfBound delta
        uint256 minWindow; // shortest commit or reveal window, seconds
        uint256 maxWindow; // longest commit or reveal window, seconds
        uint256 publishWindow; // seconds after the reveal deadline (or a void) to propose, before anyone may abort
        uint256 slashWindow; // seconds after finality in which the final slashes can be executed
        uint256 maxRewardPerRound; // ceiling of a round's reward budget
        uint256 emissionPeriod; // seconds per emission period
        uint256 maxRewardPerPeriod; // ceiling of the budgets of the rounds opened in one period
        uint256 challengeWindow; // seconds after a proposal for proofs and attestations
        uint256 publishBond; // bond a proposal locks on top of the round's budget and proposed slashes
        uint256 challengerShareBps; // share of a voided proposal's bond paid to who voided it (basis points)
        uint256 validatorSeats; // n: most validators registered at once
        uint256 validatorQuorum; // m: agreeing attestations a proposal needs (0: none; else n/2 < m <= n)
        uint256 validatorBond; // bond a validator must hold to attest
        uint256 validatorPenalty; // burned from a validator whose attestation the outcome contradicts
        uint256 validatorFee; // paid from the round's budget to each validator agreeing with a final proposal
    }

    /// @notice Where a submission stands (a zero commit hash means there is none).
    enum Status {
        Committed,
        Revealed,
        Slashed
    }

    /// @notice How a proposal ended (Pending while its window runs).
    enum Outcome {
        Pending,
        Final,
        VoidedByProof,
        VoidedByQuorum,
        Expired // the window closed without a quorum either way: void, nobody at fault
    }

    /// @notice What a challenge proved (the `fault` of `Challenged`).
    enum Fault {
        EntryNotRevealed, // an entry for an oracle that revealed nothing
        EntryNotTheRevealedOne, // an entry whose delta or count is not what the oracle revealed
        EntryPastCount, // an entry index past the entry count
        WeightAboveCount, // a merge weight above the revealed example count
        RewardNotMerged, // a reward to an entry that was not merged, or was slashed
        RewardsBeforeFirst, // the first entry's running sum is not 0
        TotalMismatch, // the last entry's running sum plus its reward is not the rewards total
        EntriesOutOfOrder, // consecutive entries not in increasing oracle order: one repeated, one missing
        RunningSumMismatch, // consecutive entries whose running sums disagree
        SlashNotRevealed, // a slash of an oracle that revealed nothing
        SlashUnsupported // a slash the oracle's entry does not support
    }

    /// @notice What an aggregator proposes for a round; validators attest to `resultHash` of it.
    struct Result {
        bytes newModelCid; // the merged model
        bytes reportCid; // the report
        bytes32 entriesRoot; // Merkle root of the report's entries (`EntryLeaf`), in oracle-address order
        uint32 entryCount; // one entry per revealed submission
        uint96 rewardsTotal; // sum of the entries' rewards
        bytes32 slashesRoot; // Merkle root of the (oracle, reason) slashes (0: none)
        uint16 slashCount; // leaves under slashesRoot
        bytes32 validationRoot; // Merkle root of the validation data the scores used
    }

    /// @notice One leaf of a report's entries: a revealed submission and the verdict on it.
    struct EntryLeaf {
        uint256 index; // position in oracle-address order, 0..entryCount-1
        address oracle;
        bytes32 delta; // sha2-256 digest of the revealed delta CID
        uint64 numExamples; // as revealed
        uint256 weight; // merge weight; 0: not merged
        uint256 reward; // token base units; claimable once the round is final
        uint256 rewardBefore; // sum of the rewards of the entries before this one
        bool slashed;
        SlashReason reason; // meaningful when slashed
    }

    struct Round {
        bytes32 baseModelDigest;
        bytes32 taskSpecDigest;
        // One slot: what commit and reveal read (reveal counts itself here).
        uint40 commitDeadline;
        uint40 revealDeadline;
        uint16 baseModelCodec;
        uint16 taskSpecCodec;
        bool aborted;
        uint96 rewardBudget;
        uint32 revealedCount;
        // One slot: what a claim reads and writes.
        uint96 rewardsTotal;
        uint96 rewardsClaimed;
        uint40 finalizedAt; // 0: not final
        uint16 slashCount;
        // The live proposal (replaced by a corrected one after a void).
        bytes32 newModelDigest;
        bytes32 reportDigest;
        bytes32 entriesRoot;
        bytes32 slashesRoot;
        bytes32 resultHash;
        address publisher;
        uint40 proposedAt; // 0: no live proposal
        uint40 voidedAt; // last void: a corrected proposal may come within publishWindow of it
        uint8 proposals; // proposals made so far; the live one is number `proposals`
        uint16 newModelCodec;
        uint16 reportCodec;
        uint32 entryCount;
        uint8 agree;
        uint8 disagree;
        uint16 slashesExecuted;
        uint96 bondLocked;
    }

    struct Submission {
        // The commit hash until the reveal, then the delta CID's digest: once checked, the hash is only
        // history (it stays in the Committed event), and reusing the slot keeps reveal cheap.
        bytes32 digest;
        uint64 numExamples;
        uint16 deltaCodec; // non-zero once revealed, whatever happens after
        Status status;
    }

    /// @notice A bonded account (aggregator or validator): `locked` backs live proposals and attestations.
    struct Bond {
        uint128 amount;
        uint128 locked;
    }

    /// @notice How one proposal ended, for settling its attestations.
    struct Settlement {
        bytes32 resultHash;
        Outcome outcome;
        uint96 pay; // to each validator the outcome bears out: the round's fee if final, a share of the bond if voided by quorum
    }

    /// @notice Stake burned from an oracle that commits and never reveals.
    uint256 public immutable nonRevealPenalty;
    uint256 internal immutable _malformedPenalty;
    uint256 internal immutable _nonFinitePenalty;
    uint256 internal immutable _normPenalty;
    uint256 internal immutable _maxPenalty; // the largest penalty a published slash can burn
    /// @notice Shortest and longest commit or reveal window, in seconds.
    uint256 public immutable minWindow;
    uint256 public immutable maxWindow;
    /// @notice Seconds after the reveal deadline (or the last void) in which to propose.
    uint256 public immutable publishWindow;
    /// @notice Seconds after finality in which the final slashes can be executed.
    uint256 public immutable slashWindow;
    /// @notice Ceiling of one round's reward budget.
    uint256 public immutable maxRewardPerRound;
    /// @notice Length of an emission period and the ceiling of the budgets opened in one.
    uint256 public immutable emissionPeriod;
    uint256 public immutable maxRewardPerPeriod;
    /// @notice Seconds after a proposal in which it can be challenged and attested.
    uint256 public immutable challengeWindow;
    /// @notice Bond a proposal locks on top of the round's budget and its slashes' penalties.
    uint256 public immutable publishBond;
    /// @notice Share of a voided proposal's locked bond paid to the challenger, or split among the
    ///         validators that disagreed (basis points); the rest is burned.
    uint256 public immutable challengerShareBps;
    /// @notice n, m: validator seats and the quorum of agreeing attestations a proposal needs.
    uint256 public immutable validatorSeats;
    uint256 public immutable validatorQuorum;
    /// @notice Bond a validator holds to attest, what a contradicted attestation burns, what an agreeing
    ///         one earns from a final round (at most the round's budget over the seats).
    uint256 public immutable validatorBond;
    uint256 public immutable validatorPenalty;
    uint256 public immutable validatorFee;
    /// @notice Id of the latest round opened (rounds count from 1; 0: none yet).
    uint64 public currentRound;
    /// @notice Validators registered now (at most `validatorSeats`).
    uint256 public validatorCount;
    /// @notice Every bond held (conserved: held, returned or slashed, never minted).
    uint256 public totalBonded;

    bytes32 internal _latestModelDigest;
    uint16 internal _latestModelCodec;
    mapping(uint64 roundId => Round) internal _rounds;
    mapping(uint64 roundId => mapping(address oracle => Submission)) internal _submissions;
    mapping(uint64 roundId => mapping(uint256 word => uint256 bits)) internal _claimed;
    /// @notice Reward budget reserved by the rounds opened in each emission period.
    mapping(uint256 period => uint256 reserved) public emitted;
    /// @notice Bonds of aggregators and validators.
    mapping(address account => Bond) public bonds;
    /// @notice Whether an address holds a validator seat (the admin assigns seats).
    mapping(address validator => bool) public isValidator;
    /// @notice A validator's attested result hash per round and proposal (0: none, or settled).
    mapping(uint64 roundId => mapping(uint8 proposal => mapping(address validator => bytes32))) public attestations;
    mapping(uint64 roundId => mapping(uint8 proposal => Settlement)) public settlements;

    error InvalidParams(string what);
    error UnknownRound(uint64 roundId);
    error PreviousRoundUnpublished(uint64 roundId);
    error BaseModelNotLatest(bytes baseModelCid, bytes latestModelCid);
    error InvalidDurations(uint256 commitDuration, uint256 revealDuration, uint256 minWindow, uint256 maxWindow);
    error BudgetOverRoundCeiling(uint256 rewardBudget, uint256 maxRewardPerRound);
    error BudgetOverPeriodCeiling(uint256 period, uint256 reserved, uint256 maxRewardPerPeriod);
    error PublishClosed(uint64 roundId, uint256 publishDeadline, uint256 now_);
    error PublishNotOver(uint64 roundId, uint256 publishDeadline, uint256 now_);
    error RoundWasAborted(uint64 roundId);
    error NotEligible(uint64 roundId, address oracle);
    error SlashWindowClosed(uint64 roundId, uint256 slashDeadline, uint256 now_);
    error SlashNotInReport(uint64 roundId, address oracle, SlashReason reason);
    error EmptyCommitHash();
    error CommitClosed(uint64 roundId, uint256 commitDeadline, uint256 now_);
    error AlreadyCommitted(uint64 roundId, address oracle);
    error RevealNotOpen(uint64 roundId, uint256 commitDeadline, uint256 now_);
    error RevealClosed(uint64 roundId, uint256 revealDeadline, uint256 now_);
    error NotCommitted(uint64 roundId, address oracle);
    error AlreadyRevealed(uint64 roundId, address oracle);
    error CommitMismatch(uint64 roundId, address oracle, bytes32 committed, bytes32 revealed);
    error ExampleCountExceedsCommitment(address oracle, uint64 declared, uint64 committed);
    error RevealNotOver(uint64 roundId, uint256 revealDeadline, uint256 now_);
    error AlreadyPublished(uint64 roundId);
    error RewardsExceedBudget(uint64 roundId, uint256 rewardsTotal, uint256 available);
    error NotPublished(uint64 roundId);
    error NotFinal(uint64 roundId);
    error AlreadyClaimed(uint64 roundId, uint256 index);
    error InvalidProof(uint64 roundId, address oracle, uint256 index, uint256 amount);
    error RewardsExhausted(uint64 roundId, uint256 requested, uint256 remaining);
    error NotSlashable(uint64 roundId, address oracle);
    error InvalidSlashReason(SlashReason reason);
    error SlashesExhausted(uint64 roundId, uint256 slashCount);
    error EntryCountMismatch(uint64 roundId, uint256 entryCount, uint256 revealedCount);
    error BondTooSmall(address account, uint256 free, uint256 required);
    error NoLiveProposal(uint64 roundId);
    error ChallengeWindowClosed(uint64 roundId, uint256 challengeDeadline, uint256 now_);
    error ChallengeWindowOpen(uint64 roundId, uint256 challengeDeadline, uint256 now_);
    error NotAValidator(address account);
    error AlreadyAttested(uint64 roundId, address validator);
    error NoSeatLeft(uint256 validatorSeats);
    error ChallengeRejected(uint64 roundId);
    error NothingToSettle(uint64 roundId, uint8 proposal, address validator);

    event RoundOpened(
        uint64 indexed roundId,
        bytes baseModelCid,
        bytes taskSpecCid,
        uint256 commitDeadline,
        uint256 revealDeadline,
        uint256 rewardBudget
    );
    event Committed(uint64 indexed roundId, address indexed oracle, bytes32 commitHash);
    event Revealed(uint64 indexed roundId, address indexed oracle, bytes deltaCid, uint64 numExamples);
    event Published(uint64 indexed roundId, uint8 proposal, address indexed publisher, bytes32 resultHash, Result result);
    event Attested(uint64 indexed roundId, uint8 proposal, address indexed validator, bytes32 resultHash, bool agrees);
    event Challenged(uint64 indexed roundId, uint8 proposal, address indexed challenger, Fault fault);
    event Voided(uint64 indexed roundId, uint8 proposal, Outcome outcome, uint256 bondSlashed);
    event Finalized(uint64 indexed roundId, uint8 proposal, bytes newModelCid, uint256 rewardsTotal);
    event AttestationSettled(uint64 indexed roundId, uint8 proposal, address indexed validator, uint256 paid, uint256 burned);
    event RoundAborted(uint64 indexed roundId);
    event RewardClaimed(uint64 indexed roundId, address indexed oracle, uint256 index, uint256 amount);
    event BondDeposited(address indexed account, uint256 amount, uint256 bond);
    event BondWithdrawn(address indexed account, uint256 amount, uint256 bond);
    event ValidatorSeated(address indexed validator, bool seated);

    /// @param token_ The DGPT token; this contract must be its minter to pay rewards.
    /// @param p The bounds, fixed for the life of the deployment.
    /// @param admin Receives DEFAULT_ADMIN_ROLE (pause, role management, validator seats).
    /// @param aggregator Receives AGGREGATOR_ROLE.
    constructor(DGPTToken token_, Params memory p, address admin, address aggregator)
        OracleRegistry(token_, p.minStake, p.unbondingPeriod, p.maxExamples, admin)
    {
        if (p.nonRevealPenalty > p.minStake || p.malformedPenalty > p.minStake || p.nonFinitePenalty > p.minStake
                || p.normPenalty > p.minStake) revert InvalidParams("penalty above the minimum stake");
        if (p.minWindow == 0 || p.minWindow > p.maxWindow || p.maxWindow > 365 days) revert InvalidParams("windows");
        if (p.publishWindow == 0 || p.publishWindow > 365 days) revert InvalidParams("publish window");
        if (p.slashWindow == 0 || p.slashWindow > p.unbondingPeriod) revert InvalidParams("slash window");
        if (p.emissionPeriod == 0 || p.maxRewardPerRound > p.maxRewardPerPeriod || p.maxRewardPerPeriod > type(uint96).max) {
            revert InvalidParams("emission");
        }
        if (p.maxExamples == 0) revert InvalidParams("max examples");
        if (p.challengeWindow == 0 || p.challengeWindow > 30 days) revert InvalidParams("challenge window");
        if (p.challengerShareBps > 10_000 || p.publishBond > type(uint96).max / 4) revert InvalidParams("bonds");
        if (p.validatorSeats > 64 || p.validatorQuorum > p.validatorSeats
                || (p.validatorQuorum != 0 && 2 * p.validatorQuorum <= p.validatorSeats)) revert InvalidParams("quorum");
        if (p.validatorPenalty > p.validatorBond || p.validatorFee * p.validatorSeats > p.maxRewardPerRound) {
            revert InvalidParams("validator bond, penalty or fee");
        }
        nonRevealPenalty = p.nonRevealPenalty;
        _malformedPenalty = p.malformedPenalty;
        _nonFinitePenalty = p.nonFinitePenalty;
        _normPenalty = p.normPenalty;
        uint256 maxPenalty = p.malformedPenalty > p.nonFinitePenalty ? p.malformedPenalty : p.nonFinitePenalty;
        _maxPenalty = maxPenalty > p.normPenalty ? maxPenalty : p.normPenalty;
        minWindow = p.minWindow;
        maxWindow = p.maxWindow;
        publishWindow = p.publishWindow;
        slashWindow = p.slashWindow;
        maxRewardPerRound = p.maxRewardPerRound;
        emissionPeriod = p.emissionPeriod;
        maxRewardPerPeriod = p.maxRewardPerPeriod;
        challengeWindow = p.challengeWindow;
        publishBond = p.publishBond;
        challengerShareBps = p.challengerShareBps;
        validatorSeats = p.validatorSeats;
        validatorQuorum = p.validatorQuorum;
        validatorBond = p.validatorBond;
        validatorPenalty = p.validatorPenalty;
        validatorFee = p.validatorFee;
        _grantRole(AGGREGATOR_ROLE, aggregator);
    }

    /// @notice The stake a slash for `reason` burns (fixed at deployment, at most the minimum stake).
    function penalty(SlashReason reason) public view returns (uint256) {
        if (reason == SlashReason.NoReveal) return nonRevealPenalty;
        if (reason == SlashReason.Malformed) return _malformedPenalty;
        if (reason == SlashReason.NonFinite) return _nonFinitePenalty;
        return _normPenalty;
    }

    /// @notice Open the next round (aggregator only), once the previous one is final or aborted.
    /// @param baseModelCid Binary CID of the model to fine-tune: the latest final model, if any.
    /// @param taskSpecCid Binary CID of the task spec (phase, labels, lambda, hyper-parameters).
    /// @param commitDuration Seconds from now until the commit deadline, in [minWindow, maxWindow].
    /// @param revealDuration Seconds from the commit deadline until the reveal deadline, in [minWindow, maxWindow].
    /// @param rewardBudget Most tokens this round may mint: at most `maxRewardPerRound`, and with the
    ///        budgets of the rounds opened in this emission period at most `maxRewardPerPeriod`.
    /// @return roundId The new round's id.
    function openRound(
        bytes calldata baseModelCid,
        bytes calldata taskSpecCid,
        uint256 commitDuration,
        uint256 revealDuration,
        uint256 rewardBudget
    ) external onlyRole(AGGREGATOR_ROLE) whenNotPaused returns (uint64 roundId) {
        uint64 previous = currentRound;
        if (previous != 0 && _isOpen(_rounds[previous])) revert PreviousRoundUnpublished(previous);
        if (commitDuration < minWindow || commitDuration > maxWindow || revealDuration < minWindow || revealDuration > maxWindow) {
            revert InvalidDurations(commitDuration, revealDuration, minWindow, maxWindow);
        }
        if (rewardBudget > maxRewardPerRound) revert BudgetOverRoundCeiling(rewardBudget, maxRewardPerRound);
        uint256 period = block.timestamp / emissionPeriod;
        uint256 reserved = emitted[period] + rewardBudget;
        if (reserved > maxRewardPerPeriod) revert BudgetOverPeriodCeiling(period, reserved, maxRewardPerPeriod);
        emitted[period] = reserved;
        roundId = previous + 1;
        currentRound = roundId;
        Round storage r = _rounds[roundId];
        (r.baseModelDigest, r.baseModelCodec) = _latestModelOrGenesis(baseModelCid);
        (r.taskSpecDigest, r.taskSpecCodec) = CidCodec.decode(taskSpecCid);
        r.commitDeadline = SafeCast.toUint40(block.timestamp + commitDuration);
        r.revealDeadline = SafeCast.toUint40(block.timestamp + commitDuration + revealDuration);
        r.rewardBudget = SafeCast.toUint96(rewardBudget);
        emit RoundOpened(roundId, baseModelCid, taskSpecCid, r.commitDeadline, r.revealDeadline, rewardBudget);
    }

    /// @notice Commit to a delta before the commit deadline; registered oracles staking at least `minStake` only,
    ///         once per round. The stake stays locked until the round is final or aborted.
    /// @param roundId The round.
    /// @param commitHash `commitHashOf(roundId, oracle, deltaCid, salt, numExamples)`.
    function commit(uint64 roundId, bytes32 commitHash) external whenNotPaused {
        Round storage r = _existing(roundId);
        if (block.timestamp > r.commitDeadline) revert CommitClosed(roundId, r.commitDeadline, block.timestamp);
        Oracle storage o = _registered(msg.sender);
        if (o.stake < minStake) revert StakeBelowMinimum(msg.sender, o.stake, minStake);
        if (commitHash == 0) revert EmptyCommitHash();
        Submission storage s = _submissions[roundId][msg.sender];
        if (s.digest != 0) revert AlreadyCommitted(roundId, msg.sender);
        s.digest = commitHash;
        o.lastCommitRound = roundId;
        emit Committed(roundId, msg.sender, commitHash);
    }

    /// @notice Reveal the committed delta after the commit deadline and before the reveal deadline.
    /// @param roundId The round.
    /// @param deltaCid Binary CIDv1 of the weight delta (safetensors).
    /// @param salt The 32 random bytes hashed into the commitment.
    /// @param numExamples Examples trained on; at most the oracle's committed dataset count.
    function reveal(uint64 roundId, bytes calldata deltaCid, bytes32 salt, uint64 numExamples) external whenNotPaused {
        Round storage r = _existing(roundId);
        if (block.timestamp <= r.commitDeadline) revert RevealNotOpen(roundId, r.commitDeadline, block.timestamp);
        if (block.timestamp > r.revealDeadline) revert RevealClosed(roundId, r.revealDeadline, block.timestamp);
        Submission storage s = _submissions[roundId][msg.sender];
        if (s.digest == 0) revert NotCommitted(roundId, msg.sender);
        if (s.status != Status.Committed) revert AlreadyRevealed(roundId, msg.sender);
        bytes32 revealed = commitHashOf(roundId, msg.sender, deltaCid, salt, numExamples);
        if (revealed != s.digest) revert CommitMismatch(roundId, msg.sender, s.digest, revealed);
        uint64 committed = _oracles[msg.sender].numExamples;
        if (numExamples == 0 || numExamples > committed) {
            revert ExampleCountExceedsCommitment(msg.sender, numExamples, committed);
        }
        (bytes32 digest, uint16 codec) = CidCodec.decode(deltaCid);
        s.digest = digest;
        s.deltaCodec = codec;
        s.numExamples = numExamples;
        s.status = Status.Revealed;
        r.revealedCount++;
        emit Revealed(roundId, msg.sender, deltaCid, numExamples);
    }

    // --- bonds and validator seats -------------------------------------------------------------------

    /// @notice Add `amount` tokens (approve first) to the caller's bond: what backs its proposals or attestations.
    function depositBond(uint256 amount) external whenNotPaused nonReentrant {
        if (amount == 0) revert ZeroAmount();
        Bond storage b = bonds[msg.sender];
        b.amount += SafeCast.toUint128(amount);
        totalBonded += amount;
        emit BondDeposited(msg.sender, amount, b.amount);
        IERC20(address(token)).safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @notice Take back `amount` of the caller's bond that no live proposal or unsettled attestation
    ///         locks. Not pausable: a pause must not hold free bonds hostage.
    function withdrawBond(uint256 amount) external nonReentrant {
        Bond storage b = bonds[msg.sender];
        uint256 free = b.amount - b.locked;
        if (amount == 0) revert ZeroAmount();
        if (amount > free) revert BondTooSmall(msg.sender, free, amount);
        b.amount -= uint128(amount);
        totalBonded -= amount;
        emit BondWithdrawn(msg.sender, amount, b.amount);
        IERC20(address(token)).safeTransfer(msg.sender, amount);
    }

    /// @notice Give or take a validator seat (admin only; at most `validatorSeats` at once). A seated
    ///         validator still attests only while it holds `validatorBond`.
    function setValidator(address validator, bool seated) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (isValidator[validator] == seated) return;
        if (seated && validatorCount == validatorSeats) revert NoSeatLeft(validatorSeats);
        isValidator[validator] = seated;
        if (seated) validatorCount++;
        else validatorCount--;
        emit ValidatorSeated(validator, seated);
    }

    // --- the result: publish, attest, challenge, finalize ------------------------------------------

    /// @notice Propose the round's result (aggregator only) between the reveal deadline and the end of
    ///         the publish window, locking `publishBond + rewardBudget + slashCount * (largest penalty)`
    ///         of the caller's bond. Nothing is paid, slashed or adopted until the proposal is final.
    /// @param roundId The round.
    /// @param result The merged model, report, entries root and count, rewards total, slashes root and
    ///        count, and validation root. `entryCount` must be the number of revealed submissions and
    ///        `rewardsTotal` plus the validators' fees at most the budget.
    function publish(uint64 roundId, Result calldata result)
        external
        onlyRole(AGGREGATOR_ROLE)
        whenNotPaused
        returns (bytes32 resultHash)
    {
        Round storage r = _existing(roundId);
        _checkPublishable(roundId, r);
        uint256 available = r.rewardBudget - _feeOf(r) * validatorSeats;
        if (result.rewardsTotal > available) revert RewardsExceedBudget(roundId, result.rewardsTotal, available);
        if (result.entryCount != r.revealedCount) revert EntryCountMismatch(roundId, result.entryCount, r.revealedCount);
        uint256 required = publishBond + r.rewardBudget + uint256(result.slashCount) * _maxPenalty;
        Bond storage b = bonds[msg.sender];
        if (b.amount - b.locked < required) revert BondTooSmall(msg.sender, b.amount - b.locked, required);
        b.locked += SafeCast.toUint96(required); // a bond beyond uint96 would exceed any token supply: reverts
        resultHash = keccak256(abi.encode(roundId, result));
        (r.newModelDigest, r.newModelCodec) = CidCodec.decode(result.newModelCid);
        (r.reportDigest, r.reportCodec) = CidCodec.decode(result.reportCid);
        r.entriesRoot = result.entriesRoot;
        if (result.slashesRoot != r.slashesRoot) r.slashesRoot = result.slashesRoot;
        r.resultHash = resultHash;
        r.rewardsTotal = result.rewardsTotal;
        r.slashCount = result.slashCount;
        r.entryCount = result.entryCount;
        r.agree = 0;
        r.disagree = 0;
        r.bondLocked = uint96(required); // fits: checked just above
        r.publisher = msg.sender;
        r.proposedAt = uint40(block.timestamp);
        uint8 proposal = ++r.proposals;
        emit Published(roundId, proposal, msg.sender, resultHash, result);
    }

    /// @notice Attest to the result a validator recomputed for the round's live proposal, within the
    ///         challenge window, once per proposal. Locks `validatorPenalty` of its bond until settled.
    /// @param resultHash The hash of the result the validator recomputed: keccak256(abi.encode(roundId, result)).
    function attest(uint64 roundId, bytes32 resultHash) external whenNotPaused {
        Round storage r = _live(roundId);
        uint256 deadline = uint256(r.proposedAt) + challengeWindow;
        if (block.timestamp > deadline) revert ChallengeWindowClosed(roundId, deadline, block.timestamp);
        if (!isValidator[msg.sender]) revert NotAValidator(msg.sender);
        uint8 proposal = r.proposals;
        mapping(address => bytes32) storage given = attestations[roundId][proposal];
        if (given[msg.sender] != 0 || resultHash == 0) revert AlreadyAttested(roundId, msg.sender);
        Bond storage b = bonds[msg.sender];
        if (b.amount < validatorBond || b.amount - b.locked < validatorPenalty) {
            revert BondTooSmall(msg.sender, b.amount - b.locked, validatorBond);
        }
        b.locked += uint128(validatorPenalty);
        given[msg.sender] = resultHash;
        bool agrees = resultHash == r.resultHash;
        if (agrees) r.agree++;
        else r.disagree++;
        emit Attested(roundId, proposal, msg.sender, resultHash, agrees);
    }

    /// @notice Void the live proposal with an entry the contract can check against its own records:
    ///         one for an oracle that revealed nothing, or not what it revealed; a weight above the
    ///         revealed count; a reward to an unmerged or slashed entry; an index past the count; a first
    ///         entry with rewards before it, or a last entry whose running sum is not the rewards total.
    function challengeEntry(uint64 roundId, EntryLeaf calldata e, bytes32[] calldata proof) external whenNotPaused nonReentrant {
        Round storage r = _challengeable(roundId);
        _proveEntry(roundId, r, e, proof);
        _voidByProof(roundId, r, _entryFault(roundId, r, e));
    }

    /// @notice Void the live proposal with two consecutive entries that are out of oracle-address order
    ///         (a repeated entry, so a revealed submission is missing) or whose running sums disagree.
    function challengeEntries(
        uint64 roundId,
        EntryLeaf calldata a,
        bytes32[] calldata proofA,
        EntryLeaf calldata b,
        bytes32[] calldata proofB
    ) external whenNotPaused nonReentrant {
        Round storage r = _challengeable(roundId);
        _proveEntry(roundId, r, a, proofA);
        _proveEntry(roundId, r, b, proofB);
        if (b.index != a.index + 1) revert ChallengeRejected(roundId);
        if (uint160(b.oracle) <= uint160(a.oracle)) _voidByProof(roundId, r, Fault.EntriesOutOfOrder);
        else if (b.rewardBefore != a.rewardBefore + a.reward) _voidByProof(roundId, r, Fault.RunningSumMismatch);
        else revert ChallengeRejected(roundId);
    }

    /// @notice Void the live proposal with a slash it proposes that no entry supports: the oracle revealed
    ///         nothing, or its entry (proved with `entryProof`) does not slash it for that reason.
    function challengeSlash(
        uint64 roundId,
        address oracle,
        SlashReason reason,
        bytes32[] calldata slashProof,
        EntryLeaf calldata e,
        bytes32[] calldata entryProof
    ) external whenNotPaused nonReentrant {
        Round storage r = _challengeable(roundId);
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(oracle, reason))));
        if (!MerkleProof.verifyCalldata(slashProof, r.slashesRoot, leaf)) revert SlashNotInReport(roundId, oracle, reason);
        if (_submissions[roundId][oracle].deltaCodec == 0) {
            _voidByProof(roundId, r, Fault.SlashNotRevealed);
            return;
        }
        _proveEntry(roundId, r, e, entryProof);
        if (e.oracle != oracle || (e.slashed && e.reason == reason)) revert ChallengeRejected(roundId);
        _voidByProof(roundId, r, Fault.SlashUnsupported);
    }

    /// @notice Settle the live proposal (anyone). Voided at once when a quorum of validators contradicts
    ///         it; after the challenge window, final when a quorum agrees (or none is required), else
    ///         expired. Final: the model becomes the next base, the rewards and the agreeing validators'
    ///         fees are minted for claiming, and the aggregator's bond unlocks.
    function finalize(uint64 roundId) external whenNotPaused nonReentrant {
        Round storage r = _live(roundId);
        uint8 proposal = r.proposals;
        if (validatorQuorum != 0 && r.disagree >= validatorQuorum) {
            _void(roundId, r, Outcome.VoidedByQuorum, address(0));
            return;
        }
        uint256 deadline = uint256(r.proposedAt) + challengeWindow;
        if (block.timestamp <= deadline) revert ChallengeWindowOpen(roundId, deadline, block.timestamp);
        if (validatorQuorum != 0 && r.agree < validatorQuorum) {
            _void(roundId, r, Outcome.Expired, address(0));
            return;
        }
        r.finalizedAt = uint40(block.timestamp);
        bonds[r.publisher].locked -= uint128(r.bondLocked);
        uint256 fee = _feeOf(r);
        settlements[roundId][proposal] = Settlement(r.resultHash, Outcome.Final, uint96(fee));
        _latestModelDigest = r.newModelDigest;
        _latestModelCodec = r.newModelCodec;
        // Bit 0 of word 0 marks the round final, so the first claims rewrite a non-zero slot (5,000
        // gas) instead of filling a fresh one (22,100): finalize pays that once for everyone.
        _claimed[roundId][0] = 1;
        bytes memory model = CidCodec.encode(r.newModelDigest, r.newModelCodec);
        emit Finalized(roundId, proposal, model, r.rewardsTotal);
        uint256 mint = uint256(r.rewardsTotal) + fee * r.agree;
        if (mint != 0) DGPTToken(address(token)).mint(address(this), mint);
    }

    /// @notice Settle a validator's attestation to a decided proposal (anyone): an attestation the
    ///         outcome bears out is unlocked and paid (the fee of a final round, or a share of a bond
    ///         the quorum voided); one it contradicts burns `validatorPenalty`. An expired proposal
    ///         unlocks every attestation and pays none.
    function settleAttestation(uint64 roundId, uint8 proposal, address validator) external nonReentrant {
        Settlement storage st = settlements[roundId][proposal];
        bytes32 given = attestations[roundId][proposal][validator];
        if (given == 0 || st.outcome == Outcome.Pending) revert NothingToSettle(roundId, proposal, validator);
        delete attestations[roundId][proposal][validator];
        Bond storage b = bonds[validator];
        b.locked -= uint128(validatorPenalty);
        bool agreed = given == st.resultHash;
        uint256 paid = 0;
        uint256 burned = 0;
        if (st.outcome == Outcome.Final) {
            if (agreed) paid = st.pay;
            else burned = validatorPenalty;
        } else if (st.outcome != Outcome.Expired) {
            if (agreed) burned = validatorPenalty;
            else if (st.outcome == Outcome.VoidedByQuorum) paid = st.pay;
        }
        if (burned != 0) {
            b.amount -= uint128(burned);
            totalBonded -= burned;
        }
        emit AttestationSettled(roundId, proposal, validator, paid, burned);
        if (burned != 0) token.burn(burned);
        if (paid != 0) IERC20(address(token)).safeTransfer(validator, paid);
    }

    /// @notice Claim the caller's reward for a final round with its entry and a Merkle proof; only an
    ///         oracle whose submission in the round was revealed and not slashed is paid.
    /// @param roundId The round.
    /// @param e The caller's entry in the round's report.
    /// @param proof Sibling hashes from the entry's leaf to the entries root (sorted-pair hashing).
    function claim(uint64 roundId, EntryLeaf calldata e, bytes32[] calldata proof) external whenNotPaused nonReentrant {
        Round storage r = _existing(roundId);
        if (r.finalizedAt == 0) revert NotFinal(roundId);
        if (e.oracle != msg.sender || _submissions[roundId][msg.sender].status != Status.Revealed) {
            revert NotEligible(roundId, msg.sender);
        }
        (uint256 word, uint256 bit) = _claimBit(e.index);
        uint256 bits = _claimed[roundId][word];
        if (bits & bit != 0) revert AlreadyClaimed(roundId, e.index);
        if (!MerkleProof.verifyCalldata(proof, r.entriesRoot, _entryLeaf(e))) revert InvalidProof(roundId, msg.sender, e.index, e.reward);
        // Claims stop at the minted total, whatever the root holds.
        uint256 remaining = r.rewardsTotal - r.rewardsClaimed;
        if (e.reward > remaining) revert RewardsExhausted(roundId, e.reward, remaining);
        _claimed[roundId][word] = bits | bit;
        r.rewardsClaimed += uint96(e.reward); // at most remaining, a uint96
        emit RewardClaimed(roundId, msg.sender, e.index, e.reward);
        IERC20(address(token)).safeTransfer(msg.sender, e.reward);
    }

    /// @notice Burn `nonRevealPenalty` from an oracle that committed in `roundId` and did not reveal by its
    ///         deadline. Anyone may call it: a missed reveal is on the chain's own record.
    /// @param roundId The round.
    /// @param oracle The non-revealer.
    function slashNonRevealer(uint64 roundId, address oracle) external whenNotPaused nonReentrant {
        Round storage r = _existing(roundId);
        if (block.timestamp <= r.revealDeadline) revert RevealNotOver(roundId, r.revealDeadline, block.timestamp);
        Submission storage s = _submissions[roundId][oracle];
        if (s.digest == 0 || s.status != Status.Committed) revert NotSlashable(roundId, oracle);
        s.status = Status.Slashed;
        _slash(oracle, roundId, SlashReason.NoReveal, nonRevealPenalty);
    }

    /// @notice Burn the fixed penalty for `reason` from an oracle whose revealed delta the round's final
    ///         proposal slashes (its slashes root holds the leaf (oracle, reason)). Anyone may execute
    ///         it, once per submission, at most `slashCount` per round, within `slashWindow` after finality.
    /// @param proof Sibling hashes from the leaf keccak256(keccak256(abi.encode(oracle, reason))) to the slashes root.
    function slash(uint64 roundId, address oracle, SlashReason reason, bytes32[] calldata proof)
        external
        whenNotPaused
        nonReentrant
    {
        Round storage r = _existing(roundId);
        if (reason == SlashReason.NoReveal) revert InvalidSlashReason(reason);
        uint256 finalizedAt = r.finalizedAt;
        if (finalizedAt == 0) revert NotFinal(roundId);
        if (block.timestamp > finalizedAt + slashWindow) {
            revert SlashWindowClosed(roundId, finalizedAt + slashWindow, block.timestamp);
        }
        Submission storage s = _submissions[roundId][oracle];
        if (s.status != Status.Revealed) revert NotSlashable(roundId, oracle);
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(oracle, reason))));
        if (!MerkleProof.verifyCalldata(proof, r.slashesRoot, leaf)) revert SlashNotInReport(roundId, oracle, reason);
        if (r.slashesExecuted >= r.slashCount) revert SlashesExhausted(roundId, r.slashCount);
        r.slashesExecuted++;
        s.status = Status.Slashed;
        _slash(oracle, roundId, reason, penalty(reason));
    }

    /// @notice End a round that has no final proposal once its publish window is over (anyone): the
    ///         stakes it locked unlock, nothing is paid, and the next round builds on the same model.
    function abortRound(uint64 roundId) external {
        Round storage r = _existing(roundId);
        if (r.finalizedAt != 0 || r.proposedAt != 0) revert AlreadyPublished(roundId);
        if (r.aborted) revert RoundWasAborted(roundId);
        uint256 deadline = _publishDeadline(r);
        if (block.timestamp <= deadline) revert PublishNotOver(roundId, deadline, block.timestamp);
        r.aborted = true;
        emit RoundAborted(roundId);
    }

    /// @dev The leaf of an entry under a report's entries root (hashed twice, as OpenZeppelin's Merkle trees).
    function _entryLeaf(EntryLeaf calldata e) internal pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(e))));
    }


    /// @notice The hash an oracle commits: it binds the round, the oracle, the delta CID, a salt and the count.
    function commitHashOf(uint64 roundId, address oracle, bytes calldata deltaCid, bytes32 salt, uint64 numExamples)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(roundId, oracle, deltaCid, salt, numExamples));
    }

    /// @notice A round as the Python layer reads it: CIDs in binary form, empty until set.
    struct RoundView {
        bytes baseModelCid;
        bytes taskSpecCid;
        uint40 commitDeadline;
        uint40 revealDeadline;
        uint96 rewardBudget;
        bool aborted;
        uint32 revealedCount;
        uint8 proposals; // proposals made so far
        bool proposed; // a live proposal awaits finality
        bool final_;
        uint40 proposedAt;
        uint40 finalizedAt;
        uint40 voidedAt;
        uint256 publishDeadline;
        uint256 challengeDeadline;
        address publisher;
        bytes newModelCid; // of the live or final proposal
        bytes reportCid;
        bytes32 resultHash;
        bytes32 entriesRoot;
        uint32 entryCount;
        uint96 rewardsTotal;
        uint96 rewardsClaimed;
        bytes32 slashesRoot;
        uint16 slashCount;
        uint8 agree;
        uint8 disagree;
    }

    /// @notice A round's parameters, its live or final proposal, and the attestations to it.
    function getRound(uint64 roundId) external view returns (RoundView memory v) {
        Round storage r = _existing(roundId);
        v.baseModelCid = CidCodec.encode(r.baseModelDigest, r.baseModelCodec);
        v.taskSpecCid = CidCodec.encode(r.taskSpecDigest, r.taskSpecCodec);
        v.commitDeadline = r.commitDeadline;
        v.revealDeadline = r.revealDeadline;
        v.rewardBudget = r.rewardBudget;
        v.aborted = r.aborted;
        v.revealedCount = r.revealedCount;
        v.proposals = r.proposals;
        v.final_ = r.finalizedAt != 0;
        v.proposed = r.proposedAt != 0 && !v.final_;
        v.proposedAt = r.proposedAt;
        v.finalizedAt = r.finalizedAt;
        v.voidedAt = r.voidedAt;
        v.publishDeadline = _publishDeadline(r);
        if (r.proposedAt != 0) {
            v.challengeDeadline = uint256(r.proposedAt) + challengeWindow;
            v.publisher = r.publisher;
            v.newModelCid = CidCodec.encode(r.newModelDigest, r.newModelCodec);
            v.reportCid = CidCodec.encode(r.reportDigest, r.reportCodec);
            v.resultHash = r.resultHash;
            v.entriesRoot = r.entriesRoot;
            v.entryCount = r.entryCount;
            v.rewardsTotal = r.rewardsTotal;
            v.slashesRoot = r.slashesRoot;
            v.slashCount = r.slashCount;
            v.agree = r.agree;
            v.disagree = r.disagree;
        }
        v.rewardsClaimed = r.rewardsClaimed;
    }

    /// @notice An oracle's submission in a round: whether it committed, its status and what it revealed.
    /// @return committed Whether the oracle committed in the round.
    /// @return status Committed, Revealed or Slashed (meaningful only if committed).
    /// @return deltaCid Binary CID of the revealed delta (empty before the reveal; kept after a slash).
    /// @return numExamples Examples declared at the reveal.
    function getSubmission(uint64 roundId, address oracle)
        external
        view
        returns (bool committed, Status status, bytes memory deltaCid, uint64 numExamples)
    {
        Submission storage s = _submissions[roundId][oracle];
        if (s.deltaCodec != 0) deltaCid = CidCodec.encode(s.digest, s.deltaCodec);
        return (s.digest != 0, s.status, deltaCid, s.numExamples);
    }

    /// @notice Whether leaf `index` of a round's rewards has been claimed.
    function isClaimed(uint64 roundId, uint256 index) external view returns (bool) {
        (uint256 word, uint256 bit) = _claimBit(index);
        return _claimed[roundId][word] & bit != 0;
    }

    /// @notice Binary CID of the latest final model (empty before the first round is final).
    function latestModel() external view returns (bytes memory) {
        uint16 codec = _latestModelCodec; // 0 until the first publish: no CID has codec 0
        if (codec != 0) return CidCodec.encode(_latestModelDigest, codec);
        return "";
    }

    /// @dev Rounds after the first must build on the latest final model.
    function _latestModelOrGenesis(bytes calldata baseModelCid) internal view returns (bytes32 digest, uint16 codec) {
        (digest, codec) = CidCodec.decode(baseModelCid);
        if (_latestModelDigest != 0 && (digest != _latestModelDigest || codec != _latestModelCodec)) {
            revert BaseModelNotLatest(baseModelCid, CidCodec.encode(_latestModelDigest, _latestModelCodec));
        }
    }

    /// @dev Leaf `index` is bit index + 1 of the round's claim bitmap (bit 0 is set at publish).
    function _claimBit(uint256 index) internal pure returns (uint256 word, uint256 bit) {
        uint256 position = index + 1;
        return (position >> 8, 1 << (position & 0xff));
    }

    function _existing(uint64 roundId) internal view returns (Round storage r) {
        r = _rounds[roundId];
        if (r.commitDeadline == 0) revert UnknownRound(roundId);
    }

    /// @dev Between the reveal deadline and the end of the publish window, with no live or final
    ///      proposal and not aborted.
    function _checkPublishable(uint64 roundId, Round storage r) internal view {
        uint256 revealDeadline = r.revealDeadline;
        if (block.timestamp <= revealDeadline) revert RevealNotOver(roundId, revealDeadline, block.timestamp);
        if (r.proposedAt != 0 || r.finalizedAt != 0) revert AlreadyPublished(roundId);
        if (r.aborted) revert RoundWasAborted(roundId);
        uint256 deadline = _publishDeadline(r);
        if (block.timestamp > deadline) revert PublishClosed(roundId, deadline, block.timestamp);
    }

    /// @dev What each agreeing validator earns from a round: the fee, or an equal part of a budget too
    ///      small to reserve the fee for every seat.
    function _feeOf(Round storage r) internal view returns (uint256) {
        if (validatorSeats == 0) return 0;
        uint256 part = r.rewardBudget / validatorSeats;
        return part < validatorFee ? part : validatorFee;
    }

    /// @dev A proposal may come within publishWindow of the reveal deadline or of the last void.
    function _publishDeadline(Round storage r) internal view returns (uint256) {
        uint256 from = r.voidedAt > r.revealDeadline ? r.voidedAt : r.revealDeadline;
        return from + publishWindow;
    }

    /// @dev The round's live proposal: made and not yet final.
    function _live(uint64 roundId) internal view returns (Round storage r) {
        r = _existing(roundId);
        if (r.proposedAt == 0 || r.finalizedAt != 0) revert NoLiveProposal(roundId);
    }

    /// @dev The live proposal, within its challenge window.
    function _challengeable(uint64 roundId) internal view returns (Round storage r) {
        r = _live(roundId);
        uint256 deadline = uint256(r.proposedAt) + challengeWindow;
        if (block.timestamp > deadline) revert ChallengeWindowClosed(roundId, deadline, block.timestamp);
    }

    /// @dev The fault an entry proves, checked against the contract's own records; reverts if none.
    function _entryFault(uint64 roundId, Round storage r, EntryLeaf calldata e) internal view returns (Fault) {
        Submission storage s = _submissions[roundId][e.oracle];
        if (s.deltaCodec == 0) return Fault.EntryNotRevealed;
        if (e.delta != s.digest || e.numExamples != s.numExamples) return Fault.EntryNotTheRevealedOne;
        if (e.index >= r.entryCount) return Fault.EntryPastCount;
        if (e.weight > s.numExamples) return Fault.WeightAboveCount;
        if (e.reward != 0 && (e.weight == 0 || e.slashed)) return Fault.RewardNotMerged;
        if (e.index == 0 && e.rewardBefore != 0) return Fault.RewardsBeforeFirst;
        if (e.index + 1 == r.entryCount && e.rewardBefore + e.reward != r.rewardsTotal) return Fault.TotalMismatch;
        revert ChallengeRejected(roundId);
    }

    function _proveEntry(uint64 roundId, Round storage r, EntryLeaf calldata e, bytes32[] calldata proof) internal view {
        if (!MerkleProof.verifyCalldata(proof, r.entriesRoot, _entryLeaf(e))) revert InvalidProof(roundId, e.oracle, e.index, e.reward);
    }

    function _voidByProof(uint64 roundId, Round storage r, Fault fault) internal {
        emit Challenged(roundId, r.proposals, msg.sender, fault);
        _void(roundId, r, Outcome.VoidedByProof, msg.sender);
    }

    /// @dev End the live proposal without effect. Voided by proof or quorum, the publisher's locked
    ///      bond is slashed: the challenger share goes to the challenger (or is split among the
    ///      validators that disagreed), the rest is burned. Expired, the bond unlocks. The round's
    ///      reveals stay: a corrected proposal may follow within the publish window.
    function _void(uint64 roundId, Round storage r, Outcome outcome, address challenger) internal {
        uint8 proposal = r.proposals;
        uint256 locked = r.bondLocked;
        Bond storage b = bonds[r.publisher];
        b.locked -= uint128(locked);
        uint256 slashed = 0;
        uint256 share = 0;
        uint256 perDissenter = 0;
        if (outcome != Outcome.Expired) {
            slashed = locked < b.amount ? locked : b.amount;
            b.amount -= uint128(slashed);
            totalBonded -= slashed;
            share = slashed * challengerShareBps / 10_000;
            if (outcome == Outcome.VoidedByQuorum) {
                share -= share % r.disagree; // kept here in equal parts until each dissenter settles
                perDissenter = share / r.disagree;
            }
        }
        settlements[roundId][proposal] = Settlement(r.resultHash, outcome, uint96(perDissenter));
        r.proposedAt = 0;
        r.voidedAt = uint40(block.timestamp);
        r.rewardsTotal = 0;
        emit Voided(roundId, proposal, outcome, slashed);
        if (slashed > share) token.burn(slashed - share);
        if (challenger != address(0) && share != 0) IERC20(address(token)).safeTransfer(challenger, share);
    }

    /// @dev A round without a final proposal, not aborted.
    function _isOpen(Round storage r) internal view returns (bool) {
        return r.finalizedAt == 0 && !r.aborted;
    }

    function _lockingRound(Oracle storage o) internal view override returns (uint64) {
        uint64 roundId = o.lastCommitRound;
        return roundId != 0 && _isOpen(_rounds[roundId]) ? roundId : 0;
    }

    /// @dev Time paused does not count against oracles, aggregators or validators: the open round's
    ///      windows that were still running when the pause began move by the time paused.
    function _afterPause(uint256 since, uint256 duration) internal override {
        uint64 roundId = currentRound;
        if (roundId == 0) return;
        Round storage r = _rounds[roundId];
        if (!_isOpen(r)) return;
        if (r.proposedAt != 0 && uint256(r.proposedAt) + challengeWindow >= since) {
            r.proposedAt = SafeCast.toUint40(r.proposedAt + duration);
        }
        if (r.revealDeadline < since) return;
        if (r.commitDeadline >= since) r.commitDeadline = SafeCast.toUint40(r.commitDeadline + duration);
        r.revealDeadline = SafeCast.toUint40(r.revealDeadline + duration);
    }
}
