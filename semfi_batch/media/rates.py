"""Frame rates as exact fractions: what a user types (23.976, 29.97, 24000/1001, 12.5) to the rational
ffmpeg should get."""

from __future__ import annotations

from fractions import Fraction

from semfi_batch.errors import SemfiError


def parse_rate(value: str | float | Fraction) -> Fraction:
    """The exact frame rate meant by `value`. The NTSC rates given as decimals (23.976, 29.97, 47.952, 59.94,
    119.88, ...: N*1000/1001 written out to 2-3 decimals) become N*1000/1001; "a/b" is taken as written; other
    decimals are exact (12.5 -> 25/2). SemfiError for anything that is not a positive rate."""
    if isinstance(value, Fraction):
        rate = value
    else:
        text = str(value).strip()
        try:
            rate = Fraction(text) if "/" in text else Fraction(repr(float(text)) if isinstance(value, float) else text)
        except (ValueError, ZeroDivisionError):
            raise SemfiError(f"frame rate must be a number or a fraction such as 24000/1001, got {value!r}") from None
        if "/" not in text and rate.denominator != 1:
            ntsc = round(rate * Fraction(1001, 1000))
            if ntsc > 0 and abs(Fraction(ntsc * 1000, 1001) - rate) < Fraction(1, 200):
                rate = Fraction(ntsc * 1000, 1001)
    if rate <= 0:
        raise SemfiError(f"frame rate must be above 0, got {value!r}")
    return rate


def rate_arg(rate: Fraction | float) -> str:
    """The rate as ffmpeg takes it, exactly ("24000/1001")."""
    rate = parse_rate(rate) if not isinstance(rate, Fraction) else rate
    return f"{rate.numerator}/{rate.denominator}"
