"""The shared validation layer (nclab._validate): properties over generated values."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nclab import _validate as v

FAST = settings(max_examples=40, deadline=None)


@FAST
@given(st.integers(-10**6, 10**6), st.integers(-100, 100))
def test_whole_accepts_integers_in_range_and_names_the_rest(value, low):
    if value >= low:
        assert v.whole(value, "k", low) == value
        assert v.whole(float(value), "k", low) == value  # 3.0 is a whole number
        assert v.whole(np.int64(value), "k", low) == value
    else:
        with pytest.raises(ValueError, match=rf"k must be a whole number >= {low}"):
            v.whole(value, "k", low)


@FAST
@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6).filter(lambda x: not float(x).is_integer()))
def test_whole_refuses_fractions_rather_than_truncate(value):
    with pytest.raises(ValueError, match="L must be a whole number.*not rounded"):
        v.whole(value, "L", -10**7)


@pytest.mark.parametrize("value", [True, False, np.bool_(True), "2", None, [2], object(), 1 + 0j])
def test_whole_refuses_other_kinds_with_a_type_error(value):
    with pytest.raises(TypeError, match="K must be a whole number") as info:
        v.whole(value, "K", 1)
    assert isinstance(info.value, ValueError)  # also a ValueError: old `except ValueError` keeps working


def test_whole_has_an_upper_bound():
    with pytest.raises(ValueError, match=r"d must be a whole number >= 1 and <= 5"):
        v.whole(6, "d", 1, 5)
    with pytest.raises(ValueError, match="at most"):
        v.whole(10**30, "n", 1)
    with pytest.raises(ValueError, match="not rounded"):
        v.whole(float("inf"), "n", 1)


@FAST
@given(st.floats(allow_nan=True, allow_infinity=True), st.booleans())
def test_real_accepts_exactly_the_finite_numbers_in_range(value, low_open):
    inside = math.isfinite(value) and (value > 0 or (value == 0 and not low_open)) and value <= 10
    if inside:
        assert v.real(value, "lam", low=0.0, high=10.0, low_open=low_open) == value
    else:
        with pytest.raises(ValueError, match="lam must be a finite number"):
            v.real(value, "lam", low=0.0, high=10.0, low_open=low_open)


@pytest.mark.parametrize("value", ["0.1", None, True, [0.1], np.array([0.1, 0.2]), {}])
def test_positive_refuses_non_numbers_with_a_type_error(value):
    with pytest.raises(TypeError, match="lam_H must be a positive finite number"):
        v.positive(value, "lam_H")


@pytest.mark.parametrize("value", ["no", "False", 0, 1, None, 1.0, [True]])
def test_boolean_is_never_truthy(value):
    with pytest.raises(TypeError, match="bias must be True or False"):
        v.boolean(value, "bias")
    assert v.boolean(np.bool_(False), "bias") is False


def test_choice_and_seed():
    assert v.choice("mse", "loss", ("mse", "ce")) == "mse"
    with pytest.raises(ValueError, match="loss must be one of 'mse', 'ce'; got 'l2'"):
        v.choice("l2", "loss", ("mse", "ce"))
    with pytest.raises(TypeError, match="loss"):
        v.choice(None, "loss", ("mse", "ce"))
    assert v.seed(2**32 - 1) == 2**32 - 1
    for bad in (-1, 2**32, 0.5, None):
        with pytest.raises(ValueError, match="seed"):
            v.seed(bad)


@FAST
@given(st.integers(1, 5), st.integers(1, 5), st.integers(0, 24), st.sampled_from([np.nan, np.inf, -np.inf]))
def test_array_names_the_first_non_finite_entry(rows, cols, where, bad):
    a = np.arange(rows * cols, dtype=float).reshape(rows, cols)
    i, j = divmod(where % (rows * cols), cols)
    a[i, j] = bad
    with pytest.raises(ValueError, match=rf"H must be finite; .*first at index \({i}, {j}\)"):
        v.array(a, "H")
    assert v.array(a, "H", allow_nonfinite=True).shape == (rows, cols)


def test_array_shapes_kinds_and_torch():
    with pytest.raises(ValueError, match=r"W must be of shape \(3, any\); got shape \(2, 4\)"):
        v.array(np.zeros((2, 4)), "W", shape=(3, None))
    with pytest.raises(ValueError, match="M must be 2-dimensional"):
        v.array(np.zeros(3), "M", ndim=2)
    with pytest.raises(ValueError, match="must not be empty"):
        v.array([], "s")
    for bad in ("abc", None, [[1, 2], [3]], np.array(["a"]), np.array([1j])):
        with pytest.raises(TypeError, match="x must be an array of"):
            v.array(bad, "x")
    with pytest.raises(ValueError, match="entries >= 0"):
        v.array([1.0, -2.0], "s", low=0.0)
    torch = pytest.importorskip("torch")
    out = v.array(torch.tensor([[1.0, 2.0]], dtype=torch.float32), "H", ndim=2)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    with pytest.raises(ValueError, match="H must be finite"):
        v.finite(torch.tensor([1.0, float("nan")]), "H")


@FAST
@given(st.lists(st.integers(-3, 6), min_size=1, max_size=20), st.integers(2, 6))
def test_labels_are_refused_exactly_outside_0_to_K_minus_1(ys, K):
    if min(ys) < 0:
        with pytest.raises(ValueError, match="labels must be class indices >= 0"):
            v.labels(ys, K=K)
    elif max(ys) >= K:
        with pytest.raises(ValueError, match=rf"labels must lie in \[0, {K - 1}\]"):
            v.labels(ys, K=K)
    else:
        assert v.labels(ys, K=K).tolist() == ys


def test_labels_kinds_and_lengths():
    with pytest.raises(TypeError, match="integer class indices"):
        v.labels([0.0, 1.0])
    with pytest.raises(TypeError, match="integer class indices"):
        v.labels([True, False])
    with pytest.raises(ValueError, match="N = 3 samples, y has 2"):
        v.labels([0, 1], "y", N=3)
    with pytest.raises(ValueError, match="one-dimensional"):
        v.labels([[0, 1]])
    with pytest.raises(ValueError, match="must not be empty"):
        v.labels([])
