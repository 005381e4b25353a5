#!/usr/bin/env python3
"""Byzantine oracles: held-out accuracy after the rounds for each merge strategy and attack, against
the honest-only run (the cheaters' seats empty) with the same seed, plus what the cheaters earned for
their attacks against what an honest oracle earned, whether they were slashed, and the backdoor's
attack success rate (asr: triggered held-out snippets called the target label). Every run is a full
protocol run on a fresh embedded chain with the real oracle and aggregator roles (harness/byzantine.py).

With --json the last line is one JSON object:
{"honest": acc, "results": {strategy: {attack: acc}}, "n": N, "f": f, "genesis": acc, "genesis_kind": ...,
 "pretrain_rounds": ..., "rounds": ..., "validation_examples": ...,
 "honest_by_strategy": {...}, "honest_asr": {strategy: asr}, "honest_accepted": {strategy: fraction},
 "honest_reward": {strategy: wei per honest oracle}, "cheater_rewards": {strategy: {attack: wei}},
 "cheater_reward_per_seat": {...}, "honest_reward_per_seat": {...}, "asr": {strategy: {attack: asr}},
 "slashed": {...}, "verdicts": {strategy: {"honest-only" or attack: [{"round", "cheaters", "honest"}]}}}, per
fine-tuning round the cheaters' and the honest oracles' verdicts (dgpt.report.Report.verdicts: merged,
rejected by reason, the base's AUC, each delta's ranking z and head cosine). --reports DIR keeps the
fine-tuning reports as DIR/STRATEGY/RUN/report-round-N.json.

    .venv/bin/python scripts/bench_byzantine.py [--strategies fedavg,median] [--attacks ...] [--reports DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from dgpt.aggregate import STRATEGIES, Strategy
from dgpt.encoding import DEFAULT_ENCODING, ENCODINGS
from harness.byzantine import ATTACKS, SimPlan, Simulator, new_network
from dgpt.store.local import LocalStore

PARAMS = {"trimmed_mean": {"trim": 0.2}, "clipped_mean": {"clip": 5.0}, "krum": {"f": 2}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=7, help="oracles (default 7)")
    parser.add_argument("--f", type=int, default=2, help="cheaters among them (default 2)")
    parser.add_argument("--strategies", default=",".join(STRATEGIES), help="comma-separated (default: all five)")
    parser.add_argument("--attacks", default=",".join(ATTACKS), help="comma-separated (default: all)")
    parser.add_argument("--encoding", default=DEFAULT_ENCODING, help=f"the rounds' delta encoding (default {DEFAULT_ENCODING})")
    parser.add_argument("--genesis", choices=("warm", "pretrained", "untrained"), default="warm",
                        help="the rounds' start: warm (pre-trained and fine-tuned on public snippets, default), pretrained (L1 on "
                             "them only: no head, near chance, as a new network's first fine-tuning round) or untrained (a new network: "
                             "the bare model, two pre-training rounds through the protocol, then the fine-tuning rounds; harness.byzantine.new_network)")
    parser.add_argument("--lr", type=float, help=f"the fine-tuning rounds' lr (default {SimPlan.lr:g}; untrained: 1e-3)")
    parser.add_argument("--max-update-norm", type=float,
                        help=f"the task's bound on a delta's norm (default {SimPlan.max_update_norm:g}; untrained: 60)")
    parser.add_argument("--examples", type=int, help=f"snippets per oracle (default {SimPlan.examples_per_oracle}; untrained: 1100, the whole shard)")
    parser.add_argument("--first-epochs", type=int,
                        help=f"the first fine-tuning round's local epochs (default {SimPlan.first_epochs}; untrained: 2; later rounds take one)")
    parser.add_argument("--cache", default=".bench-byzantine", help="store and memo folder, reused across runs")
    parser.add_argument("--reports", type=Path, help="write each run's fine-tuning reports to DIR/STRATEGY/RUN/report-round-N.json "
                                                     "(RUN: honest-only or the attack)")
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
    if args.first_epochs is not None and args.first_epochs < 1:
        parser.error(f"--first-epochs must be at least 1, not {args.first_epochs}")
    given = {k: v for k, v in (("lr", args.lr), ("examples_per_oracle", args.examples), ("max_update_norm", args.max_update_norm),
                               ("first_epochs", args.first_epochs)) if v is not None}
    common = dict(n=args.n, delta_encoding=args.encoding, **given)
    plan = new_network(**common) if args.genesis == "untrained" else SimPlan(genesis=args.genesis, **common)
    sim = Simulator(plan, LocalStore(cache / "store"), cache / "memo", log=log)
    genesis = sim.genesis_accuracy()
    log(f"genesis model (the rounds' start): held-out accuracy {genesis:.3f}")
    result = {"n": args.n, "f": args.f, "encoding": args.encoding, "genesis": genesis, "genesis_kind": args.genesis,
              "lr": plan.lr, "max_update_norm": plan.max_update_norm, "examples_per_oracle": plan.examples_per_oracle,
              "pretrain_rounds": plan.pretrain_rounds, "rounds": plan.rounds, "first_epochs": plan.first_epochs, "validation_examples": len(sim.data.validation), "results": {}, "honest_by_strategy": {},
              "honest_asr": {}, "honest_accepted": {}, "honest_reward": {}, "cheater_rewards": {}, "cheater_reward_per_seat": {},
              "honest_reward_per_seat": {}, "asr": {}, "slashed": {}, "verdicts": {}}
    for s in strategies:
        strategy = Strategy(s, PARAMS.get(s, {}))
        h = sim.run(strategy, f=args.f, honest_only=True)
        result["verdicts"].setdefault(s, {})["honest-only"] = verdicts(h, args.reports / s / "honest-only" if args.reports else None)
        honest = h.accuracy
        entries = [e for r in h.reports for e in r.submissions if e.oracle in h.rewards]  # not the cheaters' seats
        result["honest_by_strategy"][s], result["honest_asr"][s] = honest, h.asr
        result["honest_accepted"][s] = sum(e.accepted for e in entries) / len(entries)
        result["honest_reward"][s] = str(int(h.honest_mean_reward))
        log(f"{s}: honest-only ({args.n - args.f} oracles) accuracy {honest:.3f}, backdoor asr {h.asr:.3f}, "
            f"{result['honest_accepted'][s]:.0%} of honest deltas merged, {h.honest_mean_reward / 1e18:.2f} DGPT per oracle")
        for a in attacks:
            r = sim.run(strategy, a, f=args.f)
            result["verdicts"][s][a] = verdicts(r, args.reports / s / a if args.reports else None)
            result["results"].setdefault(s, {})[a] = r.accuracy
            result["asr"].setdefault(s, {})[a] = r.asr
            result["cheater_rewards"].setdefault(s, {})[a] = str(r.cheater_rewards)
            # per seat and attacked round, to compare with what an honest oracle earns in the same run
            per_seat = r.paid_per_seat_round(r.cheaters)
            honest_seat = r.paid_per_seat_round([o for o in r.rewards if o not in r.cheaters])
            result["cheater_reward_per_seat"].setdefault(s, {})[a] = str(int(per_seat))
            result["honest_reward_per_seat"].setdefault(s, {})[a] = str(int(honest_seat))
            result["slashed"].setdefault(s, {})[a] = all(r.slashed[c] for c in r.cheaters)
            spread = ""
            for key, label, accepted in (("cosine_to_median", "cosine to median", False), ("loss_gain", "validation gain when merged", True)):
                bad, good = r.recorded(key, True, accepted), r.recorded(key, False, accepted)
                if bad and good:
                    spread += f"\n{'':>20}{label}: cheaters {min(bad):.4f}..{max(bad):.4f}, honest {min(good):.4f}..{max(good):.4f}"
            log(f"  {a:>16}: accuracy {r.accuracy:.3f} ({(r.accuracy - honest) * 100:+.1f} points)  asr {r.asr:.3f} "
                f"({(r.asr - h.asr) * 100:+.1f})  cheaters earned {per_seat / 1e18:.2f} DGPT a seat a round "
                f"(honest {honest_seat / 1e18:.2f})  slashed {result['slashed'][s][a]}{spread}")
    result["honest"] = result["honest_by_strategy"].get("fedavg", next(iter(result["honest_by_strategy"].values()), None))
    log(f"done in {time.monotonic() - t0:.0f} s")
    if args.json:
        print(json.dumps(result))
    return 0


def verdicts(run, keep: Path | None) -> list[dict]:
    """Per fine-tuning round, the cheaters' and the honest oracles' verdicts (Report.verdicts);
    `keep`: a folder to write the round's reports to."""
    out = []
    for r in run.reports:
        if r.phase != "finetune":
            continue
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            (keep / f"report-round-{r.round}.json").write_bytes(r.to_bytes())
        honest = {e.oracle for e in r.submissions} - set(run.cheaters)
        out.append({"round": r.round, "cheaters": r.verdicts(set(run.cheaters)), "honest": r.verdicts(honest)})
    return out


if __name__ == "__main__":
    sys.exit(main())
