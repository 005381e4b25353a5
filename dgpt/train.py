"""The worker's training loop: L3 = L2 + λ·L1 fine-tuning (or L1 pre-training), in one place.

Settings come from the round's TaskSpec (the science) and TrainOptions (the machine). The fast
path is plain flags: bf16 autocast, fused AdamW, TF32 and `torch.compile` on GPUs; the same code
runs in fp32 on CPUs. Several processes (torchrun) train with DistributedDataParallel: every rank
draws the same shuffled order and takes every world-th example of each global batch, and losses
divide by the global counts, so N processes follow the same trajectory as one.

    torchrun --nproc_per_node 2 -m dgpt.train MODEL TASK DATA OUT   # OUT: the weight delta
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import math
import os
import sys
import time
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from dgpt.data import Example
from dgpt.model import ModelBundle
from dgpt.objective import l1_sum, l2_sum, l3, lm_targets
from dgpt.task import TaskSpec


@dataclass
class TrainOptions:
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    bf16: bool | None = None  # None: on for CUDA
    fused: bool | None = None  # fused AdamW; None: on for CUDA
    compile: bool = False
    log_every: int = 50
    pad_to: int | None = None  # pad every batch to this length (benchmarks); None: to the batch's longest
    progress: bool = False  # a progress bar with ETA on stderr (the CLI turns it on for a terminal)


@dataclass
class Encoded:
    """Token ids of `<|start|> text <|extract|>` per example, and label indices (-1 when unlabelled)."""

    ids: list[list[int]]
    labels: list[int]

    def batch(self, idx: list[int], pad_id: int, pad_to: int | None, device: str):
        rows = [self.ids[i] for i in idx]
        width = pad_to or max(len(r) for r in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        for j, r in enumerate(rows):
            ids[j, : len(r)] = torch.tensor(r)
        lengths = torch.tensor([len(r) for r in rows])
        labels = torch.tensor([self.labels[i] for i in idx])
        nb = device != "cpu"
        return ids.to(device, non_blocking=nb), lengths.to(device, non_blocking=nb), labels.to(device, non_blocking=nb)


def encode(bundle: ModelBundle, examples: list[Example], labels: tuple[str, ...], max_len: int) -> Encoded:
    start, extract, _ = bundle.special_ids
    texts = bundle.tokenizer.encode_batch([e.text for e in examples], add_special_tokens=False)
    ids = [[start, *t.ids[: max_len - 2], extract] for t in texts]  # keep both markers when truncating
    index = {name: i for i, name in enumerate(labels)}
    # unlabelled text, or labels the model has no head for, get -1
    return Encoded(ids, [index[e.label] if labels and e.label is not None else -1 for e in examples])


@dataclass
class TrainResult:
    steps: int
    seconds: float
    tokens: int
    history: list[dict] = field(default_factory=list)  # {"step", "l1", "l2", "l3", "lr"} every log_every steps


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class Step:
    """One optimisation step of L3 (or L1): forward, loss over global counts, backward, clip, AdamW, schedule.

    The bench and the training loop share it. No host syncs: losses stay on the device.
    """

    def __init__(self, model, task: TaskSpec, opts: TrainOptions, total_steps: int):
        rank, self.world = _world()
        cuda = opts.device.startswith("cuda")
        if cuda:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.model, self.task = model, task
        self.finetune = task.phase == "finetune"
        decay = [p for p in model.parameters() if p.dim() >= 2]
        no_decay = [p for p in model.parameters() if p.dim() < 2]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": task.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=task.lr,
            betas=(0.9, 0.999),
            eps=1e-8,
            fused=cuda if opts.fused is None else opts.fused,
        )
        warmup = max(1, round(task.warmup * total_steps))
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda s: (s + 1) / warmup if s < warmup else max(0.0, (total_steps - s) / max(1, total_steps - warmup)),
        )
        net = DistributedDataParallel(model) if self.world > 1 else model
        bf16 = cuda if opts.bf16 is None else opts.bf16
        self.autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
        # Compiling the losses with the model lets the compiler fuse the vocabulary-wide softmax.
        self.losses = torch.compile(self._losses) if opts.compile else self._losses
        self.net = net

    def _losses(self, ids, lengths, labels, n_tokens, n_examples):
        with self.autocast():
            lm_logits, cls_logits = self.net(ids, lengths - 1)
        loss1 = l1_sum(lm_logits, lm_targets(ids, lengths))[0] / n_tokens
        if not self.finetune:
            return loss1, torch.zeros_like(loss1), loss1
        loss2 = l2_sum(cls_logits, labels, self.task.label_smoothing)[0] / n_examples
        return loss1, loss2, l3(loss1, loss2, self.task.lam)

    def __call__(self, ids, lengths, labels, n_tokens: int, n_examples: int):
        # Counts as tensors: a compiled step would otherwise specialise (and recompile) on every value.
        counts = torch.tensor([n_tokens, n_examples], dtype=torch.float32).to(ids.device, non_blocking=True)
        loss1, loss2, loss = self.losses(ids, lengths, labels, counts[0], counts[1])
        (loss * self.world).backward()  # DDP averages gradients over ranks; the losses are already global means
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.task.grad_clip)
        self.optimizer.step()
        self.schedule.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss1.detach(), loss2.detach(), loss.detach()


def attach_head(bundle: ModelBundle, task: TaskSpec) -> bool:
    """Give a head-less model the task's initial head (model.initial_head) before fine-tuning;
    True if it added one. A worker takes its base weights after this, so its delta's head is the
    change training made to the shared start."""
    if task.phase != "finetune" or bundle.model.head is not None:
        return False
    bundle.model.add_head(len(task.labels), task.seed)
    bundle.labels = task.labels
    return True


@functools.cache  # once per process
def reuse_freed_memory() -> None:
    """Have glibc serve large CPU tensors from its heap and keep what is freed for reuse (elsewhere
    nothing). Why: glibc maps every block over 32 MiB afresh and unmaps it when freed, so each
    step's vocabulary-wide logits and their gradients (32 x 48 x 8,192 x 4 B = 50 MB a training
    batch on the tiny model) cost newly zeroed pages every step: in the demo 157 million page
    faults and 29% of its CPU time in the kernel (BENCHMARKS.md, the demo, ninth stop). The cost:
    a process keeps its peak heap instead of returning it. Values are unchanged, only where they live."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (macOS has no mallopt)
        return
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's malloc.h
    mallopt(M_MMAP_MAX, 0)  # no block of its own mapping: every block from the heap
    mallopt(M_TRIM_THRESHOLD, 2**31 - 1)  # never hand the heap's top back to the OS


def train(bundle: ModelBundle, task: TaskSpec, examples: list[Example], opts: TrainOptions = TrainOptions(), log=print) -> TrainResult:
    """Train `bundle.model` in place on `examples` as `task` says."""
    reuse_freed_memory()
    rank, world = _world()
    device = opts.device
    cuda = device.startswith("cuda")
    finetune = task.phase == "finetune"
    torch.manual_seed(task.seed + rank)  # dropout differs per rank, as each rank sees other examples

    model = bundle.model
    attach_head(bundle, task)
    model.clf_dropout.p = task.clf_dropout
    model.to(device).train()
    data = encode(bundle, examples, task.labels if finetune else (), task.max_len)
    _, _, pad_id = bundle.special_ids

    steps_per_epoch = math.ceil(len(examples) / task.batch_size)
    total = steps_per_epoch * task.epochs
    step = Step(model, task, opts, total)
    result = TrainResult(0, 0.0, 0)
    sums = torch.zeros(4, device=device)  # running l1, l2, l3, batches since the last log: no host sync per step
    bar = None
    if opts.progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="step", desc=task.phase, file=sys.stderr, dynamic_ncols=True)
        plain_log = log

        def log(message: str) -> None:  # the bar steps aside for a log line
            with tqdm.external_write_mode(file=sys.stderr):
                plain_log(message)
    t0 = time.perf_counter()
    for epoch in range(task.epochs):
        order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(task.seed * 1000 + epoch)).tolist()
        for b in range(steps_per_epoch):
            global_idx = order[b * task.batch_size : (b + 1) * task.batch_size]
            idx = global_idx[rank::world]
            # Global counts come from the host-side batch: no communication, no device sync.
            n_tokens = sum(len(data.ids[i]) - 1 for i in global_idx)
            ids, lengths, labels = data.batch(idx, pad_id, opts.pad_to, device)
            loss1, loss2, loss = step(ids, lengths, labels, n_tokens, len(global_idx))
            result.steps += 1
            result.tokens += n_tokens + len(global_idx)
            if bar is not None:
                bar.update(1)
            sums += torch.stack([loss1 * world, loss2 * world, loss * world, torch.ones((), device=device)])
            if result.steps % opts.log_every == 0 or result.steps == total:
                if world > 1:
                    dist.all_reduce(sums)
                    sums /= world
                l1v, l2v, l3v = (sums[:3] / sums[3]).tolist()
                entry = {"step": result.steps, "epoch": epoch, "l1": l1v, "l2": l2v if finetune else None, "l3": l3v, "lr": step.schedule.get_last_lr()[0]}
                result.history.append(entry)
                if rank == 0:
                    shown = f"L1 {l1v:.4f}" + (f"  L2 {l2v:.4f}  L3 {l3v:.4f}" if finetune else "")
                    eta = (time.perf_counter() - t0) / result.steps * (total - result.steps)
                    log(f"step {result.steps}/{total}  epoch {epoch + 1}  {shown}  lr {entry['lr']:.2e}  ETA {eta:.0f} s")
                sums.zero_()
    if bar is not None:
        bar.close()
    if cuda:
        torch.cuda.synchronize()
    result.seconds = time.perf_counter() - t0
    model.eval()
    return result


@torch.no_grad()
def evaluate(bundle: ModelBundle, examples: list[Example], task: TaskSpec, device: str = "cpu", batch_size: int = 64,
             per_example: bool = False, lm: bool = True) -> dict:
    """Accuracy (if the model has a head), L1 per token, L2 per example and L3 on labelled examples.
    per_example: also "per_example", each example's own score (its L2 with a head, else its mean
    L1 per token), and with a head "per_example_correct" (1 where the prediction is right) and
    "per_example_logits" (the head's outputs): what the aggregator's tests compare. `lm=False` (a
    model with a head only): no L1 and no L3 (None), so no LM head over the vocabulary, about
    three quarters of the pass on the tiny model."""
    reuse_freed_memory()
    model = bundle.model.to(device).eval()
    labels = bundle.labels if model.head is not None else ()
    if not lm and model.head is None:
        raise ValueError("evaluate: lm=False needs a model with a classifier head")
    data = encode(bundle, examples, labels, task.max_len)
    _, _, pad_id = bundle.special_ids
    s1 = s2 = 0.0
    n_tok = correct = 0
    rows: list[float] = []
    hits: list[int] = []
    logits: list[list[float]] = []
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else contextlib.nullcontext()
    for b in range(0, len(examples), batch_size):
        idx = list(range(b, min(b + batch_size, len(examples))))
        ids, lengths, y = data.batch(idx, pad_id, None, device)
        with autocast:
            lm_logits, cls_logits = model(ids, lengths - 1, lm=lm)
        targets = lm_targets(ids, lengths)
        if lm:
            a, n = l1_sum(lm_logits, targets)
            s1 += a.item()
            n_tok += n.item()
        if cls_logits is not None:
            s2 += l2_sum(cls_logits, y)[0].item()
            correct += (cls_logits.argmax(-1) == y).sum().item()
        if per_example:
            rows.extend(per_example_scores(lm_logits, targets, cls_logits, y).tolist())
            if cls_logits is not None:
                hits.extend((cls_logits.argmax(-1) == y).long().tolist())
                logits.extend(cls_logits.double().tolist())
    l1v = s1 / n_tok if lm else None
    out = {"n": len(examples), "l1": l1v, "l2": None, "l3": None, "accuracy": None}
    if per_example:
        out["per_example"] = rows
        if model.head is not None:
            out["per_example_correct"] = hits
            out["per_example_logits"] = logits
    if model.head is not None:
        out.update(l2=s2 / len(examples), accuracy=correct / len(examples), l3=s2 / len(examples) + task.lam * l1v if lm else None)
    return out


def per_example_scores(lm_logits, targets, cls_logits, y) -> torch.Tensor:
    """Each example's L2 (with a head) or its mean L1 per predicted token (without)."""
    if cls_logits is not None:
        return torch.nn.functional.cross_entropy(cls_logits if cls_logits.dtype == torch.float64 else cls_logits.float(), y, reduction="none")
    logits = lm_logits[:, :-1]
    nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)).double(), targets.reshape(-1), ignore_index=-100,
                                            reduction="none").view(targets.shape)
    return nll.sum(1) / (targets != -100).sum(1).clamp(min=1)


def main(argv: list[str] | None = None) -> int:
    """Entry point for torchrun: train MODEL on DATA as TASK says and write the delta to OUT (rank 0)."""
    from dgpt.data import load_examples
    from dgpt.delta import compute_delta, save_delta
    from dgpt.encoding import Encoding
    from dgpt.errors import DGPTError
    from dgpt.model import load_model, state_dict
    from dgpt.store.unixfs import file_cid

    parser = argparse.ArgumentParser(prog="python -m dgpt.train", description=main.__doc__)
    parser.add_argument("model")
    parser.add_argument("task")
    parser.add_argument("data")
    parser.add_argument("out")
    parser.add_argument("--device", default=None)
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args(argv)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    try:
        task = TaskSpec.from_bytes(open(args.task, "rb").read())
        examples = load_examples(args.data, task.labels if task.phase == "finetune" else None)
        bundle = load_model(args.model)
    except (DGPTError, OSError) as exc:
        print(f"dgpt.train: error: {exc}", file=sys.stderr)
        return 1
    device = args.device or TrainOptions().device
    if distributed:
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        if device.startswith("cuda"):
            device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
            torch.cuda.set_device(device)
    fresh_head = attach_head(bundle, task)
    base = {k: v.clone() for k, v in state_dict(bundle.model).items()}
    train(bundle, task, examples, TrainOptions(device=device, compile=args.compile, progress=sys.stderr.isatty()))
    if _world()[0] == 0:
        # The delta names the content addresses of the model and task it was made from, as the
        # aggregator checks (a delta for another base model is stale).
        with open(args.model, "rb") as f:
            base_model_cid = str(file_cid(f))
        with open(args.task, "rb") as f:
            task_spec_cid = str(file_cid(f))
        save_delta(args.out, compute_delta(base, state_dict(bundle.model)), num_examples=len(examples), labels=bundle.labels,
                   base_model_cid=base_model_cid, task_spec_cid=task_spec_cid, encoding=Encoding.of(task),
                   head_seed=task.seed if fresh_head else None)
    if distributed:
        # Leave together, then leave at once: tearing gloo down (destroy_process_group, or the
        # interpreter's finalisation with gloo's threads still alive) aborts now and then with
        # "terminate called without an active exception" (SIGABRT) after the work is done. The
        # delta is written and closed by now, so skip the teardown.
        dist.barrier()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
