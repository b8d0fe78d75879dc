"""One-line checks of the numbers a user hands an entry point (generate_conformers,
generate_backbones, ...), made before any work: a ValueError that names the argument and the
allowed range."""
from __future__ import annotations

import math

MAX_SEED = 2**32 - 1
"""Seeds are 32-bit unsigned integers at every entry point."""


def check_int(name: str, value, low: int, high: int | None = None) -> None:
    """value is an int (not a bool) in low..high (high None: no upper bound)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low or \
            (high is not None and value > high):
        bound = f"in {low}..{high}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be an integer {bound}, got {value!r}")


def check_real(name: str, value, low: float, high: float | None = None) -> None:
    """value is a finite int or float (not a bool) in [low, high] (high None: no upper bound)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
