#!/usr/bin/env python3
"""Gas per protocol call on a real Anvil: register, commit, reveal, publish (a proposal) with 1, 10
and 100 participants, attest, finalize, claim, withdraw. With --json the last line is one JSON
object of those figures.

Each figure is the most gas any measured call of that kind used (the first call in a round pays
for fresh storage slots; a claim's proof grows with the participants), so the table is a worst
case. A warm-up round first pays the one-time cost of the first publish ever.

    .venv/bin/python scripts/bench_gas.py [--json]
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys

from dgpt.chain.client import Chain, dev_accounts
from harness.localnet import anvil
from dgpt.chain.protocol import TOKEN, ProtocolParams, SlashReason, deploy
from dgpt.cid import raw_cid
from dgpt.commitments import EntriesTree, Result, SlashesTree, commit_hash

SIZES = (1, 10, 100)
COMMIT_S = REVEAL_S = 600
TARGETS = {"commit": 60_000, "reveal": 80_000, "claim": 80_000, "attest": 80_000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()
    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print

    n_max = max(SIZES)
    gas: dict[str, int] = {}

    def record(key: str, receipt: dict) -> None:
        gas[key] = max(gas.get(key, 0), receipt["gasUsed"])

    with anvil(accounts=n_max + 5) as url:
        chain = Chain.connect(url)
        accounts = dev_accounts(n_max + 5)
        admin, aggregator, oracles, validators = accounts[0], accounts[1], accounts[2:n_max + 2], accounts[n_max + 2:]
        # A per-round ceiling large enough for the test budget; the bounds do not change the gas.
        params = ProtocolParams(unbonding_period=3600, slash_window=1800, max_reward_per_round=10**6 * TOKEN,
                                max_reward_per_period=10**7 * TOKEN, challenge_window=600, validator_seats=3, validator_quorum=2)
        protocol = deploy(chain, admin, aggregator.address, params, tuple(v.address for v in validators))
        protocol.transfer(admin, aggregator.address, 2 * 10**6 * TOKEN)
        protocol.deposit_bond(aggregator, 2 * 10**6 * TOKEN)
        for v in validators:
            protocol.transfer(admin, v.address, params.validator_bond)
            protocol.deposit_bond(v, params.validator_bond)

        def settle(rid: int, result: Result) -> None:
            """Two validators attest, the window passes, anyone finalizes."""
            for v in validators[:2]:
                record("attest", protocol.attest(v, rid, result.hash(rid)))
            chain.time_travel(params.challenge_window + 1)
            record("finalize", protocol.finalize(admin, rid))
        log(f"deployed on anvil at {url}; registering {n_max} oracles")
        for o in oracles:
            protocol.transfer(admin, o.address, 2 * params.min_stake)
            record("register", protocol.register(o, params.min_stake + TOKEN, raw_cid(o.address.encode()), secrets.token_bytes(32), 1000))

        # Warm-up round with nobody in it: the first publish ever also fills the latest-model slots,
        # a one-time cost that has nothing to do with the number of participants.
        model = raw_cid(b"genesis model")
        rid = protocol.open_round(aggregator, model, raw_cid(b"task spec"), COMMIT_S, REVEAL_S, 0)
        chain.time_travel(COMMIT_S + REVEAL_S + 1)
        model = raw_cid(b"warm-up model")
        warm = Result(model, raw_cid(b"warm-up report"), bytes(32), 0, 0, bytes(32), 0, bytes(32))
        protocol.publish(aggregator, rid, warm)
        settle(rid, warm)
        gas.pop("attest"), gas.pop("finalize")
        for n in SIZES:
            rid = protocol.open_round(aggregator, model, raw_cid(b"task spec"), COMMIT_S, REVEAL_S, 10**6 * TOKEN)
            salts = {}
            for o in oracles[:n]:
                delta, salt = raw_cid(f"delta {rid} {o.address}".encode()), secrets.token_bytes(32)
                salts[o.address] = (delta, salt)
                record("commit", protocol.commit(o, rid, commit_hash(rid, o.address, delta, salt, 100)))
            chain.time_travel(COMMIT_S + 1)
            for o in oracles[:n]:
                delta, salt = salts[o.address]
                record("reveal", protocol.reveal(o, rid, delta, salt, 100))
            chain.time_travel(REVEAL_S)
            tree = EntriesTree.build([(o.address, salts[o.address][0], 100, 100, (i + 1) * TOKEN, None)
                                      for i, o in enumerate(oracles[:n])])
            model = raw_cid(f"model {rid}".encode())
            # with a slashes root (the dearer case: one more storage slot)
            slashes = SlashesTree.build([(oracles[n - 1].address, SlashReason.MALFORMED)])
            result = Result(model, raw_cid(f"report {rid}".encode()), tree.root, n, tree.total, slashes.root, 1, bytes(32))
            record(f"publish_{n}", protocol.publish(aggregator, rid, result))
            settle(rid, result)
            for o in oracles[: min(n, 10)]:
                e = tree.of(o.address)
                record("claim", protocol.claim(o, rid, e, tree.proof(e.index)))
            log(f"round {rid}: {n} participants, publish {gas[f'publish_{n}']:,} gas")

        o = oracles[0]
        protocol.request_unbond(o, TOKEN)
        chain.time_travel(params.unbonding_period + 1)
        record("withdraw", protocol.withdraw(o))

    keys = ["register", "commit", "reveal", "publish_1", "publish_10", "publish_100", "attest", "finalize", "claim", "withdraw"]
    log(f"{'call':<12} {'gas':>9}  target")
    for k in keys:
        target = TARGETS.get(k)
        mark = f"<= {target:,} {'ok' if gas[k] <= target else 'MISSED'}" if target else ""
        log(f"{k:<12} {gas[k]:>9,}  {mark}")
    spread = gas["publish_100"] / gas["publish_1"] - 1
    log(f"publish_100 vs publish_1: {spread:+.2%} (target within 5%: {'ok' if abs(spread) <= 0.05 else 'MISSED'})")
    if args.json:
        print(json.dumps({k: gas[k] for k in keys}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
