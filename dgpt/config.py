"""Settings for every command: flags override the environment, which overrides the config file.

The config file is TOML: `--config FILE`, else $DGPT_CONFIG, else `dgpt.toml` in the working
directory if present. Keys, with their environment variables:

    rpc_url  = "http://127.0.0.1:8545"   # DGPT_RPC_URL   (unset: the embedded chain)
    ipfs_api = "http://127.0.0.1:5001"   # DGPT_IPFS_API  (unset: the embedded store)
    home     = ".dgpt"                   # DGPT_HOME      (embedded store, journals, keys)
    deployment = ".dgpt/deployment.json" # DGPT_DEPLOYMENT (where `dgpt deploy` wrote the addresses)

$DGPT_RETRY_SECONDS (default 60) bounds how long the chain and IPFS clients retry a service that
does not answer (connection refused or reset), with exponential backoff, before giving up.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from dgpt.errors import DGPTError


@dataclass(frozen=True)
class Settings:
    rpc_url: str | None = None
    ipfs_api: str | None = None
    home: str = ".dgpt"
    deployment: str | None = None

    @property
    def store_dir(self) -> Path:
        return Path(self.home) / "store"

    @property
    def deployment_file(self) -> Path:
        return Path(self.deployment) if self.deployment else Path(self.home) / "deployment.json"


def load_settings(config: str | None = None, **flags: str | None) -> Settings:
    """Merge the config file, the environment and the given flags (None means not given)."""
    values: dict[str, str] = {}
    path = config or os.environ.get("DGPT_CONFIG") or ("dgpt.toml" if Path("dgpt.toml").exists() else None)
    if path:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise DGPTError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise DGPTError(f"config file {path} is not valid TOML: {exc}") from None
        known = {f.name for f in fields(Settings)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DGPTError(f"config file {path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        for k, v in data.items():
            if not isinstance(v, str):
                raise DGPTError(f"config file {path}: {k} must be a string, got {type(v).__name__} {v!r}")
        values.update(data)
    for f in fields(Settings):
        env = os.environ.get(f"DGPT_{f.name.upper()}")
        if env:
            values[f.name] = env
        if flags.get(f.name) is not None:
            values[f.name] = flags[f.name]
    return Settings(**values)


def retry_policy() -> tuple[int, float]:
    """(attempts, first backoff in seconds): waits of 0.5, 1, 2, ... s adding up to at least
    $DGPT_RETRY_SECONDS (default 60), so a restarting chain or daemon is waited for."""
    try:
        window = float(os.environ.get("DGPT_RETRY_SECONDS", "60"))
    except ValueError:
        raise DGPTError(f"DGPT_RETRY_SECONDS must be a number of seconds, got {os.environ['DGPT_RETRY_SECONDS']!r}") from None
    backoff, waits, total = 0.5, 0, 0.0
    while total < window:
        total += backoff * 2**waits
        waits += 1
    return waits + 1, backoff
