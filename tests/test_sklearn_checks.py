"""scikit-learn conformance: every check of ``sklearn.utils.estimator_checks`` on all four estimators.

The estimators are passed as instances with a small ``max_iter`` where the class has one (the
checks fit on tiny random data, where more iterations only cost time; nothing in a check depends
on running EM to convergence). No check is skipped or expected to fail: ``EXPECTED_FAILED`` below
is where a check that cannot pass would be listed, each with its written reason, and it is empty.
Strict xfail: a listed check that starts to pass fails the suite, so the list cannot go stale.
"""
import warnings

import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

from jaxgen import BayesianGaussianMixture, GaussianMixture, PPCA, StudentTPCA

ESTIMATORS = [
    GaussianMixture(max_iter=20),
    PPCA(),
    StudentTPCA(max_iter=50),
    BayesianGaussianMixture(max_iter=50),
]

# check name -> reason, per estimator class: none today.
EXPECTED_FAILED: dict[str, dict[str, str]] = {
    "GaussianMixture": {},
    "PPCA": {},
    "StudentTPCA": {},
    "BayesianGaussianMixture": {},
}


def _expected_failed(estimator) -> dict[str, str]:
    return EXPECTED_FAILED[type(estimator).__name__]


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed, xfail_strict=True)
def test_sklearn_estimator_checks(estimator, check, monkeypatch):
    # check_array_api_input (NumPy input with array-API dispatch on: the results must not change)
    # skips itself unless SCIPY_ARRAY_API is set; scipy reads it at import, so setting it here only
    # lets the check run (NumPy arrays behave the same either way) instead of skipping it.
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    with warnings.catch_warnings():
        # the checks fit with few iterations on random data, on purpose (see the module docstring)
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


def test_every_estimator_is_checked_and_no_reason_is_blank():
    assert {type(e).__name__ for e in ESTIMATORS} == set(EXPECTED_FAILED) == {
        "GaussianMixture", "PPCA", "StudentTPCA", "BayesianGaussianMixture"
    }
    for reasons in EXPECTED_FAILED.values():
        assert all(isinstance(r, str) and r.strip() for r in reasons.values())


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-q"])
