"""Weight deltas: fine-tuned minus base, as safetensors with their provenance in the metadata.

A delta holds every tensor that changed, by its model name; a tensor the base lacks (the new
classifier head) counts as zero in the base, so its delta is the tensor itself. Applying a delta
adds it (scaled) to a model's tensors, creating the ones it adds.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from dgpt import tensorfile

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


def save_delta(
    path: str | Path,
    delta: dict[str, torch.Tensor],
    *,
    num_examples: int,
    base_model_cid: str = "",
    task_spec_cid: str = "",
    labels: tuple[str, ...] = (),
) -> None:
    metadata = {
        "format": FORMAT,
        "base_model_cid": base_model_cid,
        "task_spec_cid": task_spec_cid,
        "num_examples": str(num_examples),
        "dtype": "float32",
        "labels": json.dumps(list(labels)),
    }
    tensorfile.save(path, delta, metadata)


def load_delta(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise DGPTError(f"{path} is not a {FORMAT} file (format: {meta.get('format')!r})")
            return {k: f.get_tensor(k) for k in f.keys()}, meta
    except DGPTError:
        raise
    except Exception as exc:  # safetensors raises its own error types for malformed files
        raise DGPTError(f"{path} is not a readable safetensors file: {exc}") from None


def apply_delta(state: dict[str, torch.Tensor], delta: dict[str, torch.Tensor], scale: float = 1.0) -> dict[str, torch.Tensor]:
    """A new state dict: state + scale * delta (tensors only in the delta are added)."""
    out = dict(state)
    for name, d in delta.items():
        base = state.get(name)
        out[name] = (d * scale).to(base.dtype if base is not None else d.dtype) if base is None else base + (d * scale).to(base.dtype)
    return out
