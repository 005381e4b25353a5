"""Bit-exact results on any machine: exact sums, the merge, and a real round audited under other
thread counts and CPU capabilities in child processes (a small version of scripts/check_determinism.py)."""

from __future__ import annotations

import importlib.util
import random
from fractions import Fraction

import pytest
import torch

from conftest import ROOT
from dgpt import exact
from dgpt.aggregate import Strategy, merge
from harness.demo import DemoPlan


def test_exact_dot_is_the_true_sum_of_products():
    rng = random.Random(0)
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        a = torch.randn(777, generator=g) * 10 ** rng.uniform(-30, 30)
        b = torch.randn(777, generator=g) * 10 ** rng.uniform(-30, 30)
        a[0], a[1], b[2] = 1e-44, -0.0, -3.0e38  # a subnormal, a negative zero, a huge value
        truth = sum(Fraction(x) * Fraction(y) for x, y in zip(a.tolist(), b.tolist()))
        assert exact.dot(a, b).fraction() == truth
        assert float(exact.chunked(exact.dot, a, b, chunk=100)) == float(truth)


def test_norms_and_merges_do_not_depend_on_the_thread_count(tmp_path):
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(1)
    base = {"w": torch.randn(3000, 257, generator=g)}
    paths = []
    for i in range(5):
        p = tmp_path / f"d{i}.safetensors"
        save_file({"w": torch.randn(3000, 257, generator=g) * 1e-3}, str(p))
        paths.append(p)
    weights = [float(w) for w in (2402, 2547, 2685, 2528, 1)]
    results = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        out, _ = merge({k: v.clone() for k, v in base.items()}, paths, weights, Strategy("fedavg"))
        trimmed, _ = merge({k: v.clone() for k, v in base.items()}, paths, weights, Strategy("trimmed_mean", {"trim": 0.2}))
        results.append((out["w"].numpy().tobytes(), trimmed["w"].numpy().tobytes(), exact.sq_norm(out["w"])))
    torch.set_num_threads(2)
    assert results[0] == results[1]


MERGE_CHILD = """
import hashlib, sys
from pathlib import Path
from safetensors.torch import load_file
from dgpt.aggregate import Strategy, merge
from dgpt.verify import check_delta
d = Path(sys.argv[1])
base = load_file(str(d / "base.safetensors"))
paths = [d / f"d{i}.safetensors" for i in range(6)]
h = hashlib.sha256()
for st in (Strategy("fedavg"), Strategy("clipped_mean", {"clip": 0.5}), Strategy("trimmed_mean", {"trim": 0.2}), Strategy("krum", {"f": 1, "m": 3})):
    out, decided = merge({k: v.clone() for k, v in base.items()}, paths, [2402., 2547., 2685., 2528., 7., 1000.], st, [0.9, 1.1, 0.7, 1.3, 0.2, 2.0])
    h.update(out["w"].numpy().tobytes() + repr(decided).encode())
h.update(repr([check_delta(p, {"w": (700, 300)}, 10**9, 0.35).norm for p in paths]).encode())
print(h.hexdigest())
"""


def test_the_merge_and_norms_are_the_same_under_every_cpu_capability(tmp_path):
    """Under the former merge (`add_(x, alpha=w)`) the FedAvg bytes differed between default and
    avx2 (a fused multiply-add on one, not the other)."""
    import os
    import subprocess
    import sys

    from safetensors.torch import save_file

    spec = importlib.util.spec_from_file_location("check_determinism", ROOT / "scripts" / "check_determinism.py")
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    g = torch.Generator().manual_seed(3)
    save_file({"w": torch.randn(700, 300, generator=g)}, str(tmp_path / "base.safetensors"))
    for i in range(6):
        save_file({"w": torch.randn(700, 300, generator=g) * 1e-3}, str(tmp_path / f"d{i}.safetensors"))
    digests = set()
    for cap in check.capabilities():
        env = {**os.environ, "ATEN_CPU_CAPABILITY": cap, "OMP_NUM_THREADS": "2"}
        out = subprocess.run([sys.executable, "-c", MERGE_CHILD, str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        digests.add(out.stdout.strip())
    assert len(digests) == 1, digests


@pytest.mark.anvil
def test_a_real_round_audits_the_same_under_other_threads_and_cpu_capabilities():
    spec = importlib.util.spec_from_file_location("check_determinism", ROOT / "scripts" / "check_determinism.py")
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    caps = check.capabilities()
    plan = DemoPlan(oracles=3, pretrain_rounds=1, finetune_rounds=0, max_len=32, examples_per_oracle=200,
                    validation_examples=120, test_examples=16)
    result = check.check([(1, "default"), (2, caps[-1])], plan, log=lambda *a: None)
    assert result["all_equal"], result
    (first, *_), = [list(result["configs"].values())]
    assert first["ok"] and first["entries_root"] != "0x" + "00" * 32  # a round with submissions and their verdicts


HEAD_CHILD = """
import hashlib, sys, torch
from dgpt.model import initial_head
g = torch.Generator().manual_seed(2)
randn = torch.randn(2, 768, generator=g) * 0.02
print(hashlib.sha256(initial_head(2, 768, 2).numpy().tobytes()).hexdigest(), hashlib.sha256(randn.numpy().tobytes()).hexdigest())
"""


def test_the_initial_head_is_the_same_under_every_cpu_capability():
    """The audit rebuilds a head-less base's initial head: its bits may not depend on the CPU. A
    float32 `randn` does (default and avx2 differed here), which is why the head is drawn from integers."""
    import os
    import subprocess
    import sys

    spec = importlib.util.spec_from_file_location("check_determinism", ROOT / "scripts" / "check_determinism.py")
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    heads, randns = set(), set()
    for cap in check.capabilities():
        env = {**os.environ, "ATEN_CPU_CAPABILITY": cap, "OMP_NUM_THREADS": "3"}
        out = subprocess.run([sys.executable, "-c", HEAD_CHILD], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        head, randn = out.stdout.split()
        heads.add(head)
        randns.add(randn)
    assert len(heads) == 1, heads
    if len(check.capabilities()) > 1:
        print(f"randn under {check.capabilities()}: {len(randns)} different results")
