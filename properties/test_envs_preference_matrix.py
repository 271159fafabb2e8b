"""The exact solvers of :mod:`rlspec.reference.envs.preference_matrix`, checked against first principles.

The LP Nash policy is checked by its defining inequalities, the closed-form duality gap against a
numerical max/min over the simplex, and the regularised Nash policy by its fixed point, by being a
best response to itself, and by its limits (τ → ∞: π_ref; τ → 0 on rock-paper-scissors: uniform).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.envs import preference_matrix as pm

seeds = st.integers(0, 2**32 - 1)


def softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def game(seed, n):
    rng = np.random.default_rng(seed)
    return rng, pm.random_preference(rng, n), rng.dirichlet(np.ones(n))


def numeric_max(f, n, rng, starts=4):
    """max over the simplex of f(π), by L-BFGS on logits from several starts (a lower bound of the max; the
    tight ftol keeps a start from stopping early on the flat directions of the softmax parametrization)."""
    best = -np.inf
    for _ in range(starts):
        res = minimize(lambda z: -f(softmax(z)), rng.normal(size=n) * 2, method="L-BFGS-B",
                       options={"gtol": 1e-12, "ftol": 1e-15, "maxiter": 5000})
        best = max(best, -res.fun)
    return best


def test_rock_paper_scissors_nash_is_uniform():
    """RPS (P = [[.5,1,0],[0,.5,1],[1,0,.5]]): the LP Nash policy is (1/3, 1/3, 1/3), value ½."""
    P = pm.rock_paper_scissors()
    np.testing.assert_array_equal(P, [[0.5, 1.0, 0.0], [0.0, 0.5, 1.0], [1.0, 0.0, 0.5]])
    np.testing.assert_allclose(pm.nash_lp(P), np.full(3, 1 / 3), atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(seed=seeds, n=st.integers(2, 6))
def test_lp_nash_satisfies_its_inequalities(seed, n):
    """π* = nash_lp(P): (π*ᵀ P)_j ≥ ½ for every j (no response beats π* more than half the time), so
    DualGap₀(π*) = 0; a random policy has gap ≥ 0."""
    rng, P, _ = game(seed, n)
    pi = pm.nash_lp(P)
    assert (pi @ P >= 0.5 - 1e-9).all()
    assert abs(pm.duality_gap(P, pi)) < 1e-8
    assert pm.duality_gap(P, rng.dirichlet(np.ones(n))) >= -1e-12


@settings(max_examples=20, deadline=None)
@given(seed=seeds, n=st.integers(2, 5))
def test_bradley_terry_nash_is_the_best_response(seed, n):
    """Transitive P = σ(r_y − r_y'): the Nash policy is pure on argmax r (a Condorcet winner)."""
    rng = np.random.default_rng(seed)
    r = rng.normal(size=n) * 2
    pi = pm.nash_lp(pm.bradley_terry(r))
    assert pi[np.argmax(r)] > 1 - 1e-9


@settings(max_examples=10, deadline=None)
@given(seed=seeds, n=st.integers(2, 4), tau=st.floats(0.05, 2.0))
def test_duality_gap_closed_form_matches_numerical_max_min(seed, n, tau):
    """DualGap_τ(π) = max_π' J(π', π) − min_π' J(π, π'), each side maximised numerically over the simplex."""
    rng, P, ref = game(seed, n)
    pi = rng.dirichlet(np.ones(n))

    def J(a, b):
        return a @ P @ b - tau * pm.kl(a, ref) + tau * pm.kl(b, ref)

    upper = numeric_max(lambda a: J(a, pi), n, rng)
    lower = -numeric_max(lambda b: -J(pi, b), n, rng)
    assert abs(pm.duality_gap(P, pi, ref, tau) - (upper - lower)) < 1e-7
    assert abs(pm.best_response_value(P, pi, ref, tau) - numeric_max(lambda a: a @ P @ pi - tau * pm.kl(a, ref),
                                                                     n, rng)) < 1e-7


@settings(max_examples=20, deadline=None)
@given(seed=seeds, n=st.integers(2, 5), tau=st.floats(0.02, 3.0))
def test_regularized_nash_is_its_own_best_response(seed, n, tau):
    """π*_τ = softmax(log π_ref + Pπ*_τ/τ); it maximises π'ᵀPπ*_τ − τKL(π'‖π_ref), DualGap_τ(π*_τ) = 0."""
    rng, P, ref = game(seed, n)
    ps = pm.regularized_nash(P, ref, tau)
    np.testing.assert_allclose(ps, softmax(np.log(ref) + P @ ps / tau), atol=1e-12)
    assert abs(pm.duality_gap(P, ps, ref, tau)) < 1e-9
    own = ps @ P @ ps - tau * pm.kl(ps, ref)
    for _ in range(10):
        other = rng.dirichlet(np.ones(n))
        assert other @ P @ ps - tau * pm.kl(other, ref) <= own + 1e-12


def test_regularized_nash_limits():
    """τ → ∞: π*_τ → π_ref; τ → 0 on RPS with a skewed π_ref: π*_τ → the uniform Nash policy."""
    P, ref = pm.rock_paper_scissors(), np.array([0.6, 0.3, 0.1])
    assert np.abs(pm.regularized_nash(P, ref, 1e4) - ref).max() < 1e-4
    err = [np.abs(pm.regularized_nash(P, ref, tau) - 1 / 3).max() for tau in (0.3, 0.1, 0.03, 0.01)]
    assert err[-1] < 0.02 and all(a > b for a, b in zip(err, err[1:]))


def test_bad_input_raises():
    """Non-square P, entries outside [0, 1], P + Pᵀ ≠ 1, a policy off the simplex, τ < 0 raise."""
    with pytest.raises(RLSpecValueError, match="P"):
        pm.check_preference(np.zeros((2, 3)))
    with pytest.raises(RLSpecValueError, match="P"):
        pm.check_preference(np.array([[0.5, 1.2], [-0.2, 0.5]]))
    with pytest.raises(RLSpecValueError, match="P"):
        pm.check_preference(np.array([[0.5, 0.9], [0.9, 0.5]]))
    with pytest.raises(RLSpecValueError, match="pi"):
        pm.duality_gap(pm.rock_paper_scissors(), np.array([0.5, 0.5, 0.5]))
    with pytest.raises(RLSpecValueError, match="tau"):
        pm.duality_gap(pm.rock_paper_scissors(), np.full(3, 1 / 3), tau=-1.0)
    with pytest.raises(RLSpecValueError, match="pi_ref"):
        pm.PreferenceGame(P=pm.rock_paper_scissors(), pi_ref=np.array([1.0, 0.0, 0.0]))
