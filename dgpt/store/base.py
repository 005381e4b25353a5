"""The store interface shared by the embedded store and the IPFS daemon client."""

from __future__ import annotations

import io
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable, Iterator

from multiformats import CID

from dgpt.errors import DGPTError
from dgpt.store.unixfs import iter_file


class Store(ABC):
    """Put bytes or files and get their CID; get by CID, verified; has; pin."""

    @abstractmethod
    def put_stream(self, stream: io.BufferedIOBase, cid_version: int = 1) -> str:
        """Store a stream's bytes as a UnixFS file and return its CID string."""

    @abstractmethod
    def get_block(self, cid: CID) -> bytes:
        """The raw bytes of one block (unverified; `get` verifies)."""

    @abstractmethod
    def has(self, cid: str) -> bool:
        """Whether the store holds the whole file under `cid`."""

    @abstractmethod
    def pin(self, cid: str) -> None:
        """Keep `cid` from garbage collection."""

    def put_bytes(self, data: bytes, cid_version: int = 1) -> str:
        return self.put_stream(io.BytesIO(data), cid_version)

    def put_file(self, path: str | Path, cid_version: int = 1, progress: Callable[[int], None] | None = None) -> str:
        """`progress(n)`, if given, hears of every n bytes read (negative when a retry starts over)."""
        with open(path, "rb") as f:
            if progress is None:
                return self.put_stream(f, cid_version)
            from dgpt.progress import Counted

            return self.put_stream(io.BufferedReader(Counted(f, progress)), cid_version)

    def get(self, cid: str, max_bytes: int | None = None, seconds: float | None = None) -> Iterator[bytes]:
        """Stream the file under `cid`; every block is checked against its hash as it arrives, and
        the DAG's shape against its declared size (`iter_file`); stop after `seconds` if given."""
        return iter_file(parse(cid), self.get_block, max_bytes, None if seconds is None else time.monotonic() + seconds)

    def get_bytes(self, cid: str, max_bytes: int | None = None) -> bytes:
        return b"".join(self.get(cid, max_bytes))

    def get_file(self, cid: str, path: str | Path, max_bytes: int | None = None, seconds: float | None = None,
                 progress: Callable[[int], None] | None = None) -> None:
        """Write the file under `cid` to `path`; nothing is left at `path` if verification fails.
        `progress(n)`, if given, hears of every n verified bytes written."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        try:
            with open(tmp, "wb") as f:
                for piece in self.get(cid, max_bytes, seconds):
                    f.write(piece)
                    if progress is not None:
                        progress(len(piece))
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)

    def cached(self, cid: str, directory: str | Path, suffix: str = ".safetensors",
               progress: Callable[[int], None] | None = None) -> Path:
        """The file under `cid` in a local cache folder, fetched (and verified) on first use."""
        path = Path(directory) / f"{cid}{suffix}"
        if not path.exists():
            self.get_file(cid, path, progress=progress)
        return path


def parse(cid: str | CID) -> CID:
    if isinstance(cid, CID):
        return cid
    try:
        return CID.decode(cid.strip())
    except Exception as exc:
        raise DGPTError(f"not a CID: {cid!r} ({exc})") from None


def open_store(ipfs_api: str | None = None, store_dir: str | Path | None = None) -> Store:
    """The daemon at `ipfs_api` if given, else the embedded store in `store_dir`."""
    from dgpt.store.kubo import KuboStore
    from dgpt.store.local import LocalStore

    if ipfs_api:
        return KuboStore(ipfs_api)
    return LocalStore(store_dir or Path(".dgpt") / "store")
