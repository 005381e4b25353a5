"""Token amounts as the command line takes and shows them: decimal DGPT, exact to the wei."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from dgpt.errors import DGPTError

DECIMALS = 18
TOKEN = 10**DECIMALS  # base units (wei) per DGPT


def parse_tokens(text: str, what: str = "amount") -> int:
    """'1.5' -> 1.5 DGPT in wei, exactly. No floats: '1e9' is refused rather than rounded, as is a
    negative amount or one with more than 18 decimals."""
    s = str(text).strip()
    try:
        value = Decimal(s)
    except InvalidOperation:
        raise DGPTError(f"{what}: {text!r} is not a decimal number of DGPT") from None
    if not value.is_finite() or "e" in s.lower():
        raise DGPTError(f"{what}: {text!r}: write the amount out in decimal (e.g. 1000000000), no exponent")
    if value < 0:
        raise DGPTError(f"{what}: {text!r} is negative")
    wei = value.scaleb(DECIMALS)
    if wei != wei.to_integral_value():
        raise DGPTError(f"{what}: {text!r} has more than {DECIMALS} decimals")
    return int(wei)


def format_tokens(wei: int) -> str:
    """Wei -> decimal DGPT without rounding, trailing zeros dropped: 1500000000000000000 -> '1.5'."""
    whole, frac = divmod(int(wei), TOKEN)
    return f"{whole}.{frac:018d}".rstrip("0").rstrip(".")
