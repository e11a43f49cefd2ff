"""Checks that explain themselves, for the claims a chapter makes.

A chapter states something and then checks it in code, so that a chapter that stops being
true fails its test run. A bare ``assert`` does that, but a student who changes a number and
sees ``AssertionError:`` learns nothing. Claims come in two kinds, and each gets a function:

* :func:`claim` -- a **theorem**, true for any parameters (``b = n/N`` at the optimum, the
  trace identity). If it fails, something is wrong with the code or the computation, and the
  message says what was claimed and what was measured.
* :func:`regime` -- an **assumption about the chosen example** ("lambda lies between the
  critical values of modes 3 and 4"). The text below it is written for that regime. If a
  student's new numbers leave it, the message says so, what was measured, and how to get
  back, so the student can choose: pick other numbers, or read on knowing what changed.

:func:`close` is :func:`claim` for "these numbers agree to a tolerance", with the worst
disagreement in the message. All three raise subclasses of ``AssertionError``, so test
runners and nbval treat them as the asserts they replace; unlike ``assert`` statements they
also run under ``python -O``.

Why not a testing library: ``numpy.testing`` and ``pytest`` report *that* arrays differ, not
what the book claimed or which parameter to change, and the book's notebooks must not need
pytest to run.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["CheckFailed", "ClaimFailed", "OutsideRegime", "claim", "regime", "close"]


class CheckFailed(AssertionError):
    """A chapter's check did not hold (base class)."""


class ClaimFailed(CheckFailed):
    """A claim that holds for any parameters failed: the computation is wrong somewhere."""


class OutsideRegime(CheckFailed):
    """The parameters left the regime that the text describes."""


def _text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TypeError(f"{name} must be a non-empty string describing the check; got {value!r}")
    return value.strip()


def _truth(condition: object) -> bool:
    """``condition`` as a Python bool; an array must be all true (and non-empty)."""
    if isinstance(condition, (bool, np.bool_)):
        return bool(condition)
    arr = np.asarray(condition)
    if arr.dtype != bool:
        raise TypeError(f"condition must be a bool or an array of bools; got {type(condition).__name__} of {arr.dtype}")
    return bool(arr.size) and bool(arr.all())


def claim(condition: object, what: str, *, measured: Any = None) -> None:
    """Check a claim that holds for any parameters.

    Parameters
    ----------
    condition : bool or array of bool
        The claim, evaluated; an array must be entirely true.
    what : str
        The claim in words ("the optimal bias is n/N").
    measured : optional
        What was measured, shown if the claim fails (a number, an array or a sentence).

    Raises
    ------
    ClaimFailed
        If ``condition`` is false.
    """
    what = _text(what, "what")
    if not _truth(condition):
        detail = "" if measured is None else f" Measured: {measured}."
        raise ClaimFailed(
            f"Claim failed: {what}.{detail} This holds for any parameters, so the computation "
            "above is wrong; if you edited it, compare with the original."
        )


def regime(condition: object, assumption: str, *, measured: Any, fix: str) -> None:
    """Check that the chosen parameters are in the regime the text below describes.

    Parameters
    ----------
    condition : bool or array of bool
        Whether the parameters are in the regime.
    assumption : str
        The regime in words, naming the parameter ("lam lies between the critical values
        of modes 3 and 4").
    measured : Any
        What the parameters give ("lam = 0.012; critical values 0.0094 and 0.0117").
    fix : str
        How to get back into the regime, or what changes if the reader goes on
        ("pick lam in that interval, or read on knowing that mode 3 is gone").

    Raises
    ------
    OutsideRegime
        If ``condition`` is false.
    """
    assumption = _text(assumption, "assumption")
    fix = _text(fix, "fix")
    if not _truth(condition):
        raise OutsideRegime(
            f"The text below assumes that {assumption}, but here {measured}. {fix[0].upper()}{fix[1:]}"
            + ("" if fix.endswith(".") else ".")
        )


def close(actual: Any, expected: Any, what: str, *, rtol: float = 1e-9, atol: float = 0.0) -> None:
    """Check that computed values agree with the theory's within a tolerance.

    Elementwise ``|actual - expected| <= atol + rtol |expected|``, as :func:`numpy.allclose`
    (same shapes required). The message names the claim, the tolerance and the worst entry.

    Parameters
    ----------
    actual, expected : array_like
        Measured and predicted values, same shape.
    what : str
        What is being compared ("trained singular values against the closed form").
    rtol, atol : float
        Relative and absolute tolerance (>= 0).

    Raises
    ------
    ClaimFailed
        If any entry disagrees, or the shapes differ, or a value is not finite.
    """
    what = _text(what, "what")
    for value, name in ((rtol, "rtol"), (atol, "atol")):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < np.inf:
            raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
    a = np.asarray(actual, dtype=float)
    e = np.asarray(expected, dtype=float)
    if a.shape != e.shape:
        raise ClaimFailed(f"Claim failed: {what}: shapes differ, {a.shape} measured against {e.shape} expected.")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(e))):
        raise ClaimFailed(f"Claim failed: {what}: non-finite values (measured {a}, expected {e}).")
    excess = np.abs(a - e) - (atol + rtol * np.abs(e))
    if a.size and excess.max() > 0:
        i = np.unravel_index(int(np.argmax(excess)), a.shape) if a.ndim else ()
        where = f" at index {tuple(int(j) for j in i)}" if a.ndim else ""
        raise ClaimFailed(
            f"Claim failed: {what}, to rtol={rtol:g}, atol={atol:g}. Worst entry{where}: "
            f"{a[i]:.6g} measured, {e[i]:.6g} expected."
        )
