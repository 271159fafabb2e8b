"""The 1-D Gaussian bandit (:mod:`rlspec.reference.envs.gaussian_bandit`) checked before anything uses it.

Expected values come from outside the closed forms: central finite differences, the Gaussian moment
formula E(a − μ)^{2k} = σ^{2k}(2k − 1)!!, and a seeded Monte-Carlo draw.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.envs import gaussian_bandit as gb

thetas = st.tuples(st.floats(-3.0, 3.0), st.floats(-1.5, 1.0)).map(np.array)
envs = st.builds(gb.GaussianBandit, a_star=st.floats(-2.0, 2.0), c=st.floats(0.1, 3.0), r0=st.floats(-1.0, 1.0))


def _fd(f, x, h=1e-5):
    x = np.asarray(x, float)
    out = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        out.append((f(x + e) - f(x - e)) / (2 * h))
    return np.stack(out, axis=-1)


@given(env=envs, theta=thetas)
def test_closed_form_objective_equals_quadrature_of_reward(env, theta):
    """J(θ) = −c((μ − a*)² + σ²) + r0 equals E_{a~π_θ} r(a) computed by quadrature of r itself."""
    exact = gb.expect(lambda a: gb.reward(env, a), theta)
    assert abs(gb.objective(env, theta) - exact) <= 1e-10 * (1 + abs(exact))


@given(env=envs, theta=thetas, learn_std=st.booleans())
def test_gradient_and_hessian_are_derivatives_of_objective(env, theta, learn_std):
    """∇J and ∇²J in closed form equal central finite differences of J (and of ∇J)."""
    th = theta if learn_std else theta[:1]
    J = lambda t: gb.objective(env, t, learn_std, sigma=0.7)  # noqa: E731
    G = lambda t: gb.gradient(env, t, learn_std, sigma=0.7)  # noqa: E731
    np.testing.assert_allclose(gb.gradient(env, th, learn_std, 0.7), _fd(J, th), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(gb.hessian(env, th, learn_std, 0.7), _fd(G, th), rtol=1e-6, atol=1e-7)


@given(theta=thetas, a=st.floats(-5.0, 5.0), learn_std=st.booleans())
def test_score_and_its_jacobian_are_derivatives_of_log_prob(theta, a, learn_std):
    """∇log π and ∇²log π equal central finite differences of log π (and of ∇log π) in θ."""
    th = theta if learn_std else theta[:1]
    lp = lambda t: gb.log_prob(a, t, learn_std, 0.7)  # noqa: E731
    sc = lambda t: gb.score(a, t, learn_std, 0.7)  # noqa: E731
    np.testing.assert_allclose(gb.score(a, th, learn_std, 0.7), _fd(lp, th), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gb.score_jacobian(a, th, learn_std, 0.7), _fd(sc, th), rtol=1e-6, atol=1e-6)


@given(theta=thetas)
def test_score_has_mean_zero_and_fisher_identity(theta):
    """E ∇log π = 0 and F = E[∇log π ∇log πᵀ] = −E ∇²log π = diag(1/σ², 2) (by quadrature)."""
    np.testing.assert_allclose(gb.expect(lambda a: gb.score(a, theta), theta), 0.0, atol=1e-10)
    outer = gb.expect(lambda a: np.einsum("ni,nj->nij", gb.score(a, theta), gb.score(a, theta)), theta)
    hess = gb.expect(lambda a: gb.score_jacobian(a, theta), theta)
    sd = np.exp(theta[1])
    np.testing.assert_allclose(outer, np.diag([sd**-2, 2.0]), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(-hess, outer, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gb.fisher(theta), outer, rtol=1e-10, atol=1e-10)


@given(theta=thetas, k=st.integers(0, 5))
def test_quadrature_is_exact_for_gaussian_moments(theta, k):
    """expect() returns E(a − μ)^{2k} = σ^{2k}(2k − 1)!! and E(a − μ)^{2k+1} = 0 (polynomials up to degree 11)."""
    mu, sd = theta[0], np.exp(theta[1])
    dfact = np.prod(np.arange(2 * k - 1, 0, -2)) if k > 0 else 1.0
    assert abs(gb.expect(lambda a: (a - mu) ** (2 * k), theta) - sd ** (2 * k) * dfact) <= 1e-10 * sd ** (2 * k) * dfact
    assert abs(gb.expect(lambda a: (a - mu) ** (2 * k + 1), theta)) <= 1e-10 * (1 + sd ** (2 * k + 1) * dfact * 10)


def test_sampler_matches_policy():
    """sample() draws N(μ, σ²): mean and variance within 5 standard errors (seeded; false-alarm rate < 1e-5)."""
    theta = np.array([0.3, np.log(1.7)])
    a = gb.sample(np.random.default_rng(0), theta, 200_000)
    assert abs(a.mean() - 0.3) <= 5 * 1.7 / np.sqrt(a.size)
    assert abs(a.var() - 1.7**2) <= 5 * 1.7**2 * np.sqrt(2.0 / a.size)


def test_optimum_for_frozen_std():
    """With σ frozen, μ* = a* and J* = −cσ² + r0, and J(μ*) = J*, ∇J(μ*) = 0, J(μ) < J* elsewhere."""
    env = gb.GaussianBandit(a_star=0.4, c=2.0, r0=0.5)
    mu, J = gb.optimum(env, 0.3)
    assert gb.objective(env, [mu], learn_std=False, sigma=0.3) == pytest.approx(J, abs=1e-15)
    assert gb.gradient(env, [mu], learn_std=False, sigma=0.3)[0] == 0.0
    assert all(gb.objective(env, [mu + d], learn_std=False, sigma=0.3) < J for d in (-1e-3, 1e-3, 1.0))


def test_bad_input_raises():
    """c ≤ 0, a non-finite a*, a θ of the wrong length and σ ≤ 0 are rejected, naming the argument."""
    with pytest.raises(RLSpecValueError, match="c"):
        gb.GaussianBandit(c=0.0)
    with pytest.raises(RLSpecValueError, match="a_star"):
        gb.GaussianBandit(a_star=float("nan"))
    with pytest.raises(RLSpecValueError, match="theta"):
        gb.objective(gb.GaussianBandit(), [0.0, 0.0, 0.0])
    with pytest.raises(RLSpecValueError, match="sigma"):
        gb.objective(gb.GaussianBandit(), [0.0], learn_std=False, sigma=0.0)
