"""The demo with separate OS processes on a real Anvil and a real IPFS daemon (js-ipfs), including
roles killed at a crash point (os._exit, no clean-up) and restarted."""

from __future__ import annotations

import json

import pytest

from harness import localnet
from dgpt.audit import audit_round
from dgpt.chain.client import Chain, dev_accounts
from dgpt.chain.protocol import Deployment, Protocol
from dgpt.config import Settings
from harness.demo import DemoPlan
from harness.demo_processes import run_demo_processes
from dgpt.store import KuboStore

PLAN = DemoPlan(oracles=2, pretrain_rounds=1, finetune_rounds=1, max_len=32, examples_per_oracle=16, validation_examples=16, test_examples=16)


@pytest.mark.anvil
@pytest.mark.ipfs
def test_separate_processes_on_anvil_and_js_ipfs_with_kills(tmp_path, anvil_url):
    with localnet.ipfs_daemon(tmp_path / "ipfs") as api:
        settings = Settings(rpc_url=anvil_url, ipfs_api=api, home=str(tmp_path / "home"))
        result = run_demo_processes(settings, PLAN, log=lambda *a: None,
                                    crash_at={"oracle-0": "sent:reveal", "aggregator": "sent:publish"}, stall_timeout=240)
        assert [r["round"] for r in result.rounds] == [1, 2]
        deployment = Deployment.from_json(json.loads((tmp_path / "home" / "deployment.json").read_text()))
        protocol = Protocol(Chain.connect(anvil_url), deployment)
        store = KuboStore(api)
        assert len(protocol.events("Published")) == 2
        for r in (1, 2):
            assert audit_round(protocol, store, r).ok
        # oracle-0 was killed right after sending its round-1 reveal; once restarted it found the reveal
        # on chain (no second one) and still claimed its round-1 reward
        me = dev_accounts(3)[2].address  # oracle-0 runs with --dev-key 2
        journal = tmp_path / "home" / "oracle" / me / f"oracle-{me}-{deployment.protocol}.json"
        settled = json.loads(journal.read_text())["rounds"]
        assert settled["1"]["revealed"] and settled["1"]["claimed"]
        assert len(protocol.events("Revealed", roundId=1)) == 2
        # `dgpt oracle claim` as its own process from another home (no journal): it finds both rounds
        # on the chain and says what each paid (the daemon claimed them already)
        import subprocess
        import sys

        out = subprocess.run([sys.executable, "-m", "cli", "oracle", "claim", "--rpc-url", anvil_url, "--ipfs-api", api,
                              "--home", str(tmp_path / "elsewhere"), "--deployment", str(tmp_path / "home" / "deployment.json"),
                              "--dev", "--dev-key", "2"], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        lines = out.stdout.strip().splitlines()
        assert [l.split(":")[0] for l in lines] == ["round 1", "round 2"], lines
        assert all(l.endswith("already claimed") or "nothing to claim" in l for l in lines), lines
