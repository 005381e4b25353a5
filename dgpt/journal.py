"""A role's crash-safe journal: a JSON document rewritten atomically (temp file, fsync, rename) after
every step, so a restart always finds the last completed step and never a half-written file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


class Journal:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.data: dict = json.loads(self.path.read_text()) if self.path.exists() else {}

    def round(self, round_id: int) -> dict:
        return self.data.setdefault("rounds", {}).setdefault(str(round_id), {})

    def record(self, round_id: int, **fields) -> None:
        """Merge `fields` into the round's entry and persist before returning."""
        self.round(round_id).update(fields)
        self.save()

    def save(self) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".journal-")
        with os.fdopen(fd, "w") as f:
            json.dump(self.data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
