#!/usr/bin/env python3
"""L3 training-step throughput: the worker's fast path against plain `transformers` in one run.

Both sides train the same model on the same batch (random token ids, two-class head, λ = 0.5):
- baseline: a Hugging Face GPT-2 in fp32 with eager attention, `labels=` for the LM loss, the
  hidden states for the head, plain AdamW: the straightforward loop;
- worker: dgpt.train.Step: bf16 autocast, causal scaled_dot_product_attention (no mask), fused AdamW, TF32,
  vocabulary padded to 50,304, and `torch.compile` over model and losses (on CUDA).
It reports tokens/s for both, the speed-up, and MFU = 6 x parameters x tokens/s / peak, with the
peak of the device's dense bf16 tensor cores (H100/H200 SXM: 989e12; none on CPU, so MFU is null).
With --json the last line is one JSON object: device, params, seq_len, batch, tokens_per_s,
baseline_tokens_per_s, speedup, mfu.

    .venv/bin/python scripts/bench_worker.py --json                       # CPU: the tiny model
    python scripts/bench_worker.py --model gpt2-124m --seq-len 512 --batch 32 --json   # on a GPU
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, GPT2Config

from dgpt.model import ATTENTION, GPTClassifier
from dgpt.task import TaskSpec
from dgpt.train import Step, TrainOptions

SHAPES = {
    "gpt2-124m": dict(n_layer=12, n_embd=768, n_head=12, n_positions=1024),
    "tiny": dict(n_layer=2, n_embd=128, n_head=4, n_positions=256),
}
PEAKS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense bf16 FLOP/s


def peak_flops(device: str) -> tuple[float | None, str]:
    if not device.startswith("cuda"):
        return None, "cpu"
    name = torch.cuda.get_device_name()
    for key, peak in PEAKS.items():
        if key in name:
            return peak, name
    return None, name


DROPOUT = 0.1  # GPT-2's and GPT-1's; --dropout changes it on both sides


def build_lm(model: str, vocab: int, attn: str):
    cfg = GPT2Config(vocab_size=vocab, resid_pdrop=DROPOUT, embd_pdrop=DROPOUT, attn_pdrop=DROPOUT, **SHAPES[model])
    return AutoModelForCausalLM.from_config(cfg, attn_implementation=attn)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_steps(step, steps: int, warmup: int, device: str) -> float:
    for _ in range(warmup):
        step()
    sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return (time.perf_counter() - t) / steps


def baseline(model_name: str, ids, labels, device: str, steps: int, warmup: int, lam: float) -> float:
    """Plain transformers: fp32, eager attention, LM loss through `labels=`, vanilla AdamW."""
    torch.manual_seed(0)
    lm = build_lm(model_name, 50257, "eager").to(device)
    head = torch.nn.Linear(lm.config.n_embd, 2, bias=False).to(device)
    opt = torch.optim.AdamW(list(lm.parameters()) + list(head.parameters()), lr=6.25e-5, foreach=False)
    inputs = ids.clamp(max=50256)

    def step():
        out = lm(input_ids=inputs, labels=inputs, output_hidden_states=True)
        logits = head(out.hidden_states[-1][:, -1])
        loss = F.cross_entropy(logits, labels) + lam * out.loss
        loss.backward()
        opt.step()
        opt.zero_grad()

    s = time_steps(step, steps, warmup, device)
    return s


def worker(model_name: str, ids, labels, device: str, steps: int, warmup: int, lam: float, compile_: bool) -> tuple[float, int]:
    """dgpt's Step on the same shape with the vocabulary padded to 50,304."""
    torch.manual_seed(0)
    lm = build_lm(model_name, 50304, ATTENTION)
    model = GPTClassifier(lm, num_labels=2).to(device)
    params = sum(p.numel() for p in model.parameters())
    task = TaskSpec(labels=("a", "b"), lam=lam)
    step_fn = Step(model, task, TrainOptions(device=device, compile=compile_), total_steps=10**6)
    model.train()
    lengths = torch.full((ids.size(0),), ids.size(1), device=device)
    n_tokens, n_examples = ids.numel() - ids.size(0), ids.size(0)
    s = time_steps(lambda: step_fn(ids, lengths, labels, n_tokens, n_examples), steps, warmup, device)
    return s, params


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(SHAPES), default=None, help="default: gpt2-124m on CUDA, tiny on CPU")
    parser.add_argument("--seq-len", type=int, default=None, help="default: 512 on CUDA, 64 on CPU")
    parser.add_argument("--batch", type=int, default=None, help="default: 32 on CUDA, 8 on CPU")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 30 on CUDA, 5 on CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (compilation; default 5 on CUDA, 1 on CPU)")
    parser.add_argument("--no-compile", action="store_true", help="leave torch.compile out of the fast path")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dropout", type=float, default=0.1, help="backbone dropout on both sides (default 0.1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()
    global DROPOUT
    DROPOUT = args.dropout
    cuda = args.device.startswith("cuda")
    model = args.model or ("gpt2-124m" if cuda else "tiny")
    seq, batch = args.seq_len or (512 if cuda else 64), args.batch or (32 if cuda else 8)
    steps, warmup = args.steps or (30 if cuda else 5), args.warmup or (5 if cuda else 1)
    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 50257, (batch, seq), generator=g).to(args.device)
    labels = torch.randint(0, 2, (batch,), generator=g).to(args.device)
    tokens = batch * seq
    compile_ = cuda and not args.no_compile

    base_s = baseline(model, ids, labels, args.device, steps, warmup, 0.5)
    log(f"baseline (fp32 eager, plain AdamW): {base_s * 1000:.1f} ms/step, {tokens / base_s:,.0f} tokens/s")
    if cuda:
        torch.cuda.empty_cache()
    fast_s, params = worker(model, ids, labels, args.device, steps, warmup, 0.5, compile_)
    peak, device_name = peak_flops(args.device)
    tps = tokens / fast_s
    mfu = 6 * params * tps / peak if peak else None
    log(
        f"worker ({'bf16, SDPA, fused AdamW, TF32' if cuda else 'fp32, SDPA'}{', compiled' if compile_ else ''}): "
        f"{fast_s * 1000:.1f} ms/step, {tps:,.0f} tokens/s, speed-up {base_s / fast_s:.2f}x"
    )
    log(f"{model}: {params:,} parameters, batch {batch} x {seq}, device {device_name}"
        + (f", MFU {mfu:.3f} of {peak:.3g} FLOP/s" if mfu is not None else ", MFU n/a (no peak for this device)"))
    if args.json:
        print(json.dumps({
            "device": device_name, "params": params, "seq_len": seq, "batch": batch,
            "tokens_per_s": round(tps, 1), "baseline_tokens_per_s": round(tokens / base_s, 1),
            "speedup": round(base_s / fast_s, 3), "mfu": round(mfu, 4) if mfu is not None else None,
            "dropout": args.dropout,
        }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
