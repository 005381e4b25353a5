#!/usr/bin/env python3
"""Merging N weight deltas of a GPT-2-124M-sized model (synthetic tensors): every strategy,
streaming tensor by tensor, against a naive load-everything-then-average baseline, in one run.

Each merge runs in a fresh child process, so its peak resident memory (VmHWM) is its own.
Throughput is the bytes of delta read per second (N x the delta's size / time); the files are
flushed and read once before timing, and each merge runs twice (faster time, larger peak).
With --json the last line is one JSON object:
{"fedavg": {"gb_s", "peak_rss_mb", "seconds"}, ..., "naive": {...}, "n": N, "delta_mb": ...}.

    .venv/bin/python scripts/bench_aggregate.py [--n 8] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

RUNS = 2  # each merge runs twice: the faster time, the larger peak

CHILD = r"""
import json, sys, time
from pathlib import Path
from safetensors.torch import load_file
from dgpt import tensorfile
from dgpt.aggregate import Strategy, merge, naive_fedavg
args = json.loads(sys.argv[1])
paths = [Path(p) for p in args["deltas"]]
weights = [float(i + 1) for i in range(len(paths))]
# The timed region starts before the base is read: each way reads it as its merge needs it
# (the streaming merge adds into the base's own tensors, so it reads them into owned memory).
t = time.perf_counter()
if args["strategy"] == "naive":
    out = naive_fedavg(load_file(args["base"]), paths, weights)
else:
    params = {"trimmed_mean": {"trim": 0.125}, "clipped_mean": {"clip": 1.0}, "krum": {"f": 1, "m": len(paths) - 2}}.get(args["strategy"], {})
    out, _ = merge(tensorfile.load(args["base"]), paths, weights, Strategy(args["strategy"], params), norms=[1.5] * len(paths), inplace=True)
seconds = time.perf_counter() - t
# VmHWM, not getrusage: ru_maxrss carries the parent's high-water mark across fork and exec.
hwm_kb = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"seconds": seconds, "peak_rss_mb": hwm_kb / 1024}))
"""


def gpt2_124m_shapes() -> dict[str, tuple]:
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config

    with torch.device("meta"):
        lm = AutoModelForCausalLM.from_config(GPT2Config(vocab_size=50304))
    return {f"lm.{k}": tuple(v.shape) for k, v in lm.state_dict().items() if k != "lm_head.weight"} | {"head.weight": (2, 768)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8, help="number of deltas (default 8)")
    parser.add_argument("--dir", help="scratch folder (default: a temporary one); needs about (N + 1) x 500 MB")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else (lambda *a: print(*a, flush=True))

    import torch

    from dgpt import tensorfile
    from dgpt.aggregate import STRATEGIES

    shapes = gpt2_124m_shapes()
    params = sum(torch.Size(s).numel() for s in shapes.values())
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        tmp = Path(tmp)
        g = torch.Generator().manual_seed(0)
        base = tmp / "base.safetensors"
        tensorfile.save(base, {k: torch.randn(s, generator=g) * 0.02 for k, s in shapes.items()}, {})
        deltas = []
        for i in range(args.n):
            p = tmp / f"delta-{i}.safetensors"
            tensorfile.save(p, {k: torch.randn(s, generator=g) * 1e-3 for k, s in shapes.items()}, {"format": "dgpt-delta/1"})
            deltas.append(str(p))
        delta_bytes = Path(deltas[0]).stat().st_size
        log(f"{args.n} deltas of {params:,} parameters ({delta_bytes / 1e6:.0f} MB each)")
        # Settle the files first: flush the writes, then read everything once into the page cache,
        # so no run pays for write-back or a cold cache that the next one does not.
        os.sync()
        for p in [str(base), *deltas]:
            with open(p, "rb") as f:
                while f.read(64 << 20):
                    pass
        result: dict = {"n": args.n, "delta_mb": round(delta_bytes / 1e6, 1)}
        for strategy in [*STRATEGIES, "naive"]:
            runs = []
            for _ in range(RUNS):
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, json.dumps({"base": str(base), "deltas": deltas, "strategy": strategy})],
                    capture_output=True, text=True, check=True,
                )
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            r = {"seconds": min(x["seconds"] for x in runs), "peak_rss_mb": max(x["peak_rss_mb"] for x in runs)}
            r["gb_s"] = round(args.n * delta_bytes / r["seconds"] / 1e9, 3)
            r["peak_rss_mb"] = round(r["peak_rss_mb"], 1)
            r["seconds"] = round(r["seconds"], 2)
            result[strategy] = r
            log(f"{strategy:>13}: {r['seconds']:7.2f} s  {r['gb_s']:6.3f} GB/s  peak RSS {r['peak_rss_mb']:8.0f} MB")
    f, n = result["fedavg"], result["naive"]
    log(f"streaming FedAvg vs naive: {f['gb_s'] / n['gb_s']:.2f}x the throughput, {f['peak_rss_mb'] / n['peak_rss_mb']:.2f}x the memory "
        f"(targets: >= 1x, < 0.33x)")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
