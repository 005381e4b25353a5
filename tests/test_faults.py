"""Service outages in the middle of a round: the IPFS daemon and the chain go down and come back.

Real services: an Anvil that writes its chain to a state file when stopped and reloads it on
restart (same port), and a js-ipfs daemon restarted on its repository (same API port). The roles
retry with backoff, then stop with a clear error; restarted from their journals once the service
is back, they finish the round with the same outcome as a run without outages."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from requests.exceptions import ConnectionError as RequestsConnectionError

from dgpt.chain.client import Chain, dev_accounts
from dgpt.chain.protocol import Protocol, Status, deploy
from dgpt.node import Action, Step
from dgpt.store import KuboStore
from dgpt.store.kubo import IPFSError
from harness import localnet
from harness.demo import DEMO_PARAMS, DemoPlan, demo_data, setup_network

PLAN = DemoPlan(oracles=2, pretrain_rounds=0, finetune_rounds=1, max_len=32, examples_per_oracle=16, test_examples=16)
FAULT_PARAMS = replace(DEMO_PARAMS, validator_quorum=0)  # the outages are the subject: final after the window alone


class Service:
    """A dev service that can be stopped and started again at the same address."""

    def __init__(self, factory):
        self.factory, self.cm = factory, None

    def start(self) -> str:
        self.cm = self.factory()
        return self.cm.__enter__()

    def stop(self) -> None:
        self.cm.__exit__(None, None, None)


def tick_until(node, action: Action, seconds: float = 120):
    """Tick `node` until a step does `action`; fail (instead of hanging) past the deadline."""
    deadline = time.monotonic() + seconds
    while (step := node.tick()).action is not action:
        assert time.monotonic() < deadline, f"{node.role} still at {step} after {seconds} s"
    return step


def run_round(tmp_path, data, outages: bool, monkeypatch):
    monkeypatch.setenv("DGPT_RETRY_SECONDS", "3")
    port, api_port = localnet.free_port(), localnet.free_port()
    chain_svc = Service(lambda: localnet.anvil(port=port, state=tmp_path / "anvil.json"))
    ipfs_svc = Service(lambda: localnet.ipfs_daemon(tmp_path / "ipfs", api_port=api_port))
    url, api = chain_svc.start(), ipfs_svc.start()
    chain, store = Chain.connect(url), KuboStore(api)
    a = dev_accounts(2 + PLAN.oracles)
    protocol = deploy(chain, a[0], a[1].address, FAULT_PARAMS)
    agg, oracles = setup_network(protocol, store, a[0], a[1], a[2:], data, PLAN, tmp_path / "home", log=lambda *x: None)
    try:
        assert agg.tick() == Step(Action.OPENED, 1)
        for o in oracles:
            tick_until(o, Action.COMMITTED)
        chain.time_travel(protocol.round(1).commit_deadline - chain.now() + 1)
        if outages:
            ipfs_svc.stop()  # the daemon goes down before the reveals, which publish the deltas
            with pytest.raises(IPFSError, match="unreachable"):
                oracles[0].tick()
            assert protocol.submission(1, oracles[0].account.address).status == Status.COMMITTED  # nothing sent
            ipfs_svc.start()
        for o in oracles:
            assert o.tick().action is Action.REVEALED
        chain.time_travel(protocol.round(1).reveal_deadline - chain.now() + 1)
        if outages:
            chain_svc.stop()  # the chain goes down before the aggregator publishes
            with pytest.raises(RequestsConnectionError):
                agg.tick()
            chain_svc.start()
            chain = Chain.connect(url)
            protocol = Protocol(chain, protocol.deployment)
            # the restarted roles: fresh processes reading their journals
            agg, oracles = setup_network(protocol, store, a[0], a[1], a[2:], data, PLAN, tmp_path / "home", log=lambda *x: None)
        tick_until(agg, Action.PUBLISHED)
        chain.time_travel(protocol.round(1).challenge_deadline - chain.now() + 1)
        tick_until(agg, Action.DONE)
        for o in oracles:
            tick_until(o, Action.DONE)
        r = protocol.round(1)
        return {
            "model": r.new_model_cid,
            "report": r.report_cid,
            "revealed": [protocol.submission(1, o.account.address).status for o in oracles],
            "tokens": [(protocol.balance_of(o.account.address), protocol.oracle(o.account.address).stake) for o in oracles],
        }
    finally:
        for svc in (chain_svc, ipfs_svc):
            try:
                svc.stop()
            except Exception:
                pass


@pytest.mark.anvil
def test_chain_and_ipfs_outages_mid_round_lose_nothing(tmp_path, monkeypatch):
    data = demo_data(PLAN)
    data.validation = data.validation[:24]
    calm = run_round(tmp_path / "calm", data, outages=False, monkeypatch=monkeypatch)
    stormy = run_round(tmp_path / "stormy", data, outages=True, monkeypatch=monkeypatch)
    assert stormy == calm
    assert calm["revealed"] == [Status.REVEALED] * 2


DISK_FULL = r"""
import resource, signal, sys
from cli.main import main
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing us
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
sys.exit(main(sys.argv[1:]))
"""


def test_a_full_disk_stops_a_put_cleanly_and_loses_nothing(tmp_path):
    """The embedded store on a disk that refuses writes (a file-size limit, enforced by the kernel,
    stands in for a full disk):
    one clear line, exit 1, no partial block; once there is room again the same command succeeds."""
    import json
    import os
    import subprocess
    import sys

    from dgpt.store import LocalStore

    big = tmp_path / "delta.bin"
    big.write_bytes(os.urandom(700_000))  # three 256 KiB blocks and a root
    argv = ["put", str(big), "--home", str(tmp_path / "home")]
    full = subprocess.run([sys.executable, "-c", DISK_FULL, *argv], capture_output=True, text=True, timeout=300)
    assert full.returncode == 1, full.stderr
    assert full.stderr.startswith("dgpt: error: File too large") and full.stderr.count("\n") == 1, full.stderr
    blocks = tmp_path / "home" / "store" / "blocks"
    assert not [p for p in blocks.rglob("*") if p.is_file() and p.name.startswith(".tmp-")]
    ok = subprocess.run([sys.executable, "-m", "cli", *argv], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    cid = ok.stdout.strip()
    offline = subprocess.run([sys.executable, "-m", "cli", "cid", str(big)], capture_output=True, text=True, timeout=300)
    assert cid == offline.stdout.strip()
    assert LocalStore(tmp_path / "home" / "store").get_bytes(cid) == big.read_bytes()
