// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {DGPTToken} from "../../contracts/DGPTToken.sol";
import {DGPTProtocol} from "../../contracts/DGPTProtocol.sol";
import {OracleRegistry} from "../../contracts/OracleRegistry.sol";

address constant AGGREGATOR = address(0xA66);

/// The few Foundry cheatcodes used (no forge-std: it does not install offline).
interface Vm {
    function prank(address sender) external;
    function warp(uint256 timestamp) external;
}

/// Drives the protocol with random, bounded calls from oracles, the aggregator and a stranger, and
/// records in ghost variables anything that must never happen.
contract Handler {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    uint256 internal constant STAKE = 100 ether;

    DGPTToken public token;
    DGPTProtocol public protocol;
    address public aggregator = AGGREGATOR;
    address public stranger = address(0xBAD);
    address[4] public oracles = [address(0x1001), address(0x1002), address(0x1003), address(0x1004)];
    uint256 public now_ = 1_000_000;

    mapping(uint64 => mapping(address => bytes32)) internal salts;
    // Ghosts: each must stay false / within bounds.
    bool public lockedStakeLeft;
    bool public claimPaidTwice;
    bool public unauthorizedSucceeded;
    bool public slashOverPenalty;
    bool public unlockedStakeRefused;
    uint256 public calls;
    uint256[] public periodsOpened;

    constructor(DGPTToken token_, DGPTProtocol protocol_) {
        token = token_;
        protocol = protocol_;
        vm.warp(now_);
    }

    function oracleCount() external pure returns (uint256) {
        return 4;
    }

    function _oracle(uint256 seed) internal view returns (address) {
        return oracles[seed % 4];
    }

    function _cid(bytes32 seed) internal pure returns (bytes memory) {
        return abi.encodePacked(hex"01551220", keccak256(abi.encode(seed)));
    }

    function _locked(address o) internal view returns (bool) {
        (,,,,,, uint64 last) = protocol.getOracle(o);
        if (last == 0) return false;
        DGPTProtocol.RoundView memory v = protocol.getRound(last);
        return !v.published && !v.aborted;
    }

    // --- oracles -----------------------------------------------------------------------------------

    function register(uint256 who, uint256 amount) external {
        calls++;
        address o = _oracle(who);
        amount = STAKE + (amount % (3 * STAKE));
        vm.prank(o);
        token.approve(address(protocol), amount);
        vm.prank(o);
        try protocol.register(amount, _cid(bytes32(uint256(uint160(o)))), keccak256(abi.encode(o)), 100) {} catch {}
    }

    function addStake(uint256 who, uint256 amount) external {
        calls++;
        address o = _oracle(who);
        amount = 1 + (amount % STAKE);
        vm.prank(o);
        token.approve(address(protocol), amount);
        vm.prank(o);
        try protocol.addStake(amount) {} catch {}
    }

    function requestUnbond(uint256 who, uint256 amount) external {
        calls++;
        address o = _oracle(who);
        bool locked = _locked(o);
        vm.prank(o);
        try protocol.requestUnbond(1 + (amount % (2 * STAKE))) {
            if (locked) lockedStakeLeft = true;
        } catch (bytes memory reason) {
            // once its round is published or aborted, no stake stays locked
            if (!locked && bytes4(reason) == OracleRegistry.StakeLocked.selector) unlockedStakeRefused = true;
        }
    }

    function withdraw(uint256 who) external {
        calls++;
        address o = _oracle(who);
        bool locked = _locked(o);
        uint256 before = token.balanceOf(o);
        vm.prank(o);
        try protocol.withdraw() {
            if (locked && token.balanceOf(o) > before) lockedStakeLeft = true;
        } catch {}
    }

    function commit(uint256 who, bytes32 salt) external {
        calls++;
        address o = _oracle(who);
        uint64 rid = protocol.currentRound();
        if (rid == 0) return;
        bytes32 h = protocol.commitHashOf(rid, o, _cid(salt), salt, 50);  // before the prank: it applies to the next call
        vm.prank(o);
        try protocol.commit(rid, h) {
            salts[rid][o] = salt;
        } catch {}
    }

    function reveal(uint256 who) external {
        calls++;
        address o = _oracle(who);
        uint64 rid = protocol.currentRound();
        if (rid == 0) return;
        bytes32 salt = salts[rid][o];
        vm.prank(o);
        try protocol.reveal(rid, _cid(salt), salt, 50) {} catch {}
    }

    function claim(uint256 who, uint256 roundSeed) external {
        calls++;
        address o = _oracle(who);
        uint64 rid = protocol.currentRound();
        if (rid == 0) return;
        rid = uint64(1 + roundSeed % rid);
        (uint256 index, uint256 amount, bytes32[] memory proof) = _leafOf(rid, o);
        if (amount == 0) return;
        vm.prank(o);
        try protocol.claim(rid, index, amount, proof) {
            vm.prank(o);
            try protocol.claim(rid, index, amount, proof) {
                claimPaidTwice = true;
            } catch {}
        } catch {}
    }

    function slashNonRevealer(uint256 who, uint256 caller) external {
        calls++;
        uint64 rid = protocol.currentRound();
        if (rid == 0) return;
        vm.prank(caller % 2 == 0 ? stranger : _oracle(caller));  // anyone may call it
        try protocol.slashNonRevealer(rid, _oracle(who)) {} catch {}
    }

    function warp(uint256 seconds_) external {
        calls++;
        now_ += 1 + (seconds_ % 2 days);
        vm.warp(now_);
    }

    // --- the aggregator ------------------------------------------------------------------------------

    /// Budgets up to twice the per-round ceiling and windows from 0 to 2 days: the contract must
    /// refuse what is out of its bounds.
    function openRound(uint256 budget, uint256 window) external {
        calls++;
        bytes memory base = protocol.latestModel();
        if (base.length == 0) base = _cid("genesis");
        uint256 w = window % 4 == 0 ? window % 2 days : 1 hours;
        budget %= 2 * protocol.maxRewardPerRound(); // before the prank: it applies to the next call
        vm.prank(aggregator);
        try protocol.openRound(base, _cid("task"), w, 1 hours, budget) {
            periodsOpened.push(block.timestamp / protocol.emissionPeriod());
        } catch {}
    }

    function abortRound(uint256 caller) external {
        calls++;
        uint64 rid = protocol.currentRound();
        if (rid == 0) return;
        vm.prank(caller % 2 == 0 ? stranger : _oracle(caller));
        try protocol.abortRound(rid) {} catch {}
    }

    function periodsCount() external view returns (uint256) {
        return periodsOpened.length;
    }

    /// Rewards for the round's revealed oracles: amounts drawn from `seed`, sometimes over budget
    /// (the contract must refuse those).
    function publish(uint256 seed) external {
        calls++;
        uint64 rid = protocol.currentRound();
        if (rid == 0) return;
        (bytes32 root, uint256 total) = _tree(rid, seed);
        (bytes32 slashesRoot,) = _slashes(rid, seed, address(0));
        vm.prank(aggregator);
        try protocol.publish(rid, _cid(bytes32(seed)), _cid(bytes32(seed + 1)), root, total, slashesRoot) {
            rewardSeed[rid] = seed;
        } catch {}
    }

    /// Anyone executes a slash of the published report (or one it does not hold, which must fail);
    /// it may burn no more than the reason's fixed penalty.
    function slash(uint256 who, uint256 caller) external {
        calls++;
        uint64 rid = protocol.currentRound();
        if (rid == 0) return;
        address o = _oracle(who);
        (, bytes32[] memory proof) = _slashes(rid, rewardSeed[rid], o);
        (uint256 stake, uint256 unbonding,,,,,) = protocol.getOracle(o);
        vm.prank(caller % 2 == 0 ? stranger : aggregator);
        try protocol.slash(rid, o, OracleRegistry.SlashReason.Malformed, proof) {
            (uint256 stake2, uint256 unbonding2,,,,,) = protocol.getOracle(o);
            if (stake + unbonding - stake2 - unbonding2 > protocol.penalty(OracleRegistry.SlashReason.Malformed)) slashOverPenalty = true;
        } catch {}
    }

    /// The aggregator tries to claim a leaf paying itself (publish puts it in every tree).
    function aggregatorClaims(uint256 roundSeed) external {
        calls++;
        uint64 rid = protocol.currentRound();
        if (rid == 0) return;
        rid = uint64(1 + roundSeed % rid);
        (uint256 index, uint256 amount, bytes32[] memory proof) = _leafOf(rid, aggregator);
        if (amount == 0) return;
        vm.prank(aggregator);
        try protocol.claim(rid, index, amount, proof) {} catch {}
    }

    /// Slashes of a round: the revealed oracles whose bit in `seed` is set, reason Malformed; also
    /// the proof for `target` (empty when it is not slashed).
    function _slashes(uint64 rid, uint256 seed, address target) internal view returns (bytes32 root, bytes32[] memory proof) {
        address[] memory who = new address[](4);
        uint256 n;
        uint256 t = type(uint256).max;
        for (uint256 i = 0; i < 4; i++) {
            (bool committed, DGPTProtocol.Status st,,) = protocol.getSubmission(rid, oracles[i]);
            if (committed && st != DGPTProtocol.Status.Committed && (seed >> (i + 8)) & 1 == 1) {
                if (oracles[i] == target) t = n;
                who[n++] = oracles[i];
            }
        }
        bytes32[] memory leaves = new bytes32[](n);
        for (uint256 i = 0; i < n; i++) {
            leaves[i] = keccak256(bytes.concat(keccak256(abi.encode(who[i], OracleRegistry.SlashReason.Malformed))));
        }
        if (n == 0) return (bytes32(0), proof);
        (root, proof) = _rootAndProof(leaves, t == type(uint256).max ? 0 : t);
        if (t == type(uint256).max) proof = new bytes32[](0);
    }

    // --- a stranger tries the roles' calls -----------------------------------------------------------------

    function strangerTriesRoles(uint256 which, uint256 who) external {
        calls++;
        uint64 rid = protocol.currentRound();
        vm.prank(stranger);
        uint256 w = which % 4;
        if (w == 0) {
            try protocol.publish(rid, _cid("m"), _cid("r"), bytes32(0), 0, bytes32(0)) { unauthorizedSucceeded = true; } catch {}
        } else if (w == 1) {
            // a slash no published report holds
            try protocol.slash(rid, _oracle(who), OracleRegistry.SlashReason.NonFinite, new bytes32[](0)) { unauthorizedSucceeded = true; } catch {}
        } else if (w == 2) {
            try protocol.openRound(_cid("x"), _cid("t"), 1 hours, 1 hours, 1) { unauthorizedSucceeded = true; } catch {}
        } else {
            try token.mint(stranger, 1 ether) { unauthorizedSucceeded = true; } catch {}
        }
    }

    // --- rewards trees: leaves (index, oracle, amount) over the revealed oracles, sorted-pair hashing --

    mapping(uint64 => uint256) public rewardSeed;

    function _amounts(uint64 rid, uint256 seed) internal view returns (address[] memory who, uint256[] memory amt, uint256 total) {
        uint256 n = 1; // the aggregator pays itself a leaf in every tree: it must never be able to claim it
        for (uint256 i = 0; i < 4; i++) {
            (, DGPTProtocol.Status st,,) = protocol.getSubmission(rid, oracles[i]);
            (bool committed,,,) = protocol.getSubmission(rid, oracles[i]);
            if (committed && st != DGPTProtocol.Status.Committed) n++; // revealed, or slashed since the publish
        }
        who = new address[](n);
        amt = new uint256[](n);
        who[0] = aggregator;
        amt[0] = uint256(keccak256(abi.encode(seed, "aggregator"))) % (100 ether);
        total = amt[0];
        uint256 k = 1;
        for (uint256 i = 0; i < 4; i++) {
            (bool committed, DGPTProtocol.Status st,,) = protocol.getSubmission(rid, oracles[i]);
            if (committed && st != DGPTProtocol.Status.Committed) {
                who[k] = oracles[i];
                amt[k] = uint256(keccak256(abi.encode(seed, i))) % (400 ether);
                total += amt[k];
                k++;
            }
        }
    }

    function _leaf(uint256 index, address o, uint256 amount) internal pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(index, o, amount))));
    }

    function _hashPair(bytes32 a, bytes32 b) internal pure returns (bytes32) {
        return a < b ? keccak256(abi.encode(a, b)) : keccak256(abi.encode(b, a));
    }

    /// Root over the leaves, pairing left to right and carrying an odd node up; also the proof of `target`.
    function _rootAndProof(bytes32[] memory level, uint256 target) internal pure returns (bytes32, bytes32[] memory) {
        bytes32[] memory proof = new bytes32[](8);
        uint256 depth;
        while (level.length > 1) {
            bytes32[] memory next = new bytes32[]((level.length + 1) / 2);
            for (uint256 i = 0; i < level.length; i += 2) {
                if (i + 1 < level.length) {
                    next[i / 2] = _hashPair(level[i], level[i + 1]);
                    if (target == i) proof[depth++] = level[i + 1];
                    else if (target == i + 1) proof[depth++] = level[i];
                } else {
                    next[i / 2] = level[i];
                }
            }
            target /= 2;
            level = next;
        }
        bytes32[] memory out = new bytes32[](depth);
        for (uint256 i = 0; i < depth; i++) out[i] = proof[i];
        return (level.length == 0 ? bytes32(0) : level[0], out);
    }

    function _tree(uint64 rid, uint256 seed) internal view returns (bytes32 root, uint256 total) {
        (address[] memory who, uint256[] memory amt, uint256 t) = _amounts(rid, seed);
        bytes32[] memory leaves = new bytes32[](who.length);
        for (uint256 i = 0; i < who.length; i++) leaves[i] = _leaf(i, who[i], amt[i]);
        (root,) = _rootAndProof(leaves, 0);
        total = t;
    }

    function _leafOf(uint64 rid, address o) internal view returns (uint256 index, uint256 amount, bytes32[] memory proof) {
        if (!protocol.getRound(rid).published) return (0, 0, proof);
        (address[] memory who, uint256[] memory amt,) = _amounts(rid, rewardSeed[rid]);
        bytes32[] memory leaves = new bytes32[](who.length);
        bool found;
        for (uint256 i = 0; i < who.length; i++) {
            leaves[i] = _leaf(i, who[i], amt[i]);
            if (who[i] == o) (index, amount, found) = (i, amt[i], true);
        }
        if (!found) return (0, 0, proof);
        (, proof) = _rootAndProof(leaves, index);
    }
}

contract DGPTInvariants {
    DGPTToken internal token;
    DGPTProtocol internal protocol;
    Handler internal handler;

    uint256 internal constant GENESIS = 10_000 ether;

    function setUp() public {
        token = new DGPTToken(1_000_000_000 ether, GENESIS, address(this));
        DGPTProtocol.Params memory p = DGPTProtocol.Params({
            minStake: 100 ether, unbondingPeriod: 1 days, maxExamples: 1000, nonRevealPenalty: 10 ether,
            malformedPenalty: 50 ether, nonFinitePenalty: 50 ether, normPenalty: 50 ether, minWindow: 10 minutes,
            maxWindow: 1 days, publishWindow: 1 days, slashWindow: 12 hours, maxRewardPerRound: 1000 ether,
            emissionPeriod: 1 days, maxRewardPerPeriod: 3000 ether
        });
        protocol = new DGPTProtocol(token, p, address(this), AGGREGATOR);
        handler = new Handler(token, protocol);
        token.setMinter(address(protocol));
        for (uint256 i = 0; i < 4; i++) token.transfer(handler.oracles(i), 1_000 ether);
    }

    /// The handler's own logic (commit hashes, rewards trees, proofs) drives a full round to paid
    /// claims: without this the fuzzer could be exploring only reverting calls.
    function test_handlerDrivesAFullRoundToClaims() public {
        handler.register(0, 0);
        handler.register(1, 0);
        handler.openRound(500 ether, 1);
        handler.commit(0, "salt0");
        handler.commit(1, "salt1");
        handler.warp(1 hours);
        handler.reveal(0);
        handler.reveal(1);
        handler.warp(1 hours);
        handler.publish(7 | (1 << 9)); // rewards for both, a slash of oracle 1
        handler.aggregatorClaims(0);
        require(token.balanceOf(AGGREGATOR) == 0, "the aggregator claimed a reward it did not earn");
        require(protocol.getRound(1).published, "publish failed");
        uint256 before = token.balanceOf(handler.oracles(0)) + token.balanceOf(handler.oracles(1));
        (uint256 stake1,,,,,,) = protocol.getOracle(handler.oracles(1));
        handler.slash(1, 0);
        (uint256 stake1After,,,,,,) = protocol.getOracle(handler.oracles(1));
        require(stake1 - stake1After == 50 ether, "the published slash did not burn its penalty");
        handler.claim(0, 0);
        handler.claim(1, 0); // slashed: not eligible
        DGPTProtocol.RoundView memory v = protocol.getRound(1);
        require(v.rewardsClaimed > 0 && v.rewardsClaimed < v.rewardsTotal, "only the unslashed oracle is paid");
        require(token.balanceOf(handler.oracles(0)) + token.balanceOf(handler.oracles(1)) == before + v.rewardsClaimed, "paid amounts");
        require(!handler.claimPaidTwice(), "second claim paid");
        invariant_balanceEqualsStakesUnbondingAndUnclaimedRewards();
    }

    /// Only the handler is called, with random arguments.
    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    /// The registry holds exactly the stakes, what is unbonding, and the rewards not yet claimed.
    function invariant_balanceEqualsStakesUnbondingAndUnclaimedRewards() public view {
        uint256 sum;
        for (uint256 i = 0; i < 4; i++) {
            (uint256 stake, uint256 unbonding,,,,,) = protocol.getOracle(handler.oracles(i));
            sum += stake + unbonding;
        }
        for (uint64 r = 1; r <= protocol.currentRound(); r++) {
            DGPTProtocol.RoundView memory v = protocol.getRound(r);
            sum += v.rewardsTotal - v.rewardsClaimed;
        }
        require(token.balanceOf(address(protocol)) == sum, "registry balance != stakes + unbonding + unclaimed rewards");
    }

    /// No round pays more than it minted, nor mints more than its budget.
    function invariant_rewardsWithinBudget() public view {
        for (uint64 r = 1; r <= protocol.currentRound(); r++) {
            DGPTProtocol.RoundView memory v = protocol.getRound(r);
            require(v.rewardsClaimed <= v.rewardsTotal && v.rewardsTotal <= v.rewardBudget, "rewards over budget");
        }
    }

    function invariant_lockedStakeNeverLeaves() public view {
        require(!handler.lockedStakeLeft(), "stake left while locked by an unpublished round");
    }

    function invariant_claimPaysOnce() public view {
        require(!handler.claimPaidTwice(), "a claim paid twice");
    }

    /// The aggregator never revealed anything, so rewards never reach it.
    function invariant_aggregatorEarnsNothingUnrevealed() public view {
        require(token.balanceOf(AGGREGATOR) == 0, "the aggregator was paid a reward it did not earn");
    }

    /// Minting stays within the schedule: every round within the per-round ceiling, every period's
    /// budgets within the per-period ceiling, supply within genesis plus what rounds minted.
    function invariant_mintedWithinSchedule() public view {
        uint256 minted;
        for (uint64 r = 1; r <= protocol.currentRound(); r++) {
            DGPTProtocol.RoundView memory v = protocol.getRound(r);
            require(v.rewardBudget <= protocol.maxRewardPerRound(), "round budget over the ceiling");
            minted += v.rewardsTotal;
        }
        for (uint256 i = 0; i < handler.periodsCount(); i++) {
            require(protocol.emitted(handler.periodsOpened(i)) <= protocol.maxRewardPerPeriod(), "period over its ceiling");
        }
        require(token.totalSupply() <= GENESIS + minted, "supply beyond genesis plus round rewards");
    }

    function invariant_noSlashOverItsPenalty() public view {
        require(!handler.slashOverPenalty(), "a slash burned more than its fixed penalty");
    }

    function invariant_noStakeLockedAfterItsRoundEnds() public view {
        require(!handler.unlockedStakeRefused(), "stake stayed locked after its round was published or aborted");
    }

    function invariant_onlyRolesSlashPublishOrMint() public view {
        require(!handler.unauthorizedSucceeded(), "a stranger published, slashed, opened a round or minted");
    }
}
