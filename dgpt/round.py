"""One round's aggregation as a pipeline of stages over the round's submissions:

    collect  the revealed submissions (and the committers that did not reveal) from the chain
    screen   fetch each delta by CID, decode it (the task's encoding) and check it: size, format,
             base model, shapes, finite, norm, replay, direction (cosine to the round's median,
             whole and per part: the head apart from the backbone)
    score    each survivor alone on the validation set, per example; rejected as harmful only when
             a paired test says it raises the loss or lowers the accuracy or the ranking of the
             labels (rules.significantly_harmful, rules.ranking_gain); a rise of L2 is not harm
             when the delta is shown to rank the labels better (ranks_better: overconfident, not wrong)
    reconsider  each delta found harmful alone, judged again in the merge of the accepted and the
             harmful-alone deltas (backward elimination, paired tests): accepted when it is shown
             to help the merge and that merge is not harmful to the base; when fine-tuning, only
             once the base ranks the labels better than chance
    merge    the accepted deltas into the new model with the round's strategy: weights at most the
             median count of the round's well-formed submissions, near-duplicates sharing one
             weight, each part clipped to a multiple of the round's median norm of that part;
             with momentum, plus the last round's update (base - previous base, both public)
             times the momentum
    marginal each merged delta left out of the merge (leave-one-out), scored against the merge:
             what it adds, recorded with its paired standard error (neither gates nor pays)
    value    each merged delta's contribution: its share of the merge, times its work along the
             round's direction relative to a typical delta's (at most one)
    report   rewards by contribution, slashes and every verdict, as one `Report`

The aggregator runs it, and `dgpt audit` runs it again from public inputs (the chain, the store
and the round's published validation slice) and compares. Bit-exact on any machine (README,
"Determinism"): submissions in oracle-address order; norms, cosines and distances are exact sums
(dgpt/exact.py) rounded once; the merge is one IEEE operation per step in float64; scoring runs in
float64 on the CPU and every metric is quantised to 1e-6 before any decision or record.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file

import dgpt
from dgpt.aggregate import PARTS, Strategy, build_model, geometry
from dgpt.aggregate import merge as merge_deltas
from dgpt.chain.protocol import Protocol, RoundInfo
from dgpt.cid import cid_from_bytes
from dgpt.crash import crashpoint
from dgpt.data import Example
from dgpt.dataset import merkle_root
from dgpt.progress import Steps, rate
from dgpt.delta import apply_delta
from dgpt.encoding import Encoding
from dgpt.errors import DGPTError
from dgpt.model import bundle_from_state, load_state, read_state, with_initial_head
from dgpt.report import Entry, Reason, Report, Slash
from dgpt.rules import (CLIP_RATIO, DUPLICATE_COSINE, HARMFUL_LEVEL, HARMFUL_Z, LEARNING_LEVEL, LEARNING_Z, MICRO, MAX_REWARD_SHARE, MAX_WEIGHT_RATIO, clip_factors, cosine_floor,
                        duplicate_groups, max_delta_bytes, merge_weights, micro_units, paired_gain, ranking, ranking_gain, reward_shares,
                        significantly_harmful)
from dgpt.store import ContentTooLarge, MalformedContent, Store
from dgpt.task import TaskSpec
from dgpt.train import evaluate
from dgpt.verify import check_delta, data_digest

# (base model file, weights, labels, task, validation set, device, lm=) -> evaluate()'s metrics, with
# "per_example"; lm=False: without L1 and L3 (a model with a head).
Scorer = Callable[..., dict]


METRIC_DECIMALS = 6  # every score is rounded to 1e-6 before it decides anything or is recorded
CONTRIBUTION_DECIMALS = 9  # contributions are shares (< 1) of IEEE-exact inputs: rounded to 1e-9 for the record


def quantise(metrics: dict) -> dict:
    out = {k: round(v, METRIC_DECIMALS) if isinstance(v, float) else v for k, v in metrics.items()}
    if "per_example" in metrics:
        out["per_example"] = micro_units(metrics["per_example"])  # integers: the paired test sums them exactly
    if "per_example_logits" in metrics:
        out["per_example_logits"] = [micro_units(row) for row in metrics["per_example_logits"]]  # integers: ranked exactly
    return out


class StateScorer:
    """The default scorer: the model of `base_path` with `state`'s weights on the validation set,
    in float64 on the CPU, quantised. Matrix products sum in an order the BLAS picks per machine
    and thread count; in float64 that moves a loss by ~1e-16, far below the 1e-6 grid, so the
    recorded scores are the same everywhere (a value within 1e-16 of a grid midpoint could still
    round apart: about one in 10^10). The model is built once per base file and head, then only
    its weights change: every scored state holds every tensor, so nothing of the last one stays."""

    def __init__(self):
        self._models: dict = {}

    def __call__(self, base_path: Path, state: dict, labels: tuple, task: TaskSpec, validation: list[Example], device: str,
                 lm: bool = True) -> dict:
        key = (str(base_path), labels, "head.weight" in state)
        bundle = self._models.get(key)
        if bundle is None:
            self._models.clear()  # one base model at a time
            bundle = self._models[key] = bundle_from_state(base_path, state, labels)
            bundle.model.double()
        else:
            load_state(bundle, state, base_path)
        return quantise(evaluate(bundle, validation, task, "cpu", per_example=True, lm=lm))


@dataclass
class RoundPolicy:
    """The aggregator operator's rules for a round."""

    strategy: Strategy = field(default_factory=Strategy)
    max_delta_bytes: int | None = None  # None: rules.max_delta_bytes of the base model's file size
    # With at least 3 valid deltas, one whose cosine to their coordinate-wise median is below this
    # fraction of the round's median cosine (rules.cosine_floor) is divergent: unpaid, not slashed.
    min_cosine_ratio: float = 0.5
    fetch_seconds: float | None = 300.0  # time budget to fetch one delta; past it the delta is unavailable
    device: str = "cpu"


@dataclass
class Submission:
    """A revealed submission on its way through the stages: the report's entry and its delta file."""

    entry: Entry
    path: Path | None = None

    @property
    def oracle(self) -> str:
        return self.entry.oracle


@dataclass
class RoundContext:
    round_id: int
    info: RoundInfo
    task: TaskSpec
    base_path: Path
    base: dict  # the base weights as scored (the task's initial head added when fine-tuning a head-less base)
    expected: dict  # name -> shape of every tensor a delta may hold
    labels: tuple
    max_bytes: int
    validation: list[Example]
    policy: RoundPolicy
    work: Path
    scorer: Scorer
    log: Callable = print
    validation_cid: str | None = None  # where the round's validation slice is published
    cosine_floor: float = 0.0  # set by screen()
    typical_counts: list[int] = field(default_factory=list)  # the well-formed submissions' example counts (merge weight cap), set by screen()
    pair_cosine: dict = field(default_factory=dict)  # (oracle, oracle) -> cosine of their deltas, set by screen()
    previous: dict | None = None  # the last round's update (base - previous base) the momentum carries, set by carry()
    previous_base_cid: str | None = None  # the previous base it was taken from

    def loss(self, metrics: dict) -> float:
        """The score a delta must improve: L2 when fine-tuning (L1 is only the auxiliary objective,
        and scoring on L3 let a label-flipping oracle buy acceptance with language-modelling gains:
        seen in the Byzantine harness), L1 when pre-training."""
        return metrics["l2"] if self.task.phase == "finetune" else metrics["l1"]

    def metrics(self, state: dict) -> dict:
        """The validation metrics of `state`, every one: the base's and the new model's; when
        fine-tuning, with how well it ranks the labels ("auc", "auc_se": rules.ranking)."""
        m = self.scorer(self.base_path, state, self.labels, self.task, self.validation, self.policy.device)
        if "per_example_logits" in m:
            auc, se = ranking(m["per_example_logits"], self.label_ids())
            m["auc"], m["auc_se"] = round(auc, METRIC_DECIMALS), round(se, METRIC_DECIMALS)
        return m

    def label_ids(self) -> list[int] | None:
        """Each validation example's label as the head's output index; None when pre-training (the
        slice's labels are there, but no head to rank them)."""
        return [self.labels.index(e.label) for e in self.validation] if self.task.phase == "finetune" else None

    def delta_metrics(self, state: dict) -> dict:
        """The metrics that judge a delta (alone, in the merge, left out of it): when fine-tuning,
        without L1 and L3, which decide nothing there (the score is L2), and whose LM head over the
        vocabulary was three quarters of each scoring pass (BENCHMARKS.md, "Scoring without the LM
        head"); the base's and the new model's metrics keep them."""
        if self.task.phase != "finetune":
            return self.metrics(state)
        return self.scorer(self.base_path, state, self.labels, self.task, self.validation, self.policy.device, lm=False)


@dataclass
class RoundOutcome:
    new_model_path: Path
    report: Report


def context(protocol: Protocol, round_id: int, base_path: Path, task: TaskSpec, validation: list[Example],
            policy: RoundPolicy, work: Path, scorer: Scorer | None = None, log=print,
            validation_cid: str | None = None) -> RoundContext:
    base, meta = read_state(base_path)
    labels = task.labels if task.phase == "finetune" else ()
    base = with_initial_head(base, meta, len(labels), task.seed)  # a head-less base: where every oracle starts
    expected = {k: tuple(v.shape) for k, v in base.items()}
    max_bytes = policy.max_delta_bytes or max_delta_bytes(base_path.stat().st_size)
    work.mkdir(parents=True, exist_ok=True)
    return RoundContext(round_id, protocol.round(round_id), task, base_path, base, expected, labels, max_bytes,
                        validation, policy, work, scorer or StateScorer(), log, validation_cid)


def collect(protocol: Protocol, round_id: int) -> tuple[list[Submission], list[str]]:
    """The round's revealed submissions in oracle-address order, and the committers that did not reveal."""
    revealed = {e["args"]["oracle"]: e["args"] for e in protocol.events("Revealed", roundId=round_id)}
    committed = sorted({e["args"]["oracle"] for e in protocol.events("Committed", roundId=round_id)})
    subs = [Submission(Entry(o, cid_from_bytes(revealed[o]["deltaCid"]), revealed[o]["numExamples"])) for o in sorted(revealed)]
    return subs, [o for o in committed if o not in revealed]


def screen(ctx: RoundContext, subs: list[Submission], protocol: Protocol, store: Store) -> list[Submission]:
    """Fetch and check every delta; returns those that pass (the others carry their verdict)."""
    earlier = _earlier_digests(protocol, store, ctx.round_id, ctx.info.base_model_cid)
    digests: dict[str, str] = {}
    valid = []
    fetched = Steps("fetched and checked", len(subs), ctx.log)
    for sub in subs:
        e = sub.entry
        registered = protocol.oracle(e.oracle)
        if not registered.registered or registered.num_examples < e.num_examples:
            e.reject(Reason.OVER_COMMITMENT, f"dataset commitment covers {registered.num_examples} examples, {e.num_examples} declared")
            fetched.step(f"{e.oracle}: rejected, over its commitment: {e.detail}")
            continue
        path = ctx.work / f"{e.delta_cid}.safetensors"
        t0 = time.monotonic()
        try:
            if not path.exists():
                store.get_file(e.delta_cid, path, max_bytes=ctx.max_bytes, seconds=ctx.policy.fetch_seconds)
        except (ContentTooLarge, MalformedContent) as exc:  # provable from the bytes under the CID: slashed
            e.reject(Reason.MALFORMED, str(exc))
            fetched.step(f"{e.oracle}: rejected, malformed: {exc}")
            continue
        except DGPTError as exc:  # unavailable or not matching its CID: nothing provable, no slash
            e.reject(Reason.UNAVAILABLE, str(exc))
            fetched.step(f"{e.oracle}: rejected, unavailable: {exc}")
            continue
        e.delta_bytes = path.stat().st_size
        verdict = check_delta(path, ctx.expected, ctx.max_bytes, ctx.task.max_update_norm, ctx.info.base_model_cid,
                              Encoding.of(ctx.task), ctx.work / f"{e.delta_cid}.decoded.safetensors")
        e.norm = verdict.norm
        if not verdict.ok:
            e.reject(verdict.reason, verdict.detail)
            fetched.step(f"{e.oracle}: rejected, {verdict.reason.value}: {verdict.detail}")
            continue
        path = verdict.path  # the decoded float32 delta: what every later stage reads
        digest = e.data_sha256 = data_digest(path)
        seen = earlier.get(digest) or digests.get(digest)
        if seen:  # a replay of a delta made for an earlier base, or the same tensors twice: never new work
            e.reject(Reason.REPLAYED, f"the same tensors as {seen}")
            fetched.step(f"{e.oracle}: rejected, replayed ({seen})")
            continue
        digests[digest] = f"round {ctx.round_id}, {e.oracle}"
        sub.path = path
        valid.append(sub)
        fetched.step(f"{e.oracle}: {rate(e.delta_bytes, time.monotonic() - t0)}, well-formed, norm {e.norm:.3f}")

    ctx.typical_counts = [s.entry.num_examples for s in valid]
    geo = geometry([s.path for s in valid], ctx.expected) if valid else None
    few = len(valid) < 3  # no majority to point anywhere: no direction check
    cosines = [1.0] * len(valid) if few else geo.cosine
    floor, typical = cosine_floor(cosines, ctx.policy.min_cosine_ratio)
    ctx.cosine_floor = floor
    if geo:
        ctx.pair_cosine = {(a.oracle, b.oracle): geo.pair_cosine[i][j] for i, a in enumerate(valid) for j, b in enumerate(valid)}
    kept = []
    for i, sub in enumerate(valid):
        e = sub.entry
        e.cosine_to_median = cosines[i]
        e.part_norm = {p: norms[i] for p, norms in geo.part_norm.items()}
        e.part_along = {p: x[i] for p, x in geo.part_along.items()}
        e.part_cosine = None if few else {p: c[i] for p, c in geo.part_cosine.items()}
        if e.norm > 0 and cosines[i] < floor:  # a zero delta has no direction: the gain check rejects it
            e.reject(Reason.DIVERGENT, f"cosine {cosines[i]:.3f} to the median of the round's deltas, below {floor:.3f} "
                                       f"({ctx.policy.min_cosine_ratio:g} x the round's median cosine, {typical:.3f})")
            ctx.log(f"  {e.oracle}: rejected, divergent (cosine {cosines[i]:.3f}, floor {floor:.3f})")
            continue
        kept.append(sub)
    return kept


def paired_accuracy_gain(old: dict, new: dict) -> tuple[float, float]:
    """(mean accuracy gain, its standard error) from `old`'s metrics to `new`'s, per example."""
    return paired_gain([MICRO * c for c in new["per_example_correct"]], [MICRO * c for c in old["per_example_correct"]])


def score(ctx: RoundContext, subs: list[Submission], before: dict) -> list[Submission]:
    """Each delta applied alone to the base, scored per validation example, and judged by paired
    tests: harmful when the evidence says it raises the loss (L2 when fine-tuning, L1 when
    pre-training) or, when fine-tuning, lowers the accuracy or the ranking of the labels, each at
    the one-sided 0.5% level, so an honest delta with no true effect is rejected with probability
    at most ~1.5%. Label flips were
    caught by one test or the other, never always by the same one (BENCHMARKS.md). Free riding when
    it changes nothing. From a base that ranks the labels at chance (fine-tuning, not `has_learnt`),
    when more than half of the deltas not found harmful are shown to rank the labels better or to
    classify more of them right (`shows_learning`), those not shown to are rejected too: there
    "not shown harmful" is what any delta is, and random-label deltas were paid by it (the Byzantine harness from the bare model,
    BENCHMARKS.md). Otherwise the harmful tests alone decide, as before: where most deltas show no
    learning, the few that pass the 5% test are mostly luck (the tests' five-oracle network: one
    delta of five at z +2.4 to +2.8, a tenth-of-the-data cheater once, would have taken the whole
    round), and rejecting every delta would leave the next round on the same base. A majority
    rather than one: the rule follows what most of the round shows, not a few lucky deltas."""
    accepted = []
    scored = Steps("scored", len(subs), ctx.log)
    for sub in subs:
        e = sub.entry
        alone = ctx.delta_metrics(apply_delta(ctx.base, load_file(str(sub.path))))
        e.alone = {k: v for k, v in alone.items() if not k.startswith("per_example")}
        g = gains(before, alone, ctx.label_ids())
        e.loss_gain, e.gain_se = g["loss_gain"], g["gain_se"]
        if e.norm == 0 or alone["per_example"] == before["per_example"]:
            e.reject(Reason.FREE_RIDING, "the delta changes nothing")
            scored.step(f"{e.oracle}: rejected, free riding")
            continue
        e.accuracy_gain, e.accuracy_gain_se = g.get("accuracy_gain"), g.get("accuracy_gain_se")  # as recorded before: not for a free rider
        e.ranking_gain, e.ranking_gain_se = g.get("ranking_gain"), g.get("ranking_gain_se")
        change = describe(g, "validation")
        if harmful_by(g):
            e.reject(Reason.HARMFUL, f"{change} when applied alone: worse at the one-sided {HARMFUL_LEVEL} level (z {HARMFUL_Z})")
            scored.step(f"{e.oracle}: rejected, harmful ({change})")
            continue
        e.accepted = True
        accepted.append(sub)
        scored.step(f"{e.oracle}: accepted, {e.num_examples} examples, {change} alone")
    at_chance = "auc" in before and not has_learnt(ctx, before)
    shown = [s for s in accepted if shows_learning(gains_of(s.entry))]
    if at_chance and 2 * len(shown) > len(accepted):
        for sub in [s for s in accepted if s not in shown]:
            e = sub.entry
            e.reject(Reason.NO_LEARNING_SHOWN, f"{describe(gains_of(e), 'validation')} when applied alone: the base ranks the labels at "
                     f"chance (AUC {before['auc']:.3f} +- {before['auc_se']:.3f}) and, where {len(shown)} of the round's {len(accepted)} "
                     f"deltas not found harmful are shown to rank them better or classify more of them right, this one is shown "
                     f"neither, at the one-sided {LEARNING_LEVEL} level (z {LEARNING_Z})")
            ctx.log(f"  {e.oracle}: rejected, no learning shown from a base at chance where {len(shown)} of {len(accepted)} show it")
        accepted = shown
    return accepted


def gains_of(e: Entry) -> dict:
    """An entry's paired tests alone, as `gains` gave them."""
    g = {"loss_gain": e.loss_gain, "gain_se": e.gain_se}
    if e.accuracy_gain is not None:
        g |= {"accuracy_gain": e.accuracy_gain, "accuracy_gain_se": e.accuracy_gain_se}
    if e.ranking_gain is not None:
        g |= {"ranking_gain": e.ranking_gain, "ranking_gain_se": e.ranking_gain_se}
    return g


def gains(old: dict, new: dict, labels: list[int] | None = None) -> dict:
    """What a change adds, from the metrics without it (`old`) and with it (`new`): the mean fall
    of the per-example loss and (when fine-tuning) the accuracy change, each with its paired
    standard error; given the examples' label indices, also the change of how the model ranks
    them (rules.ranking_gain)."""
    gain, se = paired_gain(old["per_example"], new["per_example"])
    out = {"loss_gain": round(gain, METRIC_DECIMALS), "gain_se": round(se, METRIC_DECIMALS)}
    if "per_example_correct" in new:
        acc, acc_se = paired_accuracy_gain(old, new)
        out["accuracy_gain"], out["accuracy_gain_se"] = round(acc, METRIC_DECIMALS), round(acc_se, METRIC_DECIMALS)
    if labels is not None and "per_example_logits" in old and "per_example_logits" in new:
        rg, rse = ranking_gain(old["per_example_logits"], new["per_example_logits"], labels)
        out["ranking_gain"], out["ranking_gain_se"] = round(rg, METRIC_DECIMALS), round(rse, METRIC_DECIMALS)
    return out


def harmful_by(g: dict) -> bool:
    """The paired tests: harmful when the evidence says the loss rises or (fine-tuning) the
    accuracy falls or the model ranks the labels worse. When fine-tuning, a rise of L2 is not
    harm when the same slice shows the delta ranks the labels better (`ranks_better`) and its
    accuracy does not fall: that is an overconfident delta, not a wrong one."""
    return (significantly_harmful(g["loss_gain"], g["gain_se"]) and not ranks_better(g)) or worse_by_labels(g)


def ranks_better(g: dict, z: float = HARMFUL_Z) -> bool:
    """Fine-tuning: shown to rank the labels better, at the one-sided level of `z` (default the
    harmful test's)."""
    return shown_gain(g, "ranking_gain", z)


def shown_gain(g: dict, key: str, z: float) -> bool:
    """The paired test's gain `key` ("ranking_gain", "accuracy_gain") shown above zero at the
    one-sided level of `z`: gain - z x its se > 0 (False when the test was not run)."""
    return key in g and g[key] - z * g[key + "_se"] > 0


def shows_learning(g: dict) -> bool:
    """From a base at chance: the delta ranks the labels better or classifies more of them right,
    at the one-sided 5% level (rules.LEARNING_Z). Measured (Byzantine harness from the bare model,
    first fine-tuning round of two local epochs): honest deltas at ranking z +1.80 to +6.22,
    random-label ones at ranking z +1.10 and +0.27 and accuracy z +0.19 and +0.50, which the
    harmful tests let through and the round paid. Accuracy too, because in bench_federated's iid-8
    an honest delta at ranking z +0.02 and accuracy z +1.70 went unpaid on ranking alone
    (BENCHMARKS.md, eighth stop); two tests at 5% pass a delta of no true effect at most ~10% of
    the time."""
    return ranks_better(g, LEARNING_Z) or shown_gain(g, "accuracy_gain", LEARNING_Z)


def worse_by_labels(g: dict) -> bool:
    """Fine-tuning: the accuracy falls, or the ranking of the labels does (rules.ranking_gain), by
    the one-sided paired test. The ranking test sees what the loss and accuracy miss on a small
    slice: a delta that reorders the examples against their labels while it recalibrates the
    model (scripts/bench_first_round.py: on 250 snippets random labels and a label flip passed
    the L2 and accuracy tests in the third round, at ranking z -2.73 and -4.00; the lowest IID
    honest ranking z in any round was +1.74). Label-skewed honest deltas rank worse alone too,
    as their loss says: reconsider judges them in the merge."""
    return ("accuracy_gain" in g and significantly_harmful(g["accuracy_gain"], g["accuracy_gain_se"])) or (
        "ranking_gain" in g and significantly_harmful(g["ranking_gain"], g["ranking_gain_se"]))


def describe(g: dict, what: str) -> str:
    text = f"{what} loss {-g['loss_gain']:+.4f} +- {g['gain_se']:.4f}"
    if "accuracy_gain" in g:
        text += f", accuracy {g['accuracy_gain']:+.3f} +- {g['accuracy_gain_se']:.3f}"
    if "ranking_gain" in g:
        text += f", ranking {g['ranking_gain']:+.4f} +- {g['ranking_gain_se']:.4f}"
    return text


def merge_factors(ctx: RoundContext, accepted: list[Submission]) -> list[float]:
    """Sets each accepted entry's weight, near-duplicate group and per-part clip factors; returns
    the merge weights as the strategy takes them (a group of k near-duplicates shares one weight)."""
    for s, w in zip(accepted, merge_weights([s.entry.num_examples for s in accepted], ctx.typical_counts)):
        s.entry.weight = w
    groups = _groups(ctx, accepted)
    for i, s in enumerate(accepted):
        s.entry.duplicate_of = accepted[groups[i]].oracle if groups[i] != i else None
        s.entry.clip = {}
    for p in PARTS:
        norms = [s.entry.part_norm.get(p) for s in accepted]
        if any(x is None for x in norms):
            continue
        for s, f in zip(accepted, clip_factors(norms, CLIP_RATIO)):
            s.entry.clip[p] = f
    return _shared_weights(ctx, accepted)


def _groups(ctx: RoundContext, subs: list[Submission]) -> list[int]:
    return duplicate_groups([[ctx.pair_cosine.get((a.oracle, b.oracle), 0.0) for b in subs] for a in subs])


def _shared_weights(ctx: RoundContext, subs: list[Submission]) -> list[float]:
    """The entries' merge weights, each divided by the size of its near-duplicate group among `subs`."""
    groups = _groups(ctx, subs)
    return [s.entry.weight / groups.count(groups[i]) for i, s in enumerate(subs)]


def merge(ctx: RoundContext, accepted: list[Submission]) -> tuple[Path, dict, list[Submission], dict, list[float]]:
    """The new model file, the strategy's decisions, the submissions it merged, its validation
    metrics, and the merge weights of the merged submissions."""
    new_path = ctx.work / f"model-round-{ctx.round_id}.safetensors"
    weights = merge_factors(ctx, accepted)
    decided = build_model(ctx.base_path, [s.path for s in accepted], weights, ctx.policy.strategy,
                          [s.entry.norm for s in accepted], ctx.labels, new_path, [s.entry.clip for s in accepted], ctx.task.seed,
                          ctx.previous)
    if ctx.previous is not None and accepted:
        decided["momentum_base_cid"] = ctx.previous_base_cid
    new_state, _ = read_state(new_path)
    if ctx.labels and "head.weight" not in new_state:  # nothing merged into a head-less base
        new_state["head.weight"] = ctx.base["head.weight"]
    selected = decided.get("krum_selected", range(len(accepted)))
    merged = [s for i, s in enumerate(accepted) if i in selected]
    return new_path, decided, merged, ctx.metrics(new_state), [w for i, w in enumerate(weights) if i in selected]


def merged_metrics(ctx: RoundContext, subs: list[Submission], weights: list[float], leave_out: Submission | None = None) -> dict:
    """The validation metrics of the round's merge of `subs` (the strategy, `weights` and the
    entries' clip factors, in memory), without `leave_out` when given."""
    keep = [i for i, s in enumerate(subs) if s is not leave_out]
    state, _ = merge_deltas(ctx.base, [subs[i].path for i in keep], [weights[i] for i in keep], ctx.policy.strategy,
                            [subs[i].entry.norm for i in keep], ctx.expected, part_scale=[subs[i].entry.clip for i in keep],
                            previous=ctx.previous)
    return ctx.delta_metrics(state)


def part_metrics(ctx: RoundContext, merged: list[Submission], keep: frozenset) -> dict:
    """The validation metrics of the merge of the merged deltas `keep` (indices) alone: each with
    the weight and clip factors the round gave it, near-duplicates among them sharing one weight
    (so that with a copy in the merge, its twin adds nothing). The leave-one-out and
    scripts/bench_shapley.py score their merges with it."""
    subs = [s for i, s in enumerate(merged) if i in keep]
    return merged_metrics(ctx, subs, _shared_weights(ctx, subs))


def reconsider(ctx: RoundContext, scored: list[Submission], accepted: list[Submission], before: dict) -> list[Submission]:
    """Deltas found harmful alone, judged again in the merge, by backward elimination. The pool is
    every delta accepted or found harmful alone; each harmful-alone delta in it is scored per
    validation example against the pool's merge without it (the strategy, weights and clip
    factors over the pool). It must be shown to help there: its loss fall in the merge passes the
    one-sided paired test the other way (gain - z x se > 0), and when fine-tuning the accuracy
    test does not find it harmful. While one does not, the one that helps least (the smallest
    loss fall) leaves the pool, rejected, and the rest are judged again in the smaller merge;
    those left are accepted. Why: a delta from label-skewed data makes the model predict its
    majority label when applied alone, while in the merge the other oracles' labels balance it;
    and in a first fine-tuning round every honest delta alone can be worse than the base while
    their merge is better (both seen: bench_federated's Dirichlet split, the Byzantine harness).
    The burden of proof is on the delta: a label flip, alone worse, was measured in the merge at
    a loss fall of -0.018 +- 0.009, which "not shown harmful" would have accepted. One at a time,
    because a delta leaning the way a worse one pulls looks useless until that one is out.
    And the merge they were shown to help must itself not be harmful to the base (the paired
    tests of `score`, the merge against the base): deltas can each help a merge that is still
    worse than the base, as two label-skewed deltas leaning opposite ways past the balance do; then
    every delta harmful alone stays out (bench_federated's Dirichlet split, 2026-12-06: three such
    deltas rescued into a merge of three cost 13 points of validation accuracy).
    Only once the base has learnt the task (`has_learnt`): from a near-chance base the merge's
    loss could not tell a flip from honest work, and a label flip was accepted by it (the
    Byzantine harness from the bare model, BENCHMARKS.md); pre-training has no labels to flip.
    Returns the accepted deltas in oracle-address order; with k found harmful alone, at most k
    passes of at most k + 1 evaluations, none when k is 0."""
    pool = [s for s in scored if s.entry.accepted or s.entry.reason is Reason.HARMFUL]
    judged = [s for s in pool if s.entry.reason is Reason.HARMFUL]
    if judged and not has_learnt(ctx, before):
        ctx.log(f"  {len(judged)} harmful alone, not judged in the merge: the base does not rank the labels better than chance "
                f"(AUC {before['auc']:.3f} +- {before['auc_se']:.3f})")
        return accepted
    while True:
        live = [s for s in judged if s in pool]
        if not live:
            break
        if len(pool) < 2:  # alone is the merge when nothing else is in it: the verdict alone stands
            live[0].entry.in_merge = None
            pool.remove(live[0])
            break
        weights = merge_factors(ctx, pool)
        full = merged_metrics(ctx, pool, weights)
        for s in live:
            s.entry.in_merge = gains(merged_metrics(ctx, pool, weights, leave_out=s), full, ctx.label_ids())
        unshown = [s for s in live if not helps(s.entry.in_merge)]
        if not unshown:
            break
        # the first in address order on a tie
        worst = min(unshown, key=lambda s: (s.entry.in_merge["loss_gain"], s.entry.in_merge.get("accuracy_gain", 0.0)))
        e = worst.entry
        change = describe(e.in_merge, "merged validation")
        e.detail += f"; {change} with it in the merge of {len(pool)}: not shown to help it"
        ctx.log(f"  {e.oracle}: rejected, harmful alone and not shown to help the merge of {len(pool)} ({change})")
        pool.remove(worst)
    rescued = [s for s in judged if s in pool]
    if rescued:  # `full` is the merge of this pool: the last pass found every one in it shown to help
        g = gains(before, full, ctx.label_ids())
        if harmful_by(g):
            change, n = describe(g, "validation"), len(pool)
            for s in rescued:
                s.entry.detail += f"; the merge of {n} with it is worse than the base ({change}): not merged"
                ctx.log(f"  {s.entry.oracle}: rejected, harmful alone, and the merge of {n} it helps is worse than the base ({change})")
                pool.remove(s)
    for s in judged:
        e = s.entry
        if s in pool:
            change = describe(e.in_merge, "merged validation")
            e.accepted, e.reason = True, None
            e.detail = f"harmful alone ({describe(gains_of(e), 'validation')}), helps the merge of {len(pool)} ({change})"
            ctx.log(f"  {e.oracle}: accepted, helps the merge of {len(pool)} ({change})")
    for s in scored:  # merge() sets them again for what it merges
        s.entry.weight, s.entry.duplicate_of, s.entry.clip = 0, None, None
    return [s for s in scored if s.entry.accepted]


def has_learnt(ctx: RoundContext, before: dict) -> bool:
    """When fine-tuning, whether the base ranks the validation labels better than chance: its AUC
    (rules.ranking) above 1/2 at the one-sided level of the harmful test (auc - z x se > 1/2).
    Ranking, not accuracy: a base that has learnt the task but leans to one label (a merge of
    label-skewed deltas) can sit at the majority label's share in accuracy; at that criterion the
    stage stayed closed in every fine-tuning round of bench_federated's Dirichlet split, whose
    bases ranked at AUC ~0.75 (BENCHMARKS.md). From a near-chance base (AUC ~0.5) it stays
    closed. Always true when pre-training."""
    if ctx.task.phase != "finetune":
        return True
    return before["auc"] - HARMFUL_Z * before["auc_se"] > 0.5


def helps(g: dict) -> bool:
    """Shown to help: the loss falls at the one-sided level of the harmful test, and (fine-tuning)
    neither the accuracy test nor the ranking test finds it harmful."""
    return g["loss_gain"] - HARMFUL_Z * g["gain_se"] > 0 and not worse_by_labels(g)


def marginal(ctx: RoundContext, merged: list[Submission], after: dict) -> None:
    """Leave-one-out on the merge: for each merged delta, the merge of the others (part_metrics)
    scored per validation example against the full merge. Records what each delta adds to the
    merged model's loss and accuracy, with the paired standard errors; the audit recomputes them.
    Neither gates nor pays: honest deltas in the demo measured marginals from -0.017 to +0.015 of
    L2 with paired z-scores down to -6.2 (the paired se sees the validation examples' noise, not
    which honest shard was left out), and for like deltas the merge without one is about the merge
    with it, so each one's leave-one-out is near zero whatever it brought (BENCHMARKS.md, the
    demo)."""
    if len(merged) < 2:
        return
    everyone = frozenset(range(len(merged)))
    for i, s in enumerate(merged):
        e = s.entry
        g = gains(part_metrics(ctx, merged, everyone - {i}), after)
        e.marginal_gain, e.marginal_gain_se = g["loss_gain"], g["gain_se"]
        if "accuracy_gain" in g:
            e.marginal_accuracy_gain, e.marginal_accuracy_gain_se = g["accuracy_gain"], g["accuracy_gain_se"]
        ctx.log(f"  {e.oracle}: {describe(g, 'merged validation')} with it in the merge")


def value(ctx: RoundContext, merged: list[Submission], weights: list[float]) -> None:
    """Each merged delta's contribution: its share of the merge times how much of a typical delta's
    work it carries along the round's direction,

        contribution_i = (w_i / W) * min(1, along_i / median(along)),

    with along_i the length of the clipped delta along the round's coordinate-wise median delta.
    To first order the merge's loss fall is the sum over deltas of (w_i / W) * (-g . delta_i); this
    reads g . delta_i along the round's direction instead of along the gradient g of a few hundred
    validation examples, whose noise made honest contributions range from -0.003 to +0.009 in one
    round (BENCHMARKS.md). The Shapley value on the merge's validation loss was measured as the
    alternative and is as noisy: it paid honest oracles from 0 to 32 DGPT in one round of the
    Byzantine harness (BENCHMARKS.md, "Rewards by the Shapley value"). Work below the typical
    length (e.g. a tenth of the data trained) earns in proportion; nothing earns beyond one
    typical delta, so a scaled-up delta is paid as the honest work in it; near-duplicates share
    their group's weight, hence one contribution."""
    if not merged:
        return
    along = []
    for s in merged:
        e = s.entry
        along.append(max(0.0, sum(e.clip.get(p, 1.0) * x for p, x in (e.part_along or {}).items())))
    typical = sorted(along)[(len(along) - 1) // 2]
    total = sum(weights)
    for s, w, a in zip(merged, weights, along):
        s.entry.contribution = round(w / total * (min(1.0, a / typical) if typical > 0 else 0.0), CONTRIBUTION_DECIMALS)


def make_report(ctx: RoundContext, subs: list[Submission], merged: list[Submission], non_revealers: list[str],
                decided: dict, before: dict, after: dict, reward_budget: int) -> Report:
    rewards = reward_shares([(s.oracle, s.entry.contribution) for s in merged], reward_budget, MAX_REWARD_SHARE)
    for s in subs:
        s.entry.reward = rewards.get(s.oracle, 0)
    slashes = [Slash(s.oracle, s.entry.reason) for s in subs if s.entry.reason is not None and s.entry.reason.slash_reason is not None]
    slashes += [Slash(o, Reason.NO_REVEAL) for o in non_revealers]
    strip = lambda m: {k: v for k, v in m.items() if not k.startswith("per_example")}  # noqa: E731
    report = Report(
        round=ctx.round_id, phase=ctx.task.phase, base_model_cid=ctx.info.base_model_cid, task_spec_cid=ctx.info.task_spec_cid,
        strategy=ctx.policy.strategy.to_json(), strategy_decisions=decided,
        checks={"max_delta_bytes": ctx.max_bytes, "max_weight_ratio": MAX_WEIGHT_RATIO, "max_update_norm": ctx.task.max_update_norm,
                "harmful_z": HARMFUL_Z, "learning_z": LEARNING_Z, "min_cosine_ratio": ctx.policy.min_cosine_ratio, "cosine_floor": ctx.cosine_floor,
                "clip_ratio": CLIP_RATIO, "duplicate_cosine": DUPLICATE_COSINE,
                "max_reward_share": str(MAX_REWARD_SHARE), "delta_encoding": Encoding.of(ctx.task).label},
        labels=list(ctx.labels), submissions=[s.entry for s in subs], merged=[s.oracle for s in merged],
        non_revealers=non_revealers, slashes=slashes,
        validation={"n": len(ctx.validation), "cid": ctx.validation_cid, "root": "0x" + merkle_root(ctx.validation).hex(),
                    "before": strip(before), "after": strip(after)},
        software={"dgpt": dgpt.__version__, "torch": torch.__version__, "python": platform.python_version()},
    )
    report.entries = report.derived_entries()  # built once; what the publish commits to
    return report


def aggregate_round(protocol: Protocol, store: Store, ctx: RoundContext, reward_budget: int) -> RoundOutcome:
    subs, non_revealers = collect(protocol, ctx.round_id)
    before = ctx.metrics(ctx.base)
    ctx.log(f"round {ctx.round_id}: {len(subs)} revealed, {len(non_revealers)} did not; base validation loss {ctx.loss(before):.4f}")
    valid = screen(ctx, subs, protocol, store)
    accepted = score(ctx, valid, before)
    crashpoint("aggregator:downloaded")
    carry(ctx, protocol, store)
    accepted = reconsider(ctx, valid, accepted, before)
    ctx.log(f"round {ctx.round_id}: merging {len(accepted)} accepted deltas with {ctx.policy.strategy.name}")
    t0 = time.monotonic()
    new_path, decided, merged, after, weights = merge(ctx, accepted)
    marginal(ctx, merged, after)
    value(ctx, merged, weights)
    report = make_report(ctx, subs, merged, non_revealers, decided, before, after, reward_budget)
    ctx.log(f"round {ctx.round_id}: merged {len(merged)} with {ctx.policy.strategy.name} in {time.monotonic() - t0:.1f} s; "
            f"validation loss {ctx.loss(before):.4f} -> {ctx.loss(after):.4f}")
    return RoundOutcome(new_path, report)


def carry(ctx: RoundContext, protocol: Protocol, store: Store) -> None:
    """With a momentum strategy, the update the momentum carries: this round's base minus the base
    of the round that produced it (both public), when that round trained the same phase and labels.
    None after a change of phase or labels, in a first round, or when the base did not come from
    the previous round: then the merge is plain."""
    rid = ctx.round_id
    if ctx.policy.strategy.momentum == 0 or rid < 2:
        return
    prev = protocol.round(rid - 1)
    if not prev.published or prev.new_model_cid != ctx.info.base_model_cid or prev.base_model_cid == ctx.info.base_model_cid:
        return
    prev_task = TaskSpec.from_bytes(store.get_bytes(prev.task_spec_cid, max_bytes=1 << 20))
    if prev_task.phase != ctx.task.phase or tuple(prev_task.labels) != tuple(ctx.task.labels):
        return
    path = ctx.work / "previous-base.safetensors"
    store.get_file(prev.base_model_cid, path)
    state, meta = read_state(path)
    # A head-less previous base held the previous task's initial head, as its oracles started from.
    state = with_initial_head(state, meta, len(ctx.labels), prev_task.seed)
    ctx.previous = {k: ctx.base[k] - v for k, v in state.items() if k in ctx.base and v.shape == ctx.base[k].shape}
    ctx.previous_base_cid = prev.base_model_cid
    ctx.log(f"round {rid}: momentum {ctx.policy.strategy.momentum:g} carries the update from {prev.base_model_cid}")


def _earlier_digests(protocol: Protocol, store: Store, round_id: int, base_model_cid: str) -> dict[str, str]:
    """Tensor digests of the deltas submitted in earlier published rounds on another base model,
    from their reports. Resubmitting a delta made for another base is a replay; the same base
    (nothing was merged in between) may well give an honest oracle the same delta again."""
    seen = {}
    for rid in range(1, round_id):
        info = protocol.round(rid)
        if not info.published or info.base_model_cid == base_model_cid:
            continue
        report = Report.from_bytes(store.get_bytes(info.report_cid, max_bytes=64 << 20))
        for e in report.submissions:
            if e.data_sha256:
                seen.setdefault(e.data_sha256, f"round {rid}, {e.oracle}")
    return seen
