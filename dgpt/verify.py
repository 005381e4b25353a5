"""Checks on a revealed delta before it may be merged; each failure names its evidence.

Order: size under the cap; a safetensors header that parses, of our delta format, made for this
round's base model (a stale delta is rejected, not slashed: it may be an honest client's bug), in
the round's encoding; an encoded delta is then decoded (dgpt/encoding.py: every part named, typed
and shaped as the encoding and the model's tensors say, scales positive and finite, indices in
range and increasing) into a plain float32 file, and the rest runs on that: every tensor named like
one of the model's, with its shape and float32 (or the new head, in the first fine-tuning round),
nothing extra; all values finite; L2 norm within the task's bound. Only the header is read before
the structure is accepted; tensors are then read one at a time.
"""

from __future__ import annotations

import hashlib
import struct
from fractions import Fraction
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from dgpt import exact, tensorfile
from dgpt.delta import FORMAT
from dgpt.encoding import FP32, Encoding, EncodingError, check_parts, decode
from dgpt.report import Reason
from dgpt.tensorfile import read_header

MALFORMED, NON_FINITE, NORM_OUT_OF_BOUND, STALE = Reason.MALFORMED, Reason.NON_FINITE, Reason.NORM_OUT_OF_BOUND, Reason.STALE


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: Reason | None = None  # MALFORMED, NON_FINITE, NORM_OUT_OF_BOUND or STALE
    detail: str = ""
    norm: float | None = None
    path: Path | None = None  # the float32 delta the later stages read (the decoded file for an encoded one)


def _header(path: Path) -> dict:
    with open(path, "rb") as f:
        return read_header(f)


def check_delta(path: Path, expected: dict[str, tuple[int, ...]], max_bytes: int, max_norm: float, base_model_cid: str | None = None,
                encoding: Encoding = FP32, decoded_path: Path | None = None) -> Verdict:
    """`expected`: name -> shape of every tensor a delta may hold for this round; `base_model_cid`:
    the round's base model, which the delta's metadata must name (None: not checked); `encoding`:
    the round's, which the file must declare; an encoded file is decoded to `decoded_path`
    (default: beside it)."""
    size = path.stat().st_size
    if size > max_bytes:
        return Verdict(False, MALFORMED, f"{size} bytes, over the cap of {max_bytes}")
    try:
        header = _header(path)
    except (ValueError, UnicodeDecodeError, struct.error) as exc:
        return Verdict(False, MALFORMED, f"not a safetensors file: {exc}")
    meta = header.pop("__metadata__", {}) or {}
    if meta.get("format") != FORMAT:
        return Verdict(False, MALFORMED, f"metadata format {meta.get('format')!r}, expected {FORMAT}")
    if base_model_cid is not None and meta.get("base_model_cid") != base_model_cid:
        return Verdict(False, STALE, f"made for base model {meta.get('base_model_cid')!r}, not this round's {base_model_cid}")
    declared = meta.get("encoding", FP32.label)
    if declared != encoding.label:
        return Verdict(False, MALFORMED, f"encoded as {declared!r}, the task spec says {encoding.label!r}")
    if encoding != FP32:
        decoded_path = decoded_path or path.with_name(path.name + ".decoded")
        try:
            by_name = check_parts(header, expected, encoding)
            with safe_open(str(path), framework="pt") as f:
                decoded = decode({k: f.get_tensor(k) for k in f.keys()}, by_name, expected, encoding)
        except EncodingError as exc:
            return Verdict(False, NON_FINITE if exc.non_finite else MALFORMED, str(exc))
        except Exception as exc:  # truncated or inconsistent offsets
            return Verdict(False, MALFORMED, f"unreadable tensor data: {exc}")
        plain = {k: v for k, v in meta.items() if k not in ("encoding", "shapes")}
        tensorfile.save(decoded_path, decoded, plain)
        path = decoded_path
        header = {k: v for k, v in _header(path).items() if k != "__metadata__"}
    extra = sorted(set(header) - set(expected))
    if extra:
        return Verdict(False, MALFORMED, f"tensors the model does not have: {extra[:3]}")
    for name, info in header.items():
        if not isinstance(info, dict) or info.get("dtype") != "F32":
            return Verdict(False, MALFORMED, f"{name}: dtype {info.get('dtype') if isinstance(info, dict) else info}, expected F32")
        if tuple(info.get("shape", ())) != tuple(expected[name]):
            return Verdict(False, MALFORMED, f"{name}: shape {info.get('shape')}, expected {list(expected[name])}")
    sq = exact.ZERO
    try:
        with safe_open(str(path), framework="pt") as f:
            for name in sorted(header):
                t = f.get_tensor(name)
                if not torch.isfinite(t).all():
                    return Verdict(False, NON_FINITE, f"{name} holds NaN or infinity")
                sq = sq + exact.chunked(exact.sq_norm, t)
    except Exception as exc:  # truncated or inconsistent offsets
        return Verdict(False, MALFORMED, f"unreadable tensor data: {exc}")
    # Exact: the squared norm is summed without rounding and compared with the bound exactly, so
    # the slash decision is the same on every machine (dgpt/exact.py).
    norm = sq.sqrt()
    if sq.fraction() > Fraction(max_norm) ** 2:
        return Verdict(False, NORM_OUT_OF_BOUND, f"L2 norm {norm:.4g} over the bound {max_norm:.4g}", norm)
    return Verdict(True, norm=norm, path=path)


def data_digest(path: Path) -> str:
    """sha256 of a safetensors file's tensor bytes, header and metadata excluded: the same tensors
    under rewritten metadata (a replayed or copied delta) give the same digest."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        read_header(f)
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
