"""nclab.checks: chapter checks that fail like asserts and say what went wrong."""

import numpy as np
import pytest

from nclab import theory
from nclab.checks import CheckFailed, ClaimFailed, OutsideRegime, claim, close, regime


def test_claim_passes_silently_and_fails_with_the_claim_and_measurement():
    claim(True, "the optimal bias is n/N")
    claim(np.array([True, True]), "every entry is positive")
    with pytest.raises(ClaimFailed, match=r"Claim failed: the optimal bias is n/N\. Measured: \[0\.5 0\.5\]\."):
        claim(False, "the optimal bias is n/N", measured=np.array([0.5, 0.5]))


def test_claim_failures_are_assertion_errors_for_test_runners():
    assert issubclass(ClaimFailed, AssertionError) and issubclass(OutsideRegime, CheckFailed)
    with pytest.raises(AssertionError):
        claim(np.array([True, False]), "all true")


def test_an_empty_array_is_not_a_passing_claim():
    with pytest.raises(ClaimFailed):
        claim(np.array([], dtype=bool), "something about no entries")


def test_regime_names_the_assumption_the_measurement_and_the_way_back():
    n = [200, 100, 50, 50]
    crit = theory.critical_lambda(n)
    lam = 0.02
    regime(crit[1] < 0.025 < crit[0], "lam lies between the critical values of modes 1 and 2",
           measured="lam = 0.025", fix="pick another lam")
    with pytest.raises(OutsideRegime) as err:
        regime(crit[1] < lam < crit[0], "lam lies between the critical values of modes 1 and 2",
               measured=f"lam = {lam}, critical values {crit[1]:.4f} and {crit[0]:.4f}",
               fix="pick lam in that interval, or read on knowing that mode 2 is gone")
    text = str(err.value)
    assert text.startswith("The text below assumes that lam lies between")
    assert "lam = 0.02, critical values 0.0210 and 0.0298" in text
    assert text.endswith("Pick lam in that interval, or read on knowing that mode 2 is gone.")


def test_close_reports_the_worst_entry_and_tolerance():
    close([1.0, 2.0 + 1e-12], [1.0, 2.0], "two numbers", rtol=1e-9)
    with pytest.raises(ClaimFailed, match=r"rtol=1e-06, atol=0\. Worst entry at index \(1,\): 2\.1 measured, 2 expected"):
        close([1.0, 2.1], [1.0, 2.0], "two numbers", rtol=1e-6)
    with pytest.raises(ClaimFailed, match="shapes differ"):
        close([1.0], [1.0, 2.0], "two numbers")
    with pytest.raises(ClaimFailed, match="non-finite"):
        close([np.nan], [1.0], "two numbers")
    close(3.0, 3.0 + 1e-3, "a scalar", atol=1e-2)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: claim(True, ""), "what must be a non-empty string"),
        (lambda: claim("yes", "x"), "condition must be a bool"),
        (lambda: claim(np.array([1, 0]), "x"), "condition must be a bool"),
        (lambda: regime(True, "x", measured=1, fix=" "), "fix must be a non-empty string"),
        (lambda: close(1, 1, "x", rtol=-1), "rtol must be a finite number >= 0"),
        (lambda: close(1, 1, "x", atol=float("nan")), "atol must be a finite number >= 0"),
    ],
)
def test_bad_arguments_are_named(call, message):
    with pytest.raises((TypeError, ValueError), match=message):
        call()
