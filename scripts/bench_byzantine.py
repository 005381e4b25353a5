#!/usr/bin/env python3
"""Byzantine oracles: held-out accuracy after the rounds for each merge strategy and attack, against
the honest-only run (the cheaters' seats empty) with the same seed, plus what the cheaters earned for
their attacks and whether they were slashed. Every run is a full protocol run on a fresh embedded
chain with the real oracle and aggregator roles (see harness/byzantine.py).

With --json the last line is one JSON object:
{"honest": acc, "results": {strategy: {attack: acc}}, "n": N, "f": f, "genesis": acc,
 "honest_by_strategy": {...}, "cheater_rewards": {strategy: {attack: wei}}, "slashed": {...}}.

    .venv/bin/python scripts/bench_byzantine.py [--strategies fedavg,median] [--attacks ...] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from dgpt.aggregate import STRATEGIES, Strategy
from dgpt.encoding import DEFAULT_ENCODING, ENCODINGS
from harness.byzantine import ATTACKS, SimPlan, Simulator
from dgpt.store.local import LocalStore

PARAMS = {"trimmed_mean": {"trim": 0.2}, "clipped_mean": {"clip": 5.0}, "krum": {"f": 2}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=7, help="oracles (default 7)")
    parser.add_argument("--f", type=int, default=2, help="cheaters among them (default 2)")
    parser.add_argument("--strategies", default=",".join(STRATEGIES), help="comma-separated (default: all five)")
    parser.add_argument("--attacks", default=",".join(ATTACKS), help="comma-separated (default: all)")
    parser.add_argument("--encoding", default=DEFAULT_ENCODING, help=f"the rounds' delta encoding (default {DEFAULT_ENCODING})")
    parser.add_argument("--cache", default=".bench-byzantine", help="store and memo folder, reused across runs")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else (lambda *a: print(*a, flush=True))
    strategies = [s for s in args.strategies.split(",") if s]
    attacks = [a for a in args.attacks.split(",") if a]
    for name in attacks:
        if name not in ATTACKS:
            parser.error(f"unknown attack {name!r}; one of {', '.join(ATTACKS)}")
    for name in strategies:
        if name not in STRATEGIES:
            parser.error(f"unknown strategy {name!r}; one of {', '.join(STRATEGIES)}")

    t0 = time.monotonic()
    cache = Path(args.cache)
    if args.encoding not in ENCODINGS:
        parser.error(f"unknown encoding {args.encoding!r}; one of {', '.join(ENCODINGS)}")
    sim = Simulator(SimPlan(n=args.n, delta_encoding=args.encoding), LocalStore(cache / "store"), cache / "memo", log=log)
    genesis = sim.genesis_accuracy()
    log(f"genesis model (the rounds' start): held-out accuracy {genesis:.3f}")
    result = {"n": args.n, "f": args.f, "encoding": args.encoding, "genesis": genesis, "results": {}, "honest_by_strategy": {}, "cheater_rewards": {}, "slashed": {}}
    for s in strategies:
        strategy = Strategy(s, PARAMS.get(s, {}))
        honest = sim.run(strategy, f=args.f, honest_only=True).accuracy
        result["honest_by_strategy"][s] = honest
        log(f"{s}: honest-only ({args.n - args.f} oracles) accuracy {honest:.3f}")
        for a in attacks:
            r = sim.run(strategy, a, f=args.f)
            result["results"].setdefault(s, {})[a] = r.accuracy
            result["cheater_rewards"].setdefault(s, {})[a] = str(r.cheater_rewards)
            result["slashed"].setdefault(s, {})[a] = all(r.slashed[c] for c in r.cheaters)
            spread = ""
            for key, label, accepted in (("cosine_to_median", "cosine to median", False), ("loss_gain", "validation gain when merged", True)):
                bad, good = r.recorded(key, True, accepted), r.recorded(key, False, accepted)
                if bad and good:
                    spread += f"\n{'':>20}{label}: cheaters {min(bad):.4f}..{max(bad):.4f}, honest {min(good):.4f}..{max(good):.4f}"
            log(f"  {a:>16}: accuracy {r.accuracy:.3f} ({(r.accuracy - honest) * 100:+.1f} points)  "
                f"cheaters earned for attacks {r.cheater_rewards / 1e18:.3f} DGPT  slashed {result['slashed'][s][a]}{spread}")
    result["honest"] = result["honest_by_strategy"].get("fedavg", next(iter(result["honest_by_strategy"].values()), None))
    log(f"done in {time.monotonic() - t0:.0f} s")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
