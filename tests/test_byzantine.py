"""Byzantine oracles in full protocol runs (embedded chain, real roles), on a small network."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from dgpt.data import RT_LABELS
from dgpt.aggregate import Strategy
from dgpt.report import Reason
from dgpt.store.local import LocalStore
from harness.byzantine import SimPlan, Simulator

PLAN = SimPlan(n=5, examples_per_oracle=120, validation_examples=150, test_examples=200, warmup_examples=400)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    root = tmp_path_factory.mktemp("byzantine")
    return Simulator(PLAN, LocalStore(root / "store"), root / "memo", log=lambda *a: None)


def cheater_entries(run, round_index):
    return [e for e in run.reports[round_index].submissions if e.oracle in run.cheaters]


@pytest.mark.parametrize("attack, reason", [("non_finite", Reason.NON_FINITE), ("wrong_shapes", Reason.MALFORMED),
                                            ("not_safetensors", Reason.MALFORMED), ("oversize", Reason.MALFORMED),
                                            ("scale", Reason.NORM_OUT_OF_BOUND)])
def test_objective_faults_are_slashed_and_unpaid(sim, attack, reason):
    run = sim.run(Strategy(), attack, f=2)
    assert run.cheaters and all(run.slashed[c] for c in run.cheaters)
    assert run.cheater_rewards == 0
    assert not any(run.slashed[o] for o in run.rewards if o not in run.cheaters)
    for i in range(PLAN.rounds):
        entries = cheater_entries(run, i)
        assert len(entries) == 2 and all(not e.accepted and e.reason is reason for e in entries)
        assert {(s.oracle, s.reason) for s in run.reports[i].slashes} == {(c, reason) for c in run.cheaters}


def test_copying_a_revealed_delta_is_refused_by_the_commitment(sim):
    run = sim.run(Strategy(), "copy", f=2)
    assert run.copy_refusals == ["CommitMismatch"] * 2 * PLAN.rounds
    assert all(run.slashed[c] for c in run.cheaters) and run.cheater_rewards == 0
    assert set(run.reports[0].non_revealers) == set(run.cheaters)


def test_replayed_delta_is_rejected_unpaid_and_not_slashed(sim):
    run = sim.run(Strategy(), "replay", f=2)
    last = cheater_entries(run, 1)
    assert [e.reason for e in last] == [Reason.REPLAYED, Reason.REPLAYED]
    assert not any(run.slashed[c] for c in run.cheaters)
    assert sum(e.reward for e in last) == 0


def test_sign_flip_and_zero_are_unpaid_and_not_slashed(sim):
    for attack, reasons in (("sign_flip", {Reason.DIVERGENT}), ("zero", {Reason.FREE_RIDING, Reason.REPLAYED})):
        run = sim.run(Strategy(), attack, f=2)
        assert {e.reason for i in range(PLAN.rounds) for e in cheater_entries(run, i)} <= reasons, attack
        assert run.cheater_rewards == 0 and not any(run.slashed[c] for c in run.cheaters)


def test_when_every_cheater_is_rejected_the_model_is_the_honest_only_model(sim):
    honest = sim.run(Strategy(), f=2, honest_only=True)
    attacked = sim.run(Strategy(), "non_finite", f=2)
    assert attacked.model_cid == honest.model_cid and attacked.accuracy == honest.accuracy


# Label flipping is only visible against a model that has learnt the task: this plan's genesis is
# trained on the public snippets the oracles do not hold (up to 6,000), each oracle holds 600.
LEARNT = SimPlan(n=5, examples_per_oracle=600, validation_examples=1000, test_examples=200, warmup_examples=6000)


def test_label_flipped_and_noise_deltas_are_rejected_unpaid_and_not_slashed(tmp_path):
    sim = Simulator(LEARNT, LocalStore(tmp_path / "store"), tmp_path / "memo", log=lambda *a: None)
    honest = sim.run(Strategy(), f=2, honest_only=True)
    assert sum(honest.rewards.values()) > 0  # the honest oracles were paid
    for attack, reasons in (("label_flip", {Reason.HARMFUL, Reason.DIVERGENT}), ("noise", {Reason.DIVERGENT})):
        run = sim.run(Strategy(), attack, f=2)
        for i in range(LEARNT.rounds):
            assert {e.reason for e in cheater_entries(run, i)} <= reasons, attack
        assert run.cheater_rewards == 0 and not any(run.slashed[c] for c in run.cheaters), attack
        assert run.model_cid == honest.model_cid, attack


def honest_of(run):
    return [o for o in run.rewards if o not in run.cheaters]


def test_honest_deltas_are_merged_and_paid_alike(sim):
    """Scoring each delta alone on a few hundred examples threw away half of the honest work
    (a loss rising by noise was "harmful"); the paired test merges it, and pays it evenly."""
    run = sim.run(Strategy(), f=2, honest_only=True)
    entries = [e for r in run.reports for e in r.submissions]
    assert sum(e.accepted for e in entries) >= 0.9 * len(entries)
    paid = sorted(run.rewards.values())
    assert paid[0] > 0 and paid[-1] <= 1.5 * paid[0]


@pytest.mark.parametrize("attack", ["head_flip", "scale3", "inflated_count"])
def test_soft_attacks_earn_no_more_than_honest_work(sim, attack):
    """Attacks that were paid the most under gain-alone scoring: a head-only flip, the honest delta
    times 3, a declared count of a million. Each earns at most what a merged honest delta earns,
    and an inflated count buys no more merge weight than the round's median count."""
    run = sim.run(Strategy(), attack, f=2)
    for r in run.reports:  # no cheater is paid more than the best-paid honest delta of its round
        best_honest = max(e.reward for e in r.submissions if e.oracle not in run.cheaters)
        assert max(e.reward for e in r.submissions if e.oracle in run.cheaters) <= 1.02 * best_honest
    for r in run.reports:
        weights = sorted(e.weight for e in r.submissions if e.accepted)
        assert all(e.weight <= weights[(len(weights) - 1) // 2] for e in r.submissions if e.oracle in run.cheaters)


def test_copies_from_two_addresses_share_one_contribution(sim):
    """Attack: one honest delta sent from two addresses, each nudged so its digest differs. The two
    are near-duplicates: they share one merge weight and one reward. (Unshared, each was paid a
    full contribution: two seats' pay for one piece of work.)"""
    run = sim.run(Strategy(), "sybil", f=2)
    for r in run.reports:
        copies = [e for e in r.submissions if e.oracle in run.cheaters]
        assert all(e.accepted for e in copies)
        assert copies[1].duplicate_of == copies[0].oracle and copies[0].duplicate_of is None
    for r in run.reports:  # the pair together earns at most what one merged honest delta earns
        best_honest = max(e.reward for e in r.submissions if e.oracle not in run.cheaters)
        assert sum(e.reward for e in r.submissions if e.oracle in run.cheaters) <= 1.02 * best_honest


def test_work_on_a_tenth_of_the_data_earns_a_fraction(sim, tmp_path):
    run = sim.run(Strategy(), "partial", f=2)
    assert run.paid_per_seat_round(run.cheaters) < 0.5 * run.paid_per_seat_round(honest_of(run))
    # what bench_byzantine prints of the run: the cheaters' and the honest oracles' verdicts apart, per round
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from bench_byzantine import verdicts

    rounds = verdicts(run, tmp_path)
    fine = [r for r in run.reports if r.phase == "finetune"]
    assert [v["round"] for v in rounds] == [r.round for r in fine] and fine
    for v, r in zip(rounds, fine):
        assert len(v["cheaters"]["ranking_z"]) == 2 and len(v["honest"]["ranking_z"]) == len(r.submissions) - 2
        assert v["cheaters"]["merged"] + v["honest"]["merged"] == len(r.merged)
        assert (tmp_path / f"report-round-{r.round}.json").read_bytes() == r.to_bytes()


def test_a_headless_genesis_scores_with_the_initial_head(tmp_path):
    """A new network's genesis has no head: the bench printed its accuracy as None and crashed. It
    scores as the round's base does: with the task's initial head, where every oracle starts."""
    from dgpt.model import bundle_from_state, hidden_size, initial_head, read_state
    from dgpt.train import evaluate

    plan = SimPlan(genesis="untrained", test_examples=200)
    sim = Simulator(plan, LocalStore(tmp_path / "store"), tmp_path / "memo", log=lambda *a: None)
    task = plan.task()
    state, meta = read_state(sim.genesis)
    assert "head.weight" not in state
    state["head.weight"] = initial_head(len(RT_LABELS), hidden_size(meta), task.seed)
    expected = evaluate(bundle_from_state(sim.genesis, state, RT_LABELS), sim.data.test, task)["accuracy"]
    acc = sim.genesis_accuracy()
    assert acc is not None and acc == expected and 0 < acc < 1


def test_a_new_network_pre_trains_through_the_protocol_and_its_cheaters_attack_the_fine_tuning_rounds(tmp_path):
    """harness.byzantine.new_network: the bare model, two L1 rounds, then fine-tuning; a cheater
    does honest L1 work (paid) and attacks only the fine-tuning rounds, whose validation slices are
    four times a pre-training round's."""
    from harness.byzantine import new_network

    plan = new_network(n=3, pretrain_rounds=2, rounds=2, examples_per_oracle=40, validation_examples=140, test_examples=50)
    sim = Simulator(plan, LocalStore(tmp_path / "store"), tmp_path / "memo", log=lambda *a: None)
    run = sim.run(Strategy(), "zero", f=1)
    assert [r.phase for r in run.reports] == ["pretrain", "pretrain", "finetune", "finetune"]
    assert [r.validation["n"] for r in run.reports] == [14, 14, 56, 56]
    assert run.attack_rounds == [3, 4]
    for r in run.reports:
        (cheat,) = cheater_entries(run, r.round - 1)
        if r.phase == "pretrain":
            assert cheat.accepted and cheat.reward > 0
        else:
            assert cheat.reason in (Reason.FREE_RIDING, Reason.REPLAYED) and cheat.reward == 0  # a second zero delta is a replay
    # honest-only: the cheater's seat does the same L1 work and sits the fine-tuning rounds out, so
    # with every attack rejected the two runs publish the same model
    honest = sim.run(Strategy(), f=1, honest_only=True)
    seat = run.cheaters[0]
    assert [any(e.oracle == seat for e in r.submissions) for r in honest.reports] == [True, True, False, False]
    assert seat not in honest.rewards and honest.model_cid == run.model_cid


def test_the_first_fine_tuning_round_takes_the_plans_first_epochs():
    """SimPlan.first_epochs (bench_byzantine --first-epochs): the first fine-tuning round's spec
    only; the pre-training rounds and the later fine-tuning rounds keep one epoch."""
    from harness.byzantine import SimPlan, new_network

    assert [(t.phase, t.epochs) for t in new_network().tasks()] == [("pretrain", 1)] * 4 + [("finetune", 2), ("finetune", 1), ("finetune", 1)]
    assert [t.epochs for t in new_network(first_epochs=1).tasks()] == [1] * 7
    assert [t.epochs for t in SimPlan().tasks()] == [1, 1]
    assert [t.epochs for t in SimPlan(rounds=1, first_epochs=3).tasks()] == [3]
