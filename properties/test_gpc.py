"""Properties of GPC (arXiv 2510.01068): composed scores, the geometric mixture, Propositions 1-2, the weight search.

Expected values come from outside the code under test: Gaussian log-densities (the composed score must be the score of
the normalised product, whose log-ratio to Π p_k^{w_k} is constant), the exact predictors and exact output laws of
the samplers in :mod:`rlspec.reference.envs.gpc_expo_gmm` (no sampling error), brute-force grids for the
one-dimensional minimisations, and the discrete Grönwall recursion run on the actual Euler trajectories.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.special import ndtr

from rlspec.reference import gpc as G
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.envs import gpc_expo_gmm as g

seeds = st.integers(0, 2**32 - 1)
NOCLIP = G.GPCConfig(clip_sample=None)


def _spd(rng, d, scale=1.0):
    A = rng.normal(size=(d, d)) * scale
    return A @ A.T + 0.3 * np.eye(d)


def _affine_stack(pairs):
    return np.stack([e for e, _ in pairs]), np.stack([f for _, f in pairs])


@settings(max_examples=40, deadline=None)
@given(seed=seeds, K=st.integers(2, 3), d=st.integers(1, 3))
def test_weighted_score_is_geometric_mixture_score(seed, K, d):
    """Σ_k w_k ∇log N(x; μ_k, Σ_k) equals ∇log N(x; μ_w, Σ_w) with Σ_w⁻¹ = Σ w_k Σ_k⁻¹, μ_w = Σ_w Σ w_k Σ_k⁻¹ μ_k; and,
    independently of any score code, Σ_k w_k log N_k(x) − log N_w(x) takes the same value at every x (so N_w is the
    normalised geometric mixture)."""
    rng = np.random.default_rng(seed)
    mus, covs, w = rng.normal(size=(K, d)), np.stack([_spd(rng, d) for _ in range(K)]), rng.dirichlet(np.ones(K))
    x = rng.normal(size=(6, d)) * 2
    scores = np.stack([g.gaussian_score(x, mus[k], covs[k]) for k in range(K)])
    mu_w, cov_w = G.geo_mix_gaussian(mus, covs, w)
    np.testing.assert_allclose(G.compose_eps(scores, w), g.gaussian_score(x, mu_w, cov_w), rtol=1e-9, atol=1e-9)
    ratio = sum(w[k] * g.gaussian_logpdf(x, mus[k], covs[k]) for k in range(K)) - g.gaussian_logpdf(x, mu_w, cov_w)
    assert np.ptp(ratio) < 1e-9 * (1 + np.abs(ratio).max())


@settings(max_examples=15, deadline=None)
@given(seed=seeds, d=st.integers(1, 2), K=st.integers(2, 3))
def test_equal_covariances_compose_exactly_at_every_noise_level(seed, d, K):
    """Parents N(μ_k, Σ) with one shared Σ: at every DDPM step the composed exact predictor Σ w_k ε*_k(x, t) equals the
    exact predictor of the target N(Σ w_k μ_k, Σ), so the composed DDPM trajectory (same x_T and noises, cosine T = 30)
    and the composed flow trajectory (20 Euler steps) coincide with the target's own, and the exact output laws agree."""
    rng = np.random.default_rng(seed)
    mus, cov, w = rng.normal(size=(K, d)), _spd(rng, d, 0.5), rng.dirichlet(np.ones(K))
    target = w @ mus
    sch = g.schedule(30, "cosine")
    for ab in sch.alpha_bars:
        x = rng.normal(size=(4, d))
        comp = G.compose_eps(np.stack([g.eps_star(g.GaussianMixture([1.0], mus[k][None], cov[None]), x, ab)
                                       for k in range(K)]), w)
        np.testing.assert_allclose(comp, g.eps_star(g.GaussianMixture([1.0], target[None], cov[None]), x, ab),
                                   rtol=1e-10, atol=1e-12)
    parents = [_affine_stack([g.gaussian_eps_affine(mus[k], cov, ab) for ab in sch.alpha_bars]) for k in range(K)]
    tgt = _affine_stack([g.gaussian_eps_affine(target, cov, ab) for ab in sch.alpha_bars])
    xT, noises = rng.normal(size=(5, d)), rng.normal(size=(30, 5, d))
    fns = [lambda x, t, P=P: x @ P[0][t].T + P[1][t] for P in parents]
    out = G.composed_ddpm_sample(fns, w, xT, noises, sch, NOCLIP)
    ref = g.ddpm_sample(lambda x, t: x @ tgt[0][t].T + tgt[1][t], xT, noises, sch)
    np.testing.assert_allclose(out, ref, rtol=1e-9, atol=1e-9)
    Ew, fw = sum(w[k] * parents[k][0] for k in range(K)), sum(w[k] * parents[k][1] for k in range(K))
    for a_, b_ in zip(g.affine_ddpm_law(Ew, fw, sch), g.affine_ddpm_law(*tgt, sch)):
        np.testing.assert_allclose(a_, b_, rtol=1e-9, atol=1e-12)
    n = 20
    vel = [[g.gaussian_velocity_affine(mus[k], cov, i / n) for i in range(n)] for k in range(K)]
    vt = [g.gaussian_velocity_affine(target, cov, i / n) for i in range(n)]
    x0 = rng.normal(size=(5, d))
    vf = [lambda x, u, V=V: x @ V[int(round(u * n))][0].T + V[int(round(u * n))][1] for V in vel]
    np.testing.assert_allclose(G.composed_flow_sample(vf, w, x0, n),
                               g.euler_flow_sample(lambda x, u: x @ vt[int(round(u * n))][0].T + vt[int(round(u * n))][1],
                                                   x0, n), rtol=1e-9, atol=1e-9)


def test_unequal_covariances_do_not_sample_the_geometric_mixture():
    """Our caveat (not a claim of the paper): with unequal covariances the composed exact predictors are not the
    predictors of the noised geometric mixture, and the exact output law of the composed sampler (cosine, T = 100)
    differs from the law the same sampler gives for N(μ_w, Σ_w) by > 1e−2 in the covariance; the composed predictor
    approaches the geometric mixture's towards the data end (relative gap < 2e−2 at ᾱ_0 = 1 − 6e−4, > 0.3 at mid noise)."""
    mus = np.array([[-0.5, 0.0], [0.5, 0.2]])
    covs = np.array([[[0.05, 0.0], [0.0, 0.4]], [[0.4, 0.1], [0.1, 0.05]]])
    w = np.array([0.5, 0.5])
    mu_w, cov_w = G.geo_mix_gaussian(mus, covs, w)
    sch = g.schedule(100, "cosine")
    parents = [_affine_stack([g.gaussian_eps_affine(mus[k], covs[k], ab) for ab in sch.alpha_bars]) for k in range(2)]
    m_c, S_c = g.affine_ddpm_law(0.5 * (parents[0][0] + parents[1][0]), 0.5 * (parents[0][1] + parents[1][1]), sch)
    m_t, S_t = g.affine_ddpm_law(*_affine_stack([g.gaussian_eps_affine(mu_w, cov_w, ab) for ab in sch.alpha_bars]), sch)
    assert np.abs(S_c - S_t).max() > 1e-2
    x = np.random.default_rng(0).normal(size=(8, 2)) * 0.3

    def rel_gap(ab):
        comp = 0.5 * (g.eps_star(g.GaussianMixture([1.0], mus[:1], covs[:1]), x, ab)
                      + g.eps_star(g.GaussianMixture([1.0], mus[1:], covs[1:]), x, ab))
        want = g.eps_star(g.GaussianMixture([1.0], mu_w[None], cov_w[None]), x, ab)
        return np.abs(comp - want).max() / np.abs(want).max()

    assert rel_gap(sch.alpha_bars[0]) < 2e-2 < 0.3 < rel_gap(sch.alpha_bars[50])


def _errors(rng, n, d, rho):
    """Two error populations with correlation ρ and different scales."""
    z1, z2 = rng.normal(size=(2, n, d))
    return rng.uniform(0.3, 2.0) * z1, rng.uniform(0.3, 2.0) * (rho * z1 + np.sqrt(1 - rho**2) * z2) + rng.normal(size=d) * 0.3


@settings(max_examples=40, deadline=None)
@given(seed=seeds, rho=st.floats(-0.99, 0.99), d=st.integers(1, 4))
def test_prop1_mse_is_quadratic_with_optimum_w_star(seed, rho, d):
    """Prop. 1's functional: the empirical single-step MSE of the composed score, mean‖w e_1 + (1 − w) e_2‖², equals
    w²a + (1 − w)²b + 2w(1 − w)c on a grid of w, and its minimiser over a 20 001-point grid of [0, 1] is w* =
    clip((b − c)/(a + b − 2c), 0, 1) (within the grid spacing)."""
    rng = np.random.default_rng(seed)
    e1, e2 = _errors(rng, 64, d, rho)
    a, b, c = G.score_error_moments(e1, e2)
    grid = np.linspace(0, 1, 20001)
    emp = np.array([((w * e1 + (1 - w) * e2) ** 2).sum(1).mean() for w in grid[::500]])
    np.testing.assert_allclose(G.composition_mse(grid[::500], a, b, c), emp, rtol=1e-10, atol=1e-12)
    assert abs(grid[np.argmin(G.composition_mse(grid, a, b, c))] - G.optimal_weight(a, b, c)) <= 5e-5


@settings(max_examples=60, deadline=None)
@given(seed=seeds, rho=st.floats(-0.99, 0.99), d=st.integers(1, 4))
def test_prop1_gain_iff_c_below_min(seed, rho, d):
    """Prop. 1: a proper convex combination has a smaller single-step error than the better parent exactly when
    c = E⟨e_1, e_2⟩ < min(a, b). Checked on the empirical MSE over a 20 001-point grid of w (cases within 1e−3 of the
    boundary skipped: the gain there is below the grid's resolution); the reported gain equals min(a, b) − grid min."""
    rng = np.random.default_rng(seed)
    e1, e2 = _errors(rng, 64, d, rho)
    a, b, c = G.score_error_moments(e1, e2)
    assume(abs(c - min(a, b)) > 1e-3 * (a + b))
    grid = np.linspace(0, 1, 20001)
    W = grid[:, None, None]
    emp_min = ((W * e1 + (1 - W) * e2) ** 2).sum(2).mean(1).min()             # brute force over the grid
    gain, cond = G.composition_gain(a, b, c)
    assert (emp_min < min(a, b) - 1e-12) == cond
    assert abs(gain - (min(a, b) - emp_min)) <= 1e-6 * (a + b)


def test_prop1_boundary_cases():
    """Identical errors (a = b = c): no gain and every w is optimal (w* = ½ by convention); e_2 = 2e_1 (c = 2a > a):
    no gain, w* = 1; e_2 = −e_1: c = −a < 0, gain a and w* = ½ (errors cancel)."""
    e = np.random.default_rng(0).normal(size=(50, 3))
    for e2, want_w, want_gain in ((e, 0.5, 0.0), (2 * e, 1.0, 0.0), (-e, 0.5, None)):
        a, b, c = G.score_error_moments(e, e2)
        gain, cond = G.composition_gain(a, b, c)
        assert G.optimal_weight(a, b, c) == pytest.approx(want_w)
        assert cond == (want_gain is None)
        assert gain == pytest.approx(a if want_gain is None else 0.0, abs=1e-12)


@settings(max_examples=25, deadline=None)
@given(seed=seeds, w1=st.floats(0.0, 1.0))
def test_prop2_gronwall_bound_holds(seed, w1):
    """Prop. 2 (Grönwall form): run Euler (100 steps) with the exact velocity v* of the geometric-mixture target and with
    the composed velocity Σ w_k v_k of two Gaussian parents of unequal covariances, from the same start; the end-point
    distance is ≤ e^{L}·Σ_k h‖v̂(x̂_k) − v*(x̂_k)‖ with L = max_k ‖∂v*/∂x‖₂ along the path (discrete Grönwall)."""
    rng = np.random.default_rng(seed)
    mus, covs, w = rng.normal(size=(2, 2)), np.stack([_spd(rng, 2, 0.6) for _ in range(2)]), np.array([w1, 1 - w1])
    mu_w, cov_w = G.geo_mix_gaussian(mus, covs, w)
    n, h = 100, 0.01
    Vs = [[g.gaussian_velocity_affine(mus[k], covs[k], i * h) for i in range(n)] for k in range(2)]
    Vt = [g.gaussian_velocity_affine(mu_w, cov_w, i * h) for i in range(n)]
    L = max(np.linalg.norm(E, 2) for E, _ in Vt)
    x = xh = rng.normal(size=(1, 2))
    deltas = []
    for i in range(n):
        vh = G.compose_eps(np.stack([xh @ Vs[k][i][0].T + Vs[k][i][1] for k in range(2)]), w)
        deltas.append(vh - (xh @ Vt[i][0].T + Vt[i][1]))
        xh = xh + h * vh
        x = x + h * (x @ Vt[i][0].T + Vt[i][1])
    assert np.linalg.norm(xh - x) <= G.gronwall_bound(L, deltas, h) * (1 + 1e-12) + 1e-15


_PARENTS: dict = {}


def _success(biases, w1, half_width=0.25, s=0.3, T=20):
    """Exact success P(|a − a*| ≤ half_width) (a* = 0) of the composed DDPM policy (no clip) with 1-D parents N(b_k, s²)."""
    sch = g.schedule(T, "cosine")
    key = (tuple(biases), s, T)
    if key not in _PARENTS:
        _PARENTS[key] = [_affine_stack([g.gaussian_eps_affine(np.array([b]), np.array([[s**2]]), ab)
                                        for ab in sch.alpha_bars]) for b in biases]
    P = _PARENTS[key]
    m, S = g.affine_ddpm_law(w1 * P[0][0] + (1 - w1) * P[1][0], w1 * P[0][1] + (1 - w1) * P[1][1], sch)
    sd = np.sqrt(S[0, 0])
    return ndtr((half_width - m[0]) / sd) - ndtr((-half_width - m[0]) / sd)


@settings(max_examples=12, deadline=None)
@given(b1=st.floats(-0.4, 0.4), b2=st.floats(-0.4, 0.4))
def test_weight_search_beats_both_parents_exactly_when_errors_anticorrelate(b1, b2):
    """1-D parents N(a* + b_k, 0.3²) (equal variances) and the task "land within 0.25 of a*": with the exact output law
    of the composed DDPM sampler, the grid search over w (step 0.002) strictly beats both parents iff b_1 b_2 < 0, which
    is Prop. 1's condition c < min(a, b) for the parents' score errors e_k = b_k/s² (constant in x)."""
    assume(min(abs(b1), abs(b2)) > 0.05 and abs(b1 - b2) > 1e-3)
    best_w, scores = G.grid_search(lambda w: _success((b1, b2), w), G.weight_grid(0.002))
    beats = scores.max() > max(scores[0], scores[-1]) + 1e-12
    s2 = 0.3**2
    _, cond = G.composition_gain((b1 / s2) ** 2, (b2 / s2) ** 2, b1 * b2 / s2**2)
    assert beats == (b1 * b2 < 0) == cond
    if beats:
        assert abs(best_w - b2 / (b2 - b1)) <= 1e-3                 # the zero-bias weight, w* of Prop. 1


def test_weight_search_on_the_codes_grid():
    """The code's grid (step 0.1) with biases −0.3 and +0.2: the search picks w_1 = 0.4 (zero composed bias), whose exact
    success beats both parents; with same-sign biases (0.1, 0.3) it picks the better parent (w_1 = 1)."""
    best, scores = G.grid_search(lambda w: _success((-0.3, 0.2), w), G.weight_grid(0.1))
    assert best == pytest.approx(0.4) and scores.max() > max(scores[0], scores[-1])
    best, scores = G.grid_search(lambda w: _success((0.1, 0.3), w), G.weight_grid(0.1))
    assert best == 1.0


@settings(max_examples=40, deadline=None)
@given(seed=seeds, clip=st.sampled_from([None, 1.0]), variance=st.sampled_from(["small", "large"]))
def test_gpc_step_matches_the_sampler(seed, clip, variance):
    """The registry step = composition followed by :func:`rlspec.reference.envs.gpc_expo_gmm.ddpm_step` (no clip), and,
    with clip_sample = 1, diffusers' formula: x̂_0 clipped, then the posterior mean plus σ_t z."""
    rng = np.random.default_rng(seed)
    inp = G.make_inputs(rng)
    cfg = G.GPCConfig(clip_sample=clip, variance=variance)
    out = G.gpc_step(**inp, config=cfg)
    eps_hat = np.tensordot(inp["w"], inp["eps"], axes=(0, 0))
    np.testing.assert_allclose(out["eps"], eps_hat, rtol=1e-12, atol=1e-14)
    ab, abp = float(inp["alpha_bar_t"]), float(inp["alpha_bar_prev"])
    beta = 1 - ab / abp
    if clip is None:
        sch = g.Schedule(np.array([1 - abp, beta]) if abp < 1 else np.array([beta]))
        t = sch.T - 1
        want = g.ddpm_step(inp["x"], eps_hat, t, sch, inp["z"], variance=variance)
    else:
        x0 = np.clip((inp["x"] - np.sqrt(1 - ab) * eps_hat) / np.sqrt(ab), -1, 1)
        sig = 0.0 if abp == 1 else np.sqrt(beta * (1 - abp) / (1 - ab) if variance == "small" else beta)
        want = np.sqrt(abp) * beta / (1 - ab) * x0 + np.sqrt(1 - beta) * (1 - abp) / (1 - ab) * inp["x"] + sig * inp["z"]
    np.testing.assert_allclose(out["x_prev"], want, rtol=1e-10, atol=1e-12)


def test_optimized_matches_reference():
    """Torch composition, composed step (registry function) and composed DDPM / flow sampling equal the reference in
    float64 (the samplers with exact Gaussian predictors of two parents)."""
    from rlspec.optimized import gpc as T

    for i in range(20):
        inp = G.make_inputs(np.random.default_rng(i))
        ref = G.gpc_step(**inp)
        got = T.gpc_step(**{k: torch.as_tensor(v) for k, v in inp.items()})
        for k in ("eps", "x_prev"):
            np.testing.assert_allclose(got[k].numpy(), ref[k], rtol=1e-12, atol=1e-13)
    rng = np.random.default_rng(0)
    mus, covs, w = rng.normal(size=(2, 2)), np.stack([_spd(rng, 2, 0.5) for _ in range(2)]), np.array([0.3, 0.7])
    sch = g.schedule(30, "cosine")
    P = [_affine_stack([g.gaussian_eps_affine(mus[k], covs[k], ab) for ab in sch.alpha_bars]) for k in range(2)]
    xT, noises = rng.normal(size=(6, 2)), rng.normal(size=(30, 6, 2))
    ref = G.composed_ddpm_sample([lambda x, t, p=p: x @ p[0][t].T + p[1][t] for p in P], w, xT, noises, sch, NOCLIP)
    Pt = [(torch.as_tensor(p[0]), torch.as_tensor(p[1])) for p in P]
    got = T.composed_ddpm_sample([lambda x, t, p=p: x @ p[0][t].T + p[1][t] for p in Pt], torch.as_tensor(w),
                                 torch.as_tensor(xT), torch.as_tensor(noises), torch.as_tensor(sch.alpha_bars), NOCLIP)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10, atol=1e-12)
    V = [[g.gaussian_velocity_affine(mus[k], covs[k], i / 20) for i in range(20)] for k in range(2)]
    ref = G.composed_flow_sample([lambda x, u, v=v: x @ v[round(u * 20)][0].T + v[round(u * 20)][1] for v in V], w, xT, 20)
    Vt = [[(torch.as_tensor(E), torch.as_tensor(f)) for E, f in v] for v in V]
    got = T.composed_flow_sample([lambda x, u, v=v: x @ v[round(u * 20)][0].T + v[round(u * 20)][1] for v in Vt],
                                 torch.as_tensor(w), torch.as_tensor(xT), 20)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10, atol=1e-12)


def test_bad_input_raises():
    inp = G.make_inputs(np.random.default_rng(0))
    with pytest.raises(RLSpecValueError, match="w"):
        G.gpc_step(**{**inp, "w": np.full(inp["eps"].shape[0], 0.9)})
    with pytest.raises(RLSpecValueError, match="w"):
        G.gpc_step(**{**inp, "w": np.r_[1.5, -0.5, np.zeros(inp["eps"].shape[0] - 2)]})
    G.gpc_step(**{**inp, "w": np.r_[1.5, -0.5, np.zeros(inp["eps"].shape[0] - 2)]}, config=G.GPCConfig(convex=False))
    with pytest.raises(RLSpecValueError, match="alpha_bar_t"):
        G.gpc_step(**{**inp, "alpha_bar_t": np.asarray(1.0)})
    with pytest.raises(RLSpecValueError, match="eps"):
        G.gpc_step(**{**inp, "eps": inp["eps"][0]})
    with pytest.raises(RLSpecValueError, match="x"):
        G.gpc_step(**{**inp, "x": np.full_like(inp["x"], np.nan)})
    with pytest.raises(RLSpecValueError, match="variance"):
        G.GPCConfig(variance="learned")
    with pytest.raises(RLSpecValueError, match="w"):
        G.geo_mix_gaussian(np.zeros((2, 1)), np.array([[[1.0]], [[0.5]]]), np.array([-3.0, 1.0]))


def plot_gpc(path: str = "docs/algorithms/img/gpc.png") -> None:
    """The docs figure: Prop. 1's MSE(w) for anti- and positively correlated errors, and the exact weight search."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    rng = np.random.default_rng(3)
    grid = np.linspace(0, 1, 201)
    for rho, col in ((-0.6, "C0"), (0.9, "C1")):
        z1, z2 = rng.normal(size=(2, 2000, 2))
        e1, e2 = 1.0 * z1, 0.8 * (rho * z1 + np.sqrt(1 - rho**2) * z2)
        a, b, c = G.score_error_moments(e1, e2)
        ws = G.optimal_weight(a, b, c)
        gain, cond = G.composition_gain(a, b, c)
        ax[0].plot(grid, G.composition_mse(grid, a, b, c), col, label=f"ρ = {rho}: c {'<' if cond else '≥'} min(a, b)")
        ax[0].plot([ws], [G.composition_mse(ws, a, b, c)], "o", color=col)
    ax[0].set(xlabel="w (weight of policy 1)", ylabel="single-step MSE(w)", title="Proposition 1")
    ax[0].legend(fontsize=7)
    grid = G.weight_grid(0.1)
    for biases, col in (((-0.3, 0.2), "C0"), ((0.1, 0.3), "C1")):
        best, scores = G.grid_search(lambda w, bb=biases: _success(bb, w), grid)
        ax[1].plot(grid, scores, "o-", color=col, label=f"parent biases {biases}: best w = {best:.1f}")
    ax[1].set(xlabel="w (weight of policy 1)", ylabel="exact success P(|a − a*| ≤ 0.25)",
              title="test-time weight search (composed DDPM, T = 20)")
    ax[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
