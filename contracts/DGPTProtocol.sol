// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {DGPTToken} from "./DGPTToken.sol";
import {CidCodec} from "./CidCodec.sol";
import {OracleRegistry} from "./OracleRegistry.sol";

/// @title DGPT training rounds: commit, reveal, publish, claim
/// @notice One round at a time. The aggregator opens a round on the latest published model with a
///         task spec, windows and a reward budget, all within bounds fixed at deployment (window
///         lengths, a per-round and a per-period emission ceiling). Oracles commit a hash binding
///         their delta CID, then reveal it. Within the publish window after the reveal deadline the
///         aggregator publishes the merged model, its report, the Merkle root of the rewards and the
///         Merkle root of the slashes; the rewards are minted to this contract and each revealed,
///         unslashed oracle claims its own with a proof, so publishing costs the same whatever the
///         number of participants. A round not published in its window can be aborted by anyone:
///         stakes unlock, nothing is paid. Anyone may slash a committed non-revealer after the reveal
///         deadline, and, within the slash window after publish, a submission the published slashes
///         root names; each reason's penalty is fixed at deployment.
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
        uint256 publishWindow; // seconds after the reveal deadline to publish, before anyone may abort
        uint256 slashWindow; // seconds after publish in which the published slashes can be executed
        uint256 maxRewardPerRound; // ceiling of a round's reward budget
        uint256 emissionPeriod; // seconds per emission period
        uint256 maxRewardPerPeriod; // ceiling of the budgets of the rounds opened in one period
    }

    /// @notice Where a submission stands (a zero commit hash means there is none).
    enum Status {
        Committed,
        Revealed,
        Slashed
    }

    struct Round {
        bytes32 baseModelDigest;
        bytes32 taskSpecDigest;
        bytes32 newModelDigest;
        bytes32 reportDigest;
        bytes32 rewardsRoot;
        bytes32 slashesRoot; // leaves (oracle, reason) of the slashes the report commits to
        // One slot: what commit and reveal read.
        uint40 commitDeadline;
        uint40 revealDeadline;
        uint16 baseModelCodec;
        uint16 taskSpecCodec;
        uint16 newModelCodec;
        uint16 reportCodec;
        bool aborted;
        uint96 rewardBudget;
        // One slot, so a claim updates what it checks without touching a fresh slot.
        uint96 rewardsTotal;
        uint96 rewardsClaimed;
        uint40 publishedAt; // 0: not published
    }

    struct Submission {
        // The commit hash until the reveal, then the delta CID's digest: once checked, the hash is only
        // history (it stays in the Committed event), and reusing the slot keeps reveal cheap.
        bytes32 digest;
        uint64 numExamples;
        uint16 deltaCodec;
        Status status;
    }

    /// @notice Stake burned from an oracle that commits and never reveals.
    uint256 public immutable nonRevealPenalty;
    uint256 internal immutable _malformedPenalty;
    uint256 internal immutable _nonFinitePenalty;
    uint256 internal immutable _normPenalty;
    /// @notice Shortest and longest commit or reveal window, in seconds.
    uint256 public immutable minWindow;
    uint256 public immutable maxWindow;
    /// @notice Seconds after the reveal deadline in which the round must be published.
    uint256 public immutable publishWindow;
    /// @notice Seconds after publish in which the published slashes can be executed.
    uint256 public immutable slashWindow;
    /// @notice Ceiling of one round's reward budget.
    uint256 public immutable maxRewardPerRound;
    /// @notice Length of an emission period and the ceiling of the budgets opened in one.
    uint256 public immutable emissionPeriod;
    uint256 public immutable maxRewardPerPeriod;
    /// @notice Id of the latest round opened (rounds count from 1; 0: none yet).
    uint64 public currentRound;

    bytes32 internal _latestModelDigest;
    uint16 internal _latestModelCodec;
    mapping(uint64 roundId => Round) internal _rounds;
    mapping(uint64 roundId => mapping(address oracle => Submission)) internal _submissions;
    mapping(uint64 roundId => mapping(uint256 word => uint256 bits)) internal _claimed;
    /// @notice Reward budget reserved by the rounds opened in each emission period.
    mapping(uint256 period => uint256 reserved) public emitted;

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
    error RewardsExceedBudget(uint64 roundId, uint256 rewardsTotal, uint256 rewardBudget);
    error NotPublished(uint64 roundId);
    error AlreadyClaimed(uint64 roundId, uint256 index);
    error InvalidProof(uint64 roundId, address oracle, uint256 index, uint256 amount);
    error RewardsExhausted(uint64 roundId, uint256 requested, uint256 remaining);
    error NotSlashable(uint64 roundId, address oracle);
    error InvalidSlashReason(SlashReason reason);

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
    event Published(
        uint64 indexed roundId, bytes newModelCid, bytes reportCid, bytes32 rewardsRoot, uint256 rewardsTotal, bytes32 slashesRoot
    );
    event RoundAborted(uint64 indexed roundId);
    event RewardClaimed(uint64 indexed roundId, address indexed oracle, uint256 index, uint256 amount);

    /// @param token_ The DGPT token; this contract must be its minter to pay rewards.
    /// @param p The bounds, fixed for the life of the deployment.
    /// @param admin Receives DEFAULT_ADMIN_ROLE (pause, role management).
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
        nonRevealPenalty = p.nonRevealPenalty;
        _malformedPenalty = p.malformedPenalty;
        _nonFinitePenalty = p.nonFinitePenalty;
        _normPenalty = p.normPenalty;
        minWindow = p.minWindow;
        maxWindow = p.maxWindow;
        publishWindow = p.publishWindow;
        slashWindow = p.slashWindow;
        maxRewardPerRound = p.maxRewardPerRound;
        emissionPeriod = p.emissionPeriod;
        maxRewardPerPeriod = p.maxRewardPerPeriod;
        _grantRole(AGGREGATOR_ROLE, aggregator);
    }

    /// @notice The stake a slash for `reason` burns (fixed at deployment, at most the minimum stake).
    function penalty(SlashReason reason) public view returns (uint256) {
        if (reason == SlashReason.NoReveal) return nonRevealPenalty;
        if (reason == SlashReason.Malformed) return _malformedPenalty;
        if (reason == SlashReason.NonFinite) return _nonFinitePenalty;
        return _normPenalty;
    }

    /// @notice Open the next round (aggregator only), once the previous one is published or aborted.
    /// @param baseModelCid Binary CID of the model to fine-tune: the latest published model, if any.
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
    ///         once per round. The stake stays locked until the round is published.
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
        emit Revealed(roundId, msg.sender, deltaCid, numExamples);
    }

    /// @notice Publish the round's merged model, report, rewards root and slashes root between the
    ///         reveal deadline and the end of the publish window (aggregator only, once). Mints
    ///         `rewardsTotal` to this contract for oracles to claim.
    /// @param roundId The round.
    /// @param newModelCid Binary CID of the merged model; the next round's base model.
    /// @param reportCid Binary CID of the aggregation report.
    /// @param rewardsRoot Merkle root over leaves (index, oracle, amount).
    /// @param rewardsTotal Sum of the amounts under `rewardsRoot`, at most the round's budget.
    /// @param slashesRoot Merkle root over leaves (oracle, reason) of the slashes in the report (0: none).
    function publish(
        uint64 roundId,
        bytes calldata newModelCid,
        bytes calldata reportCid,
        bytes32 rewardsRoot,
        uint256 rewardsTotal,
        bytes32 slashesRoot
    ) external onlyRole(AGGREGATOR_ROLE) whenNotPaused nonReentrant {
        Round storage r = _existing(roundId);
        _checkPublishable(roundId, r);
        if (rewardsTotal > r.rewardBudget) revert RewardsExceedBudget(roundId, rewardsTotal, r.rewardBudget);
        (r.newModelDigest, r.newModelCodec) = CidCodec.decode(newModelCid);
        (r.reportDigest, r.reportCodec) = CidCodec.decode(reportCid);
        r.rewardsRoot = rewardsRoot;
        if (slashesRoot != 0) r.slashesRoot = slashesRoot;
        r.rewardsTotal = uint96(rewardsTotal); // at most the budget, a uint96
        r.publishedAt = uint40(block.timestamp);
        _latestModelDigest = r.newModelDigest;
        _latestModelCodec = r.newModelCodec;
        // Bit 0 of word 0 marks the round published, so the first claims rewrite a non-zero slot
        // (5,000 gas) instead of filling a fresh one (22,100): publish pays that once for everyone.
        _claimed[roundId][0] = 1;
        emit Published(roundId, newModelCid, reportCid, rewardsRoot, rewardsTotal, slashesRoot);
        if (rewardsTotal != 0) DGPTToken(address(token)).mint(address(this), rewardsTotal);
    }

    /// @notice Claim the caller's reward for a published round with a Merkle proof; only an oracle
    ///         whose submission in the round was revealed and not slashed is paid.
    /// @param roundId The round.
    /// @param index The leaf's index in the rewards list.
    /// @param amount The reward in the leaf.
    /// @param proof Sibling hashes from the leaf to `rewardsRoot` (sorted-pair hashing).
    function claim(uint64 roundId, uint256 index, uint256 amount, bytes32[] calldata proof)
        external
        whenNotPaused
        nonReentrant
    {
        Round storage r = _existing(roundId);
        if (r.publishedAt == 0) revert NotPublished(roundId);
        if (_submissions[roundId][msg.sender].status != Status.Revealed) revert NotEligible(roundId, msg.sender);
        (uint256 word, uint256 bit) = _claimBit(index);
        uint256 bits = _claimed[roundId][word];
        if (bits & bit != 0) revert AlreadyClaimed(roundId, index);
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(index, msg.sender, amount))));
        if (!MerkleProof.verifyCalldata(proof, r.rewardsRoot, leaf)) revert InvalidProof(roundId, msg.sender, index, amount);
        // A wrong root must not reach staked funds: claims stop at the minted total.
        uint256 remaining = r.rewardsTotal - r.rewardsClaimed;
        if (amount > remaining) revert RewardsExhausted(roundId, amount, remaining);
        _claimed[roundId][word] = bits | bit;
        r.rewardsClaimed += uint96(amount); // amount <= remaining, a uint96
        emit RewardClaimed(roundId, msg.sender, index, amount);
        IERC20(address(token)).safeTransfer(msg.sender, amount);
    }

    /// @notice Burn `nonRevealPenalty` from an oracle that committed in `roundId` and did not reveal by its
    ///         deadline. Anyone may call it, so publishing stays cheap.
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

    /// @notice Burn the fixed penalty for `reason` from an oracle whose revealed delta the round's
    ///         published report slashes (its slashes root holds the leaf (oracle, reason)). Anyone may
    ///         execute it, once per submission, within `slashWindow` after the publish.
    /// @param roundId The round.
    /// @param oracle The oracle.
    /// @param reason What the evidence shows; NoReveal has its own call.
    /// @param proof Sibling hashes from the leaf keccak256(keccak256(abi.encode(oracle, reason))) to the slashes root.
    function slash(uint64 roundId, address oracle, SlashReason reason, bytes32[] calldata proof)
        external
        whenNotPaused
        nonReentrant
    {
        Round storage r = _existing(roundId);
        if (reason == SlashReason.NoReveal) revert InvalidSlashReason(reason);
        uint256 publishedAt = r.publishedAt;
        if (publishedAt == 0) revert NotPublished(roundId);
        if (block.timestamp > publishedAt + slashWindow) {
            revert SlashWindowClosed(roundId, publishedAt + slashWindow, block.timestamp);
        }
        Submission storage s = _submissions[roundId][oracle];
        if (s.status != Status.Revealed) revert NotSlashable(roundId, oracle);
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(oracle, reason))));
        if (!MerkleProof.verifyCalldata(proof, r.slashesRoot, leaf)) revert SlashNotInReport(roundId, oracle, reason);
        s.status = Status.Slashed;
        _slash(oracle, roundId, reason, penalty(reason));
    }

    /// @notice End a round that was not published within its publish window (anyone): the stakes
    ///         it locked unlock, nothing is paid, and the next round builds on the same model.
    function abortRound(uint64 roundId) external {
        Round storage r = _existing(roundId);
        if (r.publishedAt != 0) revert AlreadyPublished(roundId);
        if (r.aborted) revert RoundWasAborted(roundId);
        uint256 deadline = uint256(r.revealDeadline) + publishWindow;
        if (block.timestamp <= deadline) revert PublishNotOver(roundId, deadline, block.timestamp);
        r.aborted = true;
        emit RoundAborted(roundId);
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
        bool published;
        bytes newModelCid;
        bytes reportCid;
        bytes32 rewardsRoot;
        uint96 rewardsTotal;
        uint96 rewardsClaimed;
        bool aborted;
        uint40 publishedAt;
        uint256 publishDeadline;
        bytes32 slashesRoot;
    }

    /// @notice A round's parameters and outcome.
    function getRound(uint64 roundId) external view returns (RoundView memory v) {
        Round storage r = _existing(roundId);
        v.baseModelCid = CidCodec.encode(r.baseModelDigest, r.baseModelCodec);
        v.taskSpecCid = CidCodec.encode(r.taskSpecDigest, r.taskSpecCodec);
        v.commitDeadline = r.commitDeadline;
        v.revealDeadline = r.revealDeadline;
        v.rewardBudget = r.rewardBudget;
        v.published = r.publishedAt != 0;
        v.aborted = r.aborted;
        v.publishedAt = r.publishedAt;
        v.publishDeadline = uint256(r.revealDeadline) + publishWindow;
        v.slashesRoot = r.slashesRoot;
        if (v.published) {
            v.newModelCid = CidCodec.encode(r.newModelDigest, r.newModelCodec);
            v.reportCid = CidCodec.encode(r.reportDigest, r.reportCodec);
        }
        v.rewardsRoot = r.rewardsRoot;
        v.rewardsTotal = r.rewardsTotal;
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

    /// @notice Binary CID of the latest published model (empty before the first publish).
    function latestModel() external view returns (bytes memory) {
        uint16 codec = _latestModelCodec; // 0 until the first publish: no CID has codec 0
        if (codec != 0) return CidCodec.encode(_latestModelDigest, codec);
        return "";
    }

    /// @dev Rounds after the first must build on the latest published model.
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

    /// @dev Between the reveal deadline and the end of the publish window, not yet published or aborted.
    function _checkPublishable(uint64 roundId, Round storage r) internal view {
        uint256 revealDeadline = r.revealDeadline;
        if (block.timestamp <= revealDeadline) revert RevealNotOver(roundId, revealDeadline, block.timestamp);
        if (r.publishedAt != 0) revert AlreadyPublished(roundId);
        if (r.aborted) revert RoundWasAborted(roundId);
        if (block.timestamp > revealDeadline + publishWindow) {
            revert PublishClosed(roundId, revealDeadline + publishWindow, block.timestamp);
        }
    }

    /// @dev A round neither published nor aborted.
    function _isOpen(Round storage r) internal view returns (bool) {
        return r.publishedAt == 0 && !r.aborted;
    }

    function _lockingRound(Oracle storage o) internal view override returns (uint64) {
        uint64 roundId = o.lastCommitRound;
        return roundId != 0 && _isOpen(_rounds[roundId]) ? roundId : 0;
    }

    /// @dev Time paused does not count against oracles: the open round's windows that were still
    ///      running when the pause began move by the time paused.
    function _afterPause(uint256 since, uint256 duration) internal override {
        uint64 roundId = currentRound;
        if (roundId == 0) return;
        Round storage r = _rounds[roundId];
        if (!_isOpen(r) || r.revealDeadline < since) return;
        if (r.commitDeadline >= since) r.commitDeadline = SafeCast.toUint40(r.commitDeadline + duration);
        r.revealDeadline = SafeCast.toUint40(r.revealDeadline + duration);
    }
}
