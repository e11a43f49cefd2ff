"""Argument checks shared by every module: each error names the parameter and the allowed range."""

from __future__ import annotations

import math
import numbers
from typing import Sequence

__all__ = ["whole", "positive", "nonneg", "choice"]


def whole(value: object, name: str, low: int) -> int:
    """An integer ``>= low`` (bools and floats are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < low:
        raise ValueError(f"{name} must be a whole number >= {low}; got {value!r}")
    return int(value)


def positive(value: object, name: str) -> float:
    """A finite real number ``> 0``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0 < float(value) < math.inf):
        raise ValueError(f"{name} must be a positive finite number (> 0); got {value!r}")
    return float(value)


def nonneg(value: object, name: str) -> float:
    """A finite real number ``>= 0``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0 <= float(value) < math.inf):
        raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
    return float(value)


def choice(value: object, name: str, choices: Sequence[str]) -> str:
    """One of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}")
    return str(value)
