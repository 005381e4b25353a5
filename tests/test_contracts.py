"""The contract suite: the protocol's happy path and every revert path, on the embedded chain and Anvil."""

from __future__ import annotations

import pytest

from dgpt.chain.client import ContractRevert
from dgpt.chain.protocol import TOKEN, SlashReason, Status
from dgpt.cid import raw_cid
from dgpt.commitments import EntriesTree, Result, SlashesTree, commit_hash

MANIFEST = raw_cid(b"dataset manifest")
DATASET_ROOT = bytes.fromhex("11" * 32)
BASE = raw_cid(b"base model")
TASK = raw_cid(b"task spec")
NEW_MODEL = raw_cid(b"merged model")
REPORT = raw_cid(b"aggregation report")
SALT = bytes.fromhex("5a" * 32)
COMMIT_S, REVEAL_S = 600, 600


def delta_cid(oracle) -> str:
    return raw_cid(b"delta of " + oracle.address.encode())


def register(w, oracle, num_examples=100, stake=None):
    return w.protocol.register(oracle, stake or w.params.min_stake, MANIFEST, DATASET_ROOT, num_examples)


def open_round(w, budget=100 * TOKEN, base=BASE) -> int:
    return w.protocol.open_round(w.aggregator, base, TASK, COMMIT_S, REVEAL_S, budget)


def commit(w, oracle, round_id, num_examples=50, salt=SALT):
    h = commit_hash(round_id, oracle.address, delta_cid(oracle), salt, num_examples)
    return w.protocol.commit(oracle, round_id, h)


def reveal(w, oracle, round_id, num_examples=50, salt=SALT):
    return w.protocol.reveal(oracle, round_id, delta_cid(oracle), salt, num_examples)


def to_reveal_phase(w):
    w.chain.time_travel(COMMIT_S + 1)


def past_reveal_deadline(w):
    w.chain.time_travel(COMMIT_S + REVEAL_S + 1)


def entries(w, round_id, rewards: dict | None = None, slashes: list | None = None) -> EntriesTree:
    """The entries of a report that pays `rewards` (merged with the revealed count as weight) and
    slashes `slashes`, over the round's revealed submissions, plus any payee that revealed nothing."""
    rewards, slashed = rewards or {}, dict(slashes or [])
    rows = []
    for e in w.protocol.events("Revealed", roundId=round_id):
        o, n = e["args"]["oracle"], e["args"]["numExamples"]
        reward = rewards.get(o, 0)
        rows.append((o, w.protocol.submission(round_id, o).delta_cid, n, n if reward else 0, reward, slashed.get(o)))
    revealed = {r[0] for r in rows}
    rows += [(o, raw_cid(b"nothing"), 1, 1, v, None) for o, v in rewards.items() if o not in revealed]
    return EntriesTree.build(rows)


def result_of(tree: EntriesTree, slashes: list | None = None, total: int | None = None, count: int | None = None) -> Result:
    st = SlashesTree.build(slashes or [])
    return Result(NEW_MODEL, REPORT, tree.root, len(tree.leaves) if count is None else count, tree.total if total is None else total,
                  st.root, len(st.oracles), bytes(32))


def publish(w, round_id, rewards: dict | None = None, caller=None, slashes: list | None = None, count: int | None = None):
    tree = entries(w, round_id, rewards, slashes)
    w.protocol.publish(caller or w.aggregator, round_id, result_of(tree, slashes, count=count))
    return tree


def finalize(w, round_id):
    """Past the challenge window, anyone finalizes (no quorum in this suite's deployment)."""
    w.chain.time_travel(w.params.challenge_window + 1)
    w.protocol.finalize(w.outsider, round_id)


def publish_final(w, round_id, rewards: dict | None = None, slashes: list | None = None, count: int | None = None):
    tree = publish(w, round_id, rewards, slashes=slashes, count=count)
    finalize(w, round_id)
    return tree


def expect_revert(error: str, fn, *args, **kwargs) -> ContractRevert:
    with pytest.raises(ContractRevert) as info:
        fn(*args, **kwargs)
    assert info.value.error == error, str(info.value)
    return info.value


def run_round(w, revealers, committers=()):
    """Open a round, commit with `revealers` + `committers`, reveal with `revealers`, reach the publish window."""
    rid = open_round(w)
    for o in list(revealers) + list(committers):
        commit(w, o, rid)
    to_reveal_phase(w)
    for o in revealers:
        reveal(w, o, rid)
    w.chain.time_travel(REVEAL_S)
    return rid


# --- the whole protocol, end to end -----------------------------------------------------------------


def test_full_round_rewards_and_slashing(world):
    w = world
    a, b, c = w.oracles[:3]
    for o in (a, b, c):
        register(w, o)
    rid = run_round(w, revealers=[a, b], committers=[c])
    assert w.protocol.submission(rid, a.address).status == Status.REVEALED
    assert w.protocol.submission(rid, a.address).delta_cid == delta_cid(a)
    assert w.protocol.submission(rid, c.address).status == Status.COMMITTED

    tree = publish(w, rid, {a.address: 30 * TOKEN, b.address: 10 * TOKEN})
    info = w.protocol.round(rid)
    assert info.state == "proposed" and info.new_model_cid == NEW_MODEL and info.report_cid == REPORT
    assert info.rewards_total == 40 * TOKEN and info.entries_root == tree.root
    assert w.protocol.latest_model() is None  # nothing takes effect before the round is final
    e = tree.of(a.address)
    expect_revert("NotFinal", w.protocol.claim, a, rid, e, tree.proof(e.index))
    expect_revert("ChallengeWindowOpen", w.protocol.finalize, w.outsider, rid)
    finalize(w, rid)
    assert w.protocol.round(rid).state == "final" and w.protocol.latest_model() == NEW_MODEL

    before = w.protocol.balance_of(a.address)
    w.protocol.claim(a, rid, e, tree.proof(e.index))
    assert w.protocol.balance_of(a.address) == before + 30 * TOKEN
    assert w.protocol.is_claimed(rid, e.index)

    # anyone may slash the non-revealer; the penalty is burned
    supply = w.protocol.token.functions.totalSupply().call()
    w.protocol.slash_non_revealer(w.outsider, rid, c.address)
    assert w.protocol.oracle(c.address).stake == w.params.min_stake - w.params.non_reveal_penalty
    assert w.protocol.token.functions.totalSupply().call() == supply - w.params.non_reveal_penalty
    assert w.protocol.submission(rid, c.address).status == Status.SLASHED
    slashed = w.protocol.events("Slashed")
    assert [(e["args"]["oracle"], e["args"]["reason"]) for e in slashed] == [(c.address, SlashReason.NO_REVEAL)]

    # the next round must build on the published model
    expect_revert("BaseModelNotLatest", open_round, w, base=BASE)
    assert open_round(w, base=NEW_MODEL) == rid + 1


def test_events_record_every_step_with_full_cids(world):
    w = world
    a = w.oracles[0]
    register(w, a)
    rid = run_round(w, revealers=[a])
    tree = publish_final(w, rid, {a.address: TOKEN})
    (opened,) = w.protocol.events("RoundOpened")
    assert opened["args"]["roundId"] == rid and len(opened["args"]["baseModelCid"]) == 36
    (revealed,) = w.protocol.events("Revealed", oracle=a.address)
    assert revealed["args"]["numExamples"] == 50
    (published,) = w.protocol.events("Published")
    assert published["args"]["result"]["rewardsTotal"] == TOKEN
    assert published["args"]["resultHash"] == result_of(tree).hash(rid) == w.protocol.round(rid).result_hash
    (final,) = w.protocol.events("Finalized")
    assert final["args"]["rewardsTotal"] == TOKEN and len(final["args"]["newModelCid"]) == 36
    assert len(w.protocol.events("OracleRegistered")) == 1 and len(w.protocol.events("Committed")) == 1


def test_unbond_and_withdraw_after_period(world):
    w = world
    a = w.oracles[0]
    register(w, a, stake=150 * TOKEN)
    w.protocol.request_unbond(a, 50 * TOKEN)
    expect_revert("UnbondingNotReady", w.protocol.withdraw, a)
    w.chain.time_travel(w.params.unbonding_period + 1)
    before = w.protocol.balance_of(a.address)
    w.protocol.withdraw(a)
    assert w.protocol.balance_of(a.address) == before + 50 * TOKEN
    assert w.protocol.oracle(a.address).stake == 100 * TOKEN
    expect_revert("NothingToWithdraw", w.protocol.withdraw, a)


def test_add_stake_and_update_commitment(world):
    w = world
    a = w.oracles[0]
    register(w, a)
    w.protocol.add_stake(a, 5 * TOKEN)
    assert w.protocol.oracle(a.address).stake == w.params.min_stake + 5 * TOKEN
    other = raw_cid(b"another manifest")
    w.protocol.update_commitment(a, other, bytes(32), 7)
    info = w.protocol.oracle(a.address)
    assert (info.manifest_cid, info.num_examples) == (other, 7)


def test_a_slash_is_the_published_reports_once_at_its_fixed_penalty(world):
    w = world
    a, b = w.oracles[:2]
    register(w, a)
    register(w, b)
    rid = run_round(w, revealers=[a, b])
    slashes = SlashesTree.build([(a.address, SlashReason.NON_FINITE)])
    proof = slashes.proof(a.address, SlashReason.NON_FINITE)
    expect_revert("NotFinal", w.protocol.slash, w.outsider, rid, a.address, SlashReason.NON_FINITE, proof)
    publish(w, rid, slashes=[(a.address, SlashReason.NON_FINITE)])
    expect_revert("NotFinal", w.protocol.slash, w.outsider, rid, a.address, SlashReason.NON_FINITE, proof)
    finalize(w, rid)
    # only what the report committed to: not another reason, not another oracle
    expect_revert("SlashNotInReport", w.protocol.slash, w.aggregator, rid, a.address, SlashReason.MALFORMED, proof)
    expect_revert("SlashNotInReport", w.protocol.slash, w.aggregator, rid, b.address, SlashReason.NON_FINITE, proof)
    expect_revert("InvalidSlashReason", w.protocol.slash, w.aggregator, rid, a.address, SlashReason.NO_REVEAL, proof)
    w.protocol.slash(w.outsider, rid, a.address, SlashReason.NON_FINITE, proof)  # anyone executes it
    assert w.protocol.oracle(a.address).stake == w.params.min_stake - w.params.non_finite_penalty
    expect_revert("NotSlashable", w.protocol.slash, w.aggregator, rid, a.address, SlashReason.NON_FINITE, proof)


def test_slash_reaches_stake_unbonded_after_the_round_but_not_after_the_window(world):
    w = world
    a, b = w.oracles[:2]
    register(w, a)
    register(w, b)
    rid = run_round(w, revealers=[a, b])
    leaves = [(a.address, SlashReason.MALFORMED), (b.address, SlashReason.MALFORMED)]
    publish_final(w, rid, slashes=leaves)
    tree = SlashesTree.build(leaves)
    w.protocol.request_unbond(a, w.params.min_stake)  # all of it, right after the round is final
    w.protocol.slash(w.aggregator, rid, a.address, SlashReason.MALFORMED, tree.proof(a.address, SlashReason.MALFORMED))
    info = w.protocol.oracle(a.address)
    assert (info.stake, info.unbonding) == (0, w.params.min_stake - w.params.malformed_penalty)
    w.chain.time_travel(w.params.slash_window + 1)
    expect_revert("SlashWindowClosed", w.protocol.slash, w.aggregator, rid, b.address, SlashReason.MALFORMED,
                  tree.proof(b.address, SlashReason.MALFORMED))


# --- revert paths ---------------------------------------------------------------------------------


def test_register_reverts(world):
    w = world
    a = w.oracles[0]
    expect_revert("StakeBelowMinimum", register, w, a, stake=w.params.min_stake - 1)
    expect_revert("ZeroExamples", register, w, a, num_examples=0)
    bad_cid = b"\x01\x71\x12\x20" + bytes(32)  # dag-cbor: not a codec the protocol accepts
    expect_revert(
        "InvalidCid",
        w.chain.transact,
        a,
        w.protocol.contract.functions.register(w.params.min_stake, bad_cid, DATASET_ROOT, 1),
    )
    register(w, a)
    expect_revert("AlreadyRegistered", register, w, a)


def test_commit_by_unregistered_oracle(world):
    rid = open_round(world)
    expect_revert("NotRegistered", commit, world, world.outsider, rid)


def test_commit_by_unstaked_oracle(world):
    w = world
    a = w.oracles[0]
    register(w, a)
    w.protocol.request_unbond(a, 1)  # stake falls below the minimum
    rid = open_round(w)
    expect_revert("StakeBelowMinimum", commit, w, a, rid)


def test_double_commit(world):
    w = world
    a = w.oracles[0]
    register(w, a)
    rid = open_round(w)
    commit(w, a, rid)
    expect_revert("AlreadyCommitted", commit, w, a, rid)


def test_commit_to_unknown_round_and_empty_hash(world):
    w = world
    a = w.oracles[0]
    register(w, a)
    expect_revert("UnknownRound", commit, w, a, 1)
    rid = open_round(w)
    expect_revert("EmptyCommitHash", w.protocol.commit, a, rid, bytes(32))


def test_late_commit(world):
    w = world
    a = w.oracles[0]
    register(w, a)
    rid = open_round(w)
    to_reveal_phase(w)
    expect_revert("CommitClosed", commit, w, a, rid)


def test_reveal_that_does_not_match(world):
    w = world
    a = w.oracles[0]
    register(w, a)
    rid = open_round(w)
    commit(w, a, rid)
    to_reveal_phase(w)
    expect_revert("CommitMismatch", reveal, w, a, rid, salt=bytes(32))
    expect_revert("CommitMismatch", reveal, w, a, rid, num_examples=49)


def test_reveal_before_commit_deadline_without_commit_and_twice(world):
    w = world
    a, b = w.oracles[:2]
    register(w, a)
    register(w, b)
    rid = open_round(w)
    commit(w, a, rid)
    expect_revert("RevealNotOpen", reveal, w, a, rid)
    to_reveal_phase(w)
    expect_revert("NotCommitted", reveal, w, b, rid)
    reveal(w, a, rid)
    expect_revert("AlreadyRevealed", reveal, w, a, rid)


def test_reveal_count_above_commitment(world):
    w = world
    a = w.oracles[0]
    register(w, a, num_examples=10)
    rid = open_round(w)
    commit(w, a, rid, num_examples=11)
    to_reveal_phase(w)
    expect_revert("ExampleCountExceedsCommitment", reveal, w, a, rid, num_examples=11)


def test_late_reveal(world):
    w = world
    a = w.oracles[0]
    register(w, a)
    rid = open_round(w)
    commit(w, a, rid)
    past_reveal_deadline(w)
    expect_revert("RevealClosed", reveal, w, a, rid)


def test_publish_before_reveal_deadline(world):
    w = world
    rid = open_round(w)
    to_reveal_phase(w)
    expect_revert("RevealNotOver", publish, w, rid)


def test_publish_by_non_aggregator_twice_and_over_budget(world):
    w = world
    rid = open_round(w, budget=5 * TOKEN)
    past_reveal_deadline(w)
    expect_revert("AccessControlUnauthorizedAccount", publish, w, rid, caller=w.outsider)
    expect_revert("RewardsExceedBudget", publish, w, rid, {w.oracles[0].address: 6 * TOKEN}, count=0)
    expect_revert("EntryCountMismatch", publish, w, rid, count=1)
    publish(w, rid)
    expect_revert("AlreadyPublished", publish, w, rid)


def test_open_round_reverts(world):
    w = world
    expect_revert("AccessControlUnauthorizedAccount", w.protocol.open_round, w.outsider, BASE, TASK, 600, 600, 0)
    expect_revert("InvalidDurations", w.protocol.open_round, w.aggregator, BASE, TASK, 0, 600, 0)
    rid = open_round(w)
    expect_revert("PreviousRoundUnpublished", open_round, w)
    assert w.protocol.current_round() == rid


def test_stake_locked_by_open_submission(world):
    w = world
    a = w.oracles[0]
    register(w, a, stake=150 * TOKEN)
    w.protocol.request_unbond(a, 50 * TOKEN)
    rid = open_round(w)
    commit(w, a, rid)
    w.chain.time_travel(w.params.unbonding_period + 1)
    err = expect_revert("StakeLocked", w.protocol.withdraw, a)
    assert err.args_["roundId"] == rid
    expect_revert("StakeLocked", w.protocol.request_unbond, a, TOKEN)
    expect_revert("StakeLocked", w.protocol.update_commitment, a, MANIFEST, DATASET_ROOT, 1)
    past_reveal_deadline(w)
    publish(w, rid)
    expect_revert("StakeLocked", w.protocol.withdraw, a)  # a proposal is not final
    finalize(w, rid)
    w.protocol.withdraw(a)  # unlocked once the round is final
    assert w.protocol.oracle(a.address).unbonding == 0


def test_unbond_reverts(world):
    w = world
    a = w.oracles[0]
    expect_revert("NotRegistered", w.protocol.request_unbond, a, 1)
    register(w, a)
    expect_revert("InsufficientStake", w.protocol.request_unbond, a, w.params.min_stake + 1)
    expect_revert("ZeroAmount", w.protocol.request_unbond, a, 0)


def test_slash_by_non_role_and_non_revealer_rules(world):
    w = world
    a, b = w.oracles[:2]
    register(w, a)
    register(w, b)
    rid = open_round(w)
    commit(w, a, rid)
    commit(w, b, rid)
    to_reveal_phase(w)
    reveal(w, a, rid)
    expect_revert("NotFinal", w.protocol.slash, w.outsider, rid, a.address, SlashReason.MALFORMED, [])
    expect_revert("RevealNotOver", w.protocol.slash_non_revealer, w.outsider, rid, b.address)
    w.chain.time_travel(REVEAL_S)
    expect_revert("NotSlashable", w.protocol.slash_non_revealer, w.outsider, rid, a.address)
    expect_revert("NotSlashable", w.protocol.slash_non_revealer, w.outsider, rid, w.outsider.address)
    w.protocol.slash_non_revealer(w.outsider, rid, b.address)
    expect_revert("NotSlashable", w.protocol.slash_non_revealer, w.outsider, rid, b.address)


def test_claim_wrong_proof_twice_and_before_final(world):
    w = world
    a, b, c = w.oracles[:3]
    for o in (a, b, c):
        register(w, o)
    rid = run_round(w, revealers=[a, b, c])
    tree = entries(w, rid, {a.address: 3 * TOKEN, b.address: 2 * TOKEN, c.address: TOKEN})
    ea, eb = tree.of(a.address), tree.of(b.address)
    expect_revert("NotFinal", w.protocol.claim, a, rid, ea, [])
    w.protocol.publish(w.aggregator, rid, result_of(tree))
    finalize(w, rid)
    expect_revert("InvalidProof", w.protocol.claim, a, rid, ea, tree.proof(eb.index))
    from dataclasses import replace

    expect_revert("InvalidProof", w.protocol.claim, a, rid, replace(ea, reward=4 * TOKEN), tree.proof(ea.index))
    expect_revert("NotEligible", w.protocol.claim, b, rid, ea, tree.proof(ea.index))  # a's entry, b calling
    w.protocol.claim(a, rid, ea, tree.proof(ea.index))
    expect_revert("AlreadyClaimed", w.protocol.claim, a, rid, ea, tree.proof(ea.index))


def test_claims_stop_at_the_minted_total(world):
    """A root promising more than was minted cannot reach the oracles' stake."""
    w = world
    a = w.oracles[0]
    register(w, a)
    rid = run_round(w, revealers=[a])
    tree = entries(w, rid, {a.address: 10 * TOKEN})
    w.protocol.publish(w.aggregator, rid, result_of(tree, total=4 * TOKEN))
    finalize(w, rid)
    e = tree.of(a.address)
    expect_revert("RewardsExhausted", w.protocol.claim, a, rid, e, tree.proof(e.index))


def test_calls_while_paused(world):
    w = world
    a, b = w.oracles[:2]
    register(w, a, stake=150 * TOKEN)
    w.protocol.request_unbond(a, 50 * TOKEN)
    rid = open_round(w)
    expect_revert("AccessControlUnauthorizedAccount", w.protocol.pause, w.outsider)
    w.protocol.pause(w.admin)
    expect_revert("EnforcedPause", register, w, b)
    expect_revert("EnforcedPause", commit, w, a, rid)
    expect_revert("EnforcedPause", w.protocol.add_stake, a, 1)
    expect_revert("EnforcedPause", w.protocol.request_unbond, a, 1)
    w.chain.time_travel(w.params.unbonding_period + 1)
    w.protocol.withdraw(a)  # matured unbonding leaves even while paused
    assert w.protocol.oracle(a.address).unbonding == 0
    expect_revert("EnforcedPause", publish, w, rid)
    w.protocol.unpause(w.admin)
    # the time paused was given back to the round: its commit window is still open
    commit(w, a, rid)
    past_reveal_deadline(w)
    publish_final(w, rid)


def test_a_pause_in_the_reveal_window_cannot_make_committers_slashable(world):
    """Attack: the admin pauses during the reveal window until it has passed, so every committer
    who could not reveal becomes slashable as a non-revealer. Time paused now does not count."""
    w = world
    a = w.oracles[0]
    register(w, a)
    rid = open_round(w)
    commit(w, a, rid)
    to_reveal_phase(w)
    w.protocol.pause(w.admin)
    w.chain.time_travel(REVEAL_S + 3600)
    w.protocol.unpause(w.admin)
    expect_revert("RevealNotOver", w.protocol.slash_non_revealer, w.outsider, rid, a.address)
    reveal(w, a, rid)
    assert w.protocol.submission(rid, a.address).status == Status.REVEALED


def test_nobody_mints_after_deployment(world):
    w = world
    token = w.protocol.token
    assert token.functions.totalSupply().call() == w.params.genesis_supply
    assert token.functions.minter().call() == w.protocol.contract.address
    for key in (w.admin, w.aggregator, w.outsider):
        expect_revert("NotMinter", w.chain.transact, key, token.functions.mint(key.address, 1))
    expect_revert("MinterAlreadySet", w.chain.transact, w.admin, token.functions.setMinter(w.admin.address))
    expect_revert("NotDeployer", w.chain.transact, w.outsider, token.functions.setMinter(w.outsider.address))


# --- scenarios of the security review (issue 11): each worked before, each must fail now -------------


def test_the_aggregator_cannot_mint_the_rest_of_the_cap_to_itself(world):
    w = world
    supply = w.protocol.token.functions.totalSupply().call()
    agg = w.aggregator
    # Start at the beginning of an emission period: the rounds below (with their challenge windows)
    # must all fall in one, whatever clock the shared chain has reached.
    period = w.params.emission_period
    w.chain.time_travel(period - w.chain.now() % period + 1)
    # a budget of the rest of the cap, one-second windows
    expect_revert("BudgetOverRoundCeiling", w.protocol.open_round, agg, BASE, TASK, COMMIT_S, REVEAL_S, w.params.cap - supply)
    expect_revert("InvalidDurations", w.protocol.open_round, agg, BASE, TASK, 1, 1, w.params.max_reward_per_round)
    # within the ceiling, a one-leaf root paying itself: it never revealed, so it cannot claim
    rid = open_round(w, budget=w.params.max_reward_per_round)
    past_reveal_deadline(w)
    tree = entries(w, rid, {agg.address: w.params.max_reward_per_round - 3 * TOKEN})
    w.protocol.publish(agg, rid, result_of(tree, count=0))
    finalize(w, rid)
    e = tree.of(agg.address)
    expect_revert("NotEligible", w.protocol.claim, agg, rid, e, tree.proof(e.index))
    # and the rounds of one emission period share one ceiling
    opened = w.params.max_reward_per_round
    rid = rid
    while opened + w.params.max_reward_per_round <= w.params.max_reward_per_period:
        rid = w.protocol.open_round(agg, NEW_MODEL, TASK, COMMIT_S, REVEAL_S, w.params.max_reward_per_round)
        opened += w.params.max_reward_per_round
        past_reveal_deadline(w)
        publish_final(w, rid)
    expect_revert("BudgetOverPeriodCeiling", w.protocol.open_round, agg, NEW_MODEL, TASK, COMMIT_S, REVEAL_S, w.params.max_reward_per_round)


def test_a_declared_count_is_bounded_at_registration(world):
    w = world
    a = w.oracles[0]
    expect_revert("TooManyExamples", register, w, a, num_examples=2**64 - 1)
    register(w, a, num_examples=w.params.max_examples)
    expect_revert("TooManyExamples", w.protocol.update_commitment, a, MANIFEST, DATASET_ROOT, w.params.max_examples + 1)


def test_an_unpublished_round_is_aborted_and_unlocks_the_stakes(world):
    w = world
    a = w.oracles[0]
    register(w, a, stake=150 * TOKEN)
    expect_revert("InvalidDurations", w.protocol.open_round, w.aggregator, BASE, TASK, 2**41, REVEAL_S, 0)  # would wrap uint40
    rid = run_round(w, revealers=[a])
    expect_revert("StakeLocked", w.protocol.request_unbond, a, 50 * TOKEN)
    expect_revert("PublishNotOver", w.protocol.abort_round, w.outsider, rid)
    w.chain.time_travel(w.params.publish_window + 1)
    expect_revert("PublishClosed", publish, w, rid)
    w.protocol.abort_round(w.outsider, rid)
    assert w.protocol.round(rid).state == "aborted"
    w.protocol.request_unbond(a, 50 * TOKEN)  # unlocked
    expect_revert("RoundWasAborted", w.protocol.abort_round, w.outsider, rid)
    assert open_round(w, base=BASE) == rid + 1  # the next round builds on the same model


def test_a_reverting_call_sends_no_transaction(world):
    w = world
    a = w.oracles[0]
    nonce = w.chain.w3.eth.get_transaction_count(a.address)
    block = w.chain.w3.eth.block_number
    expect_revert("UnknownRound", commit, w, a, 7)
    assert w.chain.w3.eth.get_transaction_count(a.address) == nonce
    assert w.chain.w3.eth.block_number == block


def test_commit_hash_matches_the_contract(world):
    w = world
    a = w.oracles[0]
    cid = delta_cid(a)
    from dgpt.cid import cid_to_bytes

    onchain = w.protocol.contract.functions.commitHashOf(3, a.address, cid_to_bytes(cid), SALT, 42).call()
    assert onchain == commit_hash(3, a.address, cid, SALT, 42)
