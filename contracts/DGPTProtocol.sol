// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {DGPTToken} from "./DGPTToken.sol";
import {CidCodec} from "./CidCodec.sol";
import {OracleRegistry} from "./OracleRegistry.sol";

/// @title DGPT training rounds: commit, reveal, publish, claim
/// @notice One round at a time. The aggregator opens a round on the latest published model with a
///         task spec, deadlines and a reward budget. Oracles commit a hash binding their delta CID,
///         then reveal it. After the reveal deadline the aggregator publishes the merged model, its
///         report and the Merkle root of the rewards; the rewards are minted to this contract (up to
///         the token's cap) and each oracle claims its own with a proof, so publishing costs the same
///         whatever the number of participants. Anyone may slash a committed non-revealer after the
///         reveal deadline; the aggregator slashes revealed submissions its checks reject.
contract DGPTProtocol is OracleRegistry {
    using SafeERC20 for IERC20;

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
        // One slot: what commit, reveal and claim read.
        uint40 commitDeadline;
        uint40 revealDeadline;
        uint16 baseModelCodec;
        uint16 taskSpecCodec;
        uint16 newModelCodec;
        uint16 reportCodec;
        bool published;
        uint96 rewardBudget;
        // One slot, so a claim updates what it checks without touching a fresh slot.
        uint128 rewardsTotal;
        uint128 rewardsClaimed;
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
    /// @notice Id of the latest round opened (rounds count from 1; 0: none yet).
    uint64 public currentRound;

    bytes32 internal _latestModelDigest;
    uint16 internal _latestModelCodec;
    mapping(uint64 roundId => Round) internal _rounds;
    mapping(uint64 roundId => mapping(address oracle => Submission)) internal _submissions;
    mapping(uint64 roundId => mapping(uint256 word => uint256 bits)) internal _claimed;

    error UnknownRound(uint64 roundId);
    error PreviousRoundUnpublished(uint64 roundId);
    error BaseModelNotLatest(bytes baseModelCid, bytes latestModelCid);
    error InvalidDurations(uint256 commitDuration, uint256 revealDuration);
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
    event Published(uint64 indexed roundId, bytes newModelCid, bytes reportCid, bytes32 rewardsRoot, uint256 rewardsTotal);
    event RewardClaimed(uint64 indexed roundId, address indexed oracle, uint256 index, uint256 amount);

    /// @param token_ The DGPT token; this contract needs its MINTER_ROLE to pay rewards.
    /// @param minStake_ Smallest stake that may register and commit.
    /// @param unbondingPeriod_ Seconds between requestUnbond and withdraw.
    /// @param nonRevealPenalty_ Stake burned from a committed non-revealer.
    /// @param admin Receives DEFAULT_ADMIN_ROLE (pause, role management).
    /// @param aggregator Receives AGGREGATOR_ROLE.
    constructor(
        DGPTToken token_,
        uint256 minStake_,
        uint256 unbondingPeriod_,
        uint256 nonRevealPenalty_,
        address admin,
        address aggregator
    ) OracleRegistry(token_, minStake_, unbondingPeriod_, admin) {
        nonRevealPenalty = nonRevealPenalty_;
        _grantRole(AGGREGATOR_ROLE, aggregator);
    }

    /// @notice Open the next round (aggregator only), once the previous one is published.
    /// @param baseModelCid Binary CID of the model to fine-tune: the latest published model, if any.
    /// @param taskSpecCid Binary CID of the task spec (phase, labels, lambda, hyper-parameters).
    /// @param commitDuration Seconds from now until the commit deadline.
    /// @param revealDuration Seconds from the commit deadline until the reveal deadline.
    /// @param rewardBudget Most tokens this round may mint as rewards.
    /// @return roundId The new round's id.
    function openRound(
        bytes calldata baseModelCid,
        bytes calldata taskSpecCid,
        uint256 commitDuration,
        uint256 revealDuration,
        uint96 rewardBudget
    ) external onlyRole(AGGREGATOR_ROLE) whenNotPaused returns (uint64 roundId) {
        uint64 previous = currentRound;
        if (previous != 0 && !_rounds[previous].published) revert PreviousRoundUnpublished(previous);
        if (commitDuration == 0 || revealDuration == 0) revert InvalidDurations(commitDuration, revealDuration);
        roundId = previous + 1;
        currentRound = roundId;
        Round storage r = _rounds[roundId];
        (r.baseModelDigest, r.baseModelCodec) = _latestModelOrGenesis(baseModelCid);
        (r.taskSpecDigest, r.taskSpecCodec) = CidCodec.decode(taskSpecCid);
        r.commitDeadline = uint40(block.timestamp + commitDuration);
        r.revealDeadline = uint40(block.timestamp + commitDuration + revealDuration);
        r.rewardBudget = rewardBudget;
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

    /// @notice Publish the round's merged model, report and rewards root after the reveal deadline
    ///         (aggregator only, once). Mints `rewardsTotal` to this contract for oracles to claim.
    /// @param roundId The round.
    /// @param newModelCid Binary CID of the merged model; the next round's base model.
    /// @param reportCid Binary CID of the aggregation report.
    /// @param rewardsRoot Merkle root over leaves (index, oracle, amount).
    /// @param rewardsTotal Sum of the amounts under `rewardsRoot`, at most the round's budget.
    function publish(
        uint64 roundId,
        bytes calldata newModelCid,
        bytes calldata reportCid,
        bytes32 rewardsRoot,
        uint128 rewardsTotal
    ) external onlyRole(AGGREGATOR_ROLE) whenNotPaused nonReentrant {
        Round storage r = _existing(roundId);
        if (block.timestamp <= r.revealDeadline) revert RevealNotOver(roundId, r.revealDeadline, block.timestamp);
        if (r.published) revert AlreadyPublished(roundId);
        if (rewardsTotal > r.rewardBudget) revert RewardsExceedBudget(roundId, rewardsTotal, r.rewardBudget);
        (bytes32 modelDigest, uint16 modelCodec) = CidCodec.decode(newModelCid);
        (bytes32 reportDigest, uint16 reportCodec) = CidCodec.decode(reportCid);
        r.newModelDigest = modelDigest;
        r.newModelCodec = modelCodec;
        r.reportDigest = reportDigest;
        r.reportCodec = reportCodec;
        r.rewardsRoot = rewardsRoot;
        r.rewardsTotal = rewardsTotal;
        r.published = true;
        _latestModelDigest = modelDigest;
        _latestModelCodec = modelCodec;
        // Bit 0 of word 0 marks the round published, so the first claims rewrite a non-zero slot
        // (5,000 gas) instead of filling a fresh one (22,100): publish pays that once for everyone.
        _claimed[roundId][0] = 1;
        emit Published(roundId, newModelCid, reportCid, rewardsRoot, rewardsTotal);
        if (rewardsTotal != 0) DGPTToken(address(token)).mint(address(this), rewardsTotal);
    }

    /// @notice Claim the caller's reward for a published round with a Merkle proof.
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
        if (!r.published) revert NotPublished(roundId);
        (uint256 word, uint256 bit) = _claimBit(index);
        uint256 bits = _claimed[roundId][word];
        if (bits & bit != 0) revert AlreadyClaimed(roundId, index);
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(index, msg.sender, amount))));
        if (!MerkleProof.verifyCalldata(proof, r.rewardsRoot, leaf)) revert InvalidProof(roundId, msg.sender, index, amount);
        // A wrong root must not reach staked funds: claims stop at the minted total.
        uint256 remaining = r.rewardsTotal - r.rewardsClaimed;
        if (amount > remaining) revert RewardsExhausted(roundId, amount, remaining);
        _claimed[roundId][word] = bits | bit;
        r.rewardsClaimed += uint128(amount);
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

    /// @notice Burn up to `amount` of stake from an oracle whose revealed delta failed the aggregator's
    ///         checks (aggregator only, once per submission). The evidence is in the round's report.
    /// @param roundId The round.
    /// @param oracle The oracle.
    /// @param reason What the evidence shows; NoReveal has its own call.
    /// @param amount Stake to burn.
    function slash(uint64 roundId, address oracle, SlashReason reason, uint256 amount)
        external
        onlyRole(AGGREGATOR_ROLE)
        whenNotPaused
        nonReentrant
    {
        _existing(roundId);
        if (reason == SlashReason.NoReveal) revert InvalidSlashReason(reason);
        Submission storage s = _submissions[roundId][oracle];
        if (s.status != Status.Revealed) revert NotSlashable(roundId, oracle);
        s.status = Status.Slashed;
        _slash(oracle, roundId, reason, amount);
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
        uint128 rewardsTotal;
        uint128 rewardsClaimed;
    }

    /// @notice A round's parameters and outcome.
    function getRound(uint64 roundId) external view returns (RoundView memory v) {
        Round storage r = _existing(roundId);
        v.baseModelCid = CidCodec.encode(r.baseModelDigest, r.baseModelCodec);
        v.taskSpecCid = CidCodec.encode(r.taskSpecDigest, r.taskSpecCodec);
        v.commitDeadline = r.commitDeadline;
        v.revealDeadline = r.revealDeadline;
        v.rewardBudget = r.rewardBudget;
        v.published = r.published;
        if (r.published) {
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
        if (_latestModelDigest == 0) return "";
        return CidCodec.encode(_latestModelDigest, _latestModelCodec);
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

    function _lockingRound(Oracle storage o) internal view override returns (uint64) {
        uint64 roundId = o.lastCommitRound;
        return roundId != 0 && !_rounds[roundId].published ? roundId : 0;
    }
}
