"""Progress on long steps, two ways: a tqdm bar on a terminal (the CLI, quiet otherwise or with
--json), and one log line per step for the daemons (their logs are files, not terminals).
"""

from __future__ import annotations

import io
import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator


def on_terminal(quiet: bool = False) -> bool:
    """Whether a bar may be drawn: stderr is a terminal and the command was not asked to be quiet."""
    return not quiet and sys.stderr.isatty()


@contextmanager
def byte_bar(what: str, total: int | None, enabled: bool) -> Iterator[Callable[[int], None]]:
    """A bar by bytes (tqdm) while the block runs; yields `update(n)` (n may be negative: a retry
    starting over). Disabled: a no-op update."""
    if not enabled:
        yield lambda n: None
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=what, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
              dynamic_ncols=True) as bar:
        yield bar.update


class Counted(io.RawIOBase):
    """A readable file that reports the bytes read through it (uploads: the store's client reads
    it; a rewind for a retry reports the bytes given back)."""

    def __init__(self, f: io.BufferedIOBase, update: Callable[[int], None]):
        super().__init__()
        self.f, self.update = f, update

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self.f.seekable()

    def fileno(self) -> int:
        return self.f.fileno()

    def tell(self) -> int:
        return self.f.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        before = self.f.tell()
        after = self.f.seek(offset, whence)
        if after != before:
            self.update(after - before)
        return after

    def readinto(self, buffer) -> int:
        n = self.f.readinto(buffer)
        if n:
            self.update(n)
        return n


class Steps:
    """One log line per finished step of a stage, with the count, the time so far and an ETA, so
    a daemon scoring twenty deltas is never silent for long."""

    def __init__(self, what: str, total: int, log: Callable[..., None]):
        self.what, self.total, self.log = what, total, log
        self.done = 0
        self.t0 = time.monotonic()

    def step(self, detail: str) -> None:
        self.done += 1
        spent = time.monotonic() - self.t0
        left = spent / self.done * (self.total - self.done)
        eta = f", ETA {left:.0f} s" if self.done < self.total else ""
        self.log(f"  {self.what} {self.done}/{self.total} ({spent:.1f} s{eta}): {detail}")


def rate(nbytes: int, seconds: float) -> str:
    """`1.7 MB in 0.3 s (5.6 MB/s)`, for the daemons' transfer lines."""
    mb = nbytes / 1e6
    return f"{mb:.2f} MB in {seconds:.1f} s ({mb / max(seconds, 1e-6):.1f} MB/s)"
