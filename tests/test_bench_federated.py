"""The federated benchmark's splits (scripts/bench_federated.py): the label-skewed one must deal
every snippet once and actually skew the labels, or its figures mean nothing."""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import bench_federated  # noqa: E402
from bench_federated import dirichlet_shards, rank_stats, ranking  # noqa: E402
from dgpt.data import RT_LABELS, Example  # noqa: E402
from dgpt.errors import DGPTError  # noqa: E402
from dgpt.model import load_model, save_model, tiny_gpt2  # noqa: E402
from harness.demo import DemoPlan  # noqa: E402


def test_dirichlet_shards_deal_every_snippet_once_with_skewed_labels():
    examples = [Example(f"snippet {i}", RT_LABELS[i % 2]) for i in range(4000)]
    parts = dirichlet_shards(examples, 8, alpha=0.5, seed=0)
    assert sorted(e.text for p in parts for e in p) == sorted(e.text for e in examples)
    shares = [Counter(e.label for e in p)[RT_LABELS[1]] / len(p) for p in parts if p]
    assert max(shares) - min(shares) > 0.5  # alpha 0.5: some oracles hold mostly one label
    assert dirichlet_shards(examples, 8, alpha=0.5, seed=0) == parts  # seeded: the same split every run
    even = dirichlet_shards(examples, 8, alpha=1000.0, seed=0)  # a large alpha is close to IID
    assert all(abs(Counter(e.label for e in p)[RT_LABELS[1]] / len(p) - 0.5) < 0.1 for p in even)


def test_rank_stats_agree_with_counting_every_pair_and_every_offset():
    """The AUC and the best-offset accuracy that tell calibration from ranking in the benchmark's
    figures, against their definitions by brute force (ties included: margins on a coarse grid)."""
    rng = random.Random(3)
    for n in (2, 7, 50):
        y = [rng.randrange(2) for _ in range(n)]
        y[0], y[1] = 0, 1
        margins = [rng.randrange(-4, 5) / 2 + 0.8 * t for t in y]  # label 1 tends higher, with ties
        pairs = [(p, q) for p, tp in zip(margins, y) if tp for q, tq in zip(margins, y) if not tq]
        auc = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p, q in pairs) / len(pairs)
        best = max(sum((m > t) == bool(c) for m, c in zip(margins, y)) for t in [min(margins) - 1, *margins]) / n
        got = rank_stats(margins, y)
        assert got["auc"] == round(auc, 4)
        assert got["best_offset_accuracy"] == round(best, 4)
    assert rank_stats([0.0, 1.0], [0, 1])["auc"] == 1.0 and rank_stats([1.0, 0.0], [0, 1])["auc"] == 0.0


def test_ranking_of_a_model_without_a_head_is_none(tmp_path):
    """A run whose fine-tuning rounds merged nothing ends on the head-less pre-trained model: the
    benchmark records no ranking for it (as no accuracy) instead of failing after the whole run."""
    save_model(tmp_path / "m.safetensors", tiny_gpt2(seed=0))
    test = [Example(f"snippet {i}", RT_LABELS[i % 2]) for i in range(4)]
    assert ranking(load_model(tmp_path / "m.safetensors"), test, 16) is None


def test_local_epochs_set_each_fine_tuning_round_and_are_checked():
    """`--local-epochs` reaches every fine-tuning round's task spec (the CID the oracles train by),
    not the pre-training ones; zero is refused before anything is deployed."""
    tasks = DemoPlan(pretrain_rounds=1, finetune_rounds=2, finetune_epochs=3).tasks()
    assert [(t.phase, t.epochs) for t in tasks] == [("pretrain", 1), ("finetune", 3), ("finetune", 3)]
    with pytest.raises(DGPTError, match="^demo: finetune epochs must be at least 1, got 0$"):
        DemoPlan(finetune_epochs=0)


def test_label_smoothing_reaches_the_fine_tuning_specs_and_is_checked():
    """`--label-smoothing` sets the fine-tuning rounds' spec (so its CID), not the pre-training
    one's; a value outside [0, 1) is refused in one line before anything is deployed."""
    tasks = DemoPlan(pretrain_rounds=1, finetune_rounds=1, label_smoothing=0.1).tasks()
    assert [(t.phase, t.label_smoothing) for t in tasks] == [("pretrain", 0.0), ("finetune", 0.1)]
    assert tasks[1].to_bytes() != DemoPlan(pretrain_rounds=1, finetune_rounds=1).tasks()[1].to_bytes()
    for bad in (1.0, -0.1):
        with pytest.raises(DGPTError, match=r"^task spec: label_smoothing is the target's share spread over the labels, in \[0, 1\), got "):
            DemoPlan(label_smoothing=bad)


def test_the_first_fine_tuning_round_takes_its_own_epochs_and_central_their_sum():
    """`--first-local-epochs` sets the first fine-tuning round's spec only (later rounds keep
    `--local-epochs`), and central training takes the rounds' epochs summed, so both sides still
    train the same total; zero is refused before anything is deployed."""
    plan = DemoPlan(pretrain_rounds=1, finetune_rounds=3, first_finetune_epochs=2)
    assert [(t.phase, t.epochs) for t in plan.tasks()] == [("pretrain", 1), ("finetune", 2), ("finetune", 1), ("finetune", 1)]
    assert [t.epochs for t in DemoPlan(pretrain_rounds=0, finetune_rounds=1, first_finetune_epochs=3).tasks()] == [3]
    assert [t.epochs for t in DemoPlan(finetune_rounds=2).tasks()] == [1, 1, 1, 1]  # shards not known: finetune_epochs
    with pytest.raises(DGPTError, match="^demo: first finetune epochs must be at least 1, got 0$"):
        DemoPlan(first_finetune_epochs=0)
    seen = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bench_federated, "train", lambda bundle, task, examples, *a, **k: seen.setdefault(task.phase, task.epochs))
        mp.setattr(bench_federated, "evaluate", lambda *a, **k: {"l1": 0.0, "accuracy": 0.0})
        mp.setattr(bench_federated, "ranking", lambda *a: None)
        bench_federated.central(plan, [Example("a snippet", RT_LABELS[0])], [Example("another", RT_LABELS[1])])
    assert seen == {"pretrain": 1, "finetune": 4}


def test_each_fine_tuning_round_takes_its_lr_scale_and_central_keeps_the_full_lr():
    """`--local-lr-scale`: fine-tuning round k takes lr x its scale (the rest 1; pre-training rounds
    keep theirs); more scales than rounds, or a zero scale, are refused before anything is deployed;
    central training runs its one schedule from the full lr, not the last round's."""
    plan = DemoPlan(pretrain_rounds=1, finetune_rounds=3, first_finetune_epochs=2, finetune_lr_scale=(1, 0.5))
    tasks = plan.tasks()
    assert [t.lr for t in tasks] == [tasks[0].lr, plan.finetune_lr, plan.finetune_lr * 0.5, plan.finetune_lr]
    assert [t.epochs for t in tasks] == [1, 2, 1, 1]
    assert {t.lr for t in DemoPlan(finetune_rounds=3, finetune_lr_scale=(1,)).tasks() if t.phase == "finetune"} == {DemoPlan.finetune_lr}
    with pytest.raises(DGPTError, match="^demo: 3 fine-tuning lr scales for 2 fine-tuning rounds$"):
        DemoPlan(finetune_rounds=2, finetune_lr_scale=(1, 1, 1))
    with pytest.raises(DGPTError, match="^task spec: lr must be positive, got 0.0$"):
        DemoPlan(finetune_lr_scale=(0,))
    seen = {}
    last = DemoPlan(pretrain_rounds=1, finetune_rounds=3, finetune_lr_scale=(1, 1, 0.25))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bench_federated, "train", lambda bundle, task, examples, *a, **k: seen.setdefault(task.phase, (task.epochs, task.lr)))
        mp.setattr(bench_federated, "evaluate", lambda *a, **k: {"l1": 0.0, "accuracy": 0.0})
        mp.setattr(bench_federated, "ranking", lambda *a: None)
        bench_federated.central(last, [Example("a snippet", RT_LABELS[0])], [Example("another", RT_LABELS[1])])
    assert seen["finetune"] == (3, last.finetune_lr)
    assert bench_federated.scales("1,1,0.5") == (1.0, 1.0, 0.5)
    for bad in ("1,x", "1,-1"):
        with pytest.raises(argparse.ArgumentTypeError):
            bench_federated.scales(bad)


def test_the_default_plan_takes_two_first_epochs_on_small_shards_and_a_quarter_of_the_lr_last():
    """Where a plan leaves them open, the first fine-tuning round's epochs follow the median shard
    (two under 64 local batches: iid-8's ~1,270 snippets, not iid-4's ~2,540) and the last of two
    or more rounds runs at a quarter of the lr; a plan that sets either keeps its own."""
    plan = DemoPlan(pretrain_rounds=1, finetune_rounds=3)
    fine = [t for t in plan.tasks([1270] * 8) if t.phase == "finetune"]
    assert [(t.epochs, t.lr) for t in fine] == [(2, plan.finetune_lr), (1, plan.finetune_lr), (1, plan.finetune_lr * 0.25)]
    assert [t.epochs for t in plan.tasks([2540] * 4) if t.phase == "finetune"] == [1, 1, 1]
    assert [t.epochs for t in plan.tasks([230, 630, 640, 5872]) if t.phase == "finetune"] == [2, 1, 1]  # the median, not the mean
    assert [t.epochs for t in plan.tasks([2047, 2048, 2049]) if t.phase == "finetune"] == [1, 1, 1]  # 64 batches of 32
    assert [t.epochs for t in replace(plan, first_finetune_epochs=1).tasks([1270] * 8) if t.phase == "finetune"] == [1, 1, 1]
    assert [t.epochs for t in replace(plan, finetune_epochs=3).tasks([1270] * 8) if t.phase == "finetune"] == [3, 3, 3]
    assert [t.lr for t in DemoPlan(pretrain_rounds=0, finetune_rounds=1).tasks()] == [plan.finetune_lr]  # one round: the full lr
    assert [t.lr for t in replace(plan, finetune_lr_scale=(1, 0.5)).tasks() if t.phase == "finetune"] == [plan.finetune_lr, plan.finetune_lr * 0.5, plan.finetune_lr]
    assert bench_federated.finetune_epochs(plan.tasks([1270] * 8)) == 4 and bench_federated.finetune_epochs(plan.tasks([2540] * 4)) == 3


def test_central_figures_reused_per_epoch_total_and_checked():
    """`--central-accuracy` takes one figure for every total or one per fine-tuning epoch total
    (central training's figure depends on the split's schedule); anything else is one line."""
    assert bench_federated.central_figures("0.7") == {None: 0.7}
    assert bench_federated.central_figures("3:0.704,4:0.701") == {3: 0.704, 4: 0.701}
    for bad in ("x", "3:0.7,4:", "70.4"):
        with pytest.raises(argparse.ArgumentTypeError):
            bench_federated.central_figures(bad)


def test_a_federated_run_reports_each_rounds_base_auc_and_ranking_z_as_its_reports_have_them(tmp_path):
    """The figures the no-ranking-gain rule reads (the base's AUC, each delta's ranking z alone)
    come out of the benchmark's JSON, equal to the kept reports'."""
    from dgpt.report import Report
    from harness.demo import demo_data

    plan = DemoPlan(oracles=2, pretrain_rounds=1, finetune_rounds=1, max_len=32, examples_per_oracle=16, test_examples=16, validators=0)
    run = bench_federated.federated(plan, demo_data(plan), log=lambda *a: None, keep=tmp_path)
    (verdict,) = run["verdicts"]
    report = Report.from_bytes((tmp_path / "report-round-2.json").read_bytes())
    assert verdict["base_auc"] == report.validation["before"]["auc"] and 0 <= verdict["base_auc"] <= 1
    assert verdict["ranking_z"] == sorted(round(e.ranking_gain / e.ranking_gain_se, 2) for e in report.submissions)
    assert verdict["head_cosine"] == sorted(round(e.part_cosine["head"], 3) for e in report.submissions if e.part_cosine)
    assert len(verdict["ranking_z"]) == 2
