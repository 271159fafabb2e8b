"""Properties of EXPO (arXiv 2507.07986): edit policy, density correction, on-the-fly selection, edit training.

Expected values come from outside the code under test: central finite differences of the edit loss with the
critic re-evaluated at the moved action, scipy's Gaussian densities and numerical integration, exhaustive
enumeration of all N-tuples of a discrete base policy, Gauss–Hermite quadrature, and the closed-form optimum
of the one-step toy (derived by hand in :func:`rlspec.reference.expo.edit_optimum`'s docstring and checked here
by its stationarity, not by the code that trains).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from rlspec.reference import expo as E
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.envs import gpc_expo_gmm as g

seeds = st.integers(0, 2**32 - 1)


def _quadratic(rng, d, c0=0.0):
    M = rng.normal(size=(d, d))
    H = M @ M.T + 0.3 * np.eye(d)
    ctr = rng.normal(size=d) * 0.5

    def Q(x):
        z = x - ctr
        return c0 - 0.5 * np.einsum("bi,ij,bj->b", z, H, z)

    def dQ(x):
        return -(x - ctr) @ H

    return Q, dQ, H, ctr


@settings(max_examples=40, deadline=None)
@given(seed=seeds, B=st.integers(1, 6), d=st.integers(1, 3), squash=st.sampled_from(["tanh", "none"]),
       beta=st.sampled_from([0.05, 0.7, 1.0]), scale=st.sampled_from([0.0, 1.0, 2.0]))
def test_hand_gradient_matches_finite_differences(seed, B, d, squash, beta, scale):
    """Pathwise gradient of L_e = mean[s_H α log p(â|a) − Q(â)], â = a + β·tanh(μ + σξ), ξ fixed: dμ and dlog σ equal
    central FD of L_e computed with the critic re-evaluated at â(μ, log σ); log σ values beyond the clip [−20, 2] get 0;
    the returned entropy is −mean log p."""
    rng = np.random.default_rng(seed)
    Q, dQ, _, _ = _quadratic(rng, d)
    mu, xi, a = rng.normal(size=(3, B, d))
    ls = rng.uniform(-1.5, 1.0, size=(B, d))
    ls[rng.random((B, d)) < 0.2] = 2.7                                 # clipped entries
    alpha = float(rng.uniform(0.01, 2.0))
    cfg = E.EXPOConfig(beta=beta, squash=squash, entropy_scale=scale)

    def L(m, s):
        _, u = E.edit_sample(m, np.clip(s, -20, 2), xi, squash)
        ah = E.edited_action(a, u, beta)
        return (scale * alpha * E.edit_log_prob(m, np.clip(s, -20, 2), xi, beta, squash) - Q(ah)).mean()

    _, u0 = E.edit_sample(mu, np.clip(ls, -20, 2), xi, squash)
    ah0 = E.edited_action(a, u0, beta)
    loss, dmu, dls, H = E.expo_edit_loss(mu, ls, xi, a, Q(ah0), dQ(ah0), alpha, cfg)
    assert abs(loss - L(mu, ls)) <= 1e-12 * (1 + abs(loss))
    assert abs(H + E.edit_log_prob(mu, np.clip(ls, -20, 2), xi, beta, squash).mean()) <= 1e-12 * (1 + abs(H))
    h = 1e-6
    for X, G, first in ((mu, dmu, True), (ls, dls, False)):
        fd = np.zeros_like(X)
        for idx in np.ndindex(*X.shape):
            e = np.zeros_like(X)
            e[idx] = h
            fd[idx] = ((L(X + e, ls) - L(X - e, ls)) if first else (L(mu, X + e) - L(mu, X - e))) / (2 * h)
        np.testing.assert_allclose(G, fd, rtol=1e-5, atol=1e-7)


@settings(max_examples=60, deadline=None)
@given(seed=seeds, B=st.integers(1, 8), N=st.integers(1, 6), ties=st.booleans())
def test_otf_value_dominates_every_candidate(seed, B, N, ties):
    """Q(s, a*_OTF) = max over the N base actions and the M edits, surely; the index is the first maximiser."""
    rng = np.random.default_rng(seed)
    M = int(rng.integers(0, N + 1))
    a, u = rng.normal(size=(B, N, 2)), rng.uniform(-1, 1, size=(B, M, 2))
    cand = E.otf_candidates(a, u, 0.3)
    np.testing.assert_allclose(cand[:, N:], a[:, :M] + 0.3 * u)
    q = rng.integers(0, 3, (B, N + M)).astype(float) if ties else rng.normal(size=(B, N + M))
    idx, act, val = E.otf_select(cand, q)
    assert (val >= q.max(1)).all() and (val >= q[:, :N].max(1)).all()
    for b in range(B):
        assert idx[b] == np.flatnonzero(q[b] == q[b].max())[0]
        np.testing.assert_array_equal(act[b], cand[b, idx[b]])


@settings(max_examples=25, deadline=None)
@given(seed=seeds, n_atoms=st.integers(1, 4), ties=st.booleans())
def test_best_of_n_is_exact_order_statistic_and_monotone(seed, n_atoms, ties):
    """Discrete base policy (≤ 4 actions, Q-values with ties): E Q(a*_OTF) obtained by running the OTF selection on
    every N-tuple of base actions, weighted by its probability (enumeration), equals the N-th order statistic
    Σ_k v_(k)[F(v_(k))^N − F(v_(k−1))^N], for N = 1..4, and is nondecreasing in N (N = 1: the mean)."""
    rng = np.random.default_rng(seed)
    acts = rng.normal(size=(n_atoms, 1))
    p = rng.dirichlet(np.ones(n_atoms))
    qv = rng.integers(0, 2, n_atoms).astype(float) if ties else rng.normal(size=n_atoms)
    prev = -np.inf
    for N in range(1, 5):
        tuples = np.array(list(itertools.product(range(n_atoms), repeat=N)))      # (n^N, N)
        cand = acts[tuples]                                                      # (n^N, N, 1)
        _, _, val = E.otf_select(cand, qv[tuples])
        exact = float((np.prod(p[tuples], axis=1) * val).sum())
        assert abs(exact - E.best_of_n_value(qv, p, N)) <= 1e-12
        if N == 1:
            assert abs(exact - p @ qv) <= 1e-12
        assert exact >= prev - 1e-12
        prev = exact


def test_best_of_n_gaussian_matches_order_statistics():
    """Base N(m, s²I) in 2-D and a linear critic Q(a) = wᵀa, so Q-values are N(wᵀm, s²‖w‖²): the OTF value averaged
    over 40 000 seeded draws (M = 0) equals E max of N normals (quadrature), N = 1, 2, 4, 8, within 5 standard
    errors; the quadrature gives 1/√π at N = 2 and 3/(2√π) at N = 3 (textbook values)."""
    assert abs(E.expected_max_normal(2) - 1 / np.sqrt(np.pi)) < 1e-10
    assert abs(E.expected_max_normal(3) - 1.5 / np.sqrt(np.pi)) < 1e-10
    rng = np.random.default_rng(0)
    m, s, w = np.array([0.2, -0.1]), 0.3, np.array([1.0, 2.0])
    for N in (1, 2, 4, 8):
        cfg = E.EXPOConfig(N=N, M=0)
        _, val = E.otf_action(np.zeros(40000), lambda s_, n, r: m + s * r.standard_normal((s_.shape[0], n, 2)),
                              None, lambda s_, c: c @ w, rng, cfg)
        exact = E.expected_max_normal(N, m @ w, s * np.linalg.norm(w))
        assert abs(val.mean() - exact) <= 5 * val.std() / np.sqrt(val.size), (N, val.mean(), exact)


@settings(max_examples=40, deadline=None)
@given(seed=seeds, B=st.integers(1, 8), N=st.integers(1, 6))
def test_more_edits_never_lower_the_selected_value(seed, B, N):
    """With the same base draws and edits, the OTF value with M edits is nondecreasing in M = 0..N, row by row
    (nested candidate sets), and so is its mean; M = 0 is best-of-N over base actions."""
    rng = np.random.default_rng(seed)
    Q, _, _, _ = _quadratic(rng, 2)
    a, u = rng.normal(size=(B, N, 2)), np.tanh(rng.normal(size=(B, N, 2)))
    vals = []
    for M in range(N + 1):
        cand = E.otf_candidates(a, u[:, :M], 0.5)
        vals.append(E.otf_select(cand, Q(cand.reshape(-1, 2)).reshape(B, -1))[2])
    vals = np.array(vals)
    assert (np.diff(vals, axis=0) >= 0).all()
    np.testing.assert_allclose(vals[0], Q(a.reshape(-1, 2)).reshape(B, N).max(1))


@settings(max_examples=30, deadline=None)
@given(seed=seeds, B=st.integers(1, 8), N=st.integers(1, 6))
def test_beta_zero_is_best_of_n(seed, B, N):
    """β = 0: every edit is a copy of a base action, so the OTF value is exactly best-of-N over the base samples;
    β = 1e−9 is within 1e−6 of it (continuity)."""
    rng = np.random.default_rng(seed)
    Q, _, _, _ = _quadratic(rng, 2)
    a, u = rng.normal(size=(B, N, 2)), np.tanh(rng.normal(size=(B, N, 2)))
    best = Q(a.reshape(-1, 2)).reshape(B, N).max(1)
    for beta, tol in ((0.0, 0.0), (1e-9, 1e-6)):
        cand = E.otf_candidates(a, u, beta)
        val = E.otf_select(cand, Q(cand.reshape(-1, 2)).reshape(B, -1))[2]
        assert np.abs(val - best).max() <= tol


@settings(max_examples=20, deadline=None)
@given(mu=st.floats(-1.5, 1.5), ls=st.floats(-1.5, 0.3), beta=st.sampled_from([0.05, 0.3, 0.7, 1.0]), a=st.floats(-1, 1))
def test_density_correction_integrates_to_one(mu, ls, beta, a):
    """Tanh edits (1-D): p(â|a) = exp(log π_e(u) − log β) with u = (â − a)/β integrates to 1 over â ∈ (a − β, a + β)
    (scipy quad); without the −log β correction the integral is 1/β."""
    def dens(ah):
        x = np.arctanh(np.clip((ah - a) / beta, -1 + 1e-16, 1 - 1e-16))
        xi = (x - mu) / np.exp(ls)
        return np.exp(E.edit_log_prob(np.array([[mu]]), np.array([[ls]]), np.array([[xi]]), beta, "tanh")[0])

    tot, err = integrate.quad(dens, a - beta, a + beta, limit=400, epsabs=1e-11, epsrel=1e-10)
    assert abs(tot - 1.0) < 1e-6 + 10 * err
    assert abs(tot * beta - beta) < 1e-6 * (1 + beta)            # uncorrected density = β·p integrates to β·1


@settings(max_examples=40, deadline=None)
@given(seed=seeds, B=st.integers(1, 5), d=st.integers(1, 3), beta=st.floats(0.01, 2.0))
def test_density_correction_exact_on_gaussians(seed, B, d, beta):
    """Untransformed Gaussian edits (squash none): â = a + β(μ + σξ) ~ N(a + βμ, β²σ²), and log p(â|a) = log π_e(u) −
    d log β equals scipy's log N(â; a + βμ, diag(β²σ²)) exactly (to rounding)."""
    rng = np.random.default_rng(seed)
    mu, xi, a = rng.normal(size=(3, B, d))
    ls = rng.uniform(-2, 1, size=(B, d))
    _, u = E.edit_sample(mu, ls, xi, "none")
    ah = E.edited_action(a, u, beta)
    got = E.edit_log_prob(mu, ls, xi, beta, "none")
    ref = [stats.multivariate_normal(a[b] + beta * mu[b], np.diag((beta * np.exp(ls[b])) ** 2)).logpdf(ah[b])
           for b in range(B)]
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("squash,d", [("none", 1), ("none", 2), ("tanh", 1)])
def test_edit_gradient_step_increases_expected_q(squash, d):
    """Concave quadratic Q, α = 0: one small step of (μ, log σ) along minus the expected pathwise gradient (Gauss–Hermite
    over ξ, 30 nodes per dimension) raises E_u Q(a + βu) computed by the same quadrature, at 20 random points."""
    rng = np.random.default_rng(1)
    x, w = np.polynomial.hermite_e.hermegauss(30)
    w = w / w.sum()
    nodes = np.array(list(itertools.product(x, repeat=d)))
    wts = np.prod(np.array(list(itertools.product(w, repeat=d))), axis=1)
    cfg = E.EXPOConfig(beta=0.5, squash=squash)
    for _ in range(20):
        Q, dQ, _, _ = _quadratic(rng, d)
        mu, a = rng.normal(size=(2, 1, d))
        ls = rng.uniform(-1.5, 0.0, size=(1, d))

        def EQ(m, s, Q=Q, a=a):
            _, u = E.edit_sample(np.repeat(m, len(nodes), 0), np.repeat(s, len(nodes), 0), nodes, squash)
            return wts @ Q(E.edited_action(np.repeat(a, len(nodes), 0), u, 0.5))

        M, S = np.repeat(mu, len(nodes), 0), np.repeat(ls, len(nodes), 0)
        _, u = E.edit_sample(M, S, nodes, squash)
        ah = E.edited_action(np.repeat(a, len(nodes), 0), u, 0.5)
        _, dmu, dls, _ = E.expo_edit_loss(M, S, nodes, np.repeat(a, len(nodes), 0), Q(ah), dQ(ah), 0.0, cfg)
        gm, gs = (wts[:, None] * dmu * len(nodes)).sum(0), (wts[:, None] * dls * len(nodes)).sum(0)
        assert EQ(mu - 1e-3 * gm, ls - 1e-3 * gs) > EQ(mu, ls)


GM = g.GaussianMixture([0.5, 0.5], [[-0.5, 0.3], [0.4, -0.4]], np.stack([0.05 * np.eye(2)] * 2))
A_STAR = np.array([0.2, 0.1])


def _base(rng, n):
    return g.sample(GM, rng, n)


def test_edit_training_reaches_closed_form_optimum():
    """One-step toy: bimodal 2-D base policy, Q = −‖â − a*‖², β = 0.5, α = 0.01, squash none. The closed form
    W = −I/β, b = a*/β, σ² = α/(2cβ²) is a stationary point (the expected hand gradient over 200 000 draws is within
    5e−3 of 0 there); Adam (lr 0.01, batch 256, 2000 steps) ends within 0.02 of it in every coordinate, 3 seeds.
    With the temperature learned (Adam on log α), the entropy of â settles at H_target = −d/2, i.e. log(βσ) =
    −1 − ½ log 2π, and α at 2cβ²σ² (within 0.03 in log σ and 10 % in α)."""
    cfg = E.EXPOConfig(beta=0.5, squash="none")
    W, b, ls = E.edit_optimum(A_STAR, 0.5, 0.01)
    rng = np.random.default_rng(0)
    a = _base(rng, 200_000)
    xi = rng.standard_normal(a.shape)
    mu = a @ W.T + b
    _, u = E.edit_sample(mu, np.broadcast_to(ls, a.shape), xi, "none")
    q, dq = E.quadratic_q(E.edited_action(a, u, 0.5), A_STAR)
    _, dmu, dls, _ = E.expo_edit_loss(mu, np.broadcast_to(ls, a.shape), xi, a, q, dq, 0.01, cfg)
    assert np.abs(dmu.T @ a).max() < 5e-3 and np.abs(dmu.sum(0)).max() < 5e-3 and np.abs(dls.sum(0)).max() < 5e-3
    for seed in range(3):
        h = E.edit_train(_base, A_STAR, 2000, 0.01, cfg, alpha=0.01, seed=seed)
        for got, want in ((h["W"][-1], W), (h["b"][-1], b), (h["log_std"][-1], ls)):
            assert np.abs(got - want).max() < 0.02, (seed, got, want)
    h = E.edit_train(_base, A_STAR, 4000, 0.01, cfg, alpha=0.01, auto_alpha=True, seed=0)
    ls_star = -1.0 - 0.5 * np.log(2 * np.pi) - np.log(0.5)
    assert np.abs(h["log_std"][-200:].mean(0) - ls_star).max() < 0.03
    assert abs(np.exp(h["log_alpha"][-200:].mean()) / (2 * 0.25 * np.exp(2 * ls_star)) - 1) < 0.1


@settings(max_examples=40, deadline=None)
@given(seed=seeds, B=st.integers(1, 8), N=st.integers(1, 5), gamma=st.floats(0, 1))
def test_td_target_with_otf_dominates_base_only(seed, B, N, gamma):
    """TD target with the OTF action (selection and backup by min over the same sampled critics I):
    y_OTF = r + γm·max_k min_{i∈I} Q̄_i(s′, x_k) ≥ the same target with best-of-N base actions only (m ∈ {0, 1})."""
    rng = np.random.default_rng(seed)
    M = int(rng.integers(0, N + 1))
    q_ens = rng.normal(size=(3, B, N + M))                           # |I| = 3 sampled target critics
    r, m = rng.normal(size=B), rng.integers(0, 2, B).astype(float)
    cand = np.zeros((B, N + M, 1))
    idx, _, _ = E.otf_select(cand, q_ens.min(0))
    idx0, _, _ = E.otf_select(cand[:, :N], q_ens[:, :, :N].min(0))
    rows = np.arange(B)
    y = E.expo_td_target(r, m, q_ens[:, rows, idx], gamma)
    y0 = E.expo_td_target(r, m, q_ens[:, rows, idx0], gamma)
    assert (y >= y0 - 1e-15).all()
    np.testing.assert_allclose(y, r + gamma * m * q_ens.min(0).max(1))


@given(log_alpha=st.floats(-5, 2), H=st.floats(-5, 5), target=st.floats(-3, 0))
def test_temperature_moves_entropy_towards_target(log_alpha, H, target):
    """L_α = α(H − H_target): its log α-derivative equals the central FD, and is negative (α grows under gradient
    descent) exactly when the entropy is below its target; H_target = −d/2, or −d/2 + d log β when adjusted."""
    loss, g_ = E.temperature_loss(log_alpha, H, target)
    fd = (E.temperature_loss(log_alpha + 1e-6, H, target)[0] - E.temperature_loss(log_alpha - 1e-6, H, target)[0]) / 2e-6
    assert abs(g_ - fd) <= 1e-6 * (1 + abs(g_))
    assert (g_ < 0) == (H < target) or H == target
    assert E.target_entropy(3) == -1.5
    assert abs(E.target_entropy(3, E.EXPOConfig(beta=0.5, adjust_target_entropy=True)) - (-1.5 + 3 * np.log(0.5))) < 1e-15


def test_base_imitation_loss_is_minimised_by_the_exact_predictor():
    """The base policy's DDPM loss mean ‖ε_φ − ε‖² is minimised by the exact predictor ε* = E[ε | x_t] (Tweedie): on the
    bimodal base, ε* has a lower loss than ε* + δ (|δ| = 0.3, common random numbers, 100 000 draws) at every VP step,
    and the gap is E‖δ‖² within 5 standard errors."""
    rng = np.random.default_rng(2)
    sch = g.schedule(10, "vp")
    x0 = _base(rng, 100_000)
    eps = rng.standard_normal(x0.shape)
    delta = np.array([0.3, -0.3]) / np.sqrt(2)
    for t in range(10):
        ab = sch.alpha_bars[t]
        xt = np.sqrt(ab) * x0 + np.sqrt(1 - ab) * eps
        star = g.eps_star(GM, xt, ab)
        gap = E.ddpm_imitation_loss(star + delta, eps) - E.ddpm_imitation_loss(star, eps)
        se = 2 * np.std((star - eps) @ delta) / np.sqrt(len(xt))
        assert gap > 0 and abs(gap - delta @ delta) <= 5 * se


def test_optimized_matches_reference():
    """The torch registry function (autograd through a linearised critic) reproduces the reference loss, hand gradients and
    entropy in float64 (tanh and none), and the torch edit training (torch.optim.Adam) reproduces the reference
    trajectory, with fixed and learned temperature."""
    from rlspec.optimized import expo as T

    for i in range(20):
        inp = E.make_inputs(np.random.default_rng(i))
        cfg = E.EXPOConfig(squash="tanh" if i % 2 else "none")
        ref = E.expo_edit_loss(**inp, config=cfg)
        got = T.expo_edit_loss(**{k: torch.as_tensor(v) for k, v in inp.items()}, config=cfg)
        for r_, g_ in zip(ref, got):
            np.testing.assert_allclose(np.asarray(g_), r_, rtol=1e-10, atol=1e-13)
    cfg = E.EXPOConfig(beta=0.5, squash="none")
    for auto in (False, True):
        r_ = E.edit_train(_base, A_STAR, 200, 0.01, cfg, alpha=0.01, auto_alpha=auto, seed=4)
        t_ = T.edit_train(_base, A_STAR, 200, 0.01, cfg, alpha=0.01, auto_alpha=auto, seed=4)
        for k in r_:
            np.testing.assert_allclose(t_[k].reshape(r_[k].shape), r_[k], rtol=1e-8, atol=1e-10)


def test_bad_input_raises():
    inp = E.make_inputs(np.random.default_rng(0))
    with pytest.raises(RLSpecValueError, match="log_std"):
        E.expo_edit_loss(**{**inp, "log_std": inp["log_std"][:, :0]})
    with pytest.raises(RLSpecValueError, match="q"):
        E.expo_edit_loss(**{**inp, "q": np.full_like(inp["q"], np.inf)})
    with pytest.raises(RLSpecValueError, match="alpha"):
        E.expo_edit_loss(**{**inp, "alpha": -1.0})
    with pytest.raises(RLSpecValueError, match="M"):
        E.EXPOConfig(N=2, M=3)
    with pytest.raises(RLSpecValueError, match="beta"):
        E.EXPOConfig(beta=0.0)
    with pytest.raises(RLSpecValueError, match="squash"):
        E.EXPOConfig(squash="sigmoid")


def plot_expo(path: str = "docs/algorithms/img/expo.png") -> None:
    """The docs figure: edit-policy training on the one-step toy, and E Q(a*_OTF) against N with and without edits."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = E.EXPOConfig(beta=0.5, squash="none")
    W, b, ls = E.edit_optimum(A_STAR, 0.5, 0.01)
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    for seed, lst in zip(range(3), ("-", "--", ":")):
        h = E.edit_train(_base, A_STAR, 2000, 0.01, cfg, alpha=0.01, seed=seed)
        for key, want, col in (("W", W, "C0"), ("b", b, "C1"), ("log_std", ls, "C2")):
            err = np.abs(h[key] - want).reshape(len(h[key]), -1).max(1)
            ax[0].semilogy(err, col, ls=lst, lw=1, label=f"max |{key} − {key}*|" if seed == 0 else None)
    ax[0].set(xlabel="Adam step", ylabel="distance to closed-form optimum", title="edit policy, 3 seeds")
    ax[0].legend(fontsize=7)
    rng = np.random.default_rng(5)
    Ns = [1, 2, 4, 8, 16, 32]
    for M_of, lab, col in ((lambda N: 0, "best-of-N (M = 0)", "C0"), (lambda N: N, "EXPO OTF (M = N)", "C3")):
        vals = []
        for N in Ns:
            c = E.EXPOConfig(N=N, M=M_of(N), beta=0.5, squash="none")

            def edit(s_, a_, r_):
                return a_ @ W.T + b + np.exp(ls) * r_.standard_normal(a_.shape)

            _, val = E.otf_action(np.zeros(20000), lambda s_, n, r_: _base(r_, s_.shape[0] * n).reshape(-1, n, 2),
                                  edit, lambda s_, cand: E.quadratic_q(cand, A_STAR)[0], rng, c)
            vals.append(val.mean())
        ax[1].plot(Ns, vals, "o-", color=col, label=lab)
    ax[1].axhline(-0.25 * 2 * np.exp(2 * ls[0]), color="k", ls=":", lw=1, label="E Q of one optimal edit")
    ax[1].set(xscale="log", xlabel="N base samples", ylabel="E Q(a*_OTF)", title="on-the-fly selection (trained edit)")
    ax[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
