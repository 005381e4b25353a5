"""The aggregation rules as pure functions: the size cap on a delta, the cosine floor below which a
delta is divergent, and the reward shares. The aggregator applies them and the audit recomputes
them; nothing here touches the chain, the store or a model.
"""

from __future__ import annotations

import statistics


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


# A merge weight is the revealed example count, but at most this multiple of the round's median
# count: a self-declared count cannot buy the merge (the registry also bounds every count).
MAX_WEIGHT_RATIO = 4


def merge_weights(counts: list[int], ratio: int = MAX_WEIGHT_RATIO) -> list[int]:
    """Revealed example counts -> merge weights, each capped at `ratio` x the median count (the
    lower median: an integer, so the weights are exact on any machine)."""
    if not counts:
        return []
    cap = ratio * sorted(counts)[(len(counts) - 1) // 2]
    return [min(int(n), cap) for n in counts]


def reward_shares(contributions: list[tuple[str, int, float]], budget: int) -> dict[str, int]:
    """(oracle, examples, gain) of each merged delta -> token base units: the budget in proportion
    to the validation-loss gains (by example count when no delta improved the loss alone).
    Integer division; the remainder is not minted."""
    if not contributions or budget <= 0:
        return {}
    scores = [max(0.0, gain) for _, _, gain in contributions]
    if sum(scores) <= 0:
        scores = [float(n) for _, n, _ in contributions]
    total = sum(scores)
    # Integer arithmetic on scaled scores keeps the amounts exact and machine-independent.
    scaled = [round(s / total * 10**9) for s in scores]
    denom = sum(scaled) or 1
    return {o: budget * s // denom for (o, _, _), s in zip(contributions, scaled) if s > 0}
