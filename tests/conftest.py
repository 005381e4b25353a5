"""Shared fixtures: local chains (embedded, a real Anvil, a Hardhat node) and a deployed protocol."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from dgpt.chain.client import Chain, dev_accounts
from dgpt.chain.protocol import TOKEN, Protocol, ProtocolParams, deploy

ROOT = Path(__file__).resolve().parents[1]
ANVIL = ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
HARDHAT_CLI = ROOT / "node_modules" / "hardhat" / "internal" / "cli" / "cli.js"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_rpc(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before answering at {url}")
        try:
            r = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}, timeout=1)
            if r.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"nothing answered at {url} within {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    """Stop a service we started, by PID (its whole process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="session")
def anvil_url():
    """A real Anvil node (from the npm package) on a free loopback port, stopped by PID at the end."""
    assert ANVIL.exists(), f"{ANVIL} missing: run scripts/setup.sh"
    port = free_port()
    proc = subprocess.Popen(
        [str(ANVIL), "--host", "127.0.0.1", "--port", str(port), "--silent", "--hardfork", "cancun"],
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_rpc(url, proc, 30)
        yield url
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def hardhat_url():
    """A Hardhat node started through its CLI (one PID, not npx), stopped by PID at the end."""
    assert HARDHAT_CLI.exists(), f"{HARDHAT_CLI} missing: run scripts/setup.sh"
    port = free_port()
    proc = subprocess.Popen(
        ["node", str(HARDHAT_CLI), "node", "--hostname", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_rpc(url, proc, 60)
        yield url
    finally:
        stop(proc)


@pytest.fixture(params=["embedded", "anvil"])
def chain(request) -> Chain:
    """The contract suite runs on both the embedded chain and a real Anvil."""
    if request.param == "embedded":
        return Chain.embedded()
    return Chain.connect(request.getfixturevalue("anvil_url"))


@dataclass
class World:
    """A freshly deployed protocol with its cast: admin, aggregator, four funded oracles, an outsider."""

    chain: Chain
    protocol: Protocol
    admin: object
    aggregator: object
    oracles: list
    outsider: object
    params: ProtocolParams


@pytest.fixture
def world(chain) -> World:
    accounts = dev_accounts(10)
    admin, aggregator, outsider = accounts[0], accounts[1], accounts[9]
    oracles = accounts[2:6]
    params = ProtocolParams(unbonding_period=3600, non_reveal_penalty=10 * TOKEN)
    protocol = deploy(chain, admin, aggregator.address, params)
    for o in oracles + [outsider]:
        protocol.mint(admin, o.address, 1_000 * TOKEN)
    return World(chain, protocol, admin, aggregator, oracles, outsider, params)
