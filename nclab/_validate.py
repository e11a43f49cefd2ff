"""Argument checks shared by every public function of :mod:`nclab`.

One standard for the whole package: every check happens up front, and an error names the
parameter, the allowed values and what was given. A value of the wrong *kind* (a string where
a number belongs, ``"no"`` for a boolean) raises :class:`ArgumentTypeError`; a value of the
right kind outside its range (a negative strength, ``1.5`` layers, an array with NaN) raises
:class:`ValueError`. ``ArgumentTypeError`` is a ``TypeError`` *and* a ``ValueError``, so code
that catches either (the explorers catch ``ValueError`` to show a message) keeps working.

Nothing here imports torch: a torch tensor is recognised only when torch is already loaded
(it cannot be a tensor otherwise), and converted to a float64 numpy array.
"""

from __future__ import annotations

import math
import numbers
import sys
from typing import Any, Sequence

import numpy as np

__all__ = [
    "MAX_WHOLE",
    "MAX_CLASSES",
    "MAX_DEPTH",
    "MAX_WIDTH",
    "ArgumentTypeError",
    "whole",
    "seed",
    "real",
    "positive",
    "nonneg",
    "boolean",
    "choice",
    "is_tensor",
    "array",
    "finite",
    "labels",
]


#: Default upper bound of :func:`whole`: integers up to ``2**53`` are exact in float64.
MAX_WHOLE = 2**53
#: Most classes any function accepts (a K x K float64 matrix is then 8 TB: beyond, only memory errors).
MAX_CLASSES = 10**6
#: Deepest model (number of linear layers L, or of backbone layers) any function accepts.
MAX_DEPTH = 1000
#: Widest feature dimension (d, width, input dimension) any function accepts.
MAX_WIDTH = 10**6


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong kind (e.g. a string for a number, ``"no"`` for a boolean).

    Both a ``TypeError`` (what Python raises for a wrong type) and a ``ValueError`` (what
    :mod:`nclab` raised before it had this class, and what its explorers catch).
    """


# --------------------------------------------------------------------------- scalars


def _is_real(value: object) -> bool:
    """A real scalar: Python or numpy number, or a 0-d numeric array; never a bool."""
    if type(value) is float or type(value) is int:  # the common case, fast
        return True
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, numbers.Real):
        return True
    return isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf"


def _bounds_text(low: float | None, high: float | None, low_open: bool = False, high_open: bool = False) -> str:
    lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
    hi = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
    return " and ".join(p for p in (lo, hi) if p)


def whole(value: object, name: str, low: int, high: int | None = None) -> int:
    """An integer in ``[low, high]``; integer-valued floats such as ``2.0`` count, ``1.5`` does not.

    Bools are refused (``True`` is not a count), and so is anything that is not a real number.
    Without ``high`` the bound is :data:`MAX_WHOLE` (``2**53``: every integer up to it is exact
    in float64, and sizes beyond it cannot be allocated anyway).

    Raises
    ------
    ArgumentTypeError
        If ``value`` is not a real number.
    ValueError
        If it is not a whole number, or lies outside ``[low, high]``.
    """
    top = MAX_WHOLE if high is None else high
    if type(value) is int and low <= value <= top:
        return value
    allowed = f">= {low}" if high is None else f">= {low} and <= {high}"
    if not _is_real(value):
        raise ArgumentTypeError(f"{name} must be a whole number {allowed}; got {value!r} of type {type(value).__name__}")
    if isinstance(value, numbers.Integral) or (isinstance(value, np.ndarray) and value.dtype.kind in "iu"):
        out = int(value)  # type: ignore[arg-type]
    else:
        v = float(value)  # type: ignore[arg-type]
        if not v.is_integer():
            raise ValueError(f"{name} must be a whole number {allowed}; got {value!r} (not rounded: pass an integer)")
        out = int(v)
    if out < low:
        raise ValueError(f"{name} must be a whole number {allowed}; got {out}")
    if out > top:
        raise ValueError(f"{name} must be a whole number {allowed}{'' if high is not None else f' (at most {top})'}; got {value!r}")
    return out


def seed(value: object, name: str = "seed") -> int:
    """A random seed: a whole number in ``[0, 2**32 - 1]`` (the range every generator accepts)."""
    return whole(value, name, 0, 2**32 - 1)


def real(
    value: object,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    what: str | None = None,
) -> float:
    """A finite real number within optional bounds (closed unless ``low_open``/``high_open``).

    ``what`` replaces the description of the allowed values in messages.

    Raises
    ------
    ArgumentTypeError
        If ``value`` is not a real number (strings, bools, None, arrays of several entries).
    ValueError
        If it is NaN, infinite, or outside the bounds.
    """
    if _is_real(value):
        v = float(value)  # type: ignore[arg-type]
        ok = math.isfinite(v)
        if low is not None:
            ok = ok and (v > low or v == low and not low_open)
        if high is not None:
            ok = ok and (v < high or v == high and not high_open)
        if ok:
            return v
    allowed = _bounds_text(low, high, low_open, high_open)
    what = what or f"a finite number{' ' + allowed if allowed else ''}"
    if not _is_real(value):
        raise ArgumentTypeError(f"{name} must be {what}; got {value!r} of type {type(value).__name__}")
    raise ValueError(f"{name} must be {what}; got {value!r}")


def positive(value: object, name: str) -> float:
    """A finite real number ``> 0``."""
    return real(value, name, low=0.0, low_open=True, what="a positive finite number (> 0)")


def nonneg(value: object, name: str) -> float:
    """A finite real number ``>= 0``."""
    return real(value, name, low=0.0)


def boolean(value: object, name: str) -> bool:
    """``True`` or ``False`` (Python or numpy bool); ``"no"``, ``0``, ``None`` are refused, not read as truthy."""
    if not isinstance(value, (bool, np.bool_)):
        raise ArgumentTypeError(f"{name} must be True or False; got {value!r} of type {type(value).__name__}")
    return bool(value)


def choice(value: object, name: str, choices: Sequence[str]) -> str:
    """One of the strings ``choices``."""
    if isinstance(value, str) and value in choices:
        return value
    allowed = ", ".join(repr(c) for c in choices)
    if not isinstance(value, str):
        raise ArgumentTypeError(f"{name} must be one of {allowed}; got {value!r} of type {type(value).__name__}")
    raise ValueError(f"{name} must be one of {allowed}; got {value!r}")


# --------------------------------------------------------------------------- arrays


def is_tensor(value: object) -> bool:
    """Whether ``value`` is a torch tensor (False whenever torch has not been imported)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _shape_text(shape: Sequence[int | str | None]) -> str:
    return "(" + ", ".join("any" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def finite(arr: Any, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` where a numpy array or torch tensor holds NaN or inf."""
    if is_tensor(arr):
        torch = sys.modules["torch"]
        if arr.is_floating_point() and not bool(torch.isfinite(arr).all()):
            bad = (~torch.isfinite(arr)).nonzero()[0].tolist()
            n_nan, n_inf = int(torch.isnan(arr).sum()), int(torch.isinf(arr).sum())
            raise ValueError(f"{name} must be finite; it has {n_nan} NaN and {n_inf} infinite entries (first at index {tuple(bad)})")
        return
    a = np.asarray(arr)
    if a.dtype.kind in "fc" and not np.all(np.isfinite(a)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
        n_nan, n_inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
        raise ValueError(f"{name} must be finite; it has {n_nan} NaN and {n_inf} infinite entries (first at index {bad})")


def array(
    value: object,
    name: str,
    *,
    ndim: int | Sequence[int] | None = None,
    shape: Sequence[int | None] | None = None,
    allow_empty: bool = False,
    allow_nonfinite: bool = False,
    low: float | None = None,
    describe: str | None = None,
) -> np.ndarray:
    """A numeric array as float64 numpy (torch tensors are copied to the CPU).

    Parameters
    ----------
    value : array_like or torch.Tensor
    name : str
        Parameter name for messages.
    ndim : int or sequence of int, optional
        Allowed numbers of dimensions.
    shape : sequence of int or None, optional
        Required shape (``None`` entries match any length); implies ``ndim``.
    allow_empty : bool
        Accept arrays with no entries.
    allow_nonfinite : bool
        Accept NaN and inf entries.
    low : float, optional
        Smallest allowed entry.
    describe : str, optional
        What the array must be, for shape errors (e.g. ``"a (d, N) matrix, samples in columns"``).

    Raises
    ------
    ArgumentTypeError
        If ``value`` is not numeric (strings, objects, ragged lists, complex).
    ValueError
        Wrong number of dimensions or shape, empty, NaN/inf, or an entry below ``low``.
    """
    if value is None or isinstance(value, (str, bytes, dict, set)):
        raise ArgumentTypeError(f"{name} must be an array of numbers; got {value!r} of type {type(value).__name__}")
    if is_tensor(value):
        value = value.detach().cpu().double().numpy()  # type: ignore[union-attr]
    try:
        a = np.asarray(value)
    except (TypeError, ValueError) as exc:  # ragged nested lists
        raise ArgumentTypeError(f"{name} must be an array of numbers (rows of equal length); got {type(value).__name__}") from exc
    if a.dtype.kind not in "iuf":
        raise ArgumentTypeError(f"{name} must be an array of real numbers; got dtype {a.dtype}")
    a = a.astype(np.float64)
    if shape is not None:
        ndim = len(shape)
    if ndim is not None:
        dims = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if a.ndim not in dims:
            want = f"of shape {_shape_text(shape)}" if shape is not None else " or ".join(f"{d}-dimensional" for d in dims)
            raise ValueError(f"{name} must be {describe or want}; got shape {a.shape}")
    if shape is not None and any(s is not None and s != t for s, t in zip(shape, a.shape)):
        raise ValueError(f"{name} must be {describe or 'of shape ' + _shape_text(shape)}; got shape {a.shape}")
    if not allow_empty and a.size == 0:
        raise ValueError(f"{name} must not be empty; got shape {a.shape}")
    if not allow_nonfinite:
        finite(a, name)
    if low is not None and a.size and np.nanmin(a) < low:
        raise ValueError(f"{name} must have entries >= {low:g}; got {np.nanmin(a):g}")
    return a


def labels(value: object, name: str = "labels", *, N: int | None = None, K: int | None = None) -> np.ndarray:
    """Class labels: a non-empty one-dimensional array of whole numbers ``0..K-1`` (int64).

    Parameters
    ----------
    value : array_like of int or torch.Tensor, shape (N,)
    name : str
    N : int, optional
        Required length (the number of samples of the features they label).
    K : int, optional
        Number of classes: labels must be ``< K``.

    Raises
    ------
    ArgumentTypeError
        Not integers (floats, bools, strings).
    ValueError
        Wrong shape or length, empty, negative, or ``>= K``.
    """
    if value is None or isinstance(value, (str, bytes, dict, set)):
        raise ArgumentTypeError(f"{name} must be an array of integer class indices; got {value!r}")
    if is_tensor(value):
        value = value.detach().cpu().numpy()  # type: ignore[union-attr]
    try:
        y = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ArgumentTypeError(f"{name} must be an array of integer class indices; got {type(value).__name__}") from exc
    if y.size == 0:
        raise ValueError(f"{name} must not be empty")
    if y.dtype.kind not in "iu":
        raise ArgumentTypeError(f"{name} must be integer class indices 0..K-1; got dtype {y.dtype} (convert with .astype(int) if whole)")
    if y.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, one class index per sample; got shape {y.shape}")
    if N is not None and y.size != N:
        raise ValueError(f"{name} must have one entry per sample: the features have N = {N} samples, {name} has {y.size}")
    lo, hi = int(y.min()), int(y.max())
    if lo < 0:
        raise ValueError(f"{name} must be class indices >= 0; got {lo} at index {int(np.argmin(y))}")
    if K is not None and hi >= K:
        raise ValueError(f"{name} must lie in [0, {K - 1}] for K = {K} classes; got {hi} at index {int(np.argmax(y))}")
    return y.astype(np.int64)
