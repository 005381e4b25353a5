#!/usr/bin/env python3
"""Compact deltas: bytes per oracle per round, encode and decode speed, and what each encoding
costs in held-out accuracy after the federated rounds, against fp32 on the same seeds.

Each encoding runs the same federated fine-tuning from the same genesis: K oracles with the demo's
shards train on the round's model (the worker's `train`, the task's seeds), encode their delta as
the oracle daemon does (with error feedback for the lossy encodings), and the files go through the
aggregator's own check and decode (`check_delta`) and merge (`build_model`, FedAvg by example
count). Scoring and acceptance are left out: every delta is merged, so the figures show the
encoding alone. Round 1 starts from the same model for every encoding, so its training is shared.
The genesis: the tiny model pre-trained with L1 for one epoch on the oracles' text.
Throughput: encoding and decoding the first oracle's first delta (MB of float32 per second).
With --json the last line is `{"fp32_bytes", "encodings": {name: {"ratio", "encode_mb_s",
"decode_mb_s", "accuracy", "delta_points", ...}}}`.

    .venv/bin/python scripts/bench_compression.py --json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from dgpt.aggregate import Strategy, build_model
from dgpt.delta import compute_delta, parts_header, save_with_feedback
from dgpt.encoding import DEFAULT_ENCODING, ENCODINGS, Encoding, check_parts, decode, encode
from dgpt.data import Example
from dgpt.model import load_model, save_model, state_dict, tiny_gpt2
from dgpt.train import TrainOptions, attach_head, evaluate, train
from dgpt.verify import check_delta
from harness.demo import DemoPlan, demo_data


def log(*args) -> None:
    print(time.strftime("%H:%M:%S"), *args, file=sys.stderr, flush=True)


def genesis(path: Path, shards: list[list[Example]], plan: DemoPlan) -> None:
    bundle = tiny_gpt2(seed=0)
    pre = plan.pretrain_task()
    train(bundle, pre, [Example(e.text) for s in shards for e in s], TrainOptions(device="cpu", log_every=10**9), log=lambda *a: None)
    save_model(path, bundle)


def local_delta(model_path: Path, task, examples: list[Example]) -> dict:
    bundle = load_model(model_path)
    attach_head(bundle, task)  # as the oracle does: the delta's head is relative to the initial head
    base = {k: v.clone() for k, v in state_dict(bundle.model).items()}
    train(bundle, task, examples, TrainOptions(device="cpu", log_every=10**9), log=lambda *a: None)
    return compute_delta(base, state_dict(bundle.model))


def run(enc: Encoding, model0: Path, shards, task, rounds: int, test, work: Path, first: list[dict]) -> dict:
    """The federated rounds in this encoding; returns accuracy and bytes per oracle per round."""
    task = replace(task, delta_encoding=enc.name, encoding_block=enc.block, topk_fraction=enc.fraction)
    model, carried = model0, [{} for _ in shards]
    sizes = []
    for r in range(rounds):
        log(f"{enc.label}: round {r + 1} of {rounds}")
        paths = []
        for i, examples in enumerate(shards):
            delta = first[i] if r == 0 else local_delta(model, task, examples)
            base = load_model(model)
            shapes = {k: tuple(v.shape) for k, v in state_dict(base.model).items()}
            if "head.weight" not in shapes:
                shapes["head.weight"] = tuple(delta["head.weight"].shape)
            path = work / f"{enc.name}-r{r}-o{i}.safetensors"
            carried[i] = save_with_feedback(path, delta, carried[i], shapes, enc, num_examples=len(examples), labels=task.labels)
            sizes.append(path.stat().st_size)
            verdict = check_delta(path, shapes, 1 << 40, task.max_update_norm, None, enc)
            if not verdict.ok:
                raise SystemExit(f"error: {enc.label}: the aggregator's check refused an honest delta: {verdict.detail}")
            paths.append(verdict.path)
        out = work / f"{enc.name}-model-r{r}.safetensors"
        build_model(model, paths, [float(len(s)) for s in shards], Strategy(), [0.0] * len(paths), task.labels, out, head_seed=task.seed)
        model = out
    m = evaluate(load_model(model), test, task)
    return {"accuracy": m["accuracy"], "l2": m["l2"], "bytes_per_oracle_round": sum(sizes) / len(sizes)}


def throughput(delta: dict, enc: Encoding, repeat: int) -> tuple[float, float]:
    """(encode, decode) in MB of float32 per second."""
    mb = sum(v.numel() * 4 for v in delta.values()) / 1e6
    shapes = {k: tuple(v.shape) for k, v in delta.items()}
    t0 = time.perf_counter()
    for _ in range(repeat):
        parts = encode(delta, enc)
    t1 = time.perf_counter()
    header = parts_header(parts)
    t2 = time.perf_counter()
    for _ in range(repeat):
        decode(parts, check_parts(header, shapes, enc), shapes, enc)
    t3 = time.perf_counter()
    return mb * repeat / (t1 - t0), mb * repeat / (t3 - t2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encodings", default=",".join(ENCODINGS), help=f"comma-separated, fp32 first (default: all: {','.join(ENCODINGS)})")
    parser.add_argument("--oracles", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="federated fine-tuning rounds (default 3, as the demo)")
    parser.add_argument("--examples-per-oracle", type=int, help="default: the whole shard")
    parser.add_argument("--test-examples", type=int, default=1000)
    parser.add_argument("--block", type=int, default=64, help="int8/int4 values per scale")
    parser.add_argument("--fraction", type=float, default=0.01, help="topk: share of each tensor's values sent")
    parser.add_argument("--repeat", type=int, default=5, help="timing repetitions")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()
    names = args.encodings.split(",")
    unknown = [n for n in names if n not in ENCODINGS]
    if unknown or not names or names[0] != "fp32":
        print(f"error: --encodings: fp32 first, then any of {', '.join(ENCODINGS)} (got {args.encodings})", file=sys.stderr)
        return 2
    t_start = time.monotonic()
    plan = DemoPlan(oracles=args.oracles, examples_per_oracle=args.examples_per_oracle, test_examples=args.test_examples)
    data = demo_data(plan)
    task = plan.finetune_task()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model0 = work / "genesis.safetensors"
        log(f"genesis: L1 pre-training on the {sum(map(len, data.shards))} snippets of {args.oracles} oracles")
        genesis(model0, data.shards, plan)
        log("round 1's deltas (the same for every encoding)")
        first = [local_delta(model0, task, s) for s in data.shards]
        results = {}
        for name in names:
            enc = Encoding(name, block=args.block, fraction=args.fraction)
            t0 = time.monotonic()
            r = run(enc, model0, data.shards, task, args.rounds, data.test, work, first)
            r["encode_mb_s"], r["decode_mb_s"] = throughput(first[0], enc, args.repeat)
            r["label"] = enc.label
            r["seconds"] = round(time.monotonic() - t0, 1)
            results[name] = r
            print(f"{enc.label:<22} {r['bytes_per_oracle_round']:>12,.0f} bytes per oracle per round   accuracy {r['accuracy']:.4f}"
                  f"   encode {r['encode_mb_s']:,.0f} MB/s  decode {r['decode_mb_s']:,.0f} MB/s   ({r['seconds']} s)", flush=True)
    fp32 = results["fp32"]
    out = {"fp32_bytes": fp32["bytes_per_oracle_round"], "default": DEFAULT_ENCODING, "oracles": args.oracles, "rounds": args.rounds,
           "seconds": round(time.monotonic() - t_start, 1), "encodings": {}}
    for name, r in results.items():
        out["encodings"][name] = {**r, "ratio": round(fp32["bytes_per_oracle_round"] / r["bytes_per_oracle_round"], 2),
                                  "delta_points": round(100 * (r["accuracy"] - fp32["accuracy"]), 2)}
    for name, r in out["encodings"].items():
        print(f"{name:<6} ratio {r['ratio']:>6}x   accuracy {r['accuracy']:.4f} ({r['delta_points']:+.2f} points vs fp32)")
    if args.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
