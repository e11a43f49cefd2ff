"""Count profiles and label matrices."""

import numpy as np
import pytest

from nclab import data


def test_balanced_and_step_profiles():
    assert data.balanced(3, 7).tolist() == [7, 7, 7]
    assert data.step(2, 100, 3, 10).tolist() == [100, 100, 10, 10, 10]


def test_long_tailed_has_requested_ratio_and_is_non_increasing():
    n = data.long_tailed(10, 500, 100)
    assert n[0] == 500 and n[-1] == 5
    assert np.all(np.diff(n) <= 0)
    assert data.imbalance_ratio(n) == pytest.approx(100)
    # geometric decay: consecutive ratios are all close to 100^(1/9)
    assert np.allclose(n[:-1] / n[1:], 100 ** (1 / 9), rtol=0.1)


def test_profile_dispatch():
    assert data.profile("balanced", 4, 50).tolist() == [50] * 4
    assert data.profile("step", 5, 100, 10).tolist() == [100, 100, 100, 10, 10]
    assert np.array_equal(data.profile("long-tailed", 6, 100, 10), data.long_tailed(6, 100, 10))
    with pytest.raises(ValueError, match="kind"):
        data.profile("zipf", 4, 50)


def test_labels_and_one_hot_round_trip():
    n = [3, 1, 2]
    y = data.labels_from_counts(n)
    assert y.tolist() == [0, 0, 0, 1, 2, 2]
    Y = data.one_hot(y)
    assert Y.shape == (3, 6)
    assert np.array_equal(Y.sum(axis=0), np.ones(6))
    assert data.counts_from_labels(y).tolist() == n
    # Y Y^T = diag(n), the identity every reduction in the book uses
    assert np.array_equal(Y @ Y.T, np.diag(n))


@pytest.mark.parametrize(
    "bad, match",
    [
        ([], "at least K = 2"),
        ([5], "at least K = 2"),
        ([3, 2.5], "whole numbers"),
        ([3, 0], ">= 1"),
        ([3, -2], ">= 1"),
        ([3, np.nan], "finite"),
        ([3, np.inf], "finite"),
        ([[1, 2], [3, 4]], "one-dimensional"),
        ("abc", "class counts"),
    ],
)
def test_bad_counts_name_the_parameter(bad, match):
    with pytest.raises(ValueError, match=match) as info:
        data.check_counts(bad)
    assert str(info.value).startswith("n ")


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: data.balanced(1, 10), "K must be a whole number >= 2"),
        (lambda: data.balanced(3, 0), "n must be a whole number >= 1"),
        (lambda: data.step(0, 10, 1, 1), "K_A"),
        (lambda: data.long_tailed(4, 100, 0.5), "ratio"),
        (lambda: data.long_tailed(4, 100, float("nan")), "ratio"),
        (lambda: data.one_hot(np.array([0, 3]), 3), r"\[0, 2\]"),
        (lambda: data.one_hot(np.array([0.0, 1.0])), "integer class indices"),
    ],
)
def test_bad_profile_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()
