"""Is a round recomputed bit for bit whatever the thread count and the CPU's vector instructions?

Makes a real round with the demo's pipeline (the real roles, a real Anvil, the embedded store on
disk), then runs `dgpt audit` on it in child processes under OMP_NUM_THREADS 1, 2 and 4 and under
every ATEN_CPU_CAPABILITY this CPU supports (default, avx2, avx512), and compares what each
recomputed. Prints a line per configuration, and with --json one JSON line:
{"configs": {name: {"ok", "model_cid", "entries_root"}}, "all_equal": bool}.

    .venv/bin/python scripts/check_determinism.py --json
    .venv/bin/python scripts/check_determinism.py --momentum 0.9 --json   # with the carried update (FedAvgM)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dgpt.chain.client import Chain, dev_accounts  # noqa: E402
from dgpt.chain.protocol import deploy  # noqa: E402
from dgpt.store import LocalStore  # noqa: E402
from harness.demo import DEMO_PARAMS, DemoPlan, demo_data, drive, setup_network, setup_validators  # noqa: E402
from harness.localnet import anvil  # noqa: E402


def capabilities() -> list[str]:
    """The ATen CPU capabilities this machine can run (default always)."""
    flags = set(Path("/proc/cpuinfo").read_text().split()) if Path("/proc/cpuinfo").exists() else set()
    caps = ["default"]
    if {"avx2", "fma"} <= flags:
        caps.append("avx2")
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        caps.append("avx512")
    return caps


def make_round(url: str, home: Path, plan: DemoPlan) -> int:
    """Run the plan's rounds on the chain at `url`; returns the last round's id."""
    chain = Chain.connect(url)
    a = dev_accounts(2 + plan.oracles + plan.validators)
    validators = a[2 + plan.oracles:]
    protocol = deploy(chain, a[0], a[1].address, DEMO_PARAMS, tuple(v.address for v in validators))
    (home / "deployment.json").write_text(json.dumps(protocol.deployment.to_json()))
    store = LocalStore(home / "store")
    data = demo_data(plan)
    agg, oracles = setup_network(protocol, store, a[0], a[1], a[2:2 + plan.oracles], data, plan, home, log=lambda *x: None)
    checks = setup_validators(protocol, store, a[0], validators, home, log=lambda *x: None)
    drive(chain, protocol, agg, oracles, lambda rid: None, checks)
    return protocol.current_round()


def audit_in_child(url: str, home: Path, rounds: int, threads: int, capability: str) -> dict:
    """`dgpt audit` of every round in a child process; model_cid and entries_root are the last
    round's, `rounds` each round's."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "ATEN_CPU_CAPABILITY": capability}
    per_round = {}
    for rid in range(1, rounds + 1):
        cmd = [sys.executable, "-m", "cli", "audit", str(rid), "--json", "--rpc-url", url, "--home", str(home)]
        out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
        try:
            r = json.loads(out.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            r = {"ok": False, "recomputed": None, "recomputed_entries_root": None, "error": out.stderr.strip()[-500:]}
        per_round[rid] = {"ok": r["ok"], "model_cid": r["recomputed"], "entries_root": r["recomputed_entries_root"]}
        if not r["ok"]:  # what differed, for whoever reads the output
            per_round[rid]["differences"] = r.get("differences") or r.get("problems") or r.get("error")
    last = per_round[rounds]
    return {"ok": all(r["ok"] for r in per_round.values()), "model_cid": last["model_cid"], "entries_root": last["entries_root"],
            "rounds": per_round}


def check(configs: list[tuple[int, str]], plan: DemoPlan, log=print) -> dict:
    with tempfile.TemporaryDirectory() as tmp, anvil() as url:
        home = Path(tmp)
        round_id = make_round(url, home, plan)
        log(f"made rounds 1-{round_id} on {url}")
        results = {}
        for threads, cap in configs:
            name = f"threads={threads},cpu={cap}"
            results[name] = audit_in_child(url, home, round_id, threads, cap)
            log(f"{name:<28} ok {results[name]['ok']}  model {results[name]['model_cid']}  entries {results[name]['entries_root']}")
    seen = {json.dumps(r["rounds"], sort_keys=True) for r in results.values()}
    return {"configs": results, "all_equal": len(seen) == 1 and all(r["ok"] for r in results.values())}


# A pre-training round and a fine-tuning round of one local epoch, three oracles: minutes on 2 cores.
PLAN = DemoPlan(oracles=3, pretrain_rounds=1, finetune_rounds=1, max_len=32, examples_per_oracle=400,
                validation_examples=300, test_examples=16, first_finetune_epochs=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON line at the end")
    parser.add_argument("--threads", default="1,2,4")
    parser.add_argument("--momentum", type=float, default=0.0,
                        help="the aggregator's server momentum; above 0 adds a second pre-training round, which carries the first's update")
    args = parser.parse_args()
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else print
    caps = capabilities()
    threads = [int(t) for t in args.threads.split(",")]
    # Every thread count under the best capability, and every capability with one thread.
    configs = [(t, caps[-1]) for t in threads] + [(threads[0], c) for c in caps[:-1]]
    plan = replace(PLAN, pretrain_rounds=2, momentum=args.momentum) if args.momentum else PLAN
    result = check(configs, plan, log)
    log(f"all equal: {result['all_equal']}")
    if args.json:
        print(json.dumps(result))
    return 0 if result["all_equal"] else 1


if __name__ == "__main__":
    sys.exit(main())
