"""Delta encodings: how a weight delta is packed into the bytes an oracle commits to and reveals.

The task spec fixes one encoding per round (`TaskSpec.delta_encoding`), so every oracle sends the
same kind of file. The committed CID covers the encoded bytes; the aggregator and `dgpt audit`
decode them (`decode_file`) into the plain float32 delta every other check and the merge read.

    fp32   the float32 tensors as they are (4 bytes per element)
    bf16   each value rounded to bfloat16 (2 bytes): decoding widens exactly
    int8   blocks of `encoding_block` values, each an int8 in [-127, 127] times the block's
           float32 scale (max |x| / 127)
    int4   the same with 4-bit values in [-7, 7], two per byte (stored as q + 8, low nibble first)
    topk   per tensor only the ceil(`topk_fraction` x size) largest values by magnitude, as
           increasing int32 indices and float32 values; the rest read as zero. Tensors of at most
           4,096 values (biases, norms, the classifier head) are sent whole

Encoding is the oracle's business (its bytes are what it commits to); decoding is one IEEE
operation per element (a widening, or a product of two float32s, or a scatter), so the decoded
delta is the same to the last bit on any machine. The lossy encodings leave a residual (what was
not sent); the oracle keeps it and adds it to its next delta (error feedback), so nothing its
training found is lost for good, only delayed.

Bad encoded input is refused with the fault it shows, and every fault here is provable from the
bytes under the CID and the task spec: parts missing or extra, a dtype or a shape that does not
fit the tensor and the block size, a scale that is not a positive finite number, non-zero padding,
indices out of range, repeated or out of order, more values than the fraction allows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
import torch

from dgpt.errors import DGPTError

ENCODINGS = ("fp32", "bf16", "int8", "int4", "topk")
# The project's recommended encoding (the demo's and `dgpt plan`'s): see BENCHMARKS.md, compact deltas.
DEFAULT_ENCODING = "int4"

# The parts of one tensor in each encoding's file: suffix -> safetensors dtype.
PARTS = {
    "fp32": {"": "F32"},
    "bf16": {"": "BF16"},
    "int8": {".q": "I8", ".scale": "F32"},
    "int4": {".q": "U8", ".scale": "F32"},
    "topk": {".idx": "I32", ".val": "F32"},
}


TOPK_WHOLE = 4096  # topk sends tensors of at most this many values whole


class EncodingError(DGPTError):
    """An encoded delta that does not decode; `non_finite` when the fault is a NaN or infinite value."""

    def __init__(self, message: str, non_finite: bool = False):
        super().__init__(message)
        self.non_finite = non_finite


@dataclass(frozen=True)
class Encoding:
    name: str = "fp32"
    block: int = 64  # int8 / int4: values per scale
    fraction: float = 0.01  # topk: share of each tensor's values sent

    def __post_init__(self):
        if self.name not in ENCODINGS:
            raise DGPTError(f"delta_encoding {self.name!r} is not one of {', '.join(ENCODINGS)}")
        if self.block < 2 or self.block % 2 or self.block > 1 << 16:
            raise DGPTError(f"encoding_block {self.block} is not an even number from 2 to 65536")
        if not 0 < self.fraction <= 1:
            raise DGPTError(f"topk_fraction {self.fraction} is not in (0, 1]")

    @classmethod
    def of(cls, task) -> Encoding:
        return cls(task.delta_encoding, task.encoding_block, task.topk_fraction)

    @property
    def label(self) -> str:
        """What the file's metadata says and the check compares: the name and its parameter."""
        if self.name in ("int8", "int4"):
            return f"{self.name} block={self.block}"
        if self.name == "topk":
            return f"topk fraction={self.fraction!r}"
        return self.name

    @property
    def lossy(self) -> bool:
        return self.name != "fp32"

    def k(self, numel: int) -> int:
        """Values topk sends of a tensor of `numel`: all of a small one (a bias, a norm, the
        classifier head: few bytes, and the head is most of what fine-tuning changes), else the fraction."""
        return numel if numel <= TOPK_WHOLE else max(1, math.ceil(self.fraction * numel))


FP32 = Encoding()


# --- encoding (the oracle) ----------------------------------------------------------------------


def _blocks(x: torch.Tensor, block: int) -> torch.Tensor:
    flat = x.reshape(-1).float()
    pad = -flat.numel() % block
    return torch.cat([flat, flat.new_zeros(pad)]).view(-1, block)


def _quantise(x: torch.Tensor, block: int, levels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(q in [-levels, levels] as int8, one float32 scale per block). An all-zero block gets
    scale 1 (a zero scale is refused: it would make every q mean nothing)."""
    b = _blocks(x, block)
    amax = b.abs().amax(dim=1)
    scale = torch.where(amax > 0, amax / levels, torch.ones_like(amax))
    q = torch.round(b / scale[:, None]).clamp_(-levels, levels).to(torch.int8)
    return q, scale


def encode_tensor(x: torch.Tensor, enc: Encoding) -> dict[str, torch.Tensor]:
    """One float32 tensor -> its parts, keyed by suffix."""
    x = x.detach().float().cpu()
    if enc.name == "fp32":
        return {"": x.contiguous()}
    if enc.name == "bf16":
        return {"": x.to(torch.bfloat16)}
    if enc.name == "int8":
        q, scale = _quantise(x, enc.block, 127)
        return {".q": q, ".scale": scale}
    if enc.name == "int4":
        q, scale = _quantise(x, enc.block, 7)
        u = (q.to(torch.int16) + 8).to(torch.uint8).view(q.size(0), -1, 2)
        return {".q": (u[..., 0] | (u[..., 1] << 4)).contiguous(), ".scale": scale}
    flat = x.reshape(-1)
    k = enc.k(flat.numel())
    idx = flat.abs().topk(k, sorted=False).indices.sort().values  # the largest magnitudes, in index order
    return {".idx": idx.to(torch.int32), ".val": flat[idx].contiguous()}


def encode(delta: dict[str, torch.Tensor], enc: Encoding) -> dict[str, torch.Tensor]:
    """A delta -> the tensors of its encoded file (`name` + part suffix)."""
    out = {}
    for name in sorted(delta):
        for suffix, t in encode_tensor(delta[name], enc).items():
            out[name + suffix] = t
    return out


# --- decoding (the aggregator and the audit) ----------------------------------------------------


def check_parts(header: dict, expected: dict[str, tuple[int, ...]], enc: Encoding) -> dict[str, dict[str, dict]]:
    """The encoded file's header (without metadata) -> {tensor name: {suffix: header entry}},
    after checking names, dtypes and shapes against the model's tensors and the encoding."""
    parts = PARTS[enc.name]
    by_name: dict[str, dict[str, dict]] = {}
    for key, info in header.items():
        suffix = next((s for s in sorted(parts, key=len, reverse=True) if key.endswith(s)), None)
        name = key[: len(key) - len(suffix)] if suffix else key
        if suffix is None or name not in expected:
            raise EncodingError(f"{key}: not a part of a model tensor in {enc.label}")
        if not isinstance(info, dict) or info.get("dtype") != parts[suffix]:
            got = info.get("dtype") if isinstance(info, dict) else info
            raise EncodingError(f"{key}: dtype {got}, expected {parts[suffix]} ({enc.label})")
        by_name.setdefault(name, {})[suffix] = info
    for name, got in by_name.items():
        missing = sorted(set(parts) - set(got))
        if missing:
            raise EncodingError(f"{name}: parts missing in {enc.label}: {', '.join(name + s for s in missing)}")
        numel = math.prod(expected[name])
        want = _shapes(enc, numel, expected[name], got)
        for suffix, shape in want.items():
            if tuple(got[suffix].get("shape", ())) != shape:
                raise EncodingError(f"{name + suffix}: shape {got[suffix].get('shape')}, expected {list(shape)} "
                                    f"for {numel} values in {enc.label}")
    return by_name


def _shapes(enc: Encoding, numel: int, shape: tuple, got: dict) -> dict[str, tuple]:
    if enc.name in ("fp32", "bf16"):
        return {"": tuple(shape)}
    if enc.name in ("int8", "int4"):
        nblocks = -(-numel // enc.block)
        width = enc.block if enc.name == "int8" else enc.block // 2
        return {".q": (nblocks, width), ".scale": (nblocks,)}
    count = (got[".idx"].get("shape") or [None])[0]
    if not isinstance(count, int) or not 0 < count <= enc.k(numel):
        raise EncodingError(f"top-k count {count} for {numel} values: at most {enc.k(numel)} ({enc.label})")
    return {".idx": (count,), ".val": (count,)}


def decode_tensor(parts: dict[str, torch.Tensor], shape: tuple, enc: Encoding) -> torch.Tensor:
    """One tensor's parts (shapes and dtypes already checked) -> float32 of `shape`."""
    numel = math.prod(shape)
    if enc.name == "fp32":
        out = parts[""]
    elif enc.name == "bf16":
        out = parts[""].float()  # exact
    elif enc.name == "topk":
        idx, val = parts[".idx"].long(), parts[".val"]
        if not torch.isfinite(val).all():
            raise EncodingError("holds NaN or infinity", non_finite=True)
        if idx.numel() and (idx[0] < 0 or idx[-1] >= numel):
            raise EncodingError(f"index out of range [0, {numel})")
        if idx.numel() > 1 and not bool((idx[1:] > idx[:-1]).all()):
            raise EncodingError("indices repeated or not increasing")
        out = torch.zeros(numel).index_put_((idx,), val)
    else:
        scale = parts[".scale"]
        if not torch.isfinite(scale).all():
            raise EncodingError("a scale is NaN or infinite", non_finite=True)
        if not bool((scale > 0).all()):
            raise EncodingError("a scale is zero or negative")
        if enc.name == "int8":
            q = parts[".q"]
            if bool((q == -128).any()):
                raise EncodingError("an int8 value of -128 (the range is [-127, 127])")
        else:
            u = parts[".q"]
            q = torch.stack([(u & 0x0F), (u >> 4)], dim=-1).view(u.size(0), -1).to(torch.int8) - 8
        flat = q.view(-1)
        if bool(flat[numel:].any()):
            raise EncodingError("non-zero padding after the last value")
        # One float32 product per value: the same bits on any machine.
        out = (q.float() * scale[:, None]).view(-1)[:numel]
    return out.reshape(shape).contiguous()


def decode(tensors: dict[str, torch.Tensor], by_name: dict[str, dict], expected: dict[str, tuple], enc: Encoding) -> dict[str, torch.Tensor]:
    out = {}
    for name in sorted(by_name):
        try:
            out[name] = decode_tensor({s: tensors[name + s] for s in by_name[name]}, tuple(expected[name]), enc)
        except EncodingError as exc:
            raise EncodingError(f"{name}: {exc}", exc.non_finite) from None
    return out


def residual(sent: dict[str, torch.Tensor], decoded: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What the encoding dropped: sent - decoded, per tensor (error feedback for the next round)."""
    return {k: v - decoded.get(k, torch.zeros_like(v)) for k, v in sent.items()}


def with_residual(delta: dict[str, torch.Tensor], carried: dict[str, torch.Tensor], shapes: dict[str, tuple] | None = None) -> dict[str, torch.Tensor]:
    """delta + the residual carried from the last round (tensors of another shape are dropped:
    a residual for a head with other labels is no use)."""
    out = dict(delta)
    for k, r in carried.items():
        want = out[k].shape if k in out else (torch.Size(shapes[k]) if shapes and k in shapes else None)
        if want is None or r.shape != want:
            continue
        out[k] = out[k] + r if k in out else r.clone()
    return out

