"""Exact sums of products of float32 tensors: the same result, to the last bit, on any machine,
whatever the thread count or the CPU's vector instructions.

A float's sum reduction depends on its order (threads split it, SIMD lanes interleave it), so the
squared norm behind a slash could differ between machines. Here every product of two float32s
is exact as an integer mantissa product m_a * m_b (< 2^48) times a power of two fixed by the two
exponents; products are summed per exponent bucket in int64 (integer addition does not depend on
order), split in 24-bit halves so no bucket can overflow; the buckets are combined in Python
integers. The result is an exact dyadic rational `Exact(num, exp)` = num * 2**exp; `float()`
rounds it once, correctly, and comparisons with a bound are exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import torch

_BIAS = 150  # a float32 is m * 2**(e - 150) with m < 2**24 and e its biased exponent (1 for subnormals)


@dataclass(frozen=True)
class Exact:
    num: int
    exp: int  # value = num * 2**exp

    def __add__(self, other: Exact) -> Exact:
        e = min(self.exp, other.exp)
        return Exact((self.num << (self.exp - e)) + (other.num << (other.exp - e)), e)

    def __float__(self) -> float:
        return float(Fraction(self.num) * Fraction(2) ** self.exp) if self.num else 0.0

    def fraction(self) -> Fraction:
        return Fraction(self.num) * Fraction(2) ** self.exp

    def sqrt(self) -> float:
        """The square root, from the once-rounded value: IEEE sqrt is correctly rounded everywhere."""
        return math.sqrt(float(self))


ZERO = Exact(0, 0)


def _split(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(signed integer mantissa, effective biased exponent) of each float32 element."""
    bits = x.contiguous().view(torch.int32).to(torch.int64)
    e = (bits >> 23) & 0xFF
    m = bits & 0x7FFFFF
    normal = e != 0
    m = torch.where(normal, m | (1 << 23), m)
    e = torch.where(normal, e, torch.ones_like(e))
    sign = torch.where(bits & (1 << 31) != 0, -1, 1)  # bit 31 of the int32, as the int64 holds it
    return m * sign, e


def dot(a: torch.Tensor, b: torch.Tensor) -> Exact:
    """Σ a_i * b_i exactly, for float32 tensors of the same number of elements (finite values)."""
    a, b = a.reshape(-1).float(), b.reshape(-1).float()
    if a.numel() == 0:
        return ZERO
    ma, ea = _split(a)
    mb, eb = _split(b)
    prod = ma * mb  # |prod| < 2**48: exact in int64
    bucket = ea + eb  # 2 .. 508
    hi = prod >> 24  # floor division: prod = hi * 2**24 + lo with 0 <= lo < 2**24
    lo = prod - (hi << 24)
    sums_hi = torch.zeros(512, dtype=torch.int64).index_add_(0, bucket, hi)
    sums_lo = torch.zeros(512, dtype=torch.int64).index_add_(0, bucket, lo)
    total = 0
    lowest = 2 - 2 * _BIAS
    for k in torch.nonzero((sums_hi != 0) | (sums_lo != 0)).flatten().tolist():
        v = (int(sums_hi[k]) << 24) + int(sums_lo[k])
        total += v << (k - 2 * _BIAS - lowest)
    return Exact(total, lowest)


def sq_norm(x: torch.Tensor) -> Exact:
    return dot(x, x)


def chunked(fn, *tensors: torch.Tensor, chunk: int = 1 << 22) -> Exact:
    """`fn` over slices of flat tensors, added exactly: bounded memory for any size."""
    flat = [t.reshape(-1) for t in tensors]
    total = ZERO
    for a in range(0, flat[0].numel(), chunk):
        total = total + fn(*[t[a : a + chunk] for t in flat])
    return total
