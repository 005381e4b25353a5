"""The aggregation rules as pure functions: the size cap on a delta, the cosine floor below which a
delta is divergent, the merge weights, the paired test behind "harmful", the per-part clipping,
near-duplicate groups, the Shapley value of each merged delta and the reward shares. The aggregator applies them and the audit recomputes
them; nothing here touches the chain, the store or a model.
"""

from __future__ import annotations

import hashlib
import math
import statistics
from fractions import Fraction
from itertools import combinations
from typing import Callable


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


def merge_weights(counts: list[int], ratio: int = MAX_WEIGHT_RATIO) -> list[int]:
    """Revealed example counts -> merge weights, each capped at `ratio` x the median count (the
    lower median: an integer, so the weights are exact on any machine)."""
    if not counts:
        return []
    cap = ratio * sorted(counts)[(len(counts) - 1) // 2]
    return [min(int(n), cap) for n in counts]


# --- the paired test behind "harmful" ---------------------------------------------------------------

MICRO = 10**6  # per-example losses are compared in integer micro-units: exact sums on any machine
# One-sided 0.5% level of the normal distribution: a fine-tuning delta faces two tests (loss and
# accuracy), so an honest delta with no true effect is rejected with probability at most ~1%.
HARMFUL_Z = 2.576
HARMFUL_LEVEL = "0.5%"


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


# --- what each merged delta adds: its Shapley value --------------------------------------------------

# Up to this many merged deltas every subset's merge is scored (2^n - 2 merges besides the empty
# and the full one: 254 at 8, about 70 s a round at the 0.27 s one scoring pass of 238 snippets takes
# on the tiny model, BENCHMARKS.md); above it, sampled.
SHAPLEY_EXACT_MAX = 8


def shapley_orders(keys: list[str], salt: str) -> list[list[int]] | None:
    """The orders the Shapley value is averaged over: None (every subset, exact) for at most
    SHAPLEY_EXACT_MAX players; else one order drawn from `salt` and the players' keys (sha256,
    so anyone draws the same) and its n rotations, which put every player once at every position
    (n^2 merges). The draw is public: what it can buy a player is whom it follows, not where."""
    n = len(keys)
    if n <= SHAPLEY_EXACT_MAX:
        return None
    base = sorted(range(n), key=lambda i: (hashlib.sha256(f"{salt}/{keys[i]}".encode()).digest(), i))
    return [base[r:] + base[:r] for r in range(n)]


def shapley(n: int, value: Callable[[frozenset], int], orders: list[list[int]] | None = None) -> list[Fraction]:
    """Each player's Shapley value of the game `value` (a subset of range(n) -> an integer, value
    of the empty set subtracted by the caller or not: only differences count). Exact: the mean of
    the player's marginal value v(S + i) - v(S) over every order of the players, which is the sum
    over the subsets S without i weighted |S|! (n - |S| - 1)! / n!. With `orders`: the mean over
    those orders. Rational arithmetic: the same on any machine. The values sum to v(all) - v({}),
    a near-duplicate of another player (the same v with either or both) shares one value with it,
    and a player that adds nothing to any subset gets nothing."""
    players = range(n)
    if orders is None:
        weight = [Fraction(math.factorial(k) * math.factorial(n - k - 1), math.factorial(n)) for k in range(n)]
        out = []
        for i in players:
            others = [j for j in players if j != i]
            total = Fraction(0)
            for k in range(n):
                for subset in combinations(others, k):
                    s = frozenset(subset)
                    total += weight[k] * (value(s | {i}) - value(s))
            out.append(total)
        return out
    sums = [Fraction(0)] * n
    for order in orders:
        before = frozenset()
        for i in order:
            after = before | {i}
            sums[i] += value(after) - value(before)
            before = after
    return [x / len(orders) for x in sums]


def shapley_shares(values: list[Fraction]) -> list[Fraction]:
    """Reward shares from Shapley values: in proportion to the positive ones (a delta that makes
    the merge worse on average earns nothing, and does not lower what the others earn)."""
    positive = sum(v for v in values if v > 0)
    return [v / positive if v > 0 else Fraction(0) for v in values]


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
