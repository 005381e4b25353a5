"""The report type and the aggregation rules: pure, no chain."""

from __future__ import annotations

import pytest

from dgpt.cid import raw_cid
from dgpt.errors import DGPTError
from dgpt.report import Entry, Reason, Report, Slash
from dgpt.rules import cosine_floor, max_delta_bytes, reward_shares

A, B, C = "0x" + "11" * 20, "0x" + "22" * 20, "0x" + "33" * 20


def test_reward_shares_follow_gains_and_never_exceed_the_budget():
    shares = reward_shares([(A, 10, 0.3), (B, 10, 0.1), (C, 10, -0.2)], 1000)
    assert shares == {A: 750, B: 250}
    odd = reward_shares([(A, 1, 1.0), (B, 1, 1.0), (C, 1, 1.0)], 100)
    assert sum(odd.values()) <= 100 and len(set(odd.values())) == 1
    # no delta improved alone: by example count
    assert reward_shares([(A, 30, 0.0), (B, 10, 0.0)], 400) == {A: 300, B: 100}
    assert reward_shares([], 100) == {} and reward_shares([(A, 1, 1.0)], 0) == {}


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
    with pytest.raises(DGPTError, match="not a dgpt-report/3 document"):
        Report.from_bytes(b'{"format": "dgpt-report/1"}')
    with pytest.raises(DGPTError, match="unreadable report"):
        Report.from_bytes(b"[1, 2")


def test_a_declared_count_cannot_buy_the_merge():
    """Attack: one oracle declares 2**64-1 examples; its weight is capped at a small multiple of the
    round's median count, so the honest deltas keep most of the merge."""
    from dgpt.rules import MAX_WEIGHT_RATIO, merge_weights

    weights = merge_weights([600, 2**64 - 1, 580, 610, 590])
    assert weights == [600, MAX_WEIGHT_RATIO * 600, 580, 610, 590]
    # uncapped it would hold all but 1e-16 of the merge; capped, about half with four honest peers
    assert weights[1] / sum(weights) < 0.51
    assert merge_weights([10, 20]) == [10, 20] and merge_weights([]) == []
