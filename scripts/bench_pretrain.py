"""Where the federated pre-training gap comes from: FedAvg of L1 pre-training in memory.

    .venv/bin/python scripts/bench_pretrain.py [--oracles 4] [--batch-size 32] [--lr 2e-3] [--warmup 0.3] [--rounds 1]
                                               [--whole-epochs] [--save MODEL] [--json]

From the demo's genesis (the bare tiny model, seed 0) and its pre-training task spec, each of K
oracles trains on its demo shard with `dgpt.train.train`; the new model is the example-weighted
mean of their weights (plain FedAvg: no chain, no encoding, no scoring, so only the averaging is
measured). `--rounds R` cuts the one epoch into R rounds, each a contiguous 1/R of every shard;
with `--whole-epochs` each round is a whole epoch of every shard instead, as the demo's
pre-training rounds are (R rounds, R epochs).
Printed per round: the held-out L1 (nats per token, the demo's 1,000 test snippets) of the
average and of oracle 0's model before averaging. `--oracles 1` is central training on the
union at `--batch-size`: with `--batch-size K x 32` the large-batch control for K oracles.
Last line with --json: {"oracles", "batch_size", "lr", "warmup", "whole_epochs", "rounds": [{"round", "average_l1",
"oracle0_l1", "seconds"}]}. `--save MODEL` writes the last average as a model file (the start of
scripts/bench_first_round.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dgpt.data import Example  # noqa: E402
from dgpt.errors import DGPTError  # noqa: E402
from dgpt.model import save_model, tiny_gpt2  # noqa: E402
from dgpt.train import TrainOptions, evaluate, train  # noqa: E402
from harness.demo import DemoPlan, demo_data  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--oracles", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=DemoPlan().pretrain_task().lr)
    ap.add_argument("--warmup", type=float, default=DemoPlan().pretrain_task().warmup,
                    help="the share of each round's local steps with a rising lr (default: the demo's)")
    ap.add_argument("--rounds", type=int, default=1, help="rounds the one epoch is cut into (default 1)")
    ap.add_argument("--whole-epochs", action="store_true", help="each round a whole epoch of every shard, not 1/R of one")
    ap.add_argument("--save", type=Path, help="write the last round's average here (a model file)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.oracles < 1 or args.batch_size < 1 or args.rounds < 1 or not args.lr > 0:
        raise SystemExit("bench_pretrain: --oracles, --batch-size, --rounds and --lr must be positive")
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else print
    plan = DemoPlan(oracles=args.oracles)
    data = demo_data(plan)
    if not args.whole_epochs and args.rounds > min(len(s) for s in data.shards):
        raise SystemExit(f"bench_pretrain: --rounds {args.rounds} is more than the smallest shard's {min(len(s) for s in data.shards)} examples")
    try:
        task = replace(plan.pretrain_task(), batch_size=args.batch_size, lr=args.lr, warmup=args.warmup)
    except DGPTError as exc:  # e.g. a warmup outside [0, 1]
        raise SystemExit(f"bench_pretrain: {exc}") from None
    quiet = TrainOptions(device="cpu", log_every=10**9)
    test = [Example(e.text) for e in data.test]
    bundle = tiny_gpt2(seed=0)
    base = {k: v.clone() for k, v in bundle.model.state_dict().items()}
    out = {"oracles": args.oracles, "batch_size": args.batch_size, "lr": args.lr, "warmup": args.warmup, "whole_epochs": args.whole_epochs,
           "rounds": []}
    t0 = time.monotonic()
    for r in range(args.rounds):
        total = {k: torch.zeros_like(v, dtype=torch.float64) for k, v in base.items()}
        weight = 0
        oracle0 = None
        for i, shard in enumerate(data.shards):
            bundle.model.load_state_dict(base)
            part = len(shard) // args.rounds
            cut = shard if args.whole_epochs else shard[r * part:(r + 1) * part]
            examples = [Example(e.text) for e in cut]
            train(bundle, replace(task, seed=task.seed + r), examples, quiet, log=lambda *a: None)
            if i == 0:
                oracle0 = evaluate(bundle, test, task)["l1"]
            weight += len(examples)
            for k, v in bundle.model.state_dict().items():
                total[k] += len(examples) * (v.double() - base[k].double())
        base = {k: (base[k].double() + total[k] / weight).to(base[k].dtype) for k in base}
        bundle.model.load_state_dict(base)
        row = {"round": r + 1, "average_l1": evaluate(bundle, test, task)["l1"], "oracle0_l1": oracle0,
               "seconds": round(time.monotonic() - t0, 1)}
        out["rounds"].append(row)
        log(f"round {r + 1}/{args.rounds}: held-out L1 of the average {row['average_l1']:.4f}, "
            f"of oracle 0 alone {row['oracle0_l1']:.4f} ({row['seconds']:.0f} s)")
    if args.save:
        save_model(args.save, bundle)
        log(f"saved the average to {args.save}")
    if args.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
