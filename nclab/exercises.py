"""Checkers for the book's computational exercises and assignments.

Every checker takes a student's answer and returns a :class:`Feedback`: either it passes, or
it says what is wrong in words a student can act on -- wrong type, wrong shape (and the
expected shape), a constant multiple of the right answer, right values in the wrong order,
a transposed matrix, NaN entries, which entries differ, or a known slip (for example
``diag(n)`` where ``diag(sqrt(n))`` belongs) -- plus a hint. A checker never raises on a wrong
answer and never prints the expected values.

In a notebook the feedback displays itself (Markdown); ``print(feedback)`` gives plain text.
The assignments' public tests (otter-grader test files, see ``book/instructors.md``) call these
checkers through :func:`require`, which turns a failing feedback into the test's error
message, and call the student's functions inside :func:`own_work`, which switches off the
parts of ``nclab`` that compute answers. Points are the autograder's business, not the
checkers'.

Example
-------
>>> import numpy as np
>>> from nclab import exercises as ex
>>> fb = ex.check_etf_gram(np.eye(3), K=3, task="1")
>>> fb.passed
False

Conventions (the book's, see :mod:`nclab.theory`): counts ``n`` (K,), ``N = sum(n)``,
``Yhat = (I - n 1^T / N) diag(sqrt(n))``; singular values descending; classes and modes are
numbered from 1, as in the book's figures (class 1 is the first entry of ``n``, mode 1 has the
largest singular value), and so are the rows and columns the messages name.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import math
import numbers
import sys
import types
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from . import _validate, theory
from ._validate import whole
from .data import check_counts

__all__ = [
    "Feedback",
    "require",
    "own_work",
    "ANSWER_MODULES",
    "check_etf_gram",
    "check_target",
    "check_singular_values",
    "check_interlacing_bounds",
    "check_collapsed_classes",
    "check_class_mean_norms",
    "check_nc1",
    "check_threshold",
    "check_critical_lambda",
    "check_optimal_bias",
]

# --------------------------------------------------------------------------- feedback


@dataclass
class Feedback:
    """Result of a checker.

    Attributes
    ----------
    passed : bool
        Whether the answer is right.
    message : str
        What is right or wrong, in words (never the expected values).
    task : str or None
        Task label, e.g. ``"2b"``.
    hint : str or None
        A suggestion for what to try next (only on failure).
    """

    passed: bool
    message: str
    task: str | None = None
    hint: str | None = None

    def __bool__(self) -> bool:
        return self.passed

    def _header(self) -> str:
        mark = "\u2705" if self.passed else "\u274c"
        return f"{mark} Task {self.task}:" if self.task is not None else mark

    def __str__(self) -> str:
        text = f"{self._header()} {self.message}"
        if self.hint and not self.passed:
            text += f"\n   Hint: {self.hint}"
        return text

    def __repr__(self) -> str:
        return str(self)

    def _repr_markdown_(self) -> str:
        text = f"**{self._header()}** {self.message}"
        if self.hint and not self.passed:
            text += f"\n\n*Hint:* {self.hint}"
        return text


def require(feedback: Feedback) -> Feedback:
    """Return ``feedback`` if it passed; otherwise raise ``AssertionError`` with its text.

    The assignments' tests end with ``require(check_...(answer, ...))``: a failing check
    then fails the test, and the autograder shows the checker's message and hint.

    Raises
    ------
    TypeError
        If ``feedback`` is not a :class:`Feedback`.
    AssertionError
        If the check failed.
    """
    if not isinstance(feedback, Feedback):
        raise TypeError(f"feedback must be a Feedback returned by a checker; got a {type(feedback).__name__}")
    if not feedback.passed:
        raise AssertionError(str(feedback))
    return feedback


# --------------------------------------------------------------------------- own work

#: Modules of ``nclab`` that compute answers; :func:`own_work` switches them off.
ANSWER_MODULES = ("nclab.theory", "nclab.metrics", "nclab.objective", "nclab.ufm", "nclab.lbfgs", "nclab.phases")


def _switched_off(*args: Any, **kwargs: Any) -> Any:
    raise PermissionError("MESSAGE")


class _BlockAnswerImports(importlib.abc.MetaPathFinder):
    """Refuses to (re)load an answer module while :func:`own_work` is active."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname in ANSWER_MODULES:
            raise ImportError(f"{fullname} cannot be loaded while your own work is being checked")
        return None


def _answer_functions() -> Iterator[types.FunctionType]:
    """Functions, methods and properties defined in the loaded answer modules."""
    for name in ANSWER_MODULES:
        module = sys.modules.get(name)
        if module is None:
            continue
        filename = getattr(module, "__file__", None)
        for obj in list(vars(module).values()):
            members = vars(obj).values() if isinstance(obj, type) and obj.__module__ == name else [obj]
            for member in members:
                if isinstance(member, property):
                    candidates = [member.fget, member.fset]
                elif isinstance(member, (staticmethod, classmethod)):
                    candidates = [member.__func__]
                else:
                    candidates = [member]
                for fn in candidates:
                    if isinstance(fn, types.FunctionType) and fn.__code__.co_filename == filename:
                        yield fn


@contextlib.contextmanager
def own_work(task: str | None = None) -> Iterator[None]:
    """Switch off the parts of ``nclab`` that compute answers, for the duration of a block.

    Inside the block every function, method and property defined in :data:`ANSWER_MODULES`
    raises ``PermissionError`` (their code objects are swapped, so names imported earlier with
    ``from nclab.theory import ...`` are switched off too), and those modules cannot be loaded
    or reloaded. numpy, scipy, torch and :mod:`nclab.data` stay available. The assignments'
    tests call a student's function inside this block, so an answer that merely calls the
    library fails with a message that says so. It is a guard against shortcuts, not a sandbox:
    code that copies the library's source gets through (a reader of the notebook sees it).

    Parameters
    ----------
    task : str, optional
        Named in the error message.
    """
    what = f"Task {task} asks" if task is not None else "this task asks"
    swapped: list[tuple[types.FunctionType, types.CodeType]] = []
    blocker = _BlockAnswerImports()
    consts = _switched_off.__code__.co_consts
    try:
        for fn in _answer_functions():
            if any(fn is done for done, _ in swapped):
                continue
            name = f"{fn.__module__}.{fn.__qualname__}"
            message = f"{name} is switched off while your code is checked: {what} for your own computation (numpy is fine)."
            code = _switched_off.__code__.replace(
                co_consts=tuple(message if c == "MESSAGE" else c for c in consts), co_name=fn.__name__, co_qualname=fn.__qualname__
            )
            try:
                original, fn.__code__ = fn.__code__, code
            except ValueError:  # a closure: its code cannot be swapped for one without free variables
                continue
            swapped.append((fn, original))
        sys.meta_path.insert(0, blocker)
        yield
    finally:
        if blocker in sys.meta_path:
            sys.meta_path.remove(blocker)
        for fn, original in reversed(swapped):
            fn.__code__ = original


class _Wrong(Exception):
    """Raised inside a checker to stop at the first problem found."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


def _run(body: Callable[[], None], *, task: str | None, success: str, hint: str | None = None) -> Feedback:
    """Run a checker body; a :class:`_Wrong` becomes a failing Feedback."""
    task = None if task is None else str(task)
    try:
        body()
    except _Wrong as wrong:
        return Feedback(False, wrong.message, task, wrong.hint if wrong.hint is not None else hint)
    return Feedback(True, success, task, None)


# --------------------------------------------------------------------------- conversion


def _to_numpy(answer: Any) -> Any:
    """Torch tensors to numpy; everything else unchanged (never imports torch)."""
    if _validate.is_tensor(answer):
        return answer.detach().cpu().numpy()
    return answer


def _type_name(x: Any) -> str:
    return type(x).__name__


def _as_array(answer: Any, what: str, shape: tuple[int, ...], shape_hints: dict | None = None) -> np.ndarray:
    """The answer as a float array of the given shape, or a :class:`_Wrong` that says why not."""
    expected = "x".join(str(s) for s in shape)
    if answer is None:
        raise _Wrong(f"Your answer is None, not {what}.", "Did your function forget to `return` its result, or the cell to assign the variable?")
    if answer is NotImplemented or answer is Ellipsis:
        raise _Wrong(f"Your answer is {answer!r}, not {what}.", "Replace the placeholder with your computation.")
    if isinstance(answer, (str, bytes, dict, set, frozenset)):
        raise _Wrong(
            f"Wrong type: {what} should be a numpy array (or nested list of numbers) of shape ({expected}); got a {_type_name(answer)}.",
            "Build it with numpy, e.g. np.array(...), np.eye(...), np.diag(...).",
        )
    answer = _to_numpy(answer)
    try:
        arr = np.asarray(answer)
    except Exception:  # ragged lists and similar
        raise _Wrong(f"Wrong type: {what} could not be read as an array of numbers (got a {_type_name(answer)}).", "Check that every row has the same length.") from None
    if arr.dtype == object or arr.dtype.kind in "USV":
        raise _Wrong(f"Wrong type: {what} should contain numbers only; got an array of {arr.dtype} ({_type_name(answer)}).", "Check that every row has the same length and holds plain numbers.")
    if arr.dtype.kind == "c":
        raise _Wrong(f"Wrong type: {what} should be real; your array has complex entries.", "Take the real part only if the imaginary part is round-off, e.g. np.real(...).")
    arr = arr.astype(float)
    if arr.shape != tuple(shape):
        hint = None
        if shape_hints and arr.shape in shape_hints:
            hint = shape_hints[arr.shape]
        elif arr.size == int(np.prod(shape)):
            hint = f"It has the right number of entries: reshape it, e.g. np.reshape(answer, {tuple(shape)})."
        got = "a single number" if arr.ndim == 0 else f"shape {arr.shape}"
        raise _Wrong(f"Wrong shape: {what} should have shape {tuple(shape)}; got {got}.", hint)
    bad_nan = np.argwhere(np.isnan(arr))
    if bad_nan.size:
        raise _Wrong(f"NaN in {what} at {_index_list(bad_nan, arr.ndim)}.", "NaN comes from 0/0, the square root of a negative number, or an undefined variable value; print the intermediate results.")
    bad_inf = np.argwhere(np.isinf(arr))
    if bad_inf.size:
        raise _Wrong(f"Infinite values in {what} at {_index_list(bad_inf, arr.ndim)}.", "Look for a division by zero.")
    return arr


def _as_scalar(answer: Any, what: str) -> float:
    if answer is None:
        raise _Wrong(f"Your answer is None, not {what}.", "Did your function forget to `return` its result, or the cell to assign the variable?")
    if isinstance(answer, bool) or isinstance(answer, (str, bytes, dict, set, list, tuple)):
        raise _Wrong(f"Wrong type: {what} should be one number (a float); got a {_type_name(answer)}.")
    answer = _to_numpy(answer)
    arr = np.asarray(answer)
    if arr.dtype.kind not in "iuf":
        raise _Wrong(f"Wrong type: {what} should be one real number (a float); got a {_type_name(answer)}.")
    if arr.size != 1:
        raise _Wrong(f"Wrong type: {what} should be one number; got an array of shape {arr.shape}.", "Pick the entry you need, or use float(...).")
    v = float(arr.reshape(()))
    if math.isnan(v):
        raise _Wrong(f"Your answer ({what}) is NaN.", "NaN comes from 0/0 or the square root (or fractional power) of a negative number.")
    if math.isinf(v):
        raise _Wrong(f"Your answer ({what}) is infinite.", "Look for a division by zero.")
    return v


def _index_list(idx: np.ndarray, ndim: int, limit: int = 6) -> str:
    """Positions as the book numbers them, from 1: "entry 3", "entries (1, 2), (2, 1)"."""
    items = [str(int(i[0]) + 1) if ndim == 1 else str(tuple(int(j) + 1 for j in i)) for i in idx[:limit]]
    more = f" and {len(idx) - limit} more" if len(idx) > limit else ""
    word = "entry" if len(idx) == 1 else "entries"
    where = "counted from 1" if ndim == 1 else "(row, column), counted from 1"
    return f"{word} {', '.join(items)}{more} ({where})"


# --------------------------------------------------------------------------- comparison


def _close(a: np.ndarray, b: np.ndarray, rtol: float, atol: float) -> bool:
    if np.shape(a) != np.shape(b):
        return False
    scale = max(float(np.max(np.abs(b))) if np.size(b) else 0.0, 1e-300)
    return bool(np.allclose(a, b, rtol=rtol, atol=atol * scale))


def _factor_text(alpha: float) -> str:
    if alpha > 0:
        return f"too {'large' if alpha > 1 else 'small'} by a factor of about {alpha if alpha > 1 else 1 / alpha:.3g}"
    return f"with the wrong sign and about {-alpha:.3g} times as large"


def _compare_array(
    a: np.ndarray,
    expected: np.ndarray,
    what: str,
    *,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    mistakes: Sequence[tuple[np.ndarray, str, str | None]] = (),
    structure: Sequence[Callable[[np.ndarray], tuple[str, str | None] | None]] = (),
    order_hint: str = "",
    hint: str | None = None,
) -> None:
    """Raise :class:`_Wrong` with the most specific diagnosis of ``a`` against ``expected``."""
    if _close(a, expected, rtol, atol):
        return
    for candidate, message, mhint in mistakes:
        if _close(a, np.asarray(candidate, dtype=float), rtol, atol):
            raise _Wrong(message, mhint if mhint is not None else hint)
    if a.ndim == 2 and not _close(expected, expected.T, rtol, atol) and _close(a, expected.T, rtol, atol):
        raise _Wrong(f"Transposed: the rows and columns of {what} are swapped.", "Check which index runs over rows (the first) and which over columns.")
    if a.ndim == 1 and _close(np.sort(a), np.sort(expected), rtol, atol):
        raise _Wrong(f"Wrong order: the values in {what} are right, but not in the right order.", order_hint or hint)
    e_norm2 = float(np.sum(expected**2))
    if e_norm2 > 0 and np.any(a != 0):
        alpha = float(np.sum(a * expected) / e_norm2)
        if abs(alpha) > 1e-12 and _close(a, alpha * expected, rtol, atol):
            if abs(alpha + 1) < 1e-6:
                raise _Wrong(f"Wrong sign: your answer ({what}) is minus the right one.", hint)
            raise _Wrong(f"Wrong scaling: your answer ({what}) is a constant multiple of the right one, {_factor_text(alpha)}.", f"Check the normalisation. {hint or ''}".strip())
    if not np.any(a) and np.any(expected):
        raise _Wrong(f"Wrong entries: your answer ({what}) is all zeros.", hint)
    for test in structure:
        found = test(a)
        if found is not None:
            raise _Wrong(found[0], found[1] if found[1] is not None else hint)
    scale = max(float(np.max(np.abs(expected))), 1e-300)
    wrong = np.argwhere(~np.isclose(a, expected, rtol=rtol, atol=atol * scale))
    total = a.size
    raise _Wrong(f"Wrong entries in {what} at {_index_list(wrong, a.ndim)}; {len(wrong)} of {total} entries are wrong.", hint)


def _compare_scalar(
    v: float,
    expected: float,
    what: str,
    *,
    rtol: float = 1e-6,
    mistakes: Sequence[tuple[float, str, str | None]] = (),
    hint: str | None = None,
) -> None:
    if math.isclose(v, expected, rel_tol=rtol, abs_tol=1e-300):
        return
    for candidate, message, mhint in mistakes:
        if math.isclose(v, candidate, rel_tol=rtol, abs_tol=1e-300):
            raise _Wrong(message, mhint if mhint is not None else hint)
    if expected > 0 and v < 0:
        raise _Wrong(f"Wrong sign: {what} should be positive; your value is negative.", hint)
    raise _Wrong(f"Not quite: your value of {what} is too {'large' if v > expected else 'small'}.", hint)


# --------------------------------------------------------------------------- balanced


def check_etf_gram(answer: Any, K: int, *, task: str | None = None) -> Feedback:
    """Gram matrix of a simplex ETF of ``K`` unit vectors, shape (K, K).

    Parameters
    ----------
    answer : array_like, shape (K, K)
    K : int
        Number of vectors (classes), >= 2.
    task : str, optional
        Label of the task, shown in the feedback.
    """
    expected = theory.simplex_etf_gram(K)

    def symmetric(a):
        if not np.allclose(a, a.T):
            return ("Your matrix is not symmetric, but a Gram matrix G[i, j] = <v_i, v_j> always is.", None)

    def unit(a):
        if not np.allclose(np.diag(a), 1.0):
            bad = np.flatnonzero(~np.isclose(np.diag(a), 1.0))
            return (f"The diagonal should hold the squared lengths of unit vectors; it is wrong at {_index_list(bad[:, None], 1)}.", None)

    def sums(a):
        if not np.allclose(a.sum(axis=1), 0.0, atol=1e-9):
            return ("Each row of your matrix should sum to zero, because the vectors of a simplex ETF sum to the zero vector.", "Equal pairwise angles plus a zero sum fix the off-diagonal value.")

    def body():
        a = _as_array(answer, "the Gram matrix", (K, K))
        _compare_array(
            a,
            expected,
            "the Gram matrix",
            mistakes=[(np.eye(K), "This is the Gram matrix of an orthonormal frame (orthogonal vectors), not of a simplex ETF.", "In a simplex ETF the K vectors sum to zero, so their pairwise inner products are negative.")],
            structure=[symmetric, unit, sums],
            hint="The vectors have unit length, equal pairwise angles, and sum to zero.",
        )

    return _run(body, task=task, success=f"Correct: this is the Gram matrix of a simplex ETF of {K} unit vectors.")


# --------------------------------------------------------------------------- the target and its spectrum


def check_target(answer: Any, n: Sequence[float], bias: bool = True, *, task: str | None = None) -> Feedback:
    """The target ``Yhat = (I - n 1^T / N) diag(sqrt(n))`` (with bias) or ``diag(sqrt(n))``, (K, K)."""
    counts = check_counts(n)
    K, N = counts.size, counts.sum()
    expected = theory.target(counts, bias)
    D = np.diag(np.sqrt(counts))
    name = "Yhat" if bias else "the target D"
    mistakes = [
        (np.diag(counts), "You used diag(n); the target uses the square roots of the counts, diag(sqrt(n)).", None),
    ]
    if bias:
        C = np.eye(K) - np.outer(counts, np.ones(K)) / N
        mistakes += [
            ((np.eye(K) - np.outer(counts, np.ones(K)) / N) @ np.diag(counts), "You used diag(n) where diag(sqrt(n)) belongs.", None),
            (C, "You computed only the centring matrix I - n 1^T / N; multiply it by D = diag(sqrt(n)).", None),
            (D, "This is D = diag(sqrt(n)), the target without a bias; with a bias the target is centred first.", None),
            ((np.eye(K) - np.ones((K, K)) / K) @ D, "You centred with 1 1^T / K (the balanced centring); under imbalance the centring uses the counts, n 1^T / N.", None),
            ((np.eye(K) - np.outer(np.ones(K), counts) / N) @ D, "The outer product is the wrong way round: you used 1 n^T / N; the centring is I - n 1^T / N.", None),
            (D @ C, "The factors are in the wrong order: you computed D (I - n 1^T / N); the target is (I - n 1^T / N) D.", None),
        ]

    def col_sums(a):
        if bias and not np.allclose(a.sum(axis=0), 0.0, atol=1e-9 * np.sqrt(N)):
            return ("The columns of Yhat should sum to zero (1^T Yhat = 0); yours do not.", None)

    def body():
        a = _as_array(answer, name, (K, K))
        _compare_array(
            a,
            expected,
            name,
            mistakes=mistakes,
            structure=[col_sums],
            hint="Yhat = (I - n 1^T / N) D with D = diag(sqrt(n)), N = sum(n)." if bias else "Without a bias the target is D = diag(sqrt(n)).",
        )

    return _run(body, task=task, success=f"Correct: this is {'Yhat' if bias else 'the target D'} for these counts.")


def check_singular_values(answer: Any, n: Sequence[float], bias: bool = True, *, task: str | None = None) -> Feedback:
    """Singular values of the target (``Yhat`` with bias, ``D`` without), descending, shape (K,)."""
    counts = check_counts(n)
    K = counts.size
    expected = theory.singular_values(counts, bias)
    root_sorted = np.sqrt(np.sort(counts)[::-1])
    mistakes: list = [(expected**2, "These look like the squared singular values (eigenvalues of Yhat Yhat^T); take square roots.", None)]
    if bias:
        mistakes.append((root_sorted, "These are the square roots of the counts, the singular values of D (the target without a bias); Yhat is centred first.", None))
    shape_hints = {(K - 1,): "Yhat is K x K, so it has K singular values; the last one is exactly 0: include it."} if bias else None

    def body():
        a = _as_array(answer, "the singular values", (K,), shape_hints)
        _compare_array(
            a,
            expected,
            "the singular values",
            atol=1e-7,
            mistakes=mistakes,
            order_hint="List the singular values in descending order, e.g. np.sort(s)[::-1] (np.linalg.svd already does this).",
            hint="Use np.linalg.svd(T, compute_uv=False) on the target T.",
        )

    return _run(body, task=task, success="Correct singular values, in descending order.")


def check_interlacing_bounds(answer: Any, n: Sequence[float], *, task: str | None = None) -> Feedback:
    """Interlacing bounds ``(lower, upper)`` on the singular values of ``Yhat``, each shape (K,).

    ``lower[i] = sqrt(n_(i+1))``, ``upper[i] = sqrt(n_(i))`` with counts sorted descending, and
    0 in both for the last index (where ``s_K = 0``).
    """
    counts = check_counts(n)
    K = counts.size
    lower, upper = theory.interlacing_bounds(counts)

    def body():
        if answer is None or isinstance(answer, (str, bytes, dict, set)) or not hasattr(answer, "__len__") or len(answer) != 2:
            raise _Wrong(
                f"Wrong type: give a pair (lower, upper) of two arrays of length {K}; got {'None' if answer is None else 'a ' + _type_name(answer)}"
                + (f" of length {len(answer)}" if hasattr(answer, "__len__") and not isinstance(answer, (str, bytes)) else "")
                + ".",
                "return lower, upper",
            )
        lo = _as_array(answer[0], "the lower bound", (K,))
        up = _as_array(answer[1], "the upper bound", (K,))
        if _close(lo, upper, 1e-6, 1e-9) and _close(up, lower, 1e-6, 1e-9):
            raise _Wrong("Lower and upper bounds are swapped.", "The larger count bounds s_i from above.")
        unsorted_lo = np.append(np.sqrt(counts[1:]), 0.0)
        unsorted_up = np.append(np.sqrt(counts[:-1]), 0.0)
        if not np.all(np.diff(counts) <= 0) and _close(lo, unsorted_lo, 1e-6, 1e-9) and _close(up, unsorted_up, 1e-6, 1e-9):
            raise _Wrong("You used the counts in the given order; interlacing needs them sorted in descending order first.", "np.sort(n)[::-1]")
        if np.any(lo > up + 1e-12):
            bad = np.flatnonzero(lo > up + 1e-12)
            raise _Wrong(f"Your lower bound exceeds your upper bound at {_index_list(bad[:, None], 1)}.", None)
        hint = "Sort the counts in descending order; s_i lies between sqrt(n_(i+1)) and sqrt(n_(i)); the last entry of both is 0."
        _compare_array(lo, lower, "the lower bound", mistakes=[(lower**2, "Your lower bound is in units of counts; the bounds on s use square roots of the counts.", None)], hint=hint)
        _compare_array(up, upper, "the upper bound", mistakes=[(upper**2, "Your upper bound is in units of counts; the bounds on s use square roots of the counts.", None)], hint=hint)

    return _run(body, task=task, success="Correct interlacing bounds.")


# --------------------------------------------------------------------------- collapse


def _plural(noun: str) -> str:
    return "classes" if noun == "class" else noun + "s"


def _parse_index_set(answer: Any, K: int, noun: str) -> set[int]:
    """Numbers 1..K from a set/list/tuple/array of ints, or from a boolean mask of length K."""
    example = "{2, 4}"
    if answer is None:
        raise _Wrong(f"Your answer is None, not a set of {noun} numbers.", "Use set() (or []) if nothing collapses.")
    answer = _to_numpy(answer)
    if isinstance(answer, (bool, np.bool_)):
        raise _Wrong(
            f"Wrong type: give the collapsed {_plural(noun)} as a set of numbers (e.g. {example}) or as a boolean mask of length {K}; got a single bool.",
            f"A mask has one True/False per {noun}.",
        )
    if isinstance(answer, numbers.Integral):
        raise _Wrong(f"Wrong type: give a set or list of numbers, e.g. {{{int(answer)}}} rather than {int(answer)}.", None)
    if isinstance(answer, (str, bytes, dict)) or not isinstance(answer, Iterable):
        raise _Wrong(f"Wrong type: give the collapsed {_plural(noun)} as a set of numbers (e.g. {example}) or as a boolean mask of length {K}; got a {_type_name(answer)}.", None)
    items = list(answer)
    if items and all(isinstance(x, (bool, np.bool_)) for x in items):
        if len(items) != K:
            raise _Wrong(f"Wrong shape: a boolean mask needs one entry per {noun} ({K}); got {len(items)}.", None)
        return {i + 1 for i, x in enumerate(items) if x}
    out: list[int] = []
    for x in items:
        if isinstance(x, (bool, np.bool_)):
            raise _Wrong("Your answer mixes booleans and numbers; use either a boolean mask or a set of numbers.", None)
        if isinstance(x, numbers.Real) and float(x).is_integer():
            out.append(int(x))
        else:
            raise _Wrong(f"{_plural(noun).capitalize()} are numbered by whole numbers; got {x!r}.", f"{_plural(noun).capitalize()} are numbered 1, 2, ..., {K}.")
    if len(set(out)) != len(out):
        raise _Wrong("Your answer lists a number more than once.", None)
    bad = [i for i in out if not 1 <= i <= K]
    if bad:
        if bad == [0]:
            raise _Wrong(f"There is no {noun} 0: {_plural(noun)} are numbered from 1 to {K}, as in the book's figures (not from 0 as Python indexes arrays).", f"Add 1 to each Python index.")
        raise _Wrong(f"{noun.capitalize()} {bad[0]} is out of range: {_plural(noun)} are numbered 1 to {K}.", None)
    return set(out)


def check_collapsed_classes(
    answer: Any,
    n: Sequence[float],
    lam_W: float | Sequence[float],
    lam_H: float,
    L: int = 1,
    bias: bool = False,
    *,
    task: str | None = None,
) -> Feedback:
    """Which classes (no bias) or modes (with bias) vanish at the global minimiser.

    Numbered from 1, as in the book's figures. Without a bias, class ``k`` collapses (its
    class mean and classifier row vanish) unless ``sqrt(n_k) > s_thr``. With a bias the
    question is about modes: mode ``i`` (in the order of the descending singular values of
    ``Yhat``) survives iff ``s_i > s_thr``, so the null mode ``K`` (``s = 0``) always vanishes.
    (For ``L = 1`` a singular value exactly at the threshold gives ``x = 0``: the strict rule.)

    Parameters
    ----------
    answer : set, list, tuple or array of int, or boolean mask of length K
        The numbers (1..K) of the collapsed classes/modes (an empty set if none collapses).
    n, lam_W, lam_H, L, bias
        The problem, as in :func:`nclab.theory.global_minimizer`.
    """
    counts = check_counts(n)
    K = counts.size
    g = theory.global_minimizer(counts, lam_W, lam_H, L=L, bias=bias)
    # with a bias: modes in the order of the descending singular values; without: classes in
    # their own order (the target D is diagonal, class k is the mode with s = sqrt(n_k))
    s_vec = g.s if bias else np.sqrt(counts)
    x_vec = g.x if bias else theory.scalar_minimizer(s_vec, counts.sum(), g.c, g.L)
    expected = set(int(i) + 1 for i in np.flatnonzero(x_vec == 0))
    noun = "mode" if bias else "class"
    rule = (
        "mode i survives iff s_i > s_thr, where s_1 >= s_2 >= ... are the singular values of Yhat"
        if bias
        else "class k survives iff sqrt(n_k) > s_thr"
    )
    hint = f"Compute s_thr from N and c = (lam_H * prod lam_W)^(1/(L+1)); {rule}."

    def body():
        got = _parse_index_set(answer, K, noun)
        if got == expected:
            return
        if expected and got == {i - 1 for i in expected}:
            raise _Wrong(f"Your numbers are shifted by one: number the {_plural(noun)} from 1, as the book does, not from 0.", "Add 1 to each Python index.")
        if got == set(range(1, K + 1)) - expected:
            raise _Wrong(f"You listed the {_plural(noun)} that survive; the question asks for the ones that collapse.", None)
        if bias and got == expected - {K}:
            raise _Wrong(f"You left out the last mode: it has singular value s = 0, so it never survives; include mode {K}.", None)
        if L > 1:
            naive = set(int(i) + 1 for i in np.flatnonzero(s_vec <= counts.sum() * g.c))
            if got == naive and naive != expected:
                raise _Wrong("You used the one-layer rule s <= N c; for L >= 2 the threshold s_thr is larger than N c.", "s_thr = L (N c)^((L+1)/(2L)) (L-1)^(-(L-1)/(2L)).")
        extra, missing = len(got - expected), len(expected - got)
        parts = []
        if extra:
            parts.append(f"{extra} of the {_plural(noun)} you listed {'does' if extra == 1 else 'do'} not collapse")
        if missing:
            parts.append(f"{missing} collapsing {noun if missing == 1 else _plural(noun)} {'is' if missing == 1 else 'are'} missing from your answer")
        raise _Wrong("Not quite: " + " and ".join(parts) + ".", hint)

    what = "modes" if bias else "classes"
    return _run(body, task=task, success=f"Correct: you found exactly the {what} that collapse.")


def check_class_mean_norms(
    answer: Any,
    n: Sequence[float],
    lam_W: float | Sequence[float],
    lam_H: float,
    L: int = 1,
    bias: bool = False,
    *,
    task: str | None = None,
) -> Feedback:
    """Lengths ``||m_k||`` of the optimal class means, in class order, shape (K,)."""
    counts = check_counts(n)
    K = counts.size
    g = theory.global_minimizer(counts, lam_W, lam_H, L=L, bias=bias)
    expected = np.sqrt(np.maximum(np.diag(g.M_gram), 0.0))
    mistakes = [
        (expected**2, "These are the squared lengths ||m_k||^2; take square roots.", None),
        (expected * np.sqrt(counts), "These are the lengths of the columns of M D (each m_k times sqrt(n_k)); divide by sqrt(n_k).", None),
    ]
    hint = "||m_k||^2 is the diagonal of M^T M; without a bias M D = R diag(zeta) for orthonormal R, so ||m_k|| = zeta_k / sqrt(n_k)."

    def body():
        a = _as_array(answer, "the vector of lengths", (K,))
        if np.any(a < 0):
            raise _Wrong("Lengths cannot be negative.", None)
        _compare_array(a, expected, "the vector of lengths", rtol=1e-5, atol=1e-8, mistakes=mistakes, order_hint="Keep the class order: entry k is the length of the mean of class k.", hint=hint)

    return _run(body, task=task, success="Correct lengths of the class means (collapsed classes have length 0).")


# --------------------------------------------------------------------------- NC1


def _nc1_cases() -> list[tuple[str, np.ndarray, np.ndarray, int]]:
    """Test inputs of :func:`check_nc1`: (description, H (d, N), labels (N,), K).

    Public: they are in nclab's source. An autograder's hidden tests use inputs of their own.
    """
    rng = np.random.default_rng(20241126)
    cases = []

    def make(counts, d, noise, shuffle, desc):
        K = len(counts)
        labels = np.repeat(np.arange(K), counts)
        if shuffle:
            labels = rng.permutation(labels)
        means = rng.standard_normal((d, K)) * 2.0
        H = means[:, labels] + noise * rng.standard_normal((d, labels.size))
        cases.append((desc, H, labels, K))

    make([10, 10, 10], 5, 0.5, False, "balanced, K=3, d=5")
    make([30, 12, 6, 6], 6, 0.3, False, "imbalanced counts [30, 12, 6, 6], d=6")
    make([8, 15, 7], 4, 1.0, True, "labels in shuffled order, K=3")
    make([12, 9, 7, 5, 4], 3, 0.4, True, "fewer feature dimensions than classes (d=3, K=5)")
    make([6, 6, 6], 4, 0.0, False, "fully collapsed features (NC1 = 0)")
    return cases


def check_nc1(student_fn: Callable[..., Any], *, task: str | None = None) -> Feedback:
    """Run a student's ``nc1(H, labels, K)`` on five test inputs against :func:`nclab.metrics.nc1`.

    The function receives ``H`` (numpy, shape (d, N), samples in columns), ``labels`` (numpy
    int array, shape (N,), values 0..K-1, not necessarily sorted) and ``K``, and must return
    ``NC1 = tr(Sigma_W Sigma_B^+) / K`` in the unweighted convention (global mean = mean of the
    class means, ``Sigma_B`` with weights ``1/K``, ``Sigma_W`` with ``1/N``). The label value
    ``k - 1`` stands for class ``k``. The function runs inside :func:`own_work`.
    """
    from . import metrics

    def body():
        if not callable(student_fn):
            raise _Wrong(f"Wrong type: pass your function itself (e.g. check_nc1(my_nc1)), not its result; got a {_type_name(student_fn)}.", None)
        cases = _nc1_cases()
        ref = [metrics.nc1(H, labels, K) for _, H, labels, K in cases]
        wref = [metrics.nc1(H, labels, K, weighted=True) for _, H, labels, K in cases]
        got = []
        for desc, H, labels, K in cases:
            try:
                with own_work(task):
                    value = student_fn(H.copy(), labels.copy(), K)
            except NotImplementedError:
                raise _Wrong("Your function is not implemented yet: it raises NotImplementedError.", "Replace the `raise NotImplementedError(...)` line with your code.") from None
            except np.linalg.LinAlgError as exc:
                raise _Wrong(
                    f"Your function raised LinAlgError ({exc}) on the test case '{desc}'.",
                    "Sigma_B has rank at most K-1, so it is singular: use the pseudo-inverse np.linalg.pinv, not np.linalg.inv.",
                ) from None
            except Exception as exc:  # noqa: BLE001 - any student error becomes feedback
                raise _Wrong(
                    f"Your function raised {type(exc).__name__}: {exc} (test case '{desc}').",
                    "H has shape (d, N) with samples in columns; labels has shape (N,) with values 0..K-1.",
                ) from None
            got.append(_as_scalar(value, f"the NC1 value returned for the test case '{desc}'"))
        got_a, ref_a, wref_a = np.array(got), np.array(ref), np.array(wref)
        Ks = np.array([c[3] for c in cases], dtype=float)
        descs = [c[0] for c in cases]

        def close(x, y):
            return bool(np.allclose(x, y, rtol=1e-6, atol=1e-10))

        if close(got_a, ref_a):
            return
        if close(got_a, wref_a):
            raise _Wrong(
                "You used the sample-weighted convention (global mean weighted by class counts, weights n_k/N in Sigma_B).",
                "This exercise uses the unweighted one: global mean = plain average of the class means, Sigma_B = (1/K) sum_k (m_k - mu_G)(m_k - mu_G)^T.",
            )
        if close(got_a, Ks * ref_a):
            raise _Wrong("Your values are K times too large: did you forget to divide the trace by K?", None)
        if close(got_a * Ks, ref_a):
            raise _Wrong("Your values are K times too small: did you divide by K twice?", None)
        nz = ref_a > 0
        if np.any(nz):
            ratio = got_a[nz] / ref_a[nz]
            if np.allclose(ratio, ratio[0], rtol=1e-6) and np.allclose(got_a[~nz], 0, atol=1e-10):
                raise _Wrong(f"Wrong scaling: your values are a constant multiple of the right ones, {_factor_text(float(ratio[0]))}.", "Check the normalisations: 1/N in Sigma_W, 1/K in Sigma_B and in front of the trace.")
        wrong = [descs[i] for i in range(len(descs)) if not np.isclose(got_a[i], ref_a[i], rtol=1e-6, atol=1e-10)]
        raise _Wrong(
            f"Right on {len(descs) - len(wrong)} of {len(descs)} test cases; wrong on: " + "; ".join(wrong) + ".",
            "Sigma_W = (1/N) sum_i (h_i - m_{y_i})(h_i - m_{y_i})^T; mu_G = mean of the class means; Sigma_B = (1/K) sum_k (m_k - mu_G)(m_k - mu_G)^T; NC1 = tr(Sigma_W pinv(Sigma_B)) / K.",
        )

    return _run(body, task=task, success=f"Correct: your NC1 agrees with nclab.metrics.nc1 on all {len(_nc1_cases())} test cases.")


# --------------------------------------------------------------------------- thresholds and the bias


def check_threshold(answer: Any, N: float, c: float, L: int = 1, *, task: str | None = None) -> Feedback:
    """The threshold ``s_thr`` below which a singular value of the target dies, for depth ``L``."""
    expected = np.float64(theory.threshold(N, c, L))  # numpy floats: a slip's value may overflow to inf, not raise
    a = np.float64(N) * c
    with np.errstate(over="ignore"):
        mistakes: list = []
        if L > 1:
            mistakes.append((a, "This is N c, the threshold for L = 1; with L >= 2 layers the threshold is larger.", "s_thr = L (N c)^((L+1)/(2L)) (L-1)^(-(L-1)/(2L))."))
            mistakes.append((expected * (L - 1) / L, "This is the value the singular value x jumps to at the threshold, s_thr (L-1)/L, not the threshold on s itself.", None))
            p = (L - 1) / (L + 1)
            x_min = (p * a) ** (1 / (1 + p))
            mistakes.append(
                (
                    x_min + a * x_min ** (-p),
                    "This is where a positive stationary point first appears. There it is only a local minimum; the threshold is where it becomes as good as x = 0.",
                    "Solve phi(x; s) = phi(0; s) together with phi'(x; s) = 0.",
                )
            )
            mistakes.append((a ** ((L + 1) / (2 * L)), "You have the right power of N c but are missing the constant factor L (L-1)^(-(L-1)/(2L)).", None))
        mistakes.append((expected**2, "Your value looks squared: the threshold is on the singular value s, not on s^2.", None))

    def body():
        v = _as_scalar(answer, "the threshold")
        _compare_scalar(v, expected, "the threshold", mistakes=mistakes, hint="For L = 1 it is N c; for L >= 2 compare phi at its positive stationary point with phi(0).")

    return _run(body, task=task, success=f"Correct threshold for depth L = {L}.")


def check_critical_lambda(
    answer: Any,
    n: Sequence[float],
    L: int = 1,
    bias: bool = True,
    mode: int | None = None,
    *,
    task: str | None = None,
) -> Feedback:
    """Common strength ``lam = lam_W = lam_H`` above which a mode dies.

    ``mode=None``: the answer is the array of critical values for all modes (K,), aligned with
    the descending singular values (0 for a null mode). ``mode=i``: one number, for mode ``i``,
    numbered from 1 as in the book (mode 1 has the largest singular value).

    Raises
    ------
    ValueError
        If ``mode`` is not a whole number from 1 to K.
    """
    counts = check_counts(n)
    K, N = counts.size, counts.sum()
    L = _validate.whole(L, "L (number of linear layers)", 1, _validate.MAX_DEPTH)
    if mode is not None:
        i = whole(mode, "mode (numbered from 1)", 1) - 1
        if i >= K:
            raise ValueError(f"mode (numbered from 1) must be at most K = {K}; got {mode!r}")
    crit = theory.critical_lambda(counts, L=L, bias=bias)
    s = theory.singular_values(counts, bias)

    def body():
        if mode is None:
            arr = _as_array(answer, "the critical values", (K,))
            _compare_array(arr, crit, "the critical values", mistakes=[(crit**2, "Your values look squared.", None)], order_hint="Align them with the singular values in descending order.", hint="Set s_i = s_thr with c = lam and solve for lam.")
            return
        v = _as_scalar(answer, "the critical value of lambda")
        mistakes = [
            (crit[i] ** 2, "Your value looks squared: with lam_W = lam_H = lam, c = lam (not lam^2).", None),
            (math.sqrt(crit[i]), "Your value looks like a square root: with lam_W = lam_H = lam, c = (lam * lam)^(1/2) = lam.", None),
            (s[i] / N**2, "You divided by N twice: s_thr = N c for L = 1.", None),
        ]
        if L > 1:
            mistakes.append((s[i] / N, "This is the one-layer answer s_i / N; for L >= 2 use the deeper threshold.", None))
        _compare_scalar(v, float(crit[i]), "the critical value of lambda", mistakes=mistakes, hint="With all strengths equal to lam, c = lam; set s_i = s_thr(N, c, L) and solve for lam.")

    what = "for every mode" if mode is None else f"for mode {mode}"
    return _run(body, task=task, success=f"Correct critical strength {what}.")


def check_optimal_bias(answer: Any, n: Sequence[float], *, task: str | None = None) -> Feedback:
    """The optimal (unregularised) bias of the MSE model, shape (K,), in class order."""
    counts = check_counts(n)
    K, N = counts.size, counts.sum()
    expected = counts / N
    mistakes: list = [
        (counts, "These are the counts themselves; the optimal bias is a fraction of the samples.", "Divide by the total number of samples."),
        (np.sqrt(counts) / np.sqrt(counts).sum(), "You normalised sqrt(n); the bias uses the counts themselves.", None),
        (np.zeros(K), "A zero bias is not optimal: the bias absorbs the average target of each class.", "Minimise the loss over b alone, with W H fixed at its optimum (the features have weighted mean zero)."),
    ]
    if not np.allclose(counts, counts[0]):
        mistakes.insert(0, (np.full(K, 1 / K), "1/K is the balanced answer; under imbalance the optimal bias depends on the counts.", None))

    def body():
        a = _as_array(answer, "the bias", (K,))
        _compare_array(a, expected, "the bias", mistakes=mistakes, order_hint="Keep the class order: entry k is the bias of class k.", hint="Set the derivative of the loss with respect to b to zero.")

    return _run(body, task=task, success="Correct optimal bias.")
