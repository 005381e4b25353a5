// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ERC20Burnable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Burnable.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {CidCodec} from "./CidCodec.sol";

/// @title Oracle registry: stake, dataset commitment, unbonding, slashing
/// @notice Oracles stake the DGPT token and commit to their private data set (the CID of its
///         manifest, the Merkle root of its examples and the example count, at most `maxExamples`).
///         Stake that backs a submission in an unpublished round is locked: it cannot be unbonded or
///         withdrawn, and the dataset commitment cannot change. Slashed stake is burned (no treasury
///         key to trust), by a penalty fixed per reason at deployment. Matured unbonding can be
///         withdrawn even while paused.
abstract contract OracleRegistry is AccessControl, Pausable, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice Role of the aggregator bot: opens rounds, publishes, slashes bad submissions.
    bytes32 public constant AGGREGATOR_ROLE = keccak256("AGGREGATOR_ROLE");

    /// @notice Why stake was slashed (the `reason` of `Slashed`).
    enum SlashReason {
        NoReveal, // committed and never revealed
        Malformed, // delta unreadable, oversized, or tensors not matching the base model
        NonFinite, // delta holds NaN or infinity
        NormOutOfBound // update norm above the task's bound
    }

    struct Oracle {
        uint128 stake;
        uint128 unbonding;
        uint64 numExamples; // packed with lastCommitRound so a commit rewrites a non-zero slot
        uint64 lastCommitRound;
        uint64 unbondingReadyAt;
        uint16 manifestCodec;
        bool registered;
        bytes32 manifestDigest;
        bytes32 datasetRoot;
    }

    /// @notice Token staked and paid out.
    ERC20Burnable public immutable token;
    /// @notice Smallest stake that may register and commit.
    uint256 public immutable minStake;
    /// @notice Seconds between requestUnbond and withdraw.
    uint256 public immutable unbondingPeriod;
    /// @notice Largest example count a dataset commitment may declare: a count is a merge weight.
    uint64 public immutable maxExamples;

    /// @notice When the current pause began (0: not paused).
    uint256 public pausedAt;

    mapping(address oracle => Oracle) internal _oracles;

    error NotRegistered(address oracle);
    error AlreadyRegistered(address oracle);
    error StakeBelowMinimum(address oracle, uint256 stake, uint256 minimum);
    error ZeroExamples();
    error ZeroAmount();
    error InsufficientStake(address oracle, uint256 requested, uint256 available);
    error StakeLocked(address oracle, uint64 roundId);
    error NothingToWithdraw(address oracle);
    error UnbondingNotReady(address oracle, uint256 readyAt, uint256 now_);
    error TooManyExamples(uint64 numExamples, uint64 maxExamples);

    event OracleRegistered(address indexed oracle, uint256 stake, bytes manifestCid, bytes32 datasetRoot, uint64 numExamples);
    event CommitmentUpdated(address indexed oracle, bytes manifestCid, bytes32 datasetRoot, uint64 numExamples);
    event StakeAdded(address indexed oracle, uint256 amount, uint256 stake);
    event UnbondingRequested(address indexed oracle, uint256 amount, uint256 readyAt);
    event Withdrawn(address indexed oracle, uint256 amount);
    event Slashed(address indexed oracle, uint64 indexed roundId, SlashReason reason, uint256 amount);

    constructor(ERC20Burnable token_, uint256 minStake_, uint256 unbondingPeriod_, uint64 maxExamples_, address admin) {
        token = token_;
        minStake = minStake_;
        unbondingPeriod = unbondingPeriod_;
        maxExamples = maxExamples_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @notice Register the caller as an oracle with `stake` tokens (approve first) and a dataset commitment.
    /// @param stake Tokens to stake, at least `minStake`.
    /// @param manifestCid Binary CIDv1 of the dataset manifest.
    /// @param datasetRoot Merkle root of the canonical examples.
    /// @param numExamples Number of examples in the data set.
    function register(uint256 stake, bytes calldata manifestCid, bytes32 datasetRoot, uint64 numExamples)
        external
        whenNotPaused
        nonReentrant
    {
        Oracle storage o = _oracles[msg.sender];
        if (o.registered) revert AlreadyRegistered(msg.sender);
        if (stake < minStake) revert StakeBelowMinimum(msg.sender, stake, minStake);
        _checkCount(numExamples);
        (bytes32 digest, uint16 codec) = CidCodec.decode(manifestCid);
        o.registered = true;
        o.stake = uint128(stake);
        o.manifestDigest = digest;
        o.manifestCodec = codec;
        o.datasetRoot = datasetRoot;
        o.numExamples = numExamples;
        emit OracleRegistered(msg.sender, stake, manifestCid, datasetRoot, numExamples);
        IERC20(address(token)).safeTransferFrom(msg.sender, address(this), stake);
    }

    /// @notice Replace the caller's dataset commitment; not while a submission of theirs is in an unpublished round.
    /// @param manifestCid Binary CIDv1 of the new dataset manifest.
    /// @param datasetRoot Merkle root of the canonical examples.
    /// @param numExamples Number of examples in the data set.
    function updateCommitment(bytes calldata manifestCid, bytes32 datasetRoot, uint64 numExamples) external whenNotPaused {
        Oracle storage o = _registered(msg.sender);
        _requireUnlocked(msg.sender, o);
        _checkCount(numExamples);
        (bytes32 digest, uint16 codec) = CidCodec.decode(manifestCid);
        o.manifestDigest = digest;
        o.manifestCodec = codec;
        o.datasetRoot = datasetRoot;
        o.numExamples = numExamples;
        emit CommitmentUpdated(msg.sender, manifestCid, datasetRoot, numExamples);
    }

    /// @notice Add `amount` tokens (approve first) to the caller's stake.
    /// @param amount Tokens to add.
    function addStake(uint256 amount) external whenNotPaused nonReentrant {
        Oracle storage o = _registered(msg.sender);
        if (amount == 0) revert ZeroAmount();
        o.stake += uint128(amount);
        emit StakeAdded(msg.sender, amount, o.stake);
        IERC20(address(token)).safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @notice Move `amount` of the caller's stake into unbonding; it can be withdrawn after `unbondingPeriod`.
    ///         A new request restarts the wait for everything unbonding.
    /// @param amount Tokens to unbond.
    function requestUnbond(uint256 amount) external whenNotPaused {
        Oracle storage o = _registered(msg.sender);
        _requireUnlocked(msg.sender, o);
        if (amount == 0) revert ZeroAmount();
        if (amount > o.stake) revert InsufficientStake(msg.sender, amount, o.stake);
        o.stake -= uint128(amount);
        o.unbonding += uint128(amount);
        uint256 readyAt = block.timestamp + unbondingPeriod;
        o.unbondingReadyAt = uint64(readyAt);
        emit UnbondingRequested(msg.sender, amount, readyAt);
    }

    /// @notice Withdraw everything the caller has unbonded, once the unbonding period has passed and no
    ///         submission of theirs is in an unpublished round. Not pausable: a pause must not hold
    ///         matured stake hostage.
    function withdraw() external nonReentrant {
        Oracle storage o = _registered(msg.sender);
        uint256 amount = o.unbonding;
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        if (block.timestamp < o.unbondingReadyAt) revert UnbondingNotReady(msg.sender, o.unbondingReadyAt, block.timestamp);
        _requireUnlocked(msg.sender, o);
        o.unbonding = 0;
        emit Withdrawn(msg.sender, amount);
        IERC20(address(token)).safeTransfer(msg.sender, amount);
    }

    /// @notice Emergency stop of every state-changing call but `withdraw` (admin only).
    function pause() external onlyRole(DEFAULT_ADMIN_ROLE) {
        pausedAt = block.timestamp;
        _pause();
    }

    /// @notice Lift the emergency stop (admin only). The time paused is given back to the open round.
    function unpause() external onlyRole(DEFAULT_ADMIN_ROLE) {
        uint256 since = pausedAt;
        pausedAt = 0;
        _unpause();
        _afterPause(since, block.timestamp - since);
    }

    /// @notice An oracle's registration, stake and dataset commitment.
    /// @return stake Staked tokens.
    /// @return unbonding Tokens waiting to be withdrawn.
    /// @return unbondingReadyAt When `unbonding` can be withdrawn.
    /// @return manifestCid Binary CID of the dataset manifest (empty if not registered).
    /// @return datasetRoot Merkle root of the examples.
    /// @return numExamples Example count.
    /// @return lastCommitRound Last round the oracle committed in (0: none).
    function getOracle(address oracle)
        external
        view
        returns (
            uint256 stake,
            uint256 unbonding,
            uint256 unbondingReadyAt,
            bytes memory manifestCid,
            bytes32 datasetRoot,
            uint64 numExamples,
            uint64 lastCommitRound
        )
    {
        Oracle storage o = _oracles[oracle];
        if (o.registered) manifestCid = CidCodec.encode(o.manifestDigest, o.manifestCodec);
        return (o.stake, o.unbonding, o.unbondingReadyAt, manifestCid, o.datasetRoot, o.numExamples, o.lastCommitRound);
    }

    /// @dev The unpublished round holding the oracle's stake, or 0 when none does.
    function _lockingRound(Oracle storage o) internal view virtual returns (uint64);

    /// @dev Called on unpause: the protocol moves the open round's deadlines by the time paused.
    function _afterPause(uint256 since, uint256 duration) internal virtual;

    function _checkCount(uint64 numExamples) internal view {
        if (numExamples == 0) revert ZeroExamples();
        if (numExamples > maxExamples) revert TooManyExamples(numExamples, maxExamples);
    }

    function _registered(address oracle) internal view returns (Oracle storage o) {
        o = _oracles[oracle];
        if (!o.registered) revert NotRegistered(oracle);
    }

    function _requireUnlocked(address oracle, Oracle storage o) internal view {
        uint64 roundId = _lockingRound(o);
        if (roundId != 0) revert StakeLocked(oracle, roundId);
    }

    /// @dev Burns up to `amount` (a fixed penalty), from stake first, then from what is unbonding.
    function _slash(address oracle, uint64 roundId, SlashReason reason, uint256 amount) internal {
        Oracle storage o = _oracles[oracle];
        uint256 fromStake = amount < o.stake ? amount : o.stake;
        uint256 rest = amount - fromStake;
        uint256 fromUnbonding = rest < o.unbonding ? rest : o.unbonding;
        o.stake -= uint128(fromStake);
        o.unbonding -= uint128(fromUnbonding);
        uint256 burned = fromStake + fromUnbonding;
        emit Slashed(oracle, roundId, reason, burned);
        if (burned != 0) token.burn(burned);
    }
}
