"""What one scoring pass costs the aggregator and every validator: the tiny model with a head on
the demo's validation slice (955 snippets of held-out movies, max_len 48), in float64 on the CPU
as `dgpt.round.StateScorer` scores, with and without the LM head (L1 over the vocabulary).

    .venv/bin/python scripts/bench_scoring.py [--repeats 3] [--threads N] [--json]

A fine-tuning round scores each delta alone, the merge, and each merged delta left out of it
without the LM head (`RoundContext.delta_metrics`); the base and the new model with it. Printed:
the median seconds a pass of each kind over --repeats, and their ratio. Last line with --json:
{"validation", "threads", "full_s", "no_lm_s", "ratio", "per_example_equal"}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dgpt.model import save_model, state_dict, tiny_gpt2  # noqa: E402
from dgpt.round import StateScorer  # noqa: E402
from dgpt.train import attach_head  # noqa: E402
from harness.demo import DemoPlan, demo_data  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, help="torch's CPU threads (default: torch's own choice)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.repeats < 1 or (args.threads is not None and args.threads < 1):
        raise SystemExit("bench_scoring: --repeats and --threads must be at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else print
    plan = DemoPlan()
    task = plan.finetune_task()
    validation = demo_data(plan).validation
    bundle = tiny_gpt2(seed=0)
    attach_head(bundle, task)
    with tempfile.TemporaryDirectory() as d:
        base = Path(d) / "base.safetensors"
        save_model(base, bundle)
        state = state_dict(bundle.model)
        scorer = StateScorer()
        scorer(base, state, task.labels, task, validation[:8], "cpu")  # builds the float64 model once
        times = {True: [], False: []}
        out = {}
        for _ in range(args.repeats):
            for lm in (True, False):
                t0 = time.perf_counter()
                out[lm] = scorer(base, state, task.labels, task, validation, "cpu", lm=lm)
                times[lm].append(time.perf_counter() - t0)
    full, fast = statistics.median(times[True]), statistics.median(times[False])
    row = {"validation": len(validation), "threads": torch.get_num_threads(), "full_s": round(full, 3), "no_lm_s": round(fast, 3),
           "ratio": round(full / fast, 2), "per_example_equal": out[True]["per_example"] == out[False]["per_example"]}
    log(f"one scoring pass of {row['validation']} snippets, float64, {row['threads']} threads: with the LM head {full:.2f} s, "
        f"without {fast:.2f} s ({row['ratio']:.2f}x); per-example L2 equal: {row['per_example_equal']}")
    if args.json:
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
