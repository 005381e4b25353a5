#!/usr/bin/env python3
"""Dishonest aggregators against the dispute protocol, on a real Anvil with the oracles, the
validators and the challenger as separate processes (issue 13).

One deployment (a validator quorum of 2 of 3 seats, two validators seated), four oracle daemons and
two validator daemons (`dgpt oracle run`, `dgpt validator run`). The aggregator is this script's
own node (`aggregator.node.AggregatorNode`), honest in the first round and then, one round each,
dishonest in one way: it recomputes the round honestly and proposes something else, with its bond
behind it. After each proposal a challenger process (`dgpt challenge ROUND`) looks for a fault the
contract checks by itself; the validators recompute the round and attest. A dishonest proposal must
be voided (by the proof or by the quorum), the aggregator's bond slashed, no honest oracle lose
stake; the honest round must become final with no false challenge.

    .venv/bin/python scripts/bench_disputes.py [--json]

With --json the last line is {"honest_final", "scenarios": {name: {"caught", "by",
"aggregator_bond_lost_wei", "honest_oracles_lost_wei"}}, "gas": {"publish", "attest",
"challenge_max", "finalize"}}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aggregator.node import AggregatorConfig, AggregatorNode  # noqa: E402
from dgpt.chain.client import Chain, dev_accounts  # noqa: E402
from dgpt.chain.protocol import Outcome, deploy  # noqa: E402
from dgpt.commitments import EntriesTree  # noqa: E402
from dgpt.data import RT_LABELS, write_jsonl  # noqa: E402
from dgpt.model import save_model, tiny_gpt2  # noqa: E402
from dgpt.node import Action  # noqa: E402
from dgpt.report import Reason, Report, Slash  # noqa: E402
from dgpt.store import LocalStore  # noqa: E402
from dgpt.task import TaskSpec  # noqa: E402
from harness.demo import DEMO_PARAMS, DemoPlan, demo_data, register_oracle, setup_validators  # noqa: E402
from harness.localnet import anvil  # noqa: E402

SCENARIOS = ["pays itself", "drops a reveal", "inflates a weight", "marks an honest delta rejected",
             "publishes a model that is not the merge", "slashes an honest oracle"]
PLAN = DemoPlan(oracles=4, examples_per_oracle=60, validators=2)
ROUND_TIMEOUT = 600


def relisted(leaves) -> EntriesTree:
    """Leaves as a liar lists them: indexed in its own order, running sums over that order."""
    out, before = [], 0
    for k, e in enumerate(leaves):
        out.append(replace(e, index=k, reward_before=before))
        before += e.reward
    return EntriesTree(tuple(out))


class DishonestAggregator(AggregatorNode):
    """Recomputes each round honestly, then proposes what `how[rid]` says instead."""

    how: dict[int, str] = {}

    def propose(self, rid: int, report: Report, model_cid: str) -> tuple[Report, str]:
        how = self.how.get(rid)
        if how is None:
            return report, model_cid
        leaves = list(report.derived_entries().leaves)
        merged = [e for e in leaves if e.weight]
        if not merged:
            raise RuntimeError(f"round {rid}: nothing merged, so '{how}' cannot be staged")
        victim = merged[0].oracle
        if how == "pays itself":  # its own address, paid, in place of the last entry
            leaves[-1] = replace(leaves[-1], oracle=self.account.address, weight=1, reward=10**18)
            report.entries = relisted(leaves)
        elif how == "drops a reveal":  # the victim's entry repeated where the last one should be (the count
            # still matches the reveals, the total the budget)
            dropped = leaves[-1]
            twin = replace(next(e for e in leaves if e.oracle == victim), reward=dropped.reward)
            keep = [e for e in leaves if e.oracle != dropped.oracle] + [twin]
            report.entries = relisted(sorted(keep, key=lambda e: int(e.oracle, 16)))
        elif how == "inflates a weight":
            report.entries = relisted([replace(e, weight=10**9) if e.oracle == victim else e for e in leaves])
        elif how == "marks an honest delta rejected":  # consistent on its face: only a recomputation shows it
            e = report.entry(victim)
            e.accepted, e.reason, e.detail, e.weight, e.reward = False, Reason.HARMFUL, "made up", 0, 0
            report.entries = report.derived_entries()
        elif how == "publishes a model that is not the merge":
            model_cid = report.base_model_cid
        elif how == "slashes an honest oracle":  # a slash leaf no entry supports
            report.entries = EntriesTree(tuple(leaves))
            report.slashes.append(Slash(victim, Reason.MALFORMED))
        return report, model_cid


def gas_of(protocol, events) -> list[int]:
    w3 = protocol.chain.w3
    return [w3.eth.get_transaction_receipt(e["transactionHash"])["gasUsed"] for e in events]


def run(log) -> dict:
    rounds = 1 + len(SCENARIOS)
    with tempfile.TemporaryDirectory() as tmp, anvil(accounts=10) as url:  # account 9: the challenger
        home = Path(tmp)
        chain = Chain.connect(url)
        accounts = dev_accounts(2 + PLAN.oracles + PLAN.validators)
        admin, agg_account = accounts[0], accounts[1]
        oracle_accounts, validator_accounts = accounts[2:2 + PLAN.oracles], accounts[2 + PLAN.oracles:]
        protocol = deploy(chain, admin, agg_account.address, DEMO_PARAMS, tuple(v.address for v in validator_accounts))
        deployment = home / "deployment.json"
        deployment.write_text(json.dumps(protocol.deployment.to_json()))
        store = LocalStore(home / "store")
        data = demo_data(PLAN)
        genesis = home / "genesis.safetensors"
        save_model(genesis, tiny_gpt2(seed=0))
        common = ["--rpc-url", url, "--home", str(home), "--deployment", str(deployment), "--dev"]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        (home / "logs").mkdir()
        procs = []
        try:
            stake = protocol.min_stake()
            for i, (account, examples) in enumerate(zip(oracle_accounts, data.shards)):
                register_oracle(protocol, store, admin, account, examples, stake)
                path = home / f"oracle-{i}.jsonl"
                write_jsonl(path, examples)
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "cli", "oracle", "run", *common, "--dev-key", str(2 + i), "--data", str(path),
                     "--labels", ",".join(RT_LABELS), "--poll", "0.3"],
                    cwd=ROOT, env=env, stdout=open(home / "logs" / f"oracle-{i}.log", "w"), stderr=subprocess.STDOUT))
            setup_validators(protocol, store, admin, validator_accounts, home, log=lambda *a: None)
            for i in range(PLAN.validators):
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "cli", "validator", "run", *common, "--dev-key", str(2 + PLAN.oracles + i), "--poll", "0.3"],
                    cwd=ROOT, env=env, stdout=open(home / "logs" / f"validator-{i}.log", "w"), stderr=subprocess.STDOUT))
            budget = 100 * 10**18
            # Enough for a bond lost in every dishonest round: the aggregator tops its bond up itself.
            protocol.transfer(admin, agg_account.address, rounds * protocol.publish_bond_for(budget, 1))
            # Pre-training rounds: every honest delta of the tiny model merges, so each lie has a victim.
            task = TaskSpec(phase="pretrain", lr=2e-3, epochs=1, max_len=32, seed=1)
            agg = DishonestAggregator(protocol, store, agg_account,
                                      AggregatorConfig(home / "aggregator", genesis, [task] * rounds, data.validation, reward_budget=budget),
                                      log=lambda *a: None)
            DishonestAggregator.how = {2 + k: how for k, how in enumerate(SCENARIOS)}
            challenged: set[int] = set()
            t_round = time.monotonic()
            while True:
                for p in procs:
                    if p.poll() is not None:
                        raise RuntimeError(f"{p.args[3:5]} exited with {p.returncode}; see {home / 'logs'}")
                step = agg.tick()
                if step.action is Action.DONE:
                    break
                if step.action is Action.OPENED:
                    log(f"round {step.round_id}: opened ({DishonestAggregator.how.get(step.round_id, 'honest')})")
                    t_round = time.monotonic()
                rid = protocol.current_round()
                info = protocol.round(rid) if rid else None
                if info and info.proposed and rid not in challenged:
                    challenged.add(rid)  # the watcher: a challenger process looks at every proposal
                    out = subprocess.run([sys.executable, "-m", "cli", "challenge", str(rid), *common, "--dev-key", "9"],
                                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
                    log(f"round {rid}: challenger: {(out.stdout or out.stderr).strip().splitlines()[-1]}")
                    info = protocol.round(rid)
                if info and not info.final and not info.aborted:
                    now = chain.now()
                    committed = len(protocol.events("Committed", roundId=rid))
                    revealed = len(protocol.events("Revealed", roundId=rid))
                    attested = len([e for e in protocol.events("Attested", roundId=rid) if e["args"]["proposal"] == info.proposals])
                    if now <= info.commit_deadline and committed == PLAN.oracles:
                        chain.time_travel(info.commit_deadline - now + 1)
                    elif info.commit_deadline < now <= info.reveal_deadline and revealed == committed:
                        chain.time_travel(info.reveal_deadline - now + 1)
                    elif info.proposed and now <= info.challenge_deadline and attested == PLAN.validators:
                        chain.time_travel(info.challenge_deadline - now + 1)
                    elif step.idle and not info.proposed and info.voided_at and now <= info.publish_deadline:
                        chain.time_travel(info.publish_deadline - now + 1)
                if time.monotonic() - t_round > ROUND_TIMEOUT:
                    raise RuntimeError(f"round {rid} made no progress in {ROUND_TIMEOUT} s; see {home / 'logs'}")
                if step.idle:
                    time.sleep(0.3)
            return measure(protocol, oracle_accounts, rounds, log)
        finally:
            for p in procs:
                p.kill()
                p.wait()


def measure(protocol, oracles, rounds: int, log) -> dict:
    honest = {o.address for o in oracles}
    scenarios = {}
    for rid in range(1, rounds + 1):
        info = protocol.round(rid)
        _, outcome, _ = protocol.settlement(rid, 1)
        voided = [e for e in protocol.events("Voided", roundId=rid)]
        lost = sum(e["args"]["amount"] for e in protocol.events("Slashed", roundId=rid) if e["args"]["oracle"] in honest)
        if rid == 1:
            honest_final = info.final and outcome is Outcome.FINAL and not protocol.events("Challenged", roundId=1)
            log(f"round 1 (honest): {info.state}, {info.agree} agreeing attestations, honest stake lost {lost}")
            continue
        name = SCENARIOS[rid - 2]
        by = "proof" if protocol.events("Challenged", roundId=rid) else "quorum" if outcome is Outcome.VOIDED_BY_QUORUM else None
        scenarios[name] = {"caught": outcome in (Outcome.VOIDED_BY_PROOF, Outcome.VOIDED_BY_QUORUM), "by": by,
                           "aggregator_bond_lost_wei": str(sum(e["args"]["bondSlashed"] for e in voided)),
                           "honest_oracles_lost_wei": str(lost)}
        log(f"round {rid} ({name}): {outcome.name.lower()} by {by}; bond lost {int(scenarios[name]['aggregator_bond_lost_wei']) / 1e18:g} DGPT; "
            f"honest oracles lost {lost / 1e18:g} DGPT")
    gas = {"publish": max(gas_of(protocol, protocol.events("Published"))),
           "attest": max(gas_of(protocol, protocol.events("Attested"))),
           "challenge_max": max(gas_of(protocol, protocol.events("Challenged")) or [0]),
           "finalize": max(gas_of(protocol, protocol.events("Finalized")))}
    log(f"gas: {gas}")
    return {"honest_final": honest_final, "scenarios": scenarios, "gas": gas}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else (lambda *a: print(*a, flush=True))
    t0 = time.monotonic()
    result = run(log)
    log(f"finished in {time.monotonic() - t0:.0f} s")
    if args.json:
        print(json.dumps(result))
    ok = result["honest_final"] and all(s["caught"] and s["honest_oracles_lost_wei"] == "0" for s in result["scenarios"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
