"""What a validation slice can tell about each delta of a first fine-tuning round from a near-chance base.

    .venv/bin/python scripts/bench_pretrain.py --rounds 2 --whole-epochs --save pre.safetensors
    .venv/bin/python scripts/bench_first_round.py --base pre.safetensors [--oracles 7] [--attacks label_flip,random_labels]
                                                  [--rounds 3] [--validation N] [--json]

The question behind the Byzantine harness's near-chance case (issue 14): can the aggregator tell
a label flip or random labels from honest work in the rounds where the model has not learnt the
task yet? From `--base` (a head-less, L1-pre-trained model: the demo's start of fine-tuning), each
of K oracles trains one round on its demo shard with the demo's fine-tuning task spec, the last
ones on their shard with its labels attacked (`harness.byzantine`: flipped, or drawn at random).
Each delta is scored alone against the base on the validation snippets with the aggregator's own
scorer (`round.StateScorer`, float64, quantised) and three paired tests, each as a z-score (gain /
standard error; the harmful test rejects at -2.576):
  - L2: the per-example cross-entropy fall (`round.gains`, what the aggregator's harmful test reads);
  - accuracy: the per-example change in right answers (the same);
  - ranking: the change of the one-vs-rest AUC of the centred logits (`rules.ranking_gain`, paired
    by DeLong's structural components): how the delta changes the model's ordering of the
    examples, whatever its calibration (the same).
Then the honest deltas alone are merged (FedAvg by count, the honest-only run) into the next
round's base, and from the second round on the previous round's deltas are also judged again at
the new base ("deferred": the evidence a later round would hold about them).
Last line with --json: {"base", "oracles", "attacks", "validation", "rounds": [{"round", "base_auc",
"base_auc_se", "test_accuracy", "deltas": [{"oracle", "kind", "l2_z", "accuracy_z", "ranking_z", ...}],
"deferred": [...]}]}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dgpt.errors import DGPTError  # noqa: E402
from dgpt.model import load_model, load_state, read_state, save_model, with_initial_head  # noqa: E402
from dgpt.round import StateScorer, gains  # noqa: E402
from dgpt.rules import ranking  # noqa: E402
from dgpt.train import TrainOptions, attach_head, evaluate, train  # noqa: E402
from harness.byzantine import flip_labels, random_labels  # noqa: E402
from harness.demo import DemoPlan, demo_data  # noqa: E402

ATTACKS = {"label_flip": lambda shard, i: flip_labels(shard), "random_labels": lambda shard, i: random_labels(shard, f"oracle {i}")}


def z(gain: float, se: float) -> float | None:
    return round(gain / se, 2) if se > 0 else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", type=Path, required=True, help="a head-less model file (scripts/bench_pretrain.py --save)")
    ap.add_argument("--oracles", type=int, default=7)
    ap.add_argument("--attacks", default="label_flip,random_labels", help="the last oracles' attacks, one each (default: label_flip,random_labels)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--validation", type=int, default=None, help="validation snippets (default: all 955 of the demo's validation movies)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    attacks = [a for a in args.attacks.split(",") if a]
    for a in attacks:
        if a not in ATTACKS:
            raise SystemExit(f"bench_first_round: unknown attack {a!r}; one of {', '.join(ATTACKS)}")
    if args.oracles <= len(attacks) or args.rounds < 1 or (args.validation is not None and args.validation < 2):
        raise SystemExit("bench_first_round: needs more oracles than attacks, at least one round and at least 2 validation snippets")
    if not args.base.is_file():
        raise SystemExit(f"bench_first_round: no model file at {args.base}")
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else print
    plan = DemoPlan(oracles=args.oracles, validation_examples=args.validation)
    data = demo_data(plan)
    task = plan.finetune_task()
    kinds = ["honest"] * (args.oracles - len(attacks)) + attacks
    shards = [s if k == "honest" else ATTACKS[k](s, i) for i, (k, s) in enumerate(zip(kinds, data.shards))]
    try:
        bundle = load_model(args.base)
        state, meta = read_state(args.base)
    except DGPTError as exc:
        raise SystemExit(f"bench_first_round: {exc}") from None
    if "head.weight" in state:
        raise SystemExit(f"bench_first_round: {args.base} has a head already; give the head-less pre-trained model")
    base = with_initial_head(state, meta, len(task.labels), task.seed)  # where every oracle starts, as the aggregator scores it
    attach_head(bundle, task)
    work = tempfile.TemporaryDirectory(prefix="bench-first-round-")
    base_path = Path(work.name) / "base.safetensors"
    save_model(base_path, bundle)  # the architecture with a head, for the scorer
    scorer = StateScorer()
    labels = [task.labels.index(e.label) for e in data.validation]
    quiet = TrainOptions(device="cpu", log_every=10**9)

    def scored(s: dict) -> dict:
        return scorer(base_path, s, task.labels, task, data.validation, "cpu", lm=False)

    def judge(before: dict, delta: dict, at: dict) -> dict:
        after = scored({k: (at[k].double() + delta[k]).to(at[k].dtype) for k in at})
        g = gains(before, after, labels)
        return {"l2_gain": g["loss_gain"], "l2_z": z(g["loss_gain"], g["gain_se"]), "accuracy_gain": g["accuracy_gain"],
                "accuracy_z": z(g["accuracy_gain"], g["accuracy_gain_se"]), "ranking_gain": g["ranking_gain"],
                "ranking_z": z(g["ranking_gain"], g["ranking_gain_se"])}

    out = {"base": str(args.base), "oracles": args.oracles, "attacks": attacks, "validation": len(data.validation), "rounds": []}
    previous: list[dict] = []
    t0 = time.monotonic()
    for r in range(1, args.rounds + 1):
        before = scored(base)
        auc, auc_se = ranking(before["per_example_logits"], labels)
        row = {"round": r, "base_auc": round(auc, 4), "base_auc_se": round(auc_se, 4), "deltas": [], "deferred": []}
        log(f"round {r}: base validation AUC {auc:.3f} +- {auc_se:.3f}, accuracy {before['accuracy']:.3f}")
        for i, d in enumerate(previous):
            row["deferred"].append({"oracle": i, "kind": kinds[i], **judge(before, d, base)})
            log(f"  round {r - 1}'s oracle {i} ({kinds[i]}) judged at this base: " + describe(row["deferred"][-1]))
        deltas = []
        for i, shard in enumerate(shards):
            load_state(bundle, base, args.base)
            train(bundle, replace(task, seed=task.seed + r), shard, quiet, log=lambda *a: None)
            deltas.append({k: v.double() - base[k].double() for k, v in bundle.model.state_dict().items() if k in base})
            row["deltas"].append({"oracle": i, "kind": kinds[i], **judge(before, deltas[-1], base)})
            log(f"  oracle {i} ({kinds[i]}): " + describe(row["deltas"][-1]))
        honest = [i for i, k in enumerate(kinds) if k == "honest"]
        weight = sum(len(shards[i]) for i in honest)
        base = {k: (v.double() + sum(len(shards[i]) * deltas[i][k] for i in honest) / weight).to(v.dtype) for k, v in base.items()}
        load_state(bundle, base, args.base)
        row["test_accuracy"] = evaluate(bundle, data.test, task, lm=False)["accuracy"]
        log(f"  honest merge: held-out test accuracy {row['test_accuracy']:.3f} ({time.monotonic() - t0:.0f} s)")
        out["rounds"].append(row)
        previous = deltas
    if args.json:
        print(json.dumps(out))
    return 0


def describe(x: dict) -> str:
    return (f"L2 {x['l2_gain']:+.4f} (z {x['l2_z']}), accuracy {x['accuracy_gain']:+.3f} (z {x['accuracy_z']}), "
            f"ranking {x['ranking_gain']:+.4f} (z {x['ranking_z']})")


if __name__ == "__main__":
    sys.exit(main())
