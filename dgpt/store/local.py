"""The embedded store: a local directory of content-addressed blocks, no daemon needed.

Blocks live in `<root>/blocks/<CIDv1 base32>` (a CIDv0 names the same block as its dag-pb CIDv1);
pins are empty files in `<root>/pins/`. Writes go to a temporary name first and are renamed into
place, so a crash never leaves a half-written block under a real CID.
"""

from __future__ import annotations

import base64
import io
import os
import tempfile
from pathlib import Path

from multiformats import CID

from dgpt.errors import DGPTError
from dgpt.store.base import Store, parse
from dgpt.store.unixfs import DAG_PB, cid_object, decode_node, file_cid


def _key(cid: CID | bytes) -> str:
    """File name of a block: its CIDv1 in base32 (a v0 CID, a bare multihash, names its dag-pb v1 form)."""
    raw = cid if isinstance(cid, bytes) else bytes(cid)
    if raw[:1] != b"\x01":
        raw = b"\x01\x70" + raw
    return "b" + base64.b32encode(raw).decode().lower().rstrip("=")


class LocalStore(Store):
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.blocks = self.root / "blocks"
        self.pins = self.root / "pins"
        self.blocks.mkdir(parents=True, exist_ok=True)
        self.pins.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def _write_block(self, cid: bytes, block: bytes) -> None:
        path = self.blocks / _key(cid)
        if path.exists():
            return
        fd, tmp = tempfile.mkstemp(dir=self.blocks, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(block)
            os.replace(tmp, path)  # a block is whole under its name, or absent
        except BaseException:
            os.unlink(tmp)  # e.g. a full disk: leave no partial block behind
            raise

    def put_stream(self, stream: io.BufferedIOBase, cid_version: int = 1) -> str:
        return file_cid(stream, cid_version, emit=self._write_block).encode()

    def get_block(self, cid: CID) -> bytes:
        try:
            return (self.blocks / _key(cid)).read_bytes()
        except FileNotFoundError:
            raise DGPTError(f"{cid} is not in the store at {self.root}") from None

    def has(self, cid: str) -> bool:
        stack = [parse(cid)]
        while stack:
            c = stack.pop()
            path = self.blocks / _key(c)
            if not path.exists():
                return False
            if c.codec.code == DAG_PB:
                stack.extend(cid_object(link) for link in decode_node(path.read_bytes(), c)[0])
        return True

    def pin(self, cid: str) -> None:
        c = parse(cid)
        if not self.has(cid):
            raise DGPTError(f"cannot pin {cid}: it is not (wholly) in the store at {self.root}")
        (self.pins / _key(c)).touch()
