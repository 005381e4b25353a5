#!/usr/bin/env python3
"""Protocol overhead of one fine-tuning round on a real Anvil, with 4, 16 and 64 oracles:
everything except training. The oracles are the real nodes with their training step replaced by
a fixed small change to the weights; the rest is real: fetching the base model and task spec by
CID, computing and storing the delta, commit, reveal, the aggregator's checks, validation scoring
(16 snippets), merge, report, publish, and every oracle's claim. Embedded store on disk.
With --json the last line is one JSON object: overhead_s_N (the whole round) and aggregator_s_N
(the aggregator's own ticks: fetch, checks, scoring, merge, report, publish) for each size N.

    .venv/bin/python scripts/bench_round.py [--sizes 4,16,64] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from aggregator.node import AggregatorConfig, AggregatorNode
from dgpt.chain.client import Chain, dev_accounts
from dgpt.chain.protocol import deploy
from dgpt.data import RT_LABELS, as_examples, rotten_tomatoes
from harness.demo import NO_QUORUM_PARAMS, drive, fund_aggregator, register_oracle
from harness.localnet import anvil
from dgpt.model import save_model, tiny_gpt2
from dgpt.store import LocalStore
from dgpt.task import TaskSpec
from oracle.node import OracleConfig, OracleNode


class NoTrainingOracle(OracleNode):
    """A real oracle node whose training is a fixed nudge: the benchmark measures the protocol."""

    def fit(self, bundle, task, examples):
        if bundle.model.head is None:
            bundle.model.add_head(len(task.labels), task.seed)
            bundle.labels = task.labels
        with torch.no_grad():
            bundle.model.head.weight.add_(1e-3)


def one_round(n: int, reviews, tmp: Path, log) -> float:
    with anvil(accounts=n + 2) as url:
        chain = Chain.connect(url)
        accounts = dev_accounts(n + 2)
        admin, agg_account, oracle_accounts = accounts[0], accounts[1], accounts[2:]
        protocol = deploy(chain, admin, agg_account.address, NO_QUORUM_PARAMS)
        store = LocalStore(tmp / "store")
        genesis = tmp / "genesis.safetensors"
        save_model(genesis, tiny_gpt2(seed=0))
        stake = protocol.min_stake()
        oracles = []
        for i, a in enumerate(oracle_accounts):
            examples = as_examples(reviews[i * 8 : (i + 1) * 8])
            register_oracle(protocol, store, admin, a, examples, stake)
            oracles.append(NoTrainingOracle(protocol, store, a, OracleConfig(tmp / "oracles" / a.address, examples), log=lambda *x: None))
        task = TaskSpec(labels=RT_LABELS, epochs=1, max_len=32)
        fund_aggregator(protocol, admin, agg_account.address, AggregatorConfig.reward_budget)
        agg = AggregatorNode(protocol, store, agg_account,
                             AggregatorConfig(tmp / "aggregator", genesis, [task], as_examples(reviews[-16:])), log=lambda *x: None)
        spent = {"aggregator": 0.0}
        tick = agg.tick

        def timed_tick():  # the aggregator's own share: fetch, check, score, merge, report, publish
            t0 = time.perf_counter()
            try:
                return tick()
            finally:
                spent["aggregator"] += time.perf_counter() - t0

        agg.tick = timed_tick
        t = time.perf_counter()
        drive(chain, protocol, agg, oracles, lambda rid: None)
        seconds = time.perf_counter() - t
        assert protocol.round(1).final
    log(f"{n:>3} oracles: one round in {seconds:.1f} s, of which the aggregator {spent['aggregator']:.1f} s")
    return seconds, spent["aggregator"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="4,16,64")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else (lambda *a: print(*a, flush=True))
    reviews = rotten_tomatoes()
    result = {}
    for n in [int(x) for x in args.sizes.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            total, aggregator = one_round(n, reviews, Path(tmp), log)
            result[f"overhead_s_{n}"] = round(total, 2)
            result[f"aggregator_s_{n}"] = round(aggregator, 2)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
