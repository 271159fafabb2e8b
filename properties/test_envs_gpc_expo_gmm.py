"""The Gaussian-mixture diffusion toy (:mod:`rlspec.reference.envs.gpc_expo_gmm`) checked before GPC / EXPO use it.

Expected values come from outside the closed forms: scipy's multivariate normal, central finite
differences, numerical convolution on a grid (the noised density without the Gaussian algebra), the
schedules' defining products, and seeded Monte Carlo with a stated tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.envs import gpc_expo_gmm as g

seeds = st.integers(0, 2**32 - 1)


def _random_gm(rng, K, d):
    A = rng.normal(size=(K, d, d))
    covs = A @ np.swapaxes(A, 1, 2) + 0.3 * np.eye(d)
    return g.GaussianMixture(rng.dirichlet(np.ones(K)), rng.normal(size=(K, d)) * 2, covs)


@settings(max_examples=25, deadline=None)
@given(seed=seeds, K=st.integers(1, 3), d=st.integers(1, 3))
def test_log_density_is_scipy_mixture_and_score_is_its_gradient(seed, K, d):
    """log p(x) = log Σ_k w_k N(x; μ_k, Σ_k) (scipy), and score(x) equals central FD of log p."""
    rng = np.random.default_rng(seed)
    gm = _random_gm(rng, K, d)
    x = rng.normal(size=(5, d)) * 2
    ref = np.log(sum(gm.weights[k] * stats.multivariate_normal(gm.means[k], gm.covs[k]).pdf(x).reshape(-1)
                     for k in range(K)))
    np.testing.assert_allclose(g.log_density(gm, x), ref, rtol=1e-9, atol=1e-9)
    h = 1e-5
    fd = np.stack([(g.log_density(gm, x + h * e) - g.log_density(gm, x - h * e)) / (2 * h) for e in np.eye(d)], 1)
    np.testing.assert_allclose(g.score(gm, x), fd, rtol=1e-6, atol=1e-6)


@settings(max_examples=15, deadline=None)
@given(seed=seeds, ab=st.floats(0.05, 0.95))
def test_eps_star_is_tweedie_on_a_numerically_convolved_density(seed, ab):
    """1-D: p_t(x) = ∫ p(x₀) N(x; √ᾱ x₀, 1 − ᾱ) dx₀ by quadrature on a grid (no Gaussian algebra);
    ε*(x) = −√(1−ᾱ) d/dx log p_t(x) by FD of that numerical density equals :func:`eps_star`."""
    rng = np.random.default_rng(seed)
    gm = _random_gm(rng, 2, 1)
    grid = np.linspace(-30, 30, 60001)
    dx = grid[1] - grid[0]
    p0 = np.exp(g.log_density(gm, grid[:, None]))

    def pt(x):
        kern = stats.norm(np.sqrt(ab) * grid, np.sqrt(1 - ab)).pdf(x)
        return (p0 * kern).sum() * dx

    for x in rng.normal(size=3) * 2:
        h = 1e-4
        fd = (np.log(pt(x + h)) - np.log(pt(x - h))) / (2 * h)
        got = g.eps_star(gm, np.array([[x]]), ab)[0, 0]
        assert abs(got - (-np.sqrt(1 - ab) * fd)) <= 1e-5 * (1 + abs(got))


@settings(max_examples=20, deadline=None)
@given(seed=seeds, d=st.integers(1, 3), ab=st.floats(0.01, 0.99))
def test_affine_eps_of_a_gaussian_equals_eps_star(seed, d, ab):
    """For a single Gaussian, (E, f) of :func:`gaussian_eps_affine` reproduce ε*(x) at random points."""
    rng = np.random.default_rng(seed)
    gm = _random_gm(rng, 1, d)
    E, f = g.gaussian_eps_affine(gm.means[0], gm.covs[0], ab)
    x = rng.normal(size=(4, d)) * 3
    np.testing.assert_allclose(x @ E.T + f, g.eps_star(gm, x, ab), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("T", [1, 10, 100])
def test_schedules_match_their_definitions(T):
    """cosine: Π_{s≤t}(1 − β_s) = ᾱ((t+1)/T)/ᾱ(0) while no β is capped; vp: −log(1 − β_t) is the
    increment b_min/T + (b_max − b_min)(2t + 1)/(2T²); linear: endpoints 1e−4 and 2e−2 (T > 1)."""
    cos = g.schedule(T, "cosine")
    u = np.arange(1, T + 1) / T
    abar = np.cos((u + 0.008) / 1.008 * np.pi / 2) ** 2 / np.cos(0.008 / 1.008 * np.pi / 2) ** 2
    uncapped = np.cumprod(cos.betas < 0.999).astype(bool)
    np.testing.assert_allclose(cos.alpha_bars[uncapped], abar[uncapped], rtol=1e-12, atol=1e-15)
    vp = g.schedule(T, "vp")
    t = np.arange(T)
    np.testing.assert_allclose(-np.log1p(-vp.betas), 0.1 / T + 9.9 * (2 * t + 1) / (2 * T**2), rtol=1e-12)
    if T > 1:
        lin = g.schedule(T, "linear")
        assert lin.betas[0] == pytest.approx(1e-4) and lin.betas[-1] == pytest.approx(2e-2)


@settings(max_examples=20, deadline=None)
@given(seed=seeds, t=st.integers(0, 9), variance=st.sampled_from(["small", "large"]))
def test_ddpm_step_posterior_form_equals_eps_form(seed, t, variance):
    """Without clipping, the posterior-mean step equals (x − β_t/√(1−ᾱ_t) ε)/√α_t + σ_t z, with
    σ_t² = β_t(1−ᾱ_{t−1})/(1−ᾱ_t) (small) or β_t (large) and σ_0 = 0."""
    rng = np.random.default_rng(seed)
    sch = g.schedule(10, "vp")
    x, eps, z = rng.normal(size=(3, 4, 2))
    got = g.ddpm_step(x, eps, t, sch, z, variance=variance)
    ab, a, b = sch.alpha_bars[t], sch.alphas[t], sch.betas[t]
    ab_prev = sch.alpha_bars[t - 1] if t else 1.0
    sig = 0.0 if t == 0 else np.sqrt(b * (1 - ab_prev) / (1 - ab) if variance == "small" else b)
    np.testing.assert_allclose(got, (x - b / np.sqrt(1 - ab) * eps) / np.sqrt(a) + sig * z, rtol=1e-12, atol=1e-12)


def test_affine_ddpm_law_matches_monte_carlo():
    """The exact output law of the sampler with an affine ε (a 2-D Gaussian target, cosine T = 20) equals
    the mean / covariance of 40 000 seeded sampler runs within 5 standard errors."""
    rng = np.random.default_rng(0)
    mu, cov = np.array([0.5, -1.0]), np.array([[0.6, 0.2], [0.2, 0.3]])
    sch = g.schedule(20, "cosine")
    Ef = [g.gaussian_eps_affine(mu, cov, ab) for ab in sch.alpha_bars]
    E, f = np.stack([e for e, _ in Ef]), np.stack([v for _, v in Ef])
    m, S = g.affine_ddpm_law(E, f, sch)
    n = 40000
    out = g.ddpm_sample(lambda x, t: x @ E[t].T + f[t], rng.standard_normal((n, 2)),
                        rng.standard_normal((20, n, 2)), sch)
    se = np.sqrt(np.diag(S) / n)
    assert (np.abs(out.mean(0) - m) <= 5 * se).all()
    emp = np.cov(out.T)
    se_cov = np.sqrt((S**2 + np.outer(np.diag(S), np.diag(S))) / n)
    assert (np.abs(emp - S) <= 5 * se_cov).all()


def test_samplers_with_exact_predictors_approach_the_target():
    """With the exact affine predictor of N(μ, Σ), the DDPM output law (cosine, T = 1000) and the Euler flow
    law (2000 steps) are within 2e−2 (DDPM) and 1e−3 (flow) of (μ, Σ): the samplers are consistent, and the
    remaining gap is their discretisation error."""
    mu, cov = np.array([0.3, -0.4]), np.array([[0.5, 0.1], [0.1, 0.2]])
    sch = g.schedule(1000, "cosine")
    Ef = [g.gaussian_eps_affine(mu, cov, ab) for ab in sch.alpha_bars]
    m, S = g.affine_ddpm_law(np.stack([e for e, _ in Ef]), np.stack([v for _, v in Ef]), sch)
    assert np.abs(m - mu).max() < 2e-2 and np.abs(S - cov).max() < 2e-2
    n = 2000
    Vf = [g.gaussian_velocity_affine(mu, cov, k / n) for k in range(n)]
    m, S = g.affine_flow_law(np.stack([e for e, _ in Vf]), np.stack([v for _, v in Vf]))
    assert np.abs(m - mu).max() < 1e-3 and np.abs(S - cov).max() < 1e-3


def test_sampling_matches_the_mixture():
    """Exact draws: the sample mean of 200 000 draws is Σ w_k μ_k within 5 standard errors."""
    rng = np.random.default_rng(1)
    gm = _random_gm(rng, 3, 2)
    x = g.sample(gm, rng, 200_000)
    mean = gm.weights @ gm.means
    assert (np.abs(x.mean(0) - mean) <= 5 * x.std(0) / np.sqrt(len(x))).all()


def test_bad_input_raises():
    with pytest.raises(RLSpecValueError, match="weights"):
        g.GaussianMixture([0.5, 0.6], np.zeros((2, 1)), np.ones((2, 1, 1)))
    with pytest.raises(RLSpecValueError, match="covs"):
        g.GaussianMixture([1.0], np.zeros((1, 2)), -np.eye(2)[None])
    with pytest.raises(RLSpecValueError, match="kind"):
        g.schedule(10, "quadratic")
    with pytest.raises(RLSpecValueError, match="alpha_bar"):
        g.noised(g.GaussianMixture([1.0], [[0.0]], [[[1.0]]]), 0.0)
    with pytest.raises(RLSpecValueError, match="x"):
        g.score(g.GaussianMixture([1.0], [[0.0]], [[[1.0]]]), np.array([[np.nan]]))
