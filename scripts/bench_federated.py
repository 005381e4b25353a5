"""Central training against federated training through the real roles, side by side.

    .venv/bin/python scripts/bench_federated.py [--splits iid-4,iid-8,dirichlet-8] [--examples N] [--local-epochs E]
        [--first-local-epochs E1] [--label-smoothing EPS] [--central-batch N] [--reports DIR] [--json]

Both start from the same genesis (the bare tiny model), train the same total epochs with the same
task specs as the demo (P L1 pre-training epochs, then R x E L3 fine-tuning epochs), and are
scored on the same held-out test set (movies no oracle holds):

- central: one worker trains on the union of the oracles' data (P epochs, then R x E epochs in
  one schedule);
- federated: `harness.demo.run_demo` with the oracles holding the split's shards (embedded chain
  and store, the real oracle and aggregator code, P pre-training rounds of one epoch and R
  fine-tuning rounds of E epochs, `--local-epochs`, the first of E1, `--first-local-epochs`, by
  default the demo's rule: two where the split's median shard is under 64 local batches; the
  rounds' lr by `--local-lr-scale`, by default the demo's: the last round at a quarter), no
  validator quorum (the benchmark's subject is the learning, not disputes).

Central training takes the split's E1 + (R - 1) x E fine-tuning epochs, so its figure is per
total: one central run per distinct total among the splits (iid-4 three, iid-8 and dirichlet-8
four at the defaults), each split's gap against its own.

Splits: `iid-K` gives K oracles whole movies at random (about equal, IID shards); `dirichlet-K`
gives K oracles label-skewed shards: for each label, the shares of its snippets are drawn from a
Dirichlet(alpha) (--alpha, default 0.5). Per split: the federated accuracy, the gap in points,
the share of honest fine-tuning deltas merged, and the best-paid over the least-paid oracle's
earnings over the fine-tuning rounds (null when one earned nothing), and per fine-tuning round
the verdicts (merged; found harmful alone but accepted in the merge; rejected, by reason; the
base's AUC and the deltas' ranking z alone, sorted).
`--reports DIR` keeps every fine-tuning report as DIR/SPLIT/report-round-N.json. Last line with
--json: {"central": {E_total: acc}, "central_ranking": {E_total: ...}, "runs": {split: {"federated",
"central", "finetune_epochs", "local_lr_scale", "ranking", "gap_points", "honest_accepted",
"reward_ratio_max_min", "rewards", "verdicts", "seconds"}}, ...}; "ranking"
is the final model's AUC, best-offset accuracy and margins (`ranking`): how much of a gap is the
decision offset rather than the ranking.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dgpt.config import Settings  # noqa: E402
from dgpt.data import RT_LABELS, Example, as_examples, rotten_tomatoes, shards, split_by_movie  # noqa: E402
from dgpt.errors import DGPTError  # noqa: E402
from dgpt.model import ModelBundle, load_model, tiny_gpt2  # noqa: E402
from dgpt.report import Report  # noqa: E402
from dgpt.store import LocalStore  # noqa: E402
from dgpt.train import TrainOptions, encode, evaluate, train  # noqa: E402
from harness.demo import NO_QUORUM_PARAMS, DemoData, DemoPlan, run_demo  # noqa: E402


def dirichlet_shards(examples: list[Example], k: int, alpha: float, seed: int = 0) -> list[list[Example]]:
    """Label-skewed shards: each label's snippets dealt to the k oracles in Dirichlet(alpha) shares."""
    rng = random.Random(seed)
    out: list[list[Example]] = [[] for _ in range(k)]
    for label in RT_LABELS:
        mine = [e for e in examples if e.label == label]
        rng.shuffle(mine)
        g = [rng.gammavariate(alpha, 1.0) for _ in range(k)]
        cuts = [round(len(mine) * sum(g[: i + 1]) / sum(g)) for i in range(k)]
        start = 0
        for i, end in enumerate(cuts):
            out[i].extend(mine[start:end])
            start = end
    for s in out:
        rng.shuffle(s)
    return out


def splits(names: list[str], train_reviews, alpha: float) -> dict[str, list[list[Example]]]:
    out = {}
    for name in names:
        kind, _, k = name.partition("-")
        if kind == "iid" and k.isdigit():
            out[name] = [as_examples(s) for s in shards(train_reviews, int(k), seed=0)]
        elif kind == "dirichlet" and k.isdigit():
            out[name] = dirichlet_shards(as_examples(train_reviews), int(k), alpha)
        else:
            raise SystemExit(f"--splits: {name!r} is not iid-K or dirichlet-K")
    return out


@torch.no_grad()
def ranking(bundle: ModelBundle, test: list[Example], max_len: int) -> dict | None:
    """How well a two-label head ranks the test snippets, apart from where it puts the decision:
    the AUC (the chance that a snippet of the second label gets a larger margin, logit 1 - logit
    0, than one of the first; ties count half), the accuracy at the best single offset on the
    margin (an upper bound, chosen on the test set itself: a diagnostic, not a result) and the
    margins' mean and spread. Accuracy below what the ranking allows is calibration: the offset
    sits where the margins are not. None for a head-less model (no fine-tuning round merged
    anything; its accuracy is None too)."""
    if bundle.model.head is None:
        return None
    model = bundle.model.eval()
    data = encode(bundle, test, bundle.labels, max_len)
    _, _, pad_id = bundle.special_ids
    margins = []
    for b in range(0, len(test), 64):
        ids, lengths, _ = data.batch(list(range(b, min(b + 64, len(test)))), pad_id, None, "cpu")
        logits = model(ids, lengths - 1)[1].double()
        margins += (logits[:, 1] - logits[:, 0]).tolist()
    return rank_stats(margins, [bundle.labels.index(e.label) for e in test])


def rank_stats(margins: list[float], y: list[int]) -> dict:
    """`ranking`'s figures from the margins and the labels (0 or 1)."""
    order = sorted(range(len(y)), key=lambda i: margins[i])
    ranks = [0.0] * len(y)  # mid-ranks, 1-based: ties share the mean of their ranks
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and margins[order[j + 1]] == margins[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    pos = sum(y)
    neg = len(y) - pos
    auc = (sum(r for r, t in zip(ranks, y) if t) - pos * (pos + 1) / 2) / (pos * neg) if pos and neg else None
    # Predicting label 1 above the k-th smallest margin, for every k: the best of those accuracies.
    best, right = 0, pos  # everything predicted label 1
    for k, i in enumerate(order):
        right += -1 if y[i] else 1
        if k + 1 == len(order) or margins[order[k + 1]] != margins[i]:
            best = max(best, right)
    best = max(best, pos)
    mean = sum(margins) / len(margins)
    spread = (sum((m - mean) ** 2 for m in margins) / len(margins)) ** 0.5
    return {"auc": round(auc, 4) if auc is not None else None, "best_offset_accuracy": round(best / len(y), 4),
            "margin_mean": round(mean, 4), "margin_sd": round(spread, 4)}


def central(plan: DemoPlan, union: list[Example], test: list[Example], batch: int | None = None, epochs: int | None = None) -> tuple[float, float, dict]:
    """Held-out (accuracy, L1 after pre-training, `ranking`) of one worker trained on the union:
    `epochs` fine-tuning epochs (default: the plan's rounds' sum, without shards) in one schedule at
    the full lr. `batch`: both phases' batch instead of the task specs' (the large-batch control:
    averaging n oracles' deltas is at best one model trained with an n times larger batch at the same lr)."""
    pre, fine = plan.pretrain_task(), plan.finetune_task()
    fine_all = replace(fine, epochs=epochs or finetune_epochs(plan.tasks()))
    if batch is not None:
        pre, fine_all = replace(pre, batch_size=batch), replace(fine_all, batch_size=batch)
    bundle = tiny_gpt2(seed=0)
    quiet = TrainOptions(device="cpu", log_every=10**9)
    for _ in range(plan.pretrain_rounds):
        train(bundle, pre, [Example(e.text) for e in union], quiet, log=lambda *a: None)
    pre_l1 = evaluate(bundle, [Example(e.text) for e in test], pre)["l1"]
    train(bundle, fine_all, union, quiet, log=lambda *a: None)
    return evaluate(bundle, test, fine)["accuracy"], pre_l1, ranking(bundle, test, fine.max_len)


def federated(plan: DemoPlan, data: DemoData, log, keep: Path | None = None) -> dict:
    """The federated run through the real roles; `keep`: a folder to write the fine-tuning rounds' reports to."""
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as home:
        result = run_demo(Settings(home=home), plan, log=lambda *a: None, data=data, params=NO_QUORUM_PARAMS)
        store = LocalStore(Path(home) / "store")
        reports = [Report.from_bytes(store.get_bytes(r["report_cid"])) for r in result.rounds if r["phase"] == "finetune"]
        final = Path(home) / "final.safetensors"
        store.get_file(result.rounds[-1]["model_cid"], final)
        ranked = ranking(load_model(final), data.test, plan.max_len)
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        for r in reports:
            (keep / f"report-round-{r.round}.json").write_bytes(r.to_bytes())
    entries = [e for r in reports for e in r.submissions]
    earned: dict[str, int] = {}
    for e in entries:
        earned[e.oracle] = earned.get(e.oracle, 0) + e.reward
    low, high = min(earned.values()), max(earned.values())
    return {
        "federated": result.rounds[-1]["accuracy"],
        "ranking": ranked,
        "per_round": [r["accuracy"] for r in result.rounds],
        "pretrain_l1": ([r["l1"] for r in result.rounds if r["phase"] == "pretrain"] or [None])[-1],  # held-out, after the last one
        "honest_accepted": sum(e.accepted for e in entries) / len(entries),
        "reward_ratio_max_min": round(high / low, 3) if low > 0 else None,
        "rewards": {o: str(v) for o, v in sorted(earned.items())},
        "verdicts": [r.verdicts() for r in reports],  # per fine-tuning round (Report.verdicts)
        "seconds": round(time.monotonic() - t0, 1),
    }


def finetune_epochs(tasks) -> int:
    """The fine-tuning rounds' epochs summed: what central training takes in one schedule."""
    return sum(t.epochs for t in tasks if t.phase == "finetune")


def central_figures(text: str) -> dict[int | None, float]:
    """`--central-accuracy`: ACC for every total, or E:ACC,... per fine-tuning epoch total."""
    out: dict[int | None, float] = {}
    try:
        for part in text.split(","):
            epochs, _, acc = part.rpartition(":")
            out[int(epochs) if epochs else None] = float(acc)
    except ValueError:
        raise argparse.ArgumentTypeError(f"an accuracy or E:ACC pairs, comma-separated, expected, got {text!r}") from None
    if not all(0 <= a <= 1 for a in out.values()):
        raise argparse.ArgumentTypeError(f"an accuracy is a share in [0, 1], got {text!r}")
    return out


def scales(text: str) -> tuple[float, ...]:
    """`--local-lr-scale`: positive multiples, comma-separated."""
    try:
        out = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated numbers expected, got {text!r}") from None
    if not all(x > 0 for x in out):
        raise argparse.ArgumentTypeError(f"every lr scale must be positive, got {text!r}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--splits", default="iid-4,iid-8,dirichlet-8")
    ap.add_argument("--alpha", type=float, default=0.5, help="Dirichlet concentration of the label-skewed split (default 0.5)")
    ap.add_argument("--examples", type=int, help="cap the union of the oracles' data (default: all training movies' snippets)")
    ap.add_argument("--finetune-rounds", type=int, default=3)
    ap.add_argument("--server-lr", type=float, default=1.0, help="the aggregator's FedAvg server learning rate (default 1)")
    ap.add_argument("--momentum", type=float, default=0.0, help="the aggregator's server momentum (FedAvgM; default 0)")
    ap.add_argument("--batch-size", type=int, default=DemoPlan.finetune_batch,
                    help=f"the fine-tuning batch, central and local alike (default {DemoPlan.finetune_batch})")
    ap.add_argument("--local-lr", type=float, default=DemoPlan.finetune_lr,
                    help=f"the oracles' fine-tuning lr; central training keeps {DemoPlan.finetune_lr:g} (default {DemoPlan.finetune_lr:g})")
    ap.add_argument("--local-warmup", type=float, default=DemoPlan.warmup,
                    help=f"the share of each round's local steps with a rising lr; central training keeps "
                         f"{DemoPlan.warmup:g} (default {DemoPlan.warmup:g})")
    ap.add_argument("--local-epochs", type=int, default=DemoPlan.finetune_epochs,
                    help=f"epochs a fine-tuning round; central training takes the rounds' epochs summed in one schedule, the same total "
                         f"(default {DemoPlan.finetune_epochs})")
    ap.add_argument("--first-local-epochs", type=int,
                    help="epochs of the first fine-tuning round (default: the demo's rule, two where the split's median shard is under "
                         "64 local batches, else --local-epochs); central training takes the sum of the rounds' epochs")
    ap.add_argument("--local-lr-scale", type=scales,
                    help="each fine-tuning round's lr as a multiple of --local-lr, comma-separated in round order (e.g. 1,1,0.5; 1: the "
                         "full lr in every round; default the demo's: the last round at a quarter); central training keeps its one "
                         "schedule at the full lr")
    ap.add_argument("--label-smoothing", type=float, default=DemoPlan.label_smoothing,
                    help=f"the fine-tuning rounds' label smoothing (training only), central and local alike (default {DemoPlan.label_smoothing:g})")
    ap.add_argument("--pretrain-rounds", type=int, default=DemoPlan.pretrain_rounds,
                    help=f"L1 pre-training rounds, an epoch each, central and federated alike (default {DemoPlan.pretrain_rounds})")
    ap.add_argument("--test-examples", type=int, default=1000)
    ap.add_argument("--central-accuracy", type=central_figures,
                    help="reuse central figures of an earlier run with the same --examples, --pretrain-rounds, --label-smoothing and "
                         "--test-examples: E:ACC per fine-tuning epoch total (e.g. 3:0.704,4:0.701), or one ACC for every total")
    ap.add_argument("--central-batch", type=int,
                    help="central training's batch in both phases (default: the task specs'); n x 32 is the large-batch control for n oracles")
    ap.add_argument("--reports", type=Path, help="write each run's fine-tuning reports to DIR/SPLIT/report-round-N.json")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not 0 <= args.local_warmup <= 1:
        raise SystemExit(f"bench_federated: --local-warmup is a share of the steps, in [0, 1], not {args.local_warmup}")
    if args.central_batch is not None and args.central_batch < 1:
        raise SystemExit(f"bench_federated: --central-batch must be at least 1, not {args.central_batch}")
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else print
    train_r, held = split_by_movie(rotten_tomatoes(), held_out=0.2, seed=0)
    val_r, test_r = split_by_movie(held, held_out=2 / 3, seed=1)  # the demo's split
    if args.examples:
        train_r = random.Random(0).sample(train_r, min(args.examples, len(train_r)))
    validation, test = as_examples(val_r), as_examples(test_r[: args.test_examples])
    try:  # the plan checks its own sizes (rounds, batch, test snippets), before central training's ~10 minutes
        plan = DemoPlan(pretrain_rounds=args.pretrain_rounds, finetune_rounds=args.finetune_rounds, validators=0, test_examples=args.test_examples,
                        finetune_batch=args.batch_size, finetune_epochs=args.local_epochs, first_finetune_epochs=args.first_local_epochs,
                        label_smoothing=args.label_smoothing, finetune_lr_scale=args.local_lr_scale)
    except DGPTError as exc:
        raise SystemExit(f"bench_federated: {exc}") from None
    out = {"examples": len(train_r), "test_examples": len(test), "pretrain_rounds": args.pretrain_rounds, "finetune_rounds": args.finetune_rounds, "server_lr": args.server_lr,
           "momentum": args.momentum, "batch_size": args.batch_size, "local_lr": args.local_lr, "local_warmup": args.local_warmup, "local_epochs": args.local_epochs,
           "first_local_epochs": args.first_local_epochs, "local_lr_scale": None if args.local_lr_scale is None else list(args.local_lr_scale),
           "label_smoothing": args.label_smoothing, "alpha": args.alpha, "central_batch": args.central_batch,
           "central": {}, "central_pretrain_l1": {}, "central_ranking": {}, "central_reused": args.central_accuracy is not None, "runs": {}}
    union = as_examples(train_r)
    for name, parts in splits([s for s in args.splits.split(",") if s], train_r, args.alpha).items():
        sizes = [len(p) for p in parts]
        tasks = plan.tasks(sizes)
        epochs = finetune_epochs(tasks)
        if epochs not in out["central"]:  # central training at this split's total, once per total
            t0 = time.monotonic()
            if args.central_accuracy is not None:
                if epochs not in args.central_accuracy and None not in args.central_accuracy:
                    raise SystemExit(f"bench_federated: --central-accuracy has no figure for {epochs} fine-tuning epochs ({name})")
                acc, l1, ranked = args.central_accuracy.get(epochs, args.central_accuracy.get(None)), None, None
            else:
                acc, l1, ranked = central(plan, union, test, args.central_batch, epochs)
                log(f"central, {epochs} fine-tuning epochs: held-out L1 {l1:.4f} after pre-training, ranking {ranked}")
            out["central"][epochs], out["central_pretrain_l1"][epochs], out["central_ranking"][epochs] = acc, l1, ranked
            log(f"central, {epochs} fine-tuning epochs: {acc:.4f} held-out accuracy on {len(test)} snippets ({time.monotonic() - t0:.0f} s, {len(train_r)} examples)")
        # Central's plan with the split's oracles and the federated-only settings (central keeps the default lr and warm-up).
        plan_k = replace(plan, oracles=len(parts), server_lr=args.server_lr, momentum=args.momentum, finetune_lr=args.local_lr, warmup=args.local_warmup)
        run = federated(plan_k, DemoData(parts, validation, test), log, args.reports / name if args.reports else None)
        run["central"] = out["central"][epochs]
        run["gap_points"] = round(100 * (run["central"] - run["federated"]), 2)
        run["finetune_epochs"] = [t.epochs for t in tasks if t.phase == "finetune"]
        run["local_lr_scale"] = [round(t.lr / plan.finetune_lr, 6) for t in tasks if t.phase == "finetune"]
        run["shard_sizes"] = sizes
        out["runs"][name] = run
        log(f"{name}: federated {run['federated']:.4f} (gap {run['gap_points']:+.2f} points against central's {run['central']:.4f} at "
            f"{epochs} epochs), honest deltas merged {run['honest_accepted']:.0%}, best/least paid {run['reward_ratio_max_min']}, "
            f"ranking {run['ranking']}, {run['seconds']:.0f} s")
    if args.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
