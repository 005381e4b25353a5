"""The aggregation rules as pure functions: the size cap on a delta, the cosine floor below which a
delta is divergent, the merge weights, the paired test behind "harmful", the per-part clipping,
near-duplicate groups and the reward shares. The aggregator applies them and the audit recomputes
them; nothing here touches the chain, the store or a model.
"""

from __future__ import annotations

import math
import statistics
from bisect import bisect_left, bisect_right
from fractions import Fraction


def max_delta_bytes(base_model_bytes: int) -> int:
    """Largest delta file accepted for a base model of this size: twice it (an fp32 delta of a
    model stored in a narrower dtype, plus a new head), plus 1 MiB of header and metadata."""
    return 2 * base_model_bytes + (1 << 20)


def cosine_floor(cosines: list[float], ratio: float) -> tuple[float, float]:
    """(floor, typical): a delta whose cosine to the round's coordinate-wise median is below
    `ratio` x the round's median cosine (`typical`), or negative, does not point where the
    majority points. Relative, because how well honest deltas agree depends on the model, the
    data and the steps."""
    typical = statistics.median(cosines) if cosines else 1.0
    return max(0.0, ratio * typical), typical


# A merge weight is the revealed example count, but at most the round's median count: a declared
# count can lower an oracle's say in the merge, never raise it above the typical oracle's. (At 4x
# the median, an oracle that trained on a tenth of its data but declared all of it weighed the
# most; the registry's commitment bounds a count but cannot show the oracle trained on it.)
MAX_WEIGHT_RATIO = 1


def merge_weights(counts: list[int], typical: list[int] | None = None, ratio: int = MAX_WEIGHT_RATIO) -> list[int]:
    """Revealed example counts -> merge weights, each capped at `ratio` x the median of `typical`
    (default: of `counts`): the round's typical oracle's count, taken over every well-formed
    submission, not only the merged ones. Over the merged ones alone, a round that accepted a
    5,872-snippet delta and a 270-snippet one capped both at 270 and merged them half and half
    (bench_federated's Dirichlet split, BENCHMARKS.md). The lower median: an integer, so the
    weights are exact on any machine."""
    if not counts:
        return []
    ref = sorted(typical or counts)
    cap = ratio * ref[(len(ref) - 1) // 2]
    return [min(int(n), cap) for n in counts]


# --- the paired test behind "harmful" ---------------------------------------------------------------

MICRO = 10**6  # per-example losses are compared in integer micro-units: exact sums on any machine
# One-sided 0.5% level of the normal distribution: a fine-tuning delta faces two tests (loss and
# accuracy), so an honest delta with no true effect is rejected with probability at most ~1%.
HARMFUL_Z = 2.576
HARMFUL_LEVEL = "0.5%"
# One-sided 5% level: from a base that ranks the labels at chance, where most of a round's deltas
# show they rank the labels better or classify more of them right at this level, one that does
# neither is not merged (round.score, round.shows_learning). Looser than the harmful level because
# the burden is on the delta: in the Byzantine harness from the bare model, honest two-epoch
# deltas ranked at z +1.80 to +6.22 and random-label ones at +1.10 and +0.27 (accuracy z +0.19
# and +0.50).
LEARNING_Z = 1.645
LEARNING_LEVEL = "5%"


def micro_units(losses: list[float]) -> list[int]:
    return [round(x * MICRO) for x in losses]


def paired_gain(before: list[int], after: list[int]) -> tuple[float, float]:
    """(mean gain, its standard error) of a model change from per-example losses in micro-units,
    gain_j = before_j - after_j. Integer sums, one rounding each: the same on any machine."""
    n = len(before)
    if n != len(after) or n < 1:
        raise ValueError(f"paired test needs two equal, non-empty lists of losses, got {n} and {len(after)}")
    d = [b - a for b, a in zip(before, after)]
    s, sq = sum(d), sum(x * x for x in d)
    var = Fraction(n * sq - s * s, n * (n - 1)) if n > 1 else Fraction(0)  # sample variance, exact
    return float(Fraction(s, n * MICRO)), math.sqrt(float(var / n)) / MICRO


def significantly_harmful(gain: float, se: float, z: float = HARMFUL_Z) -> bool:
    """A delta is harmful only when the evidence says so: the one-sided upper confidence bound of
    its mean validation gain is below zero (mean + z * se < 0). An honest delta whose true effect
    is zero or better is rejected with probability at most 0.5% (z = 2.576); a delta that raises
    the loss by d is caught once d > z * se, i.e. once the validation set is large enough."""
    return gain + z * se < 0


# --- whether a model ranks the labels ------------------------------------------------------------


def _components(logits: list[list[int]], labels: list[int], c: int) -> tuple[list[Fraction], list[Fraction]] | None:
    """DeLong's structural components of class c's one-vs-rest AUC on the centred score
    K x z_c - sum(z): per example of class c, the share of the others it outranks, and per other
    example the share of class c's it falls below (ties count one half). None without both."""
    k = len(logits[0])
    scores = [k * row[c] - sum(row) for row in logits]
    pos = [x for x, y in zip(scores, labels) if y == c]
    neg = sorted(x for x, y in zip(scores, labels) if y != c)
    if not pos or not neg:
        return None
    pos_sorted = sorted(pos)
    v10 = [Fraction(bisect_left(neg, p) + bisect_right(neg, p), 2 * len(neg)) for p in pos]
    v01 = [Fraction(2 * len(pos) - bisect_left(pos_sorted, q) - bisect_right(pos_sorted, q), 2 * len(pos)) for q in neg]
    return v10, v01


def ranking(logits: list[list[int]], labels: list[int]) -> tuple[float, float]:
    """(AUC, its standard error): how well per-example class logits (integers, e.g. micro-units)
    rank the examples' labels, whatever the model's calibration. For each class c, the one-vs-rest
    AUC of the centred score K x z_c - sum(z) (a shift of every logit, or of one class's, moves a
    class's threshold, not its order), with DeLong's standard error; then their mean, whose
    standard error is taken as the mean of the classes' (an upper bound: the classes' AUCs are
    correlated). 1/2 is chance. Exact comparisons and sums; a class with no example, or with every
    example, is left out; none left: (0.5, 0.0)."""
    aucs, ses = [], []
    for c in range(len(logits[0]) if logits else 0):
        comps = _components(logits, labels, c)
        if comps is None:
            continue
        v10, v01 = comps
        aucs.append(sum(v10, Fraction(0)) / len(v10))
        ses.append(math.sqrt(float(_variance(v10) / len(v10) + _variance(v01) / len(v01))))
    if not aucs:
        return 0.5, 0.0
    return float(sum(aucs, Fraction(0)) / len(aucs)), sum(ses) / len(ses)


def ranking_gain(before: list[list[int]], after: list[list[int]], labels: list[int]) -> tuple[float, float]:
    """(change of `ranking`'s AUC from the `before` logits to the `after` logits of the same
    examples, its paired standard error): per class the difference of the two models' DeLong
    components, example by example, then the classes' mean, its standard error the mean of the
    classes' (as in `ranking`). Exact; (0.0, 0.0) when no class has examples of both kinds."""
    gains, ses = [], []
    for c in range(len(before[0]) if before else 0):
        a, b = _components(before, labels, c), _components(after, labels, c)
        if a is None:
            continue
        d10 = [y - x for x, y in zip(a[0], b[0])]
        d01 = [y - x for x, y in zip(a[1], b[1])]
        gains.append(sum(d10, Fraction(0)) / len(d10))
        ses.append(math.sqrt(float(_variance(d10) / len(d10) + _variance(d01) / len(d01))))
    if not gains:
        return 0.0, 0.0
    return float(sum(gains, Fraction(0)) / len(gains)), sum(ses) / len(ses)


def _variance(xs: list[Fraction]) -> Fraction:
    """Sample variance, exact (0 for fewer than two values)."""
    n = len(xs)
    if n < 2:
        return Fraction(0)
    mean = sum(xs, Fraction(0)) / n
    return sum(((x - mean) ** 2 for x in xs), Fraction(0)) / (n - 1)


# --- per-part magnitude --------------------------------------------------------------------------

# Each part of a delta (the head, the backbone) is scaled down before the merge to at most this
# multiple of the round's median norm of that part (norm bounding, Sun et al. 2019): no delta moves
# any part of the model more than a typical one does. Honest backbones measured within 3% of the
# median; at 1.0 a trigger-poisoned delta (1.5x longer, from its extra examples) kept the backdoor's
# attack success rate within 5 points of honest-only where 1.5 did not (BENCHMARKS.md).
CLIP_RATIO = 1.0


def clip_factors(norms: list[float], ratio: float = CLIP_RATIO) -> list[float]:
    """Per delta, the factor (<= 1) that brings its norm to at most `ratio` x the median norm (the
    lower median, so the bound is one of the round's own norms times the ratio)."""
    if not norms:
        return []
    bound = ratio * sorted(norms)[(len(norms) - 1) // 2]
    return [min(1.0, bound / x) if x > bound else 1.0 for x in norms]


# --- one contribution per piece of work ------------------------------------------------------------

# Two deltas closer than this cosine are one piece of work sent twice (honest deltas from disjoint
# data measured 0.77-0.83 pairwise; a copy with 1e-7 relative noise, 1 - 1e-14).
DUPLICATE_COSINE = 0.99


def duplicate_groups(cosines: list[list[float]], threshold: float = DUPLICATE_COSINE) -> list[int]:
    """Per delta, the index of the first delta of its group of near-duplicates (itself when alone);
    groups are the connected components of "cosine >= threshold", so a chain of copies is one group."""
    n = len(cosines)
    group = list(range(n))
    for i in range(n):
        for j in range(i + 1, n):
            if cosines[i][j] >= threshold:
                a, b = _root(group, i), _root(group, j)
                group[max(a, b)] = min(a, b)
    return [_root(group, i) for i in range(n)]


def _root(group: list[int], i: int) -> int:
    while group[i] != i:
        i = group[i]
    return i


# --- rewards by contribution -------------------------------------------------------------------------

# No oracle takes more than this share of a round's budget, whatever the others did.
MAX_REWARD_SHARE = Fraction(1, 3)


def reward_shares(contributions: list[tuple[str, float]], budget: int, max_share: Fraction = MAX_REWARD_SHARE) -> dict[str, int]:
    """(oracle, contribution) of each merged delta -> token base units: the budget in proportion to
    the positive contributions, each at most `max_share` of the budget. Integer arithmetic on
    scaled contributions; what the cap or the integer division leaves is not minted."""
    if not contributions or budget <= 0:
        return {}
    scaled = [max(0, round(c * 10**9)) for _, c in contributions]
    denom = sum(scaled)
    if denom == 0:
        return {}
    cap = budget * max_share.numerator // max_share.denominator
    return {o: min(cap, budget * s // denom) for (o, _), s in zip(contributions, scaled) if s > 0}
