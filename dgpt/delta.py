"""Weight deltas: fine-tuned minus base, as safetensors with their provenance in the metadata.

A delta holds every tensor that changed, by its model name. A base model without a classifier
head counts, for a fine-tuning task, as holding the task's initial head (dgpt.model.initial_head):
the delta's head is what training changed, and its metadata names the seed (`head_seed`). Applying a delta
adds it (scaled) to a model's tensors, creating the ones it adds. On disk and in the store a delta
is encoded as the round's task spec says (dgpt/encoding.py); `load_delta` decodes it.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open

from dgpt import tensorfile
from dgpt.encoding import FP32, Encoding, EncodingError, check_parts, decode, encode, residual, with_residual
from dgpt.errors import DGPTError

FORMAT = "dgpt-delta/1"


def compute_delta(base: dict[str, torch.Tensor], tuned: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    delta = {}
    for name, t in tuned.items():
        b = base.get(name)
        if b is None:
            delta[name] = t.detach().float().cpu().clone()
            continue
        if b.shape != t.shape:
            raise DGPTError(f"tensor {name}: shape {tuple(t.shape)} differs from the base's {tuple(b.shape)}")
        d = t.detach().float().cpu() - b.detach().float().cpu()
        if torch.count_nonzero(d):
            delta[name] = d
    return delta


def delta_metadata(*, num_examples: int, base_model_cid: str = "", task_spec_cid: str = "", labels: tuple[str, ...] = (),
                   encoding: Encoding = FP32, shapes: dict[str, tuple] | None = None, head_seed: int | None = None) -> dict[str, str]:
    meta = {
        "format": FORMAT,
        "base_model_cid": base_model_cid,
        "task_spec_cid": task_spec_cid,
        "num_examples": str(num_examples),
        "dtype": "float32",
        "labels": json.dumps(list(labels)),
    }
    if head_seed is not None:  # the base had no head: the head is relative to initial_head(head_seed)
        meta["head_seed"] = str(head_seed)
    if encoding != FP32:
        # The tensors' shapes, for a reader without the base model; the aggregator's checks use the base's.
        meta["encoding"] = encoding.label
        meta["shapes"] = json.dumps({k: list(v) for k, v in sorted((shapes or {}).items())}, separators=(",", ":"))
    return meta


def save_delta(
    path: str | Path,
    delta: dict[str, torch.Tensor],
    *,
    num_examples: int,
    base_model_cid: str = "",
    task_spec_cid: str = "",
    labels: tuple[str, ...] = (),
    encoding: Encoding = FP32,
    head_seed: int | None = None,
) -> dict[str, torch.Tensor]:
    """Write `delta` encoded; returns what a reader decodes (equal to `delta` for fp32)."""
    parts = encode(delta, encoding)
    shapes = {k: tuple(v.shape) for k, v in delta.items()}
    tensorfile.save(path, parts, delta_metadata(num_examples=num_examples, base_model_cid=base_model_cid, task_spec_cid=task_spec_cid,
                                                labels=labels, encoding=encoding, shapes=shapes, head_seed=head_seed))
    if encoding == FP32:
        return delta
    return decode(parts, check_parts(parts_header(parts), shapes, encoding), shapes, encoding)


def save_with_feedback(path: str | Path, delta: dict[str, torch.Tensor], carried: dict[str, torch.Tensor], shapes: dict[str, tuple],
                       encoding: Encoding, **metadata) -> dict[str, torch.Tensor]:
    """Write `delta` plus the residual carried from the last round, encoded (error feedback);
    returns the new residual: what this encoding left out, for the next round (empty for fp32)."""
    if not encoding.lossy:
        save_delta(path, delta, encoding=encoding, **metadata)
        return {}
    full = with_residual(delta, carried, shapes)
    return residual(full, save_delta(path, full, encoding=encoding, **metadata))


def parts_header(parts: dict[str, torch.Tensor]) -> dict:
    """The safetensors header entries (dtype, shape) that `parts` would get, without writing them."""
    names = {torch.float32: "F32", torch.bfloat16: "BF16", torch.int8: "I8", torch.uint8: "U8", torch.int32: "I32"}
    return {k: {"dtype": names[v.dtype], "shape": list(v.shape)} for k, v in parts.items()}


def encoding_of(meta: dict[str, str]) -> Encoding:
    """The encoding a delta file's metadata declares (none: fp32, the format before encodings)."""
    label = meta.get("encoding", "fp32")
    name, _, param = label.partition(" ")
    try:
        if name in ("int8", "int4") and param.startswith("block="):
            return Encoding(name, block=int(param[6:]))
        if name == "topk" and param.startswith("fraction="):
            return Encoding(name, fraction=float(param[9:]))
        if not param:
            return Encoding(name)
    except ValueError:
        pass
    raise DGPTError(f"delta encoding {label!r} is not one this version reads")


def load_delta(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The decoded float32 tensors of a delta file, and its metadata."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise DGPTError(f"{path} is not a {FORMAT} file (format: {meta.get('format')!r})")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except DGPTError:
        raise
    except Exception as exc:  # safetensors raises its own error types for malformed files
        raise DGPTError(f"{path} is not a readable safetensors file: {exc}") from None
    enc = encoding_of(meta)
    if enc == FP32:
        return tensors, meta
    try:
        shapes = {k: tuple(v) for k, v in json.loads(meta.get("shapes", "{}")).items()}
        return decode(tensors, check_parts(parts_header(tensors), shapes, enc), shapes, enc), meta
    except (EncodingError, ValueError, TypeError) as exc:
        raise DGPTError(f"{path}: {exc}") from None


def apply_delta(state: dict[str, torch.Tensor], delta: dict[str, torch.Tensor], scale: float = 1.0) -> dict[str, torch.Tensor]:
    """A new state dict: state + scale * delta (tensors only in the delta are added)."""
    out = dict(state)
    for name, d in delta.items():
        base = state.get(name)
        out[name] = (d * scale).to(base.dtype if base is not None else d.dtype) if base is None else base + (d * scale).to(base.dtype)
    return out


def apply_to_model(base_path: str | Path, delta_path: str | Path, out_path: str | Path, scale: float = 1.0) -> None:
    """A model file: the base model file plus the delta file (decoded), e.g. a worker's own result;
    a delta that adds the head gives a model with the delta's labels."""
    from dgpt.model import read_state, write_state

    base, meta = read_state(base_path)
    delta, dmeta = load_delta(delta_path)
    if dmeta.get("base_model_cid"):
        from dgpt.store.unixfs import file_cid

        with open(base_path, "rb") as f:
            cid = str(file_cid(f))
        if cid != dmeta["base_model_cid"]:
            raise DGPTError(f"{delta_path} was made for base model {dmeta['base_model_cid']}, not {base_path} ({cid})")
    extra = sorted(set(delta) - set(base) - {"head.weight"})
    wrong = [k for k in delta if k in base and tuple(delta[k].shape) != tuple(base[k].shape)]
    if extra or wrong:
        raise DGPTError(f"{delta_path} does not fit {base_path}: tensors {extra[:3]} unknown, {wrong[:3]} of another shape")
    labels = tuple(json.loads(dmeta.get("labels", "[]"))) if "head.weight" in delta or "head.weight" in base else ()
    if "head.weight" in delta and "head.weight" not in base:
        from dgpt.model import with_initial_head

        seed = dmeta.get("head_seed", "")
        if not (seed.isdigit() and int(seed) < 1 << 63):  # torch seeds are 64-bit
            raise DGPTError(f"{delta_path} adds a classifier head but names no seed of the head it started from (head_seed {seed!r})")
        base = with_initial_head(base, meta, len(labels), int(seed))
    if not labels:
        labels = tuple(json.loads(meta.get("labels", "[]")))
    write_state(out_path, apply_delta(base, delta, scale), meta, labels)
