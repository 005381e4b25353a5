"""The demo against a real chain (and optionally a real IPFS daemon), with the oracles and the
aggregator as separate OS processes (`dgpt oracle run`, `dgpt aggregator run`) that talk only
through the chain and the store. The driver deploys, registers the oracles with development keys,
starts the processes, and moves the local chain's clock past each deadline once every oracle has
acted (a development convenience: on a real network the deadlines simply pass).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from dgpt.chain.client import Chain, dev_accounts
from dgpt.chain.protocol import deploy
from dgpt.config import Settings
from dgpt.data import RT_LABELS, write_jsonl
from dgpt.errors import DGPTError
from dgpt.model import save_model, tiny_gpt2
from dgpt.store import open_store
from harness.demo import DEMO_PARAMS, DemoResult, demo_data, fund_aggregator, register_oracle, round_summary, setup_validators, show

STALL_TIMEOUT = 900  # seconds a round may go without progress before the demo gives up


def run_demo_processes(settings: Settings, plan, log=print, crash_at: dict[str, str] | None = None, stall_timeout: float = STALL_TIMEOUT):
    """`crash_at` (tests): {"oracle-0": point, "aggregator": point} starts that process with
    $DGPT_CRASH_AT, so it dies there like a killed process; the driver restarts it once."""
    t0 = time.monotonic()
    home = Path(settings.home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    chain = Chain.connect(settings.rpc_url)
    store = open_store(settings.ipfs_api, Path(settings.home) / "store")
    accounts = dev_accounts(2 + plan.oracles + plan.validators)
    admin, agg_account, oracle_accounts = accounts[0], accounts[1], accounts[2 : 2 + plan.oracles]
    validator_accounts = accounts[2 + plan.oracles:]
    protocol = deploy(chain, admin, agg_account.address, DEMO_PARAMS, tuple(v.address for v in validator_accounts))
    deployment = home / "deployment.json"
    deployment.write_text(json.dumps(protocol.deployment.to_json()))
    log(f"deployed protocol {protocol.deployment.protocol} on {settings.rpc_url}; store {store!r}")

    data = demo_data(plan)
    save_model(home / "genesis.safetensors", tiny_gpt2(seed=0))
    write_jsonl(home / "validation.jsonl", data.validation)
    (home / "plan.json").write_text(json.dumps([json.loads(t.to_bytes()) for t in plan.tasks([len(s) for s in data.shards])]))
    stake = protocol.min_stake()
    common = ["--rpc-url", settings.rpc_url, "--home", str(home), "--deployment", str(deployment), "--dev"]
    if settings.ipfs_api:
        common += ["--ipfs-api", settings.ipfs_api]
    (home / "logs").mkdir(exist_ok=True)
    procs = []
    names: dict[int, str] = {}
    crash_at = dict(crash_at or {})

    def start(cmd, name):
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if name in crash_at:
            env["DGPT_CRASH_AT"] = crash_at[name]
        p = subprocess.Popen(cmd, stdout=open(home / "logs" / f"{name}.log", "a"), stderr=subprocess.STDOUT, env=env)
        names[p.pid] = name
        return p

    try:
        for i, (account, examples) in enumerate(zip(oracle_accounts, data.shards)):
            register_oracle(protocol, store, admin, account, examples, stake)
            path = home / f"oracle-{i}.jsonl"
            write_jsonl(path, examples)
            cmd = [sys.executable, "-m", "cli", "oracle", "run", *common, "--dev-key", str(2 + i),
                   "--data", str(path), "--labels", ",".join(RT_LABELS), "--rounds", str(len(plan.tasks())), "--poll", "0.5"]
            procs.append(start(cmd, f"oracle-{i}"))
            log(f"oracle {account.address} registered; its daemon is process {procs[-1].pid}")
        setup_validators(protocol, store, admin, validator_accounts, home, log)
        for i, account in enumerate(validator_accounts):
            cmd = [sys.executable, "-m", "cli", "validator", "run", *common, "--dev-key", str(2 + plan.oracles + i),
                   "--rounds", str(len(plan.tasks())), "--poll", "0.5"]
            procs.append(start(cmd, f"validator-{i}"))
            log(f"validator {account.address} bonded; its daemon is process {procs[-1].pid}")
        fund_aggregator(protocol, admin, agg_account.address, 100 * 10**18)
        cmd = [sys.executable, "-m", "cli", "aggregator", "run", *common, "--dev-key", "1",
               "--genesis", str(home / "genesis.safetensors"), "--plan", str(home / "plan.json"),
               "--validation", str(home / "validation.jsonl"), "--poll", "0.5"]
        agg = start(cmd, "aggregator")
        procs.append(agg)
        log(f"aggregator daemon is process {agg.pid}; logs in {home / 'logs'}")

        result = DemoResult(chain=settings.rpc_url, store=repr(store))
        shown: set[int] = set()
        progress_at = time.monotonic()
        while True:
            for k, p in enumerate(procs):
                name = names[p.pid]
                if p.poll() == 137 and crash_at.pop(name, None):
                    log(f"{name} was killed at its crash point; restarting it")
                    procs[k] = start(p.args, name)
                elif p.poll() not in (None, 0):
                    raise DGPTError(f"{name} exited with status {p.returncode}; see {home / 'logs'}")
            rid = protocol.current_round()
            for done in range(1, rid + 1):
                if done not in shown and protocol.round(done).final:
                    shown.add(done)
                    summary = round_summary(protocol, store, done, data.test, home)
                    show(summary, log)
                    result.rounds.append({k: summary[k] for k in ("round", "phase", "accuracy", "l1", "l2", "l3", "model_cid", "report_cid",
                                                                  "state", "attestations")})
                    progress_at = time.monotonic()
            if all(p.poll() == 0 for p in procs):
                break
            if rid and not protocol.round(rid).final:
                info, now = protocol.round(rid), chain.now()
                attested = len(protocol.events("Attested", roundId=rid))
                committed = len(protocol.events("Committed", roundId=rid))
                revealed = len(protocol.events("Revealed", roundId=rid))
                if now <= info.commit_deadline and committed == len(oracle_accounts):
                    chain.time_travel(info.commit_deadline - now + 1)
                    progress_at = time.monotonic()
                elif info.commit_deadline < now <= info.reveal_deadline and revealed == committed:
                    chain.time_travel(info.reveal_deadline - now + 1)
                    progress_at = time.monotonic()
                elif info.proposed and now <= info.challenge_deadline and attested == info.proposals * len(validator_accounts):
                    chain.time_travel(info.challenge_deadline - now + 1)
                    progress_at = time.monotonic()
            if time.monotonic() - progress_at > stall_timeout:
                raise DGPTError(f"round {rid} made no progress for {stall_timeout:.0f} s; see {home / 'logs'}")
            time.sleep(0.5)
        for a in oracle_accounts:
            result.rewards[a.address] = str(protocol.balance_of(a.address) - stake)
        log(f"demo finished in {time.monotonic() - t0:.0f} s")
        return result
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
