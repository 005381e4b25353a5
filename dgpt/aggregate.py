"""Merging weight deltas: the strategies as small pure functions, and a streaming merge.

Each strategy takes one tensor from every accepted delta, stacked as [n, ...], and returns the
merged tensor (Flower's aggregate.py, tensor by tensor). The streaming merge walks the model's
tensor names once and holds, at any time, the model being built plus one tensor per submission:
never all submissions at once. Deltas are read lazily from their safetensors files.

Strategies (name: parameters):
- fedavg: mean weighted by example count (default);
- median: coordinate-wise median (mean of the two middle values for an even count);
- trimmed_mean (trim): coordinate-wise mean after dropping the `trim` fraction at each end;
- clipped_mean (clip): each delta scaled to L2 norm at most `clip`, then weighted by examples;
- krum (f, m): multi-Krum, the `m` deltas whose summed squared distances to their n - f - 2
  nearest neighbours are smallest, averaged with example weights.

Every strategy also takes `server_lr` (FedAvg's server learning rate, Reddi et al. 2021): the
merged delta is scaled by it before it is added to the base (default 1, at most MAX_SERVER_LR).
At equal epochs each of n oracles takes 1/n of central training's steps; a server learning rate
above 1 gives some of them back. And `momentum` (FedAvgM, Hsu et al. 2019, as heavy ball): the
new model is base + server_lr * merged delta + momentum * (base - previous base), where the
previous base is the base of the round that produced this round's base (dgpt/round.py says when
there is one). Both models are public, so the audit recomputes the term from their bytes; no
optimiser state lives with the aggregator (default 0, at most MAX_MOMENTUM).
"""

from __future__ import annotations

import json
import math
import mmap
from dataclasses import dataclass, field
from pathlib import Path

import torch

from dgpt import exact
from dgpt.tensorfile import DTYPES, read_header

STRATEGIES = ("fedavg", "median", "trimmed_mean", "clipped_mean", "krum")
PARAMS = {"fedavg": (), "median": (), "trimmed_mean": ("trim",), "clipped_mean": ("clip",), "krum": ("f", "m")}
MAX_SERVER_LR = 8.0  # a code constant the audit recomputes under: no aggregator key sets a larger one
MAX_MOMENTUM = 0.9  # likewise; below 1 so that the carried update decays (a unit momentum would never forget one)


@dataclass(frozen=True)
class Strategy:
    name: str = "fedavg"
    params: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.name not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.name!r}; one of {', '.join(STRATEGIES)}")
        allowed = (*PARAMS[self.name], "server_lr", "momentum")
        for k, v in self.params.items():
            if k not in allowed:
                raise ValueError(f"strategy {self.name} takes no parameter {k!r}; it takes {', '.join(allowed)}")
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"strategy parameter {k}={v!r} is not a finite number")
        if not 0 < self.server_lr <= MAX_SERVER_LR:
            raise ValueError(f"server_lr {self.server_lr:g} is outside (0, {MAX_SERVER_LR:g}]")
        if not 0 <= self.momentum <= MAX_MOMENTUM:
            raise ValueError(f"momentum {self.momentum:g} is outside [0, {MAX_MOMENTUM:g}]")

    @property
    def server_lr(self) -> float:
        return float(self.params.get("server_lr", 1.0))

    @property
    def momentum(self) -> float:
        return float(self.params.get("momentum", 0.0))

    def to_json(self) -> dict:
        return {"name": self.name, **self.params}


# --- per-tensor rules ------------------------------------------------------------------------------


def median(stack: torch.Tensor) -> torch.Tensor:
    s = stack.sort(0).values
    n = s.size(0)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def trimmed_mean(stack: torch.Tensor, trim: float) -> torch.Tensor:
    n = stack.size(0)
    k = int(trim * n)
    if 2 * k >= n:
        raise ValueError(f"trimming {k} of {n} at each end leaves nothing")
    kept = stack.sort(0).values[k : n - k]
    # Rows added one by one in float64, then one division: no reduction whose order a machine picks.
    acc = torch.zeros(kept.shape[1:], dtype=torch.float64)
    for row in kept:
        acc = acc + row.double()
    return (acc / kept.size(0)).to(stack.dtype)


def krum_select(sq_dist: torch.Tensor, f: int, m: int) -> list[int]:
    """Indices of the m deltas multi-Krum keeps, from the n x n matrix of squared distances."""
    n = sq_dist.size(0)
    k = max(1, n - f - 2)
    scores = []
    for i in range(n):
        others = torch.cat([sq_dist[i, :i], sq_dist[i, i + 1 :]])
        scores.append(others.sort().values[:k].sum().item() if len(others) else 0.0)
    order = sorted(range(n), key=lambda i: (scores[i], i))  # ties broken by index: deterministic
    return sorted(order[: max(1, min(m, n))])


# --- streaming over delta files --------------------------------------------------------------------


CHUNK = 1 << 20  # elements of one tensor processed at a time (4 MB of float32 per delta): memory stays flat


class DeltaFiles:
    """Delta files, memory-mapped: a slice of a tensor is a zero-copy view, and once merged its
    pages are handed back (MADV_DONTNEED), so resident memory stays at one slice per file whatever
    the file sizes. Tensors a delta lacks read as zeros."""

    def __init__(self, paths: list[Path]):
        self.files = []
        for p in paths:
            with open(p, "rb") as f:
                header = read_header(f)
                data_start = f.tell()
                # A private (copy-on-write) map is writable, which torch.frombuffer wants; nothing writes it.
                mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
            header.pop("__metadata__", None)
            self.files.append((mm, data_start, header))
        self.names = [set(h) for _, _, h in self.files]
        self.touched: list[tuple[int, int, int]] = []

    def close(self) -> None:
        for mm, _, _ in self.files:
            mm.close()

    def read(self, i: int, name: str, start: int, stop: int) -> torch.Tensor:
        """Elements [start, stop) of the flattened tensor `name` of delta i, as float32; valid until `release()`."""
        mm, data_start, header = self.files[i]
        if name not in header:
            return torch.zeros(stop - start)
        info = header[name]
        dtype = DTYPES[info["dtype"]]
        size = torch.empty((), dtype=dtype).element_size()
        offset = data_start + info["data_offsets"][0] + start * size
        self.touched.append((i, offset, (stop - start) * size))
        return torch.frombuffer(mm, dtype=dtype, count=stop - start, offset=offset).float()

    def release(self) -> None:
        """Drop the pages of every slice read since the last release from this process's memory."""
        for i, offset, length in self.touched:
            begin = offset - offset % mmap.PAGESIZE
            self.files[i][0].madvise(mmap.MADV_DONTNEED, begin, length + offset - begin)
        self.touched.clear()

    def stack(self, name: str, start: int, stop: int) -> torch.Tensor:
        return torch.stack([self.read(i, name, start, stop) for i in range(len(self.files))])

    def all_names(self) -> list[str]:
        return sorted(set().union(*self.names)) if self.names else []


def pairwise_sq_distances(files: DeltaFiles, shapes: dict[str, tuple]) -> torch.Tensor:
    """||Δi - Δj||² = ||Δi||² + ||Δj||² - 2 Δi·Δj for all pairs, from exact dot products
    (dgpt/exact.py), rounded once: the same on every machine."""
    n = len(files.files)
    dots = [[exact.ZERO] * n for _ in range(n)]
    for name in sorted(shapes):
        numel = torch.Size(shapes[name]).numel()
        for a in range(0, numel, CHUNK):
            rows = [files.read(i, name, a, min(a + CHUNK, numel)) for i in range(n)]
            for i in range(n):
                for j in range(i, n):
                    dots[i][j] = dots[i][j] + exact.dot(rows[i], rows[j])
            del rows
            files.release()
    d = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        for j in range(i + 1, n):
            v = float(dots[i][i].fraction() + dots[j][j].fraction() - 2 * dots[i][j].fraction())
            d[i, j] = d[j, i] = v
    return d


PARTS = ("backbone", "head")  # the groups of parameters checked apart: the classifier head W_y and the rest


def part_of(name: str) -> str:
    return "head" if name.startswith("head.") else "backbone"


@dataclass
class Geometry:
    """How a round's deltas lie relative to each other, all from exact sums rounded once."""

    cosine: list[float]  # each delta's cosine to the coordinate-wise median of all of them
    part_cosine: dict[str, list[float]]  # the same, per part (only parts some delta changes)
    part_norm: dict[str, list[float]]  # each delta's L2 norm per part
    part_along: dict[str, list[float]]  # each delta's part . the median's part / |median|: its length along the round's direction
    pair_cosine: list[list[float]]  # cosine between every two deltas


def _cos(dot: exact.Exact, a: exact.Exact, b: exact.Exact) -> float:
    denom = math.sqrt(float(a.fraction() * b.fraction()))
    return float(dot) / denom if denom > 0 else 0.0


def geometry(delta_paths: list[Path], shapes: dict[str, tuple]) -> Geometry:
    """One pass over the deltas, slice by slice: each delta's cosine to the coordinate-wise median
    (whole and per part), its norm per part, and the cosine between every pair. With an honest
    majority the median points the honest way: a sign-flipped delta scores near -1, and a copy of
    another delta scores a pairwise cosine of ~1."""
    files = DeltaFiles(delta_paths)
    try:
        n = len(delta_paths)
        Z = exact.ZERO
        dots = {p: [Z] * n for p in PARTS}  # delta . median, per part
        sqs = {p: [Z] * n for p in PARTS}  # |delta|^2, per part
        med_sq = {p: Z for p in PARTS}  # |median|^2, per part
        pair = [[Z] * n for _ in range(n)]  # delta_i . delta_j, whole
        parts = set()
        for name in sorted(set(files.all_names()) & set(shapes)):
            part = part_of(name)
            parts.add(part)
            numel = torch.Size(shapes[name]).numel()
            for a in range(0, numel, CHUNK):
                s = files.stack(name, a, min(a + CHUNK, numel))
                m = median(s)  # a sort and one halving: exact and order-free
                for i in range(n):
                    dots[part][i] = dots[part][i] + exact.dot(s[i], m)
                    for j in range(i, n):
                        d = exact.dot(s[i], s[j])
                        pair[i][j] = pair[i][j] + d
                        if j == i:
                            sqs[part][i] = sqs[part][i] + d
                med_sq[part] = med_sq[part] + exact.sq_norm(m)
                files.release()
        parts = [p for p in PARTS if p in parts]
        whole_dot = [sum((dots[p][i] for p in parts), Z) for i in range(n)]
        whole_med = sum((med_sq[p] for p in parts), Z)
        return Geometry(
            cosine=[_cos(whole_dot[i], pair[i][i], whole_med) for i in range(n)],
            part_cosine={p: [_cos(dots[p][i], sqs[p][i], med_sq[p]) for i in range(n)] for p in parts},
            part_norm={p: [sqs[p][i].sqrt() for i in range(n)] for p in parts},
            part_along={p: [float(dots[p][i]) / whole_med.sqrt() if whole_med.num else 0.0 for i in range(n)] for p in parts},
            pair_cosine=[[_cos(pair[min(i, j)][max(i, j)], pair[i][i], pair[j][j]) for j in range(n)] for i in range(n)],
        )
    finally:
        files.close()


def cosine_to_median(delta_paths: list[Path], shapes: dict[str, tuple]) -> list[float]:
    """Each delta's cosine similarity to the coordinate-wise median of all of them."""
    return geometry(delta_paths, shapes).cosine


def merge(
    base: dict[str, torch.Tensor],
    delta_paths: list[Path],
    weights: list[float],
    strategy: Strategy,
    norms: list[float] | None = None,
    new_shapes: dict[str, tuple] | None = None,
    inplace: bool = False,
    part_scale: list[dict[str, float]] | None = None,
    previous: dict[str, torch.Tensor] | None = None,
) -> tuple[dict[str, torch.Tensor], dict]:
    """base + merged delta, slice by slice of each tensor. Returns the new state and what the
    strategy decided (for the report: which deltas Krum kept, clip factors). `inplace` adds into
    `base`'s float32 tensors instead of copying them: one model in memory, not two. `part_scale`:
    per delta, a factor per part (the round's per-part clipping), applied before the strategy.
    `previous`: the last round's update (base - previous base) by tensor name, which the
    strategy's momentum carries into this one (tensors it lacks carry nothing)."""
    files = DeltaFiles(delta_paths)
    try:
        n = len(delta_paths)
        shapes = {k: tuple(v.shape) for k, v in base.items()} | (new_shapes or {})
        decided: dict = {}
        rows = list(range(n))
        if strategy.name == "krum":
            f = int(strategy.params.get("f", 1))
            m = int(strategy.params.get("m", max(1, n - f)))
            rows = krum_select(pairwise_sq_distances(files, {k: shapes[k] for k in files.all_names()}), f, m)
            decided["krum_selected"] = rows
        if strategy.name == "clipped_mean":
            clip = float(strategy.params.get("clip", 1.0))
            scale = [min(1.0, clip / nrm) if nrm > 0 else 1.0 for nrm in (norms or [0.0] * n)]
            decided["clip_factors"] = scale
        else:
            scale = None
        out = {}
        in_deltas = set(files.all_names())
        beta = strategy.momentum if previous else 0.0
        for name in sorted(set(base) | in_deltas):
            like = base.get(name)
            if like is None:
                like = torch.zeros(shapes[name])
            if inplace and like.dtype == torch.float32:
                target = like
            else:
                target = like.float().clone()
            carried = previous.get(name) if beta else None
            if carried is not None and tuple(carried.shape) != tuple(target.shape):
                carried = None
            if name in in_deltas or carried is not None:
                flat = target.view(-1)
                for a in range(0, flat.numel(), CHUNK):
                    b = min(a + CHUNK, flat.numel())
                    if name in in_deltas:
                        parts = [ps.get(part_of(name), 1.0) for ps in part_scale] if part_scale else None
                        flat[a:b] += _merge_slice(files, name, a, b, strategy, weights, rows, scale, parts)
                        files.release()
                    if carried is not None:
                        flat[a:b] += carried.reshape(-1)[a:b].float() * beta  # one product, one add per value
            out[name] = target if target.dtype == like.dtype else target.to(like.dtype)
        return out, decided
    finally:
        files.close()


def _merge_slice(files: DeltaFiles, name: str, a: int, b: int, strategy: Strategy, weights: list[float], rows: list[int],
                 scale: list[float] | None, parts: list[float] | None = None) -> torch.Tensor:
    """One slice of the merged delta. Bit-exact on any machine: each step is one elementwise IEEE
    operation, delta by delta in address order: a product by the delta's factor (w_i / total,
    computed once in Python), then a plain add. No fused multiply-add (which `add_(x, alpha=w)`
    may take, with one rounding instead of two, on some CPUs and not others) and no reduction
    whose order threads or SIMD width pick."""
    if strategy.name in ("fedavg", "clipped_mean", "krum"):
        # clipped_mean: scaling each delta scales its weight; the total stays the unscaled weights'
        total = float(sum(weights)) if scale is not None else float(sum(weights[i] for i in rows))
        acc = None
        for i in rows:
            factor = weights[i] / total * (scale[i] if scale is not None else 1.0) * (parts[i] if parts else 1.0) * strategy.server_lr
            t = files.read(i, name, a, b) * factor
            acc = t if acc is None else acc.add_(t)  # alpha 1: an fma with 1 rounds as the add does
        return acc
    stack = files.stack(name, a, b)
    if parts and any(f != 1.0 for f in parts):
        stack = stack * torch.tensor(parts, dtype=stack.dtype).view(-1, *[1] * (stack.dim() - 1))  # one product per value
    merged = median(stack) if strategy.name == "median" else trimmed_mean(stack, float(strategy.params.get("trim", 0.1)))
    return merged if strategy.server_lr == 1.0 else merged * strategy.server_lr  # one product per value


def naive_fedavg(base: dict[str, torch.Tensor], delta_paths: list[Path], weights: list[float]) -> dict[str, torch.Tensor]:
    """The baseline the benchmark compares with: load every delta whole, then average."""
    from safetensors.torch import load_file

    deltas = [load_file(str(p)) for p in delta_paths]
    total = sum(weights)
    out = {}
    for name, t in base.items():
        acc = torch.zeros_like(t, dtype=torch.float32)
        for d, wt in zip(deltas, weights):
            if name in d:
                acc += d[name].float() * (wt / total)
        out[name] = (t.float() + acc).to(t.dtype)
    return out


def build_model(
    base_path: Path,
    delta_paths: list[Path],
    weights: list[float],
    strategy: Strategy,
    norms: list[float],
    labels: tuple[str, ...],
    out_path: Path,
    part_scale: list[dict[str, float]] | None = None,
    head_seed: int = 0,
    previous: dict[str, torch.Tensor] | None = None,
) -> dict:
    """Write base + merged deltas as a model file; the same inputs give the same bytes (and CID).
    A head-less base that fine-tuning deltas are merged into starts from the task's initial head
    (`head_seed`: the task's seed), as the oracles did. Shared by the aggregator and `dgpt audit`."""
    from dgpt.model import read_state, with_initial_head, write_state

    base, meta = read_state(base_path)
    if delta_paths:
        base = with_initial_head(base, meta, len(labels), head_seed)
        state, decided = merge(base, delta_paths, weights, strategy, norms, inplace=True, part_scale=part_scale, previous=previous)
    else:
        state, decided = base, {}
    model_labels = labels if "head.weight" in state else tuple(json.loads(meta.get("labels", "[]")))
    write_state(out_path, state, meta, model_labels)
    return decided
