"""Disputes on chain (issue 13): bonded proposals, proofs the contract checks by itself, and the
validator quorum. Each dishonest aggregator behaviour is reproduced and must be caught; the honest
round must become final with no false challenge. On the embedded chain and on Anvil."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dgpt.chain.client import dev_accounts
from dgpt.chain.protocol import TOKEN, Fault, Outcome, ProtocolParams, SlashReason, deploy
from dgpt.commitments import EntriesTree, SlashesTree
from dgpt.disputes import Revealed, evidence_for, find_fault, send_challenge
from dgpt.store import LocalStore
from tests.conftest import World
from tests.test_contracts import NEW_MODEL, REPORT, entries, expect_revert, register, result_of, run_round


def revealed(w, rid) -> dict[str, Revealed]:
    from dgpt.cid import cid_to_bytes

    return {e["args"]["oracle"]: Revealed(cid_to_bytes(w.protocol.submission(rid, e["args"]["oracle"]).delta_cid)[4:],
                                          e["args"]["numExamples"]) for e in w.protocol.events("Revealed", roundId=rid)}


def honest(w, rid):
    a, b, c = w.oracles[:3]
    return entries(w, rid, {a.address: 30 * TOKEN, b.address: 20 * TOKEN})  # c revealed, not merged


def dishonest(w, rid, how: str):
    """The entries, slashes and rewards total a dishonest aggregator proposes."""
    a, b, c = w.oracles[:3]
    tree, slashes, total = honest(w, rid), [], None
    leaves = list(tree.leaves)
    i = {e.oracle: k for k, e in enumerate(leaves)}
    if how == "pays itself":  # its own address in place of the unmerged oracle's entry
        leaves[i[c.address]] = replace(leaves[i[c.address]], oracle=w.aggregator.address, weight=1, reward=5 * TOKEN)
        return _rebuilt(leaves), slashes, None
    if how == "drops a reveal":  # b's entry repeated where c's should be: the count still matches
        order = sorted(leaves, key=lambda e: int(e.oracle, 16))
        keep = [e for e in order if e.oracle != c.address]
        keep.append(next(e for e in order if e.oracle == b.address))
        return _rebuilt(sorted(keep, key=lambda e: int(e.oracle, 16))), slashes, None
    if how == "inflates a weight":
        leaves[i[a.address]] = replace(leaves[i[a.address]], weight=10**6)
    elif how == "pays an unmerged entry":
        leaves[i[c.address]] = replace(leaves[i[c.address]], reward=TOKEN)
    elif how == "totals that do not add up":
        total = tree.total + 7 * TOKEN
    elif how == "slashes an honest oracle":
        slashes = [(a.address, SlashReason.MALFORMED)]
    return _rebuilt(leaves), slashes, total


def _rebuilt(leaves):
    """Leaves as the aggregator lists them, with running sums over its own order (a careless liar)."""
    out, before = [], 0
    for k, e in enumerate(leaves):
        out.append(replace(e, index=k, reward_before=before))
        before += e.reward
    return EntriesTree(tuple(out))


SCENARIOS = {
    "pays itself": Fault.ENTRY_NOT_REVEALED,
    "drops a reveal": Fault.ENTRIES_OUT_OF_ORDER,
    "inflates a weight": Fault.WEIGHT_ABOVE_COUNT,
    "pays an unmerged entry": Fault.REWARD_NOT_MERGED,
    "totals that do not add up": Fault.TOTAL_MISMATCH,
    "slashes an honest oracle": Fault.SLASH_UNSUPPORTED,
}


def three_revealed(w):
    for o in w.oracles[:3]:
        register(w, o)
    return run_round(w, revealers=w.oracles[:3])


@pytest.mark.parametrize("how", SCENARIOS)
def test_a_provable_fault_voids_the_proposal_slashes_the_bond_and_pays_the_challenger(world, how):
    w = world
    rid = three_revealed(w)
    tree, slashes, total = dishonest(w, rid, how)
    stakes = {o.address: w.protocol.oracle(o.address).stake for o in w.oracles}
    bond = w.protocol.bond(w.aggregator.address)[0]
    w.protocol.publish(w.aggregator, rid, result_of(tree, slashes, total=total))
    locked = w.protocol.bond(w.aggregator.address)[1]
    assert locked == w.params.publish_bond_for(w.protocol.round(rid).reward_budget, len(slashes))
    evidence = find_fault(tree, SlashesTree.build(slashes), revealed(w, rid), len(tree.leaves), total or tree.total)
    assert evidence is not None and evidence.fault == SCENARIOS[how].name
    before = w.protocol.balance_of(w.outsider.address)
    send_challenge(w.protocol, w.outsider, rid, evidence)
    (ch,) = w.protocol.events("Challenged", roundId=rid)
    assert Fault(ch["args"]["fault"]) is SCENARIOS[how]
    (voided,) = w.protocol.events("Voided", roundId=rid)
    assert Outcome(voided["args"]["outcome"]) is Outcome.VOIDED_BY_PROOF and voided["args"]["bondSlashed"] == locked
    assert w.protocol.bond(w.aggregator.address) == (bond - locked, 0)
    share = locked * w.params.challenger_share_bps // 10_000
    assert w.protocol.balance_of(w.outsider.address) == before + share
    info = w.protocol.round(rid)
    assert info.state == "voided" and not info.final and w.protocol.latest_model() is None
    assert {o.address: w.protocol.oracle(o.address).stake for o in w.oracles} == stakes  # no oracle pays for it
    # the same reveals go on: a corrected proposal, final after its window, pays the honest oracles
    good = honest(w, rid)
    w.protocol.publish(w.aggregator, rid, result_of(good))
    w.chain.time_travel(w.params.challenge_window + 1)
    w.protocol.finalize(w.outsider, rid)
    a = w.oracles[0]
    e = good.of(a.address)
    w.protocol.claim(a, rid, e, good.proof(e.index))
    assert w.protocol.round(rid).state == "final" and w.protocol.round(rid).proposals == 2


def test_an_honest_proposal_survives_every_challenge_and_becomes_final(world):
    w = world
    rid = three_revealed(w)
    tree = honest(w, rid)
    w.protocol.publish(w.aggregator, rid, result_of(tree))
    assert find_fault(tree, SlashesTree.build([]), revealed(w, rid), 3, tree.total) is None
    for e in tree.leaves:
        expect_revert("ChallengeRejected", w.protocol.challenge_entry, w.outsider, rid, e, tree.proof(e.index))
    a, b = tree.leaves[:2]
    expect_revert("ChallengeRejected", w.protocol.challenge_entries, w.outsider, rid, a, tree.proof(0), b, tree.proof(1))
    forged = replace(a, weight=10**6)  # a leaf the root does not hold proves nothing
    expect_revert("InvalidProof", w.protocol.challenge_entry, w.outsider, rid, forged, tree.proof(0))
    w.chain.time_travel(w.params.challenge_window + 1)
    expect_revert("ChallengeWindowClosed", w.protocol.challenge_entry, w.outsider, rid, a, tree.proof(0))
    w.protocol.finalize(w.outsider, rid)
    assert w.protocol.round(rid).state == "final" and w.protocol.bond(w.aggregator.address)[1] == 0


def test_a_publish_needs_the_bond_and_the_count_and_a_locked_bond_stays(world):
    w = world
    rid = three_revealed(w)
    held, _ = w.protocol.bond(w.aggregator.address)
    w.protocol.withdraw_bond(w.aggregator, held - TOKEN)
    expect_revert("BondTooSmall", w.protocol.publish, w.aggregator, rid, result_of(honest(w, rid)))
    w.protocol.deposit_bond(w.aggregator, held - TOKEN)
    expect_revert("EntryCountMismatch", w.protocol.publish, w.aggregator, rid, result_of(honest(w, rid), count=2))
    w.protocol.publish(w.aggregator, rid, result_of(honest(w, rid)))
    amount, locked = w.protocol.bond(w.aggregator.address)
    expect_revert("BondTooSmall", w.protocol.withdraw_bond, w.aggregator, amount - locked + 1)
    w.protocol.withdraw_bond(w.aggregator, amount - locked)


# --- the validator quorum -------------------------------------------------------------------------------

QUORUM = ProtocolParams(unbonding_period=3600, slash_window=1800, challenge_window=600, validator_seats=3, validator_quorum=2)


@pytest.fixture
def quorum_world(chain):
    accounts = dev_accounts(10)
    admin, aggregator, outsider = accounts[0], accounts[1], accounts[9]
    validators = accounts[6:9]
    protocol = deploy(chain, admin, aggregator.address, QUORUM, tuple(v.address for v in validators))
    for o in accounts[2:6] + [outsider]:
        protocol.transfer(admin, o.address, 1_000 * TOKEN)
    protocol.transfer(admin, aggregator.address, 5_000 * TOKEN)
    protocol.deposit_bond(aggregator, 4_000 * TOKEN)
    for v in validators:
        protocol.transfer(admin, v.address, QUORUM.validator_bond)
        protocol.deposit_bond(v, QUORUM.validator_bond)
    w = World(chain, protocol, admin, aggregator, accounts[2:6], outsider, QUORUM)
    w.validators = validators
    return w


def settle_all(w, rid, proposal=1) -> dict[str, tuple[int, int]]:
    """Settle each validator's attestation; returns (paid, burned) per validator."""
    out = {}
    for v in w.validators:
        if w.protocol.attestation(rid, proposal, v.address) != bytes(32):
            w.protocol.settle_attestation(w.outsider, rid, proposal, v.address)
            (e,) = w.protocol.events("AttestationSettled", roundId=rid, validator=v.address)
            out[v.address] = (e["args"]["paid"], e["args"]["burned"])
    return out


def test_a_quorum_that_bears_the_result_out_makes_it_final_and_a_dissenter_pays(quorum_world):
    w = quorum_world
    rid = three_revealed(w)
    tree = honest(w, rid)
    result = result_of(tree)
    w.protocol.publish(w.aggregator, rid, result)
    v1, v2, v3 = w.validators
    expect_revert("NotAValidator", w.protocol.attest, w.outsider, rid, result.hash(rid))
    receipt = w.protocol.attest(v1, rid, result.hash(rid))
    assert receipt["gasUsed"] <= 80_000  # the ceiling for an attestation
    expect_revert("AlreadyAttested", w.protocol.attest, v1, rid, result.hash(rid))
    w.protocol.attest(v2, rid, result.hash(rid))
    w.protocol.attest(v3, rid, b"\x13" * 32)  # a wrong recomputation
    expect_revert("ChallengeWindowOpen", w.protocol.finalize, w.outsider, rid)
    w.chain.time_travel(QUORUM.challenge_window + 1)
    expect_revert("ChallengeWindowClosed", w.protocol.attest, v3, rid, result.hash(rid))
    supply = w.protocol.token.functions.totalSupply().call()
    w.protocol.finalize(w.outsider, rid)
    assert w.protocol.round(rid).state == "final"
    # minted: the rewards and a fee per agreeing validator, nothing more
    assert w.protocol.token.functions.totalSupply().call() == supply + tree.total + 2 * QUORUM.validator_fee
    paid = settle_all(w, rid)
    assert paid == {v1.address: (QUORUM.validator_fee, 0), v2.address: (QUORUM.validator_fee, 0), v3.address: (0, QUORUM.validator_penalty)}
    assert w.protocol.bond(v3.address) == (QUORUM.validator_bond - QUORUM.validator_penalty, 0)
    expect_revert("NothingToSettle", w.protocol.settle_attestation, w.outsider, rid, 1, v1.address)


def test_a_quorum_against_the_result_voids_it_at_once_and_slashes_the_bond(quorum_world):
    """Attack: a result the contract cannot check (here, another model than the merge): two validators
    recompute another hash; the proposal is void at once, the bond slashed, the dissenters paid."""
    w = quorum_world
    rid = three_revealed(w)
    tree = honest(w, rid)
    lie = replace(result_of(tree), new_model_cid=REPORT)
    truth = result_of(tree)
    w.protocol.publish(w.aggregator, rid, lie)
    locked = w.protocol.bond(w.aggregator.address)[1]
    v1, v2, v3 = w.validators
    w.protocol.attest(v3, rid, lie.hash(rid))  # a validator colluding with the aggregator
    w.protocol.attest(v1, rid, truth.hash(rid))
    w.protocol.attest(v2, rid, truth.hash(rid))
    assert w.protocol.round(rid).state == "challenged"
    w.protocol.finalize(w.outsider, rid)  # no need to wait for the window
    (voided,) = w.protocol.events("Voided", roundId=rid)
    assert Outcome(voided["args"]["outcome"]) is Outcome.VOIDED_BY_QUORUM and voided["args"]["bondSlashed"] == locked
    share = locked * QUORUM.challenger_share_bps // 10_000 // 2
    assert settle_all(w, rid) == {v1.address: (share, 0), v2.address: (share, 0), v3.address: (0, QUORUM.validator_penalty)}
    assert w.protocol.round(rid).state == "voided" and w.protocol.latest_model() is None
    # a corrected proposal on the same reveals
    w.protocol.publish(w.aggregator, rid, truth)
    for v in (v1, v2):
        w.protocol.attest(v, rid, truth.hash(rid))
    w.chain.time_travel(QUORUM.challenge_window + 1)
    w.protocol.finalize(w.outsider, rid)
    assert w.protocol.latest_model() == NEW_MODEL


def test_without_a_quorum_either_way_the_proposal_expires_at_no_ones_cost(quorum_world):
    w = quorum_world
    rid = three_revealed(w)
    result = result_of(honest(w, rid))
    w.protocol.publish(w.aggregator, rid, result)
    bond = w.protocol.bond(w.aggregator.address)[0]
    w.protocol.attest(w.validators[0], rid, result.hash(rid))  # one of the two needed
    w.chain.time_travel(QUORUM.challenge_window + 1)
    w.protocol.finalize(w.outsider, rid)
    (voided,) = w.protocol.events("Voided", roundId=rid)
    assert Outcome(voided["args"]["outcome"]) is Outcome.EXPIRED and voided["args"]["bondSlashed"] == 0
    assert w.protocol.bond(w.aggregator.address) == (bond, 0)
    assert settle_all(w, rid) == {w.validators[0].address: (0, 0)}


def test_quorum_and_seats_are_bounded_at_deployment(anvil_url):
    # On Anvil: the embedded chain's tester cannot report why a constructor reverted.
    from dgpt.chain.client import Chain

    chain = Chain.connect(anvil_url)
    admin = dev_accounts(1)[0]
    for bad in (dict(validator_seats=4, validator_quorum=2), dict(validator_seats=3, validator_quorum=4),
                dict(challenge_window=0), dict(validator_penalty=200 * TOKEN)):
        expect_revert("InvalidParams", deploy, chain, admin, admin.address, replace(QUORUM, **bad))
    p = deploy(chain, admin, admin.address, QUORUM, tuple(a.address for a in dev_accounts(4)[1:4]))
    expect_revert("NoSeatLeft", p.set_validator, admin, dev_accounts(5)[4].address, True)


def test_dgpt_challenge_finds_the_evidence_from_the_chain_and_the_store(world, tmp_path):
    """The operator's path: the report in the store, `evidence_for` reads it and the chain."""
    from dgpt.report import Entry, Report

    w = world
    rid = three_revealed(w)
    tree, _, _ = dishonest(w, rid, "inflates a weight")
    store = LocalStore(tmp_path / "store")
    report = Report(round=rid, phase="finetune", base_model_cid=NEW_MODEL, task_spec_cid=REPORT, strategy={}, strategy_decisions={},
                    checks={}, labels=[], submissions=[Entry(e.oracle, NEW_MODEL, e.num_examples) for e in tree.leaves], merged=[],
                    non_revealers=[], slashes=[], validation={}, entries=tree)
    cid = store.put_bytes(report.to_bytes())
    w.protocol.publish(w.aggregator, rid, replace(result_of(tree), report_cid=cid))
    evidence, _ = evidence_for(w.protocol, store, rid)
    assert evidence.fault == "WEIGHT_ABOVE_COUNT"
    send_challenge(w.protocol, w.outsider, rid, evidence)
    assert w.protocol.round(rid).state == "voided"
