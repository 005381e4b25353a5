"""Writing safetensors files byte-for-byte reproducibly, and reading one into owned memory.

The safetensors library keeps metadata in a hash map whose order changes from process to process,
so the same tensors and metadata can give different bytes, hence different CIDs. Everything the
project stores (models, deltas) goes through `save`, which rewrites the header canonically:
metadata keys sorted, tensors in data order, compact JSON padded with spaces to 8 bytes.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save as st_save

DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}
MAX_HEADER_BYTES = 100 << 20  # a header claiming more is not one this project wrote


def to_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    raw = st_save({k: v.contiguous() for k, v in tensors.items()}, metadata=metadata)
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    meta = header.pop("__metadata__", None) or {}
    ordered = {"__metadata__": dict(sorted(meta.items()))} if meta else {}
    ordered.update(sorted(header.items(), key=lambda kv: (kv[1]["data_offsets"][0], kv[0])))
    text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + raw[8 + n :]


def save(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write atomically: a temporary file renamed into place."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(to_bytes(tensors, metadata))
    os.replace(tmp, path)


def read_header(f) -> dict:
    """The JSON header (`__metadata__` included) of a safetensors file open at its start; the file
    is left at the start of the tensor data."""
    raw = f.read(8)
    if len(raw) != 8:
        raise ValueError("shorter than a safetensors header")
    (n,) = struct.unpack("<Q", raw)
    if n > MAX_HEADER_BYTES:
        raise ValueError(f"header of {n} bytes")
    return json.loads(f.read(n))


def load(path: str | Path) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors in one owned, writable buffer, read with one read call.

    `safetensors.torch.load_file` maps the file copy-on-write: fine for reading, but adding into
    its tensors (the aggregator builds the new model in the base's tensors) takes a copy-on-write
    fault per 4 KiB page, which costs more than the merge itself (BENCHMARKS.md, aggregation).
    `safe_open` checks the header first (offsets in bounds, known dtypes)."""
    with safe_open(str(path), framework="pt") as checked:
        names = list(checked.keys())
    with open(path, "rb") as f:
        header = read_header(f)
        end = max((header[k]["data_offsets"][1] for k in names), default=0)
        buf = torch.empty(end, dtype=torch.uint8)
        if f.readinto(memoryview(buf.numpy())) != end:
            raise ValueError(f"{path}: truncated safetensors file")
    out = {}
    for k in names:
        info = header[k]
        dtype = DTYPES[info["dtype"]]
        start, stop = info["data_offsets"]
        raw = buf[start:stop]
        if start % dtype.itemsize:  # a view needs an aligned offset; the writers of this project align
            raw = raw.clone()
        out[k] = raw.view(dtype).view(info["shape"])
    return out
