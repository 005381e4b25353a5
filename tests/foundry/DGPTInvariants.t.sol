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

/// Drives the protocol with random, bounded calls from oracles, the aggregator, three validators and a
/// stranger, and records in ghost variables anything that must never happen.
contract Handler {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    uint256 internal constant STAKE = 100 ether;

    DGPTToken public token;
    DGPTProtocol public protocol;
    address public aggregator = AGGREGATOR;
    address public stranger = address(0xBAD);
    address[4] public oracles = [address(0x1001), address(0x1002), address(0x1003), address(0x1004)];
    address[3] public validators = [address(0x2001), address(0x2002), address(0x2003)];
    uint256 public now_ = 1_000_000;

    mapping(uint64 => mapping(address => bytes32)) internal salts;
    // Ghosts: each must stay false / within bounds.
    bool public lockedStakeLeft;
    bool public claimPaidTwice;
    bool public unauthorizedSucceeded;
    bool public slashOverPenalty;
    bool public unlockedStakeRefused;
    bool public effectBeforeFinal; // a claim or a proposal's slash succeeded in a round that was not final
    bool public bondMinted; // a bond grew other than by a deposit
    uint256 public bondDeposited;
    uint256 public bondWithdrawn;
    uint256 public bondTaken; // slashed from bonds: burned or paid to challengers and validators
    uint256 public pendingValidatorPay; // minted fees and kept bond shares not yet settled to validators
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
        return !v.final_ && !v.aborted;
    }

    function _bondSum() internal view returns (uint256 sum) {
        (uint128 a,) = protocol.bonds(aggregator);
        sum = a;
        for (uint256 i = 0; i < 3; i++) {
            (uint128 b,) = protocol.bonds(validators[i]);
            sum += b;
        }
    }

    /// Bonds only shrink in the calls that settle a proposal; what they lose is recorded.
    function _trackBonds(uint256 before) internal {
        uint256 afterSum = _bondSum();
        if (afterSum > before) bondMinted = true;
        else bondTaken += before - afterSum;
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
        (DGPTProtocol.EntryLeaf memory e, bytes32[] memory proof, bool found) = _leafOf(rid, o);
        if (!found || e.reward == 0) return;
        bool isFinal = protocol.getRound(rid).final_;
        vm.prank(o);
        try protocol.claim(rid, e, proof) {
            if (!isFinal) effectBeforeFinal = true;
            vm.prank(o);
            try protocol.claim(rid, e, proof) {
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

    /// A proposal over the round's revealed oracles: rewards drawn from `seed`, sometimes over budget
    /// (the contract must refuse those); with bit 7 of the seed the aggregator lists itself, paid,
    /// in place of the last oracle (a fault anyone can prove).
    function publish(uint256 seed) external {
        calls++;
        uint64 rid = protocol.currentRound();
        if (rid == 0) return;
        (DGPTProtocol.EntryLeaf[] memory leaves, uint256 total) = _entries(rid, seed);
        (bytes32 root,) = _entriesRootAndProof(leaves, 0);
        (bytes32 slashesRoot,) = _slashes(rid, seed, address(0));
        uint16 slashCount = slashesRoot == 0 ? 0 : uint16(_slashCount(rid, seed));
        DGPTProtocol.Result memory r = DGPTProtocol.Result(
            _cid(bytes32(seed)), _cid(bytes32(seed + 1)), root, uint32(leaves.length), uint96(total), slashesRoot, slashCount, 0
        );
        vm.prank(aggregator);
        try protocol.publish(rid, r) returns (bytes32 h) {
            proposalSeed[rid] = seed;
            resultHash[rid] = h;
        } catch {}
    }

    /// A validator attests: to the proposal (even seeds) or to another result.
    function attest(uint256 who, uint256 seed) external {
        calls++;
        uint64 rid = protocol.currentRound();
        if (rid == 0) return;
        bytes32 h = seed % 2 == 0 ? resultHash[rid] : keccak256(abi.encode(seed));
        if (h == 0) h = bytes32(uint256(1));
        vm.prank(validators[who % 3]);
        try protocol.attest(rid, h) {} catch {}
    }

    /// Anyone finalizes (or voids, or lets expire) the live proposal.
    function finalize(uint256 caller) external {
        calls++;
        uint64 rid = protocol.currentRound();
        if (rid == 0) return;
        DGPTProtocol.RoundView memory v = protocol.getRound(rid);
        uint256 before = _bondSum();
        vm.prank(caller % 2 == 0 ? stranger : _oracle(caller));
        try protocol.finalize(rid) {
            _trackBonds(before);
            (,, uint96 pay) = protocol.settlements(rid, v.proposals);
            DGPTProtocol.RoundView memory w = protocol.getRound(rid);
            if (w.final_) pendingValidatorPay += uint256(pay) * v.agree;
            else pendingValidatorPay += uint256(pay) * v.disagree; // kept shares of a voided bond (0 if expired)
        } catch {}
    }

    /// A stranger challenges each entry of the live proposal in turn: only a real fault voids it.
    function challenge(uint256 which) external {
        calls++;
        uint64 rid = protocol.currentRound();
        if (rid == 0 || !protocol.getRound(rid).proposed) return;
        (DGPTProtocol.EntryLeaf[] memory leaves,) = _entries(rid, proposalSeed[rid]);
        if (leaves.length == 0) return;
        uint256 i = which % leaves.length;
        (, bytes32[] memory proof) = _entriesRootAndProof(leaves, i);
        uint256 before = _bondSum();
        uint256 balance = token.balanceOf(stranger);
        vm.prank(stranger);
        try protocol.challengeEntry(rid, leaves[i], proof) {
            _trackBonds(before);
            if (token.balanceOf(stranger) < balance) bondMinted = true; // a challenger never pays
        } catch {}
    }

    /// Each validator's attestation to an earlier proposal is settled by anyone.
    function settle(uint256 who, uint256 roundSeed, uint8 proposal) external {
        calls++;
        uint64 rid = protocol.currentRound();
        if (rid == 0) return;
        rid = uint64(1 + roundSeed % rid);
        address v = validators[who % 3];
        uint256 before = _bondSum();
        uint256 balance = token.balanceOf(v);
        vm.prank(stranger);
        try protocol.settleAttestation(rid, uint8(1 + proposal % 3), v) {
            _trackBonds(before);
            pendingValidatorPay -= token.balanceOf(v) - balance;
        } catch {}
    }

    /// Aggregator and validators move their bonds; only what nothing locks may leave.
    function moveBond(uint256 who, uint256 amount, bool deposit) external {
        calls++;
        address a = who % 4 == 3 ? aggregator : validators[who % 3];
        amount = 1 + amount % (500 ether);
        (uint128 held, uint128 locked) = protocol.bonds(a);
        if (deposit) {
            vm.prank(a);
            token.approve(address(protocol), amount);
            vm.prank(a);
            try protocol.depositBond(amount) {
                bondDeposited += amount;
            } catch {}
        } else {
            vm.prank(a);
            try protocol.withdrawBond(amount) {
                bondWithdrawn += amount;
                if (amount > held - locked) bondMinted = true; // took a locked bond
            } catch {}
        }
    }

    /// Anyone executes a slash of the round's proposal (or one it does not hold, which must fail); it
    /// may burn no more than the reason's fixed penalty, and nothing before the round is final.
    function slash(uint256 who, uint256 caller) external {
        calls++;
        uint64 rid = protocol.currentRound();
        if (rid == 0) return;
        address o = _oracle(who);
        (, bytes32[] memory proof) = _slashes(rid, proposalSeed[rid], o);
        (uint256 stake, uint256 unbonding,,,,,) = protocol.getOracle(o);
        bool isFinal = protocol.getRound(rid).final_;
        vm.prank(caller % 2 == 0 ? stranger : aggregator);
        try protocol.slash(rid, o, OracleRegistry.SlashReason.Malformed, proof) {
            if (!isFinal) effectBeforeFinal = true;
            (uint256 stake2, uint256 unbonding2,,,,,) = protocol.getOracle(o);
            if (stake + unbonding - stake2 - unbonding2 > protocol.penalty(OracleRegistry.SlashReason.Malformed)) slashOverPenalty = true;
        } catch {}
    }

    /// The aggregator tries to claim a leaf paying itself (some proposals list it).
    function aggregatorClaims(uint256 roundSeed) external {
        calls++;
        uint64 rid = protocol.currentRound();
        if (rid == 0) return;
        rid = uint64(1 + roundSeed % rid);
        (DGPTProtocol.EntryLeaf memory e, bytes32[] memory proof, bool found) = _leafOf(rid, aggregator);
        if (!found || e.reward == 0) return;
        vm.prank(aggregator);
        try protocol.claim(rid, e, proof) {} catch {}
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
        uint256 w = which % 5;
        if (w == 0) {
            DGPTProtocol.Result memory r = DGPTProtocol.Result(_cid("m"), _cid("r"), 0, 0, 0, 0, 0, 0);
            try protocol.publish(rid, r) { unauthorizedSucceeded = true; } catch {}
        } else if (w == 1) {
            // a slash no published report holds
            try protocol.slash(rid, _oracle(who), OracleRegistry.SlashReason.NonFinite, new bytes32[](0)) { unauthorizedSucceeded = true; } catch {}
        } else if (w == 2) {
            try protocol.openRound(_cid("x"), _cid("t"), 1 hours, 1 hours, 1) { unauthorizedSucceeded = true; } catch {}
        } else if (w == 3) {
            try token.mint(stranger, 1 ether) { unauthorizedSucceeded = true; } catch {}
        } else {
            try protocol.attest(rid, bytes32(uint256(1))) { unauthorizedSucceeded = true; } catch {}
        }
    }

    // --- entries trees: one leaf per revealed oracle, sorted-pair hashing --------------------------------

    mapping(uint64 => uint256) public proposalSeed;
    mapping(uint64 => bytes32) public resultHash;

    function _slashCount(uint64 rid, uint256 seed) internal view returns (uint256 n) {
        for (uint256 i = 0; i < 4; i++) {
            (bool committed, DGPTProtocol.Status st,,) = protocol.getSubmission(rid, oracles[i]);
            if (committed && st != DGPTProtocol.Status.Committed && (seed >> (i + 8)) & 1 == 1) n++;
        }
    }

    /// The revealed oracles in address order (the handler's addresses are increasing), each merged with
    /// a reward drawn from `seed`; with bit 7 the last is replaced by the aggregator paying itself.
    function _entries(uint64 rid, uint256 seed) internal view returns (DGPTProtocol.EntryLeaf[] memory leaves, uint256 total) {
        uint256 n;
        for (uint256 i = 0; i < 4; i++) {
            (bool committed, DGPTProtocol.Status st,,) = protocol.getSubmission(rid, oracles[i]);
            if (committed && st != DGPTProtocol.Status.Committed) n++; // revealed, or slashed since
        }
        leaves = new DGPTProtocol.EntryLeaf[](n);
        uint256 k;
        for (uint256 i = 0; i < 4; i++) {
            (bool committed, DGPTProtocol.Status st,, uint64 count) = protocol.getSubmission(rid, oracles[i]);
            if (!committed || st == DGPTProtocol.Status.Committed) continue;
            uint256 amount = uint256(keccak256(abi.encode(seed, i))) % (400 ether);
            bool slashed = (seed >> (i + 8)) & 1 == 1;
            if (slashed) amount = 0;
            leaves[k] = DGPTProtocol.EntryLeaf(k, oracles[i], keccak256(abi.encode(salts[rid][oracles[i]])), count,
                slashed ? 0 : count, amount, total, slashed, OracleRegistry.SlashReason.Malformed);
            total += amount;
            k++;
        }
        if (n != 0 && (seed >> 7) & 1 == 1) {
            DGPTProtocol.EntryLeaf memory last = leaves[n - 1];
            total -= last.reward;
            last.oracle = aggregator; // larger than every oracle address: the order holds
            last.reward = 100 ether;
            last.slashed = false;
            last.weight = 1;
            total += last.reward;
        }
    }

    function _entryLeaf(DGPTProtocol.EntryLeaf memory e) internal pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(e))));
    }

    function _entriesRootAndProof(DGPTProtocol.EntryLeaf[] memory leaves, uint256 target) internal pure returns (bytes32, bytes32[] memory) {
        bytes32[] memory hashes = new bytes32[](leaves.length);
        for (uint256 i = 0; i < leaves.length; i++) hashes[i] = _entryLeaf(leaves[i]);
        return _rootAndProof(hashes, target);
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

    function _leafOf(uint64 rid, address o) internal view returns (DGPTProtocol.EntryLeaf memory e, bytes32[] memory proof, bool found) {
        if (protocol.getRound(rid).proposals == 0) return (e, proof, false);
        (DGPTProtocol.EntryLeaf[] memory leaves,) = _entries(rid, proposalSeed[rid]);
        for (uint256 i = 0; i < leaves.length; i++) {
            if (leaves[i].oracle == o) {
                (, proof) = _entriesRootAndProof(leaves, i);
                return (leaves[i], proof, true);
            }
        }
    }
}

contract DGPTInvariants {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    DGPTToken internal token;
    DGPTProtocol internal protocol;
    Handler internal handler;

    uint256 internal constant GENESIS = 100_000 ether;
    uint256 internal constant INITIAL_BONDS = 3_000 ether + 3 * 100 ether;

    function setUp() public {
        token = new DGPTToken(1_000_000_000 ether, GENESIS, address(this));
        DGPTProtocol.Params memory p = DGPTProtocol.Params({
            minStake: 100 ether, unbondingPeriod: 1 days, maxExamples: 1000, nonRevealPenalty: 10 ether,
            malformedPenalty: 50 ether, nonFinitePenalty: 50 ether, normPenalty: 50 ether, minWindow: 10 minutes,
            maxWindow: 1 days, publishWindow: 1 days, slashWindow: 12 hours, maxRewardPerRound: 1000 ether,
            emissionPeriod: 1 days, maxRewardPerPeriod: 3000 ether, challengeWindow: 1 hours, publishBond: 100 ether,
            challengerShareBps: 5000, validatorSeats: 3, validatorQuorum: 2, validatorBond: 100 ether,
            validatorPenalty: 20 ether, validatorFee: 1 ether
        });
        protocol = new DGPTProtocol(token, p, address(this), AGGREGATOR);
        handler = new Handler(token, protocol);
        token.setMinter(address(protocol));
        for (uint256 i = 0; i < 4; i++) token.transfer(handler.oracles(i), 1_000 ether);
        _bond(AGGREGATOR, 3_000 ether, 10_000 ether);
        for (uint256 i = 0; i < 3; i++) {
            protocol.setValidator(handler.validators(i), true);
            _bond(handler.validators(i), 100 ether, 1_000 ether);
        }
    }

    function _bond(address who, uint256 amount, uint256 funds) internal {
        token.transfer(who, funds);
        vm.prank(who);
        token.approve(address(protocol), amount);
        vm.prank(who);
        protocol.depositBond(amount);
    }

    /// The handler's own logic (commit hashes, entries trees, proofs) drives a full round through a
    /// quorum to paid claims: without this the fuzzer could be exploring only reverting calls.
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
        handler.publish(6 | (1 << 9)); // rewards for oracle 0, a slash of oracle 1
        require(protocol.getRound(1).proposed, "publish failed");
        handler.claim(0, 0); // not final: refused
        handler.challenge(0); // an honest proposal: refused
        require(protocol.getRound(1).proposed, "an honest proposal was voided");
        handler.attest(0, 0);
        handler.attest(1, 0);
        handler.attest(2, 1); // a dissenter
        handler.warp(1 hours);
        handler.finalize(0);
        require(protocol.getRound(1).final_, "finalize failed");
        handler.aggregatorClaims(0);
        require(token.balanceOf(AGGREGATOR) == 10_000 ether - 3_000 ether, "the aggregator claimed a reward it did not earn");
        (uint256 stake1,,,,,,) = protocol.getOracle(handler.oracles(1));
        handler.slash(1, 0);
        (uint256 stake1After,,,,,,) = protocol.getOracle(handler.oracles(1));
        require(stake1 - stake1After == 50 ether, "the final slash did not burn its penalty");
        uint256 before = token.balanceOf(handler.oracles(0));
        handler.claim(0, 0);
        DGPTProtocol.RoundView memory v = protocol.getRound(1);
        require(v.rewardsClaimed > 0 && v.rewardsClaimed == v.rewardsTotal, "the merged oracle is paid");
        require(token.balanceOf(handler.oracles(0)) == before + v.rewardsClaimed, "paid amounts");
        handler.settle(0, 0, 0);
        handler.settle(2, 0, 0);
        require(handler.bondTaken() == 20 ether, "the dissenting validator's penalty");
        require(!handler.claimPaidTwice() && !handler.effectBeforeFinal(), "claims");
        invariant_balanceEqualsStakesBondsAndUnpaidRewards();
        invariant_bondsConserved();
    }

    /// A dishonest proposal (the aggregator lists itself) is voided by a proof; the challenger is paid.
    function test_handlerVoidsAProposalThatPaysTheAggregator() public {
        handler.register(0, 0);
        handler.openRound(500 ether, 1);
        handler.commit(0, "salt0");
        handler.warp(1 hours);
        handler.reveal(0);
        handler.warp(1 hours);
        handler.publish(1 << 7);
        handler.challenge(0);
        DGPTProtocol.RoundView memory v = protocol.getRound(1);
        require(!v.proposed && !v.final_ && v.voidedAt != 0, "the proposal stands");
        require(handler.bondTaken() > 0 && token.balanceOf(handler.stranger()) > 0, "bond slashed, challenger paid");
        invariant_balanceEqualsStakesBondsAndUnpaidRewards();
        invariant_bondsConserved();
    }

    /// Only the handler is called, with random arguments.
    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    /// The protocol holds exactly the stakes, what is unbonding, the bonds, the final rounds' unclaimed
    /// rewards, and what validators are yet to be paid.
    function invariant_balanceEqualsStakesBondsAndUnpaidRewards() public view {
        uint256 sum = protocol.totalBonded() + handler.pendingValidatorPay();
        for (uint256 i = 0; i < 4; i++) {
            (uint256 stake, uint256 unbonding,,,,,) = protocol.getOracle(handler.oracles(i));
            sum += stake + unbonding;
        }
        for (uint64 r = 1; r <= protocol.currentRound(); r++) {
            DGPTProtocol.RoundView memory v = protocol.getRound(r);
            if (v.final_) sum += v.rewardsTotal - v.rewardsClaimed;
        }
        require(token.balanceOf(address(protocol)) == sum, "balance != stakes + unbonding + bonds + unpaid rewards");
    }

    /// No final round pays more than it minted, nor mints more than its budget; a round that is not
    /// final has paid nothing.
    function invariant_rewardsWithinBudget() public view {
        for (uint64 r = 1; r <= protocol.currentRound(); r++) {
            DGPTProtocol.RoundView memory v = protocol.getRound(r);
            if (v.final_) require(v.rewardsClaimed <= v.rewardsTotal && v.rewardsTotal <= v.rewardBudget, "rewards over budget");
            else require(v.rewardsClaimed == 0, "a round that is not final paid a reward");
        }
    }

    function invariant_lockedStakeNeverLeaves() public view {
        require(!handler.lockedStakeLeft(), "stake left while locked by a round that is not final");
    }

    function invariant_claimPaysOnce() public view {
        require(!handler.claimPaidTwice(), "a claim paid twice");
    }

    /// The aggregator never revealed anything, so rewards never reach it.
    function invariant_aggregatorEarnsNothingUnrevealed() public view {
        (uint128 held,) = protocol.bonds(AGGREGATOR);
        require(token.balanceOf(AGGREGATOR) + held <= 10_000 ether, "the aggregator was paid a reward it did not earn");
    }

    /// Minting stays within the schedule: every round within the per-round ceiling, every period's
    /// budgets within the per-period ceiling, supply within genesis plus what final rounds minted.
    function invariant_mintedWithinSchedule() public view {
        uint256 minted;
        for (uint64 r = 1; r <= protocol.currentRound(); r++) {
            DGPTProtocol.RoundView memory v = protocol.getRound(r);
            require(v.rewardBudget <= protocol.maxRewardPerRound(), "round budget over the ceiling");
            if (!v.final_) continue;
            (,, uint96 pay) = protocol.settlements(r, v.proposals);
            uint256 round_ = v.rewardsTotal + uint256(pay) * v.agree;
            require(round_ <= v.rewardBudget, "a round minted more than its budget");
            minted += round_;
        }
        for (uint256 i = 0; i < handler.periodsCount(); i++) {
            require(protocol.emitted(handler.periodsOpened(i)) <= protocol.maxRewardPerPeriod(), "period over its ceiling");
        }
        require(token.totalSupply() <= GENESIS + minted, "supply beyond genesis plus final rounds' rewards and fees");
    }

    function invariant_noSlashOverItsPenalty() public view {
        require(!handler.slashOverPenalty(), "a slash burned more than its fixed penalty");
    }

    function invariant_noStakeLockedAfterItsRoundEnds() public view {
        require(!handler.unlockedStakeRefused(), "stake stayed locked after its round was final or aborted");
    }

    function invariant_onlyRolesSlashPublishOrMint() public view {
        require(!handler.unauthorizedSucceeded(), "a stranger published, attested, slashed, opened a round or minted");
    }

    /// Nothing is claimable or slashed (by a proposal's slashes) before its round is final.
    function invariant_nothingTakesEffectBeforeFinal() public view {
        require(!handler.effectBeforeFinal(), "a claim or a slash succeeded before the round was final");
    }

    /// Bonds are conserved: what is held is what was deposited, less what was withdrawn (never a locked
    /// part) and what proposals' outcomes took; no bond grows otherwise.
    function invariant_bondsConserved() public view {
        require(!handler.bondMinted(), "a bond grew without a deposit, or a locked bond left");
        (uint128 a, uint128 aLocked) = protocol.bonds(AGGREGATOR);
        uint256 sum = a;
        require(aLocked <= a, "aggregator bond locked beyond what it holds");
        for (uint256 i = 0; i < 3; i++) {
            (uint128 b, uint128 bLocked) = protocol.bonds(handler.validators(i));
            require(bLocked <= b, "validator bond locked beyond what it holds");
            sum += b;
        }
        require(sum == protocol.totalBonded(), "bonds do not add up to the total bonded");
        require(sum == INITIAL_BONDS + handler.bondDeposited() - handler.bondWithdrawn() - handler.bondTaken(), "bonds not conserved");
    }
}
