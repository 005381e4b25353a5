"""Per-example Shapley values of a finished demo's rounds, read back from its reports: what pay by
the Shapley value on the merge would give each merged delta, with its paired standard error.

    .venv/bin/python scripts/bench_shapley.py DEMO_JSON STORE_DIR [--work DIR] [--json]

DEMO_JSON is the output of `dgpt demo --json` (its last JSON line names each round's report);
STORE_DIR the demo's embedded store (HOME/store). For each round, every subset of the merged deltas
is merged in memory (round.part_metrics: the report's weights and clip factors) and scored on the
round's published validation slice; each delta's Shapley value is computed per example (the value
is linear in the game), so its paired standard error and that of its distance from the round's mean
follow. Printed per round: the merge's gain V, and per delta its value phi, its deviation from the
mean with se, its gain alone, and the contribution the report paid by. Last line with --json:
{"rounds": [{"round", "phase", "n", "gain", "gain_se", "deltas": [{"oracle", "phi", "phi_se",
"deviation", "deviation_se", "alone", "contribution"}]}]}.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dgpt.dataset import examples_from_bytes  # noqa: E402
from dgpt.encoding import Encoding  # noqa: E402
from dgpt.model import read_state, with_initial_head  # noqa: E402
from dgpt.report import Report  # noqa: E402
from dgpt.round import RoundContext, RoundPolicy, StateScorer, Submission, part_metrics  # noqa: E402
from dgpt.rules import MICRO  # noqa: E402
from dgpt.store.local import LocalStore  # noqa: E402
from dgpt.task import TaskSpec  # noqa: E402
from dgpt.verify import check_delta  # noqa: E402


def mean_se(xs: list[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1) / len(xs))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("demo_json")
    ap.add_argument("store")
    ap.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    try:
        lines = [line for line in Path(args.demo_json).read_text().splitlines() if line.startswith("{")]
        rounds = json.loads(lines[-1])["rounds"]
    except (OSError, ValueError, IndexError, KeyError) as exc:
        raise SystemExit(f"bench_shapley: {args.demo_json} holds no `dgpt demo --json` result: {exc}")
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else print
    store = LocalStore(args.store)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-shapley-"))
    work.mkdir(parents=True, exist_ok=True)
    scorer = StateScorer()
    out = {"rounds": []}
    for r in rounds:
        rep = Report.from_bytes(store.get_bytes(r["report_cid"]))
        task = TaskSpec.from_bytes(store.get_bytes(rep.task_spec_cid))
        validation = examples_from_bytes(store.get_bytes(rep.validation["cid"], max_bytes=256 << 20))
        base_path = work / f"base-{rep.round}.safetensors"
        store.get_file(rep.base_model_cid, base_path)
        base, meta = read_state(base_path)
        labels = task.labels if task.phase == "finetune" else ()
        base = with_initial_head(base, meta, len(labels), task.seed)
        expected = {k: tuple(v.shape) for k, v in base.items()}
        ctx = RoundContext(rep.round, None, task, base_path, base, expected, labels, 1 << 40, validation, RoundPolicy(), work,
                           scorer, log=lambda *a: None)
        subs = []
        for e in rep.submissions:
            if e.oracle in rep.merged:
                path = work / e.delta_cid
                store.get_file(e.delta_cid, path)
                verdict = check_delta(path, expected, 1 << 40, task.max_update_norm, rep.base_model_cid, Encoding.of(task),
                                      work / f"{e.delta_cid}.decoded")
                subs.append(Submission(e, verdict.path))
        n, m = len(subs), len(validation)
        if n == 0:
            continue
        before = ctx.delta_metrics(base)["per_example"]
        gain = {frozenset(): [0] * m}
        for k in range(1, n + 1):
            for s in itertools.combinations(range(n), k):
                after = part_metrics(ctx, subs, frozenset(s))["per_example"]
                gain[frozenset(s)] = [b - a for b, a in zip(before, after)]
        phi = []
        for i in range(n):
            others = [j for j in range(n) if j != i]
            total = [0.0] * m
            for k in range(n):
                c = math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
                for s in itertools.combinations(others, k):
                    s = frozenset(s)
                    total = [t + c * (x - y) for t, x, y in zip(total, gain[s | {i}], gain[s])]
            phi.append([t / MICRO for t in total])
        mean = [sum(p[j] for p in phi) / n for j in range(m)]
        v, v_se = mean_se([g / MICRO for g in gain[frozenset(range(n))]])
        row = {"round": rep.round, "phase": rep.phase, "n": m, "gain": v, "gain_se": v_se, "deltas": []}
        log(f"round {rep.round} ({rep.phase}, {m} validation snippets): merge gain {v:+.5f} +- {v_se:.5f}")
        for i, s in enumerate(subs):
            p, p_se = mean_se(phi[i])
            d, d_se = mean_se([a - b for a, b in zip(phi[i], mean)])
            alone = sum(gain[frozenset([i])]) / m / MICRO
            row["deltas"].append({"oracle": s.oracle, "phi": p, "phi_se": p_se, "deviation": d, "deviation_se": d_se, "alone": alone,
                                  "contribution": s.entry.contribution})
            log(f"  {s.oracle}: phi {p:+.5f} +- {p_se:.5f}, from the mean {d:+.5f} +- {d_se:.5f}, alone {alone:+.5f}, "
                f"paid by contribution {s.entry.contribution}")
        out["rounds"].append(row)
    if args.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
