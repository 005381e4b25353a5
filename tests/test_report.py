"""The report type and the aggregation rules: pure, no chain."""

from __future__ import annotations

from fractions import Fraction

import pytest

from dgpt.cid import raw_cid
from dgpt.errors import DGPTError
from dgpt.report import Entry, Reason, Report, Slash
from dgpt.rules import (clip_factors, cosine_floor, duplicate_groups, max_delta_bytes, paired_gain, reward_shares,
                        significantly_harmful)

A, B, C = "0x" + "11" * 20, "0x" + "22" * 20, "0x" + "33" * 20


def test_reward_shares_follow_contributions_and_cap_any_one_oracle():
    shares = reward_shares([(A, 0.3), (B, 0.1), (C, -0.2)], 1000, Fraction(1))
    assert shares == {A: 750, B: 250}
    odd = reward_shares([(A, 1.0), (B, 1.0), (C, 1.0)], 100)
    assert sum(odd.values()) <= 100 and len(set(odd.values())) == 1
    assert reward_shares([(A, 0.0), (B, 0.0)], 400) == {}  # nothing contributed: nothing paid
    assert reward_shares([], 100) == {} and reward_shares([(A, 1.0)], 0) == {}
    # Attack: the only surviving oracle would take the whole budget; it takes at most a third.
    assert reward_shares([(A, 0.5)], 900) == {A: 300}
    assert reward_shares([(A, 0.9), (B, 0.1)], 900) == {A: 300, B: 90}


def test_the_paired_test_needs_evidence_to_call_a_delta_harmful():
    import random
    import statistics

    rng = random.Random(0)
    before = [rng.randrange(0, 2_000_000) for _ in range(400)]
    # a delta that moves every example's loss by noise of mean zero: not harmful
    noisy = [b + rng.randrange(-50_000, 50_001) for b in before]
    gain, se = paired_gain(before, noisy)
    d = [b - a for b, a in zip(before, noisy)]
    assert gain == pytest.approx(statistics.mean(d) / 1e6) and se == pytest.approx(statistics.stdev(d) / 20 / 1e6)
    assert not significantly_harmful(gain, se)
    # one that raises every loss by 0.01 on top of the same noise: harmful
    worse = [a + 10_000 for a in noisy]
    assert significantly_harmful(*paired_gain(before, worse))
    assert paired_gain([5], [3]) == (2e-06, 0.0)
    with pytest.raises(ValueError):
        paired_gain([1, 2], [1])


def test_clipping_bounds_each_part_by_the_round_median():
    assert clip_factors([2.4, 2.5, 7.5, 2.3], 1.0) == [1.0, 2.4 / 2.5, 2.4 / 7.5, 1.0]
    assert clip_factors([2.4, 2.5, 7.5, 2.3], 1.5) == [1.0, 1.0, 1.5 * 2.4 / 7.5, 1.0]
    assert clip_factors([1.0, 1.0]) == [1.0, 1.0] and clip_factors([]) == []


def test_near_duplicates_form_one_group_whoever_sends_them():
    cos = [[1.0, 0.8, 0.999, 0.7], [0.8, 1.0, 0.8, 0.995], [0.999, 0.8, 1.0, 0.7], [0.7, 0.995, 0.7, 1.0]]
    assert duplicate_groups(cos) == [0, 1, 0, 1]
    assert duplicate_groups([[1.0, 0.9], [0.9, 1.0]]) == [0, 1]


def test_cosine_floor_is_relative_to_the_round():
    assert cosine_floor([0.9, 0.8, 0.1], 0.5) == (0.4, 0.8)
    assert cosine_floor([-0.5, -0.2, -0.1], 0.5) == (0.0, -0.2)  # never negative
    assert cosine_floor([], 0.5) == (0.5, 1.0)


def test_max_delta_bytes_is_twice_the_base_plus_a_mebibyte():
    assert max_delta_bytes(1000) == 2000 + (1 << 20)


def test_a_report_round_trips_through_its_bytes():
    report = Report(
        round=3, phase="finetune", base_model_cid="bafybase", task_spec_cid="bafytask", strategy={"name": "fedavg"},
        strategy_decisions={}, checks={"max_update_norm": 20.0}, labels=["rotten", "fresh"],
        submissions=[Entry(A, raw_cid(b"a"), 5, accepted=True, norm=1.5, loss_gain=0.2, weight=5, reward=70),
                     Entry(C, raw_cid(b"c"), 5, reason=Reason.NON_FINITE, detail="x holds NaN")],
        merged=[A], non_revealers=[B], slashes=[Slash(C, Reason.NON_FINITE), Slash(B, Reason.NO_REVEAL)],
        validation={"n": 4, "root": "0x" + "44" * 32},
    )
    data = report.to_bytes()
    back = Report.from_bytes(data)
    from dataclasses import replace

    assert replace(back, entries=None) == report and back.to_bytes() == data
    assert back.entries == report.derived_entries()  # the leaves as published: what claims and challenges prove
    assert back.entry(C).reason is Reason.NON_FINITE and back.entry(C).reason.slash_reason == 2
    assert back.rewards_total == 70
    tree = back.entries_tree
    assert [(e.oracle, e.reward, e.weight, e.slashed, e.reason) for e in tree.leaves] == [(A, 70, 5, False, 0), (C, 0, 0, True, 2)]
    result = back.result(raw_cid(b"model"), raw_cid(b"report"))
    assert (result.entries_root, result.entry_count, result.rewards_total, result.slash_count) == (tree.root, 2, 70, 1)
    assert result.validation_root == b"\x44" * 32
    with pytest.raises(DGPTError, match="not a dgpt-report/9 document"):
        Report.from_bytes(b'{"format": "dgpt-report/1"}')
    with pytest.raises(DGPTError, match="unreadable report"):
        Report.from_bytes(b"[1, 2")


def test_a_declared_count_cannot_buy_the_merge():
    """Attack: one oracle declares 2**64-1 examples; its weight is capped at the round's median
    count, so it weighs no more than a typical oracle."""
    from dgpt.rules import MAX_WEIGHT_RATIO, merge_weights

    weights = merge_weights([600, 2**64 - 1, 580, 610, 590])
    assert MAX_WEIGHT_RATIO == 1 and weights == [600, 600, 580, 600, 590]
    assert merge_weights([10, 20]) == [10, 10] and merge_weights([]) == []
    assert max(weights) / sum(weights) < 0.21
    # the cap is the typical count of the round's well-formed submissions when given, not of the merged few
    assert merge_weights([270, 5872], [230, 270, 419, 498, 823, 833, 1217, 5872]) == [270, 498]
    assert merge_weights([600, 2**64 - 1], [600, 2**64 - 1, 580, 610, 590]) == [600, 600]


def test_a_reports_verdicts_count_the_given_oracles_only():
    """What bench_byzantine prints per round for the cheaters and the honest oracles apart: merged,
    accepted in the merge, rejected by reason, each delta's ranking z and head cosine, sorted."""
    D = "0x" + "44" * 20
    report = Report(
        round=5, phase="finetune", base_model_cid="bafybase", task_spec_cid="bafytask", strategy={"name": "fedavg"},
        strategy_decisions={}, checks={}, labels=["rotten", "fresh"],
        submissions=[Entry(A, "a", 5, accepted=True, ranking_gain=0.03, ranking_gain_se=0.01, part_cosine={"backbone": 0.9, "head": 0.5}),
                     Entry(B, "b", 5, accepted=True, ranking_gain=0.01, ranking_gain_se=0.02, part_cosine={"backbone": 0.9, "head": -0.1},
                           in_merge={"loss_gain": 0.1, "gain_se": 0.01}),
                     Entry(C, "c", 5, reason=Reason.HARMFUL, ranking_gain=-0.04, ranking_gain_se=0.01),
                     Entry(D, "d", 5, reason=Reason.NO_LEARNING_SHOWN, ranking_gain=0.0, ranking_gain_se=0.01)],
        merged=[A, B], non_revealers=[], slashes=[], validation={"n": 4, "before": {"auc": 0.51}},
    )
    assert report.verdicts() == {"merged": 2, "accepted_in_merge": 1, "rejected": {"harmful": 1, "no_learning_shown": 1},
                                 "base_auc": 0.51, "ranking_z": [-4.0, 0.0, 0.5, 3.0], "head_cosine": [-0.1, 0.5]}
    cheaters = report.verdicts({C, D})
    assert (cheaters["merged"], cheaters["rejected"], cheaters["ranking_z"], cheaters["head_cosine"]) == (
        0, {"harmful": 1, "no_learning_shown": 1}, [-4.0, 0.0], [])
    assert report.verdicts({A, B})["rejected"] == {} and report.verdicts(set())["merged"] == 0
