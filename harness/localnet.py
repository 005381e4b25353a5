"""Start and stop local development services (Anvil, a Hardhat node, a js-ipfs daemon) by PID;
`dgpt localnet` runs Anvil and js-ipfs together for development."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx

from dgpt.errors import DGPTError

ROOT = Path(__file__).resolve().parents[1]
ANVIL = ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
HARDHAT_CLI = ROOT / "node_modules" / "hardhat" / "internal" / "cli" / "cli.js"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_until(ready, proc: subprocess.Popen, what: str, timeout: float) -> None:
    """Poll `ready()` until it is true; fail early if the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DGPTError(f"{what} exited with status {proc.returncode} before it was ready")
        if ready():
            return
        time.sleep(0.1)
    raise DGPTError(f"{what} was not ready within {timeout:.0f} s")


def rpc_answers(url: str) -> bool:
    try:
        r = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}, timeout=1)
        return r.status_code == 200
    except httpx.HTTPError:
        return False


def stop(proc: subprocess.Popen) -> None:
    """Stop a service we started, by PID (its whole process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextmanager
def _serve(cmd: list[str], ready, what: str, timeout: float, **popen) -> Iterator[subprocess.Popen]:
    """Run a service in its own process group until `ready()`; stop it by PID on the way out."""
    proc = subprocess.Popen(cmd, start_new_session=True, **popen)
    try:
        wait_until(ready, proc, what, timeout)
        yield proc
    finally:
        stop(proc)


@contextmanager
def anvil(accounts: int = 10, port: int | None = None, state: str | Path | None = None) -> Iterator[str]:
    """A real Anvil on a loopback port (free, unless given) with `accounts` funded dev accounts;
    yields its RPC URL. With `state`, the chain is loaded from that file if it exists and written
    back when Anvil stops: a restart on the same port continues the same chain."""
    if not ANVIL.exists():
        raise DGPTError(f"Anvil is not installed ({ANVIL}): run scripts/setup.sh")
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [str(ANVIL), "--host", "127.0.0.1", "--port", str(port), "--silent", "--hardfork", "cancun", "--accounts", str(accounts)]
    resumed = state is not None and Path(state).exists()
    if state is not None:
        cmd += ["--state", str(state), "--preserve-historical-states"]
    with _serve(cmd, lambda: rpc_answers(url), "anvil", 30):
        if resumed:
            # The state file keeps the blocks but not a clock moved by evm_increaseTime: start the
            # clock at the last block's time, or new blocks would be stamped before it.
            latest = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_getBlockByNumber", "params": ["latest", False]}).json()
            httpx.post(url, json={"jsonrpc": "2.0", "id": 2, "method": "anvil_setTime", "params": [int(latest["result"]["timestamp"], 16) + 1]})
        yield url


@contextmanager
def hardhat_node() -> Iterator[str]:
    """A Hardhat node started through its CLI (one PID, unlike npx); yields its RPC URL."""
    if not HARDHAT_CLI.exists():
        raise DGPTError(f"Hardhat is not installed ({HARDHAT_CLI}): run scripts/setup.sh")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = ["node", str(HARDHAT_CLI), "node", "--hostname", "127.0.0.1", "--port", str(port)]
    with _serve(cmd, lambda: rpc_answers(url), "hardhat node", 60, cwd=ROOT, stdout=subprocess.DEVNULL):
        yield url


JSIPFS_CLI = ROOT / "node_modules" / "ipfs" / "src" / "cli.js"


@contextmanager
def ipfs_daemon(repo: str | Path, api_port: int | None = None) -> Iterator[str]:
    """A js-ipfs daemon (a real IPFS node serving the Kubo RPC API), offline, on free loopback ports
    (the API on `api_port` if given, so a restart answers at the same URL), with its repository in
    `repo`; yields the API URL."""
    import json

    if not JSIPFS_CLI.exists():
        raise DGPTError(f"js-ipfs is not installed ({JSIPFS_CLI}): run scripts/setup.sh")
    repo = Path(repo)
    env = {**os.environ, "IPFS_PATH": str(repo)}
    if not (repo / "config").exists():
        subprocess.run(["node", str(JSIPFS_CLI), "init", "--profile", "test"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    config = json.loads((repo / "config").read_text())
    api, gateway, rpc, swarm = (free_port() for _ in range(4))
    api = api_port or api
    config["Addresses"].update({
        "API": f"/ip4/127.0.0.1/tcp/{api}",
        "Gateway": f"/ip4/127.0.0.1/tcp/{gateway}",
        "RPC": f"/ip4/127.0.0.1/tcp/{rpc}",
        "Swarm": [f"/ip4/127.0.0.1/tcp/{swarm}"],
    })
    config["Bootstrap"] = []  # offline: never dial public peers
    config.setdefault("Discovery", {}).setdefault("MDNS", {})["Enabled"] = False
    (repo / "config").write_text(json.dumps(config))
    url = f"http://127.0.0.1:{api}"

    def answers() -> bool:
        try:
            return httpx.post(f"{url}/api/v0/version", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    cmd = ["node", str(JSIPFS_CLI), "daemon", "--offline"]
    with _serve(cmd, answers, "js-ipfs daemon", 60, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
        yield url
