"""The federated benchmark's splits (scripts/bench_federated.py): the label-skewed one must deal
every snippet once and actually skew the labels, or its figures mean nothing."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from bench_federated import dirichlet_shards  # noqa: E402
from dgpt.data import RT_LABELS, Example  # noqa: E402


def test_dirichlet_shards_deal_every_snippet_once_with_skewed_labels():
    examples = [Example(f"snippet {i}", RT_LABELS[i % 2]) for i in range(4000)]
    parts = dirichlet_shards(examples, 8, alpha=0.5, seed=0)
    assert sorted(e.text for p in parts for e in p) == sorted(e.text for e in examples)
    shares = [Counter(e.label for e in p)[RT_LABELS[1]] / len(p) for p in parts if p]
    assert max(shares) - min(shares) > 0.5  # alpha 0.5: some oracles hold mostly one label
    assert dirichlet_shards(examples, 8, alpha=0.5, seed=0) == parts  # seeded: the same split every run
    even = dirichlet_shards(examples, 8, alpha=1000.0, seed=0)  # a large alpha is close to IID
    assert all(abs(Counter(e.label for e in p)[RT_LABELS[1]] / len(p) - 0.5) < 0.1 for p in even)
