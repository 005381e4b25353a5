"""Delta encodings: round trips, bit-exact decoding, bad encoded input with its named fault,
error feedback, the task spec's field, and what the robust merges do with sparse deltas."""

from __future__ import annotations

import json

import pytest
import torch

from dgpt import tensorfile
from dgpt.aggregate import Strategy, merge, median, trimmed_mean
from dgpt.delta import delta_metadata, load_delta, save_delta
from dgpt.encoding import ENCODINGS, TOPK_WHOLE, Encoding, encode, residual, with_residual
from dgpt.errors import DGPTError
from dgpt.report import Reason
from dgpt.task import TaskSpec
from dgpt.verify import check_delta

SHAPES = {"w.weight": (96, 130), "b.bias": (7,), "head.weight": (2, 16)}


def delta(seed=0, scale=1e-3):
    g = torch.Generator().manual_seed(seed)
    # heavy tails, as fine-tuning deltas have: most values tiny, a few large
    return {k: (torch.randn(s, generator=g) ** 3 * scale).float() for k, s in SHAPES.items()}


def check(path, enc):
    return check_delta(path, SHAPES, 1 << 30, 1e3, None, enc)


ALL = [Encoding("fp32"), Encoding("bf16"), Encoding("int8"), Encoding("int4", block=32), Encoding("topk", fraction=0.05)]


@pytest.mark.parametrize("enc", ALL, ids=lambda e: e.name)
def test_what_the_aggregator_decodes_is_what_the_oracle_kept_back(tmp_path, enc):
    d = delta()
    sent = save_delta(tmp_path / "d.st", d, num_examples=5, encoding=enc)
    verdict = check(tmp_path / "d.st", enc)
    assert verdict.ok, verdict.detail
    decoded = tensorfile.load(verdict.path)
    assert set(decoded) == set(d)
    for k in d:
        assert torch.equal(decoded[k], sent[k]), k  # the oracle's residual is exact: nothing is lost unaccounted
    assert torch.equal(load_delta(tmp_path / "d.st")[0]["w.weight"], decoded["w.weight"])
    err = max(((sent[k] - d[k]).norm() / d[k].norm()).item() for k in d)
    bound = {"fp32": 0.0, "bf16": 4e-3, "int8": 2e-2, "int4": 0.3, "topk": 0.9}[enc.name]
    assert err <= bound, (enc.name, err)
    if enc.name == "fp32":
        assert verdict.path == tmp_path / "d.st"


def test_the_encodings_are_as_small_as_they_say(tmp_path):
    d = {"w.weight": torch.randn(256, 512) * 1e-3}
    sizes = {}
    for enc in [Encoding(n) for n in ENCODINGS]:
        save_delta(tmp_path / enc.name, d, num_examples=1, encoding=enc)
        sizes[enc.name] = (tmp_path / enc.name).stat().st_size
    ratio = {n: sizes["fp32"] / s for n, s in sizes.items()}
    assert 1.95 < ratio["bf16"] <= 2 and 3.6 < ratio["int8"] < 4 and 6.5 < ratio["int4"] < 8 and 45 < ratio["topk"] < 51


def test_topk_keeps_the_largest_values_and_small_tensors_whole():
    enc = Encoding("topk", fraction=0.01)
    x = torch.zeros(10_000)
    big = torch.tensor([17, 4242, 9999, 5, 123] + list(range(200, 295)))
    x[big] = torch.arange(1, 101, dtype=torch.float32)
    x += torch.full_like(x, 1e-6)  # many tiny values: weight decay's trace
    parts = encode({"w": x}, enc)
    assert parts["w.idx"].tolist() == sorted(big.tolist())
    assert torch.equal(parts["w.val"], x[parts["w.idx"].long()])
    small = torch.randn(TOPK_WHOLE)
    assert encode({"b": small}, enc)["b.idx"].numel() == TOPK_WHOLE


def test_decoding_is_the_exactly_rounded_product_on_any_machine(tmp_path):
    """int8 x float32 scale is exact in float64 (8 + 24 bits < 53), so one rounding to float32 gives the
    correctly rounded product: the decoded bits cannot depend on the CPU or the thread count."""
    d = {"w.weight": torch.randn(96, 130) * 3e-3}
    shapes = {"w.weight": (96, 130)}
    for enc in (Encoding("int8"), Encoding("int4", block=32)):
        parts = encode(d, enc)
        tensorfile.save(tmp_path / "e", parts, delta_metadata(num_examples=1, encoding=enc, shapes=shapes))
        threads = torch.get_num_threads()
        try:
            outs = []
            for n in (1, 2):
                torch.set_num_threads(n)
                v = check_delta(tmp_path / "e", shapes, 1 << 30, 1e3, None, enc, tmp_path / f"dec{n}")
                outs.append(tensorfile.load(v.path)["w.weight"])
        finally:
            torch.set_num_threads(threads)
        assert torch.equal(outs[0], outs[1])
        if enc.name == "int8":
            q, scale = parts["w.weight.q"].double(), parts["w.weight.scale"].double()
            want = (q * scale[:, None]).float().view(-1)[: 96 * 130].view(96, 130)
            assert torch.equal(outs[0], want)


# --- bad encoded input ---------------------------------------------------------------------------


def _write(tmp_path, parts, enc, **meta):
    path = tmp_path / "bad.st"
    tensorfile.save(path, parts, {**delta_metadata(num_examples=1, encoding=enc, shapes=SHAPES), **meta})
    return path


def _int8(**change):
    enc = Encoding("int8")
    parts = encode(delta(), enc)
    parts.update(change)
    return enc, parts


def _topk(**change):
    enc = Encoding("topk", fraction=0.05)
    parts = encode(delta(), enc)
    parts.update(change)
    return enc, parts


def _bad_cases():
    enc8, p8 = _int8()
    nb = p8["w.weight.scale"].numel()
    s_nan = p8["w.weight.scale"].clone(); s_nan[3] = float("nan")
    s_inf = p8["w.weight.scale"].clone(); s_inf[0] = float("inf")
    s_zero = p8["w.weight.scale"].clone(); s_zero[1] = 0.0
    s_neg = p8["w.weight.scale"].clone(); s_neg[1] = -s_neg[1]
    q_min = p8["w.weight.q"].clone(); q_min[0, 0] = -128
    b_pad = p8["b.bias.q"].clone(); b_pad[0, -1] = 3
    _, pk = _topk()
    idx = pk["w.weight.idx"]
    i_range = idx.clone(); i_range[-1] = 96 * 130
    i_neg = idx.clone(); i_neg[0] = -1
    i_rep = idx.clone(); i_rep[5] = i_rep[4]
    i_order = idx.flip(0).contiguous()
    v_nan = pk["w.weight.val"].clone(); v_nan[2] = float("nan")
    k = Encoding("topk", fraction=0.05).k(96 * 130)
    too_many_i = torch.arange(k + 1, dtype=torch.int32)
    return [
        ("scale count is not one per block", enc8, {**p8, "w.weight.scale": p8["w.weight.scale"][:-1].clone()}, Reason.MALFORMED, "shape"),
        ("blocks of another size", enc8, {**p8, "w.weight.q": p8["w.weight.q"].reshape(-1, 32).contiguous()}, Reason.MALFORMED, "shape"),
        ("a NaN scale", enc8, {**p8, "w.weight.scale": s_nan}, Reason.NON_FINITE, "NaN"),
        ("an infinite scale", enc8, {**p8, "w.weight.scale": s_inf}, Reason.NON_FINITE, "infinite"),
        ("a zero scale", enc8, {**p8, "w.weight.scale": s_zero}, Reason.MALFORMED, "zero or negative"),
        ("a negative scale", enc8, {**p8, "w.weight.scale": s_neg}, Reason.MALFORMED, "zero or negative"),
        ("int8 value -128", enc8, {**p8, "w.weight.q": q_min}, Reason.MALFORMED, "-128"),
        ("non-zero padding", enc8, {**p8, "b.bias.q": b_pad}, Reason.MALFORMED, "padding"),
        ("a part missing", enc8, {k2: v for k2, v in p8.items() if k2 != "b.bias.scale"}, Reason.MALFORMED, "parts missing"),
        ("a part of no model tensor", enc8, {**p8, "x.weight.q": p8["b.bias.q"].clone()}, Reason.MALFORMED, "not a part"),
        ("a part in the wrong dtype", enc8, {**p8, "w.weight.q": p8["w.weight.q"].to(torch.int16)}, Reason.MALFORMED, "dtype"),
        ("raw float32 in an int8 round", enc8, delta(), Reason.MALFORMED, "not a part"),
        ("index out of range", Encoding("topk", fraction=0.05), {**pk, "w.weight.idx": i_range}, Reason.MALFORMED, "out of range"),
        ("negative index", Encoding("topk", fraction=0.05), {**pk, "w.weight.idx": i_neg}, Reason.MALFORMED, "out of range"),
        ("repeated index", Encoding("topk", fraction=0.05), {**pk, "w.weight.idx": i_rep}, Reason.MALFORMED, "repeated"),
        ("indices out of order", Encoding("topk", fraction=0.05), {**pk, "w.weight.idx": i_order}, Reason.MALFORMED, "repeated or not increasing"),
        ("a NaN value", Encoding("topk", fraction=0.05), {**pk, "w.weight.val": v_nan}, Reason.NON_FINITE, "NaN"),
        ("more values than the fraction", Encoding("topk", fraction=0.05),
         {**pk, "w.weight.idx": too_many_i, "w.weight.val": torch.ones(k + 1)}, Reason.MALFORMED, "at most"),
        ("indices and values disagree", Encoding("topk", fraction=0.05),
         {**pk, "w.weight.val": pk["w.weight.val"][:-1].clone()}, Reason.MALFORMED, "shape"),
    ]


@pytest.mark.parametrize("name,enc,parts,reason,detail", _bad_cases(), ids=[c[0] for c in _bad_cases()])
def test_bad_encoded_input_is_refused_with_its_fault(tmp_path, name, enc, parts, reason, detail):
    verdict = check(_write(tmp_path, parts, enc), enc)
    assert not verdict.ok and verdict.reason is reason, (verdict.reason, verdict.detail)
    assert detail in verdict.detail
    assert reason.slash_reason is not None  # provable from the bytes under the CID: slashed


def test_a_delta_in_another_encoding_than_the_tasks_is_malformed(tmp_path):
    save_delta(tmp_path / "d", delta(), num_examples=1, encoding=Encoding("int4"))
    verdict = check(tmp_path / "d", Encoding("int8"))
    assert verdict.reason is Reason.MALFORMED and "the task spec says 'int8 block=64'" in verdict.detail
    save_delta(tmp_path / "f", delta(), num_examples=1)  # fp32, declared by the absence of an encoding
    assert check(tmp_path / "f", Encoding("int8")).reason is Reason.MALFORMED
    assert check(tmp_path / "f", Encoding("fp32")).ok


# --- error feedback ------------------------------------------------------------------------------


def test_error_feedback_sends_what_earlier_rounds_left_out():
    """Over rounds, what was sent plus what is still carried is exactly what was trained; without
    the carry, the loss is the sum of every round's rounding."""
    enc = Encoding("topk", fraction=0.02)
    shapes = {k: tuple(v) for k, v in SHAPES.items()}
    carried, sent_total, trained_total, plain_total = {}, None, None, None
    for r in range(4):
        d = delta(seed=r)
        full = with_residual(d, carried, shapes)
        parts = encode(full, enc)
        sent = {k: torch.zeros(shapes[k]).view(-1).index_put_((parts[k + ".idx"].long(),), parts[k + ".val"]).view(shapes[k]) for k in full}
        carried = residual(full, sent)
        plain = encode(d, enc)
        plain = {k: torch.zeros(shapes[k]).view(-1).index_put_((plain[k + ".idx"].long(),), plain[k + ".val"]).view(shapes[k]) for k in d}
        add = lambda a, b: b if a is None else {k: a[k] + b[k] for k in b}
        sent_total, trained_total, plain_total = add(sent_total, sent), add(trained_total, d), add(plain_total, plain)
    for k in shapes:
        assert torch.allclose(sent_total[k] + carried[k], trained_total[k], atol=1e-9)
    miss = lambda s: sum((trained_total[k] - s[k]).norm() ** 2 for k in shapes) ** 0.5
    assert miss(sent_total) < miss(plain_total)


def test_a_residual_of_another_shape_is_dropped():
    assert with_residual({"h": torch.ones(2, 4)}, {"h": torch.ones(3, 4)})["h"].sum() == 8
    assert "g" in with_residual({}, {"g": torch.ones(2)}, {"g": (2,)})


# --- the task spec -------------------------------------------------------------------------------


def test_the_task_spec_declares_the_encoding():
    t = TaskSpec(labels=("a", "b"), delta_encoding="int4", encoding_block=32)
    assert TaskSpec.from_bytes(t.to_bytes()) == t and Encoding.of(t).label == "int4 block=32"
    old = json.loads(TaskSpec(labels=("a", "b")).to_bytes())
    for k in ("delta_encoding", "encoding_block", "topk_fraction"):
        old.pop(k)
    assert Encoding.of(TaskSpec.from_bytes(json.dumps(old).encode())) == Encoding("fp32")  # a spec from before encodings
    for bad, msg in [(dict(delta_encoding="zip"), "delta_encoding 'zip' is not one of"), (dict(encoding_block=3), "encoding_block 3"),
                     (dict(topk_fraction=0.0), "topk_fraction 0.0")]:
        with pytest.raises(DGPTError, match=f"task spec: {msg}"):
            TaskSpec(labels=("a", "b"), **bad)


# --- robust merges of sparse deltas --------------------------------------------------------------


def test_robust_merges_of_sparse_deltas_keep_only_what_a_majority_sends(tmp_path):
    """Coordinate by coordinate, a top-k delta is zero where it sent nothing. The median and the
    trimmed mean therefore keep a coordinate only where most deltas sent it (with 5 deltas: at least
    3 for the median); FedAvg keeps every sent value, scaled by its weight."""
    n = 5
    rows = torch.zeros(n, 6)
    rows[:, 0] = torch.tensor([1.0, 1.2, 0.9, 1.1, 1.0])  # all five sent it
    rows[:3, 1] = torch.tensor([2.0, 2.0, 2.0])  # three of five
    rows[:2, 2] = torch.tensor([3.0, 3.0])  # two of five
    rows[0, 3] = 50.0  # one
    assert median(rows).tolist() == pytest.approx([1.0, 2.0, 0.0, 0.0, 0.0, 0.0])
    tm = trimmed_mean(rows, 0.2)  # drops one value at each end
    assert tm[0] == pytest.approx(1.0333333, rel=1e-6) and tm[1] == pytest.approx(4.0 / 3) and tm[2] == pytest.approx(1.0)
    assert tm[3] == 0.0  # a lone coordinate is trimmed away
    paths = []
    for i in range(n):
        paths.append(tmp_path / f"d{i}")
        save_delta(paths[-1], {"w": rows[i]}, num_examples=1)
    out, _ = merge({"w": torch.zeros(6)}, paths, [1.0] * n, Strategy("fedavg"))
    assert out["w"].tolist() == pytest.approx((rows.sum(0) / n).tolist())


def test_the_compression_benchmark_runs_and_reports_each_encoding():
    """A small run of `scripts/bench_compression.py` (the figures are BENCHMARKS.md's; here only its shape)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "scripts/bench_compression.py", "--encodings", "fp32,int8,topk", "--rounds", "1",
                          "--examples-per-oracle", "24", "--oracles", "2", "--test-examples", "40", "--repeat", "1", "--json"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    enc = result["encodings"]
    assert set(enc) == {"fp32", "int8", "topk"} and enc["fp32"]["ratio"] == 1.0
    assert 3.5 < enc["int8"]["ratio"] < 4 and enc["topk"]["ratio"] > 20
    assert all(0 <= e["accuracy"] <= 1 and e["encode_mb_s"] > 0 and e["decode_mb_s"] > 0 for e in enc.values())
    bad = subprocess.run([sys.executable, "scripts/bench_compression.py", "--encodings", "int8"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: --encodings: fp32 first")
