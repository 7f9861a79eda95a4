"""Numbers for people: significant digits, percentages, durations, counts, and values in tables and cards."""

from __future__ import annotations

import math
from typing import Any


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def sig(x: Any, digits: int = 4) -> Any:
    """``x`` rounded to ``digits`` significant digits (figures here span 1e-9 to 1e12); None, 0, NaN and inf as
    they are."""
    if x is None or not is_number(x) or not x or not math.isfinite(x):
        return x
    return round(float(x), digits - 1 - math.floor(math.log10(abs(x))))


def pct(x: float | None) -> str:
    """A share as a percentage with one decimal, or "n/a"."""
    return "n/a" if x is None else f"{100 * x:.1f}%"


def duration(s: Any) -> str:
    """Seconds as "12.3 s", "4.5 min" or "2.01 h"; "n/a" when not a finite number."""
    if not is_number(s) or not math.isfinite(s):
        return "n/a"
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


def count(n: int) -> str:
    """A large count in short form: 1.23M, 456K."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def rate(x: float) -> str:
    """A throughput in short form: 1.2M, 3.4k, 56."""
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if x >= scale:
            return f"{x / scale:.1f}{unit}"
    return f"{x:.0f}"


def fmt(v: Any) -> str:
    """A value for a table cell: counts with thousands separators, floats to 4 significant digits, "n/a"."""
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return f"{v:,}" if abs(v) >= 10_000 else str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return "n/a"
        if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
            return f"{v:.4g}"
        return f"{sig(v):g}" if v else "0"
    if isinstance(v, (list, tuple)):
        return ", ".join(fmt(x) for x in v)
    return str(v)


def size(nbytes: float) -> str:
    """Bytes for people: 512 B, 3.3 MB, 25.6 GB, 13.2 TB (powers of 1000, as disks and RAM sticks are sold)."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(nbytes) < 1000 or unit == "PB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return f"{nbytes:.1f} PB"
