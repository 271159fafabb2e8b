"""Properties of N-PG-IGT and (N)-HARPG (arXiv 2302.01734) on small exact problems.

Expected values come from outside the estimators: the closed-form J, ∇J, ∇²J of the Gaussian bandit
(:mod:`rlspec.reference.envs.gaussian_bandit`, itself tested in test_envs_gaussian_bandit.py), finite
differences of the exact finite-horizon return of a tabular MDP (backward induction in
:mod:`rlspec.reference.envs.tabular_mdp`), and the exact LQR return and its θ-derivatives
(:mod:`rlspec.reference.envs.lqr`). Expectations are exact (Gauss-Hermite quadrature in the action,
Gauss-Legendre in the HARPG mixing variable q, or enumeration of every trajectory); the few Monte-Carlo checks
are seeded and state their false-alarm rate.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlspec.reference import registry
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.envs import gaussian_bandit as gb
from rlspec.reference.envs import lqr, tabular_mdp
from rlspec.reference.n_harpg import (
    NHARPGConfig,
    bandit_oracles,
    gaussian_jac_v,
    gaussian_scores,
    gpomdp_gradient,
    gradient_domination_bound,
    harpg_point,
    harpg_update,
    hessian_estimate,
    hessian_vector,
    igt_point,
    igt_update,
    init_state,
    lqr_oracles,
    make_inputs,
    momentum,
    n_harpg_estimates,
    npg_igt,
    run,
    step_size,
)

thetas2 = st.tuples(st.floats(-2.0, 2.0), st.floats(-1.0, 0.7)).map(np.array)
bandits = st.builds(gb.GaussianBandit, a_star=st.floats(-1.5, 1.5), c=st.floats(0.2, 2.0), r0=st.floats(-1.0, 1.0))
ONE = np.ones((1, 1), dtype=bool)

# LQR used for the convergence run and the figure: θ* ≈ −0.544 for H = 10
LQR = lqr.ScalarLQR(a=1.0, b=1.0, q=1.0, r=1.0, gamma=0.8, sigma_w=0.0, s0=1.0)
LQR_SIGMA, LQR_H, LQR_BATCH, LQR_T = 1.0, 10, 32, 500
METHODS = {"N-PG-IGT": NHARPGConfig(method="igt", discount=0.8),
           "N-HARPG": NHARPGConfig(method="harpg", discount=0.8),
           "HARPG": NHARPGConfig(method="harpg", normalized=False, discount=0.8, gamma0=0.005)}


def _bandit_estimates(env, theta, fn):
    """E_a[fn(a, scores (n,1,P), jacobians (n,1,P,P), rewards (n,1))] by Gauss-Hermite quadrature."""
    def f(a):
        return fn(a, gb.score(a, theta)[:, None, :], gb.score_jacobian(a, theta)[:, None], gb.reward(env, a)[:, None])
    return gb.expect(f, theta, n=16)


@given(env=bandits, theta=thetas2)
def test_gpomdp_unbiased_on_gaussian_bandit(env, theta):
    """GPOMDP: E_{a~π_θ} g(a, θ) = ∇J(θ) exactly (one step, learned mean and log-std)."""
    Eg = _bandit_estimates(env, theta, lambda a, s, Hs, r: gpomdp_gradient(s, r, np.ones_like(r, bool), 1.0))
    np.testing.assert_allclose(Eg, gb.gradient(env, theta), rtol=1e-9, atol=1e-9)


@given(env=bandits, theta=thetas2, v=st.tuples(st.floats(-2, 2), st.floats(-2, 2)).map(np.array))
def test_hessian_estimator_unbiased_on_gaussian_bandit(env, theta, v):
    """Hessian estimator: E B(a, θ) = ∇²J(θ) exactly, and B·v computed without forming B equals B @ v."""
    EB = _bandit_estimates(env, theta, lambda a, s, Hs, r: hessian_estimate(s, Hs, r, np.ones_like(r, bool), 1.0))
    np.testing.assert_allclose(EB, gb.hessian(env, theta), rtol=1e-9, atol=1e-9)
    a = gb.sample(np.random.default_rng(0), theta, 7)
    s, Hs, r, m = gb.score(a, theta)[:, None], gb.score_jacobian(a, theta)[:, None], gb.reward(env, a)[:, None], \
        np.ones((7, 1), bool)
    np.testing.assert_allclose(hessian_vector(s, Hs @ v, r, m, 1.0, v), hessian_estimate(s, Hs, r, m, 1.0) @ v,
                               rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------- tabular MDP by enumeration


def _softmax(theta, S, A):
    z = np.exp(theta.reshape(S, A) - theta.reshape(S, A).max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _J_H(mdp, theta, H):
    V, _ = tabular_mdp.evaluate_finite(mdp, _softmax(theta, *mdp.R.shape), H)
    return float(mdp.d0 @ V[0])


def _trajectories(mdp, theta, H):
    """Every trajectory (s_0, a_0, ..., s_{H-1}, a_{H-1}) with its probability, scores (H, SA), score-Jacobians
    (H, SA, SA) and rewards (H,) under the tabular softmax policy."""
    S, A = mdp.R.shape
    pi = _softmax(theta, S, A)
    for path in itertools.product(range(S), range(A), repeat=H):
        s_seq, a_seq = path[0::2], path[1::2]
        p = mdp.d0[s_seq[0]]
        for t in range(H):
            p *= pi[s_seq[t], a_seq[t]] * (mdp.P[s_seq[t], a_seq[t], s_seq[t + 1]] if t + 1 < H else 1.0)
        if p == 0.0:
            continue
        sc, jac = np.zeros((H, S * A)), np.zeros((H, S * A, S * A))
        for t, (s, a) in enumerate(zip(s_seq, a_seq)):
            blk = slice(s * A, (s + 1) * A)
            sc[t, blk] = np.eye(A)[a] - pi[s]
            jac[t, blk, blk] = -(np.diag(pi[s]) - np.outer(pi[s], pi[s]))
        yield p, sc, jac, np.array([mdp.R[s, a] for s, a in zip(s_seq, a_seq)])


def _fd_grad_hess(f, x, h=1e-3):
    n = x.size
    E = np.eye(n) * h
    g = np.array([(f(x + E[i]) - f(x - E[i])) / (2 * h) for i in range(n)])
    Hm = np.array([[(f(x + E[i] + E[j]) - f(x + E[i] - E[j]) - f(x - E[i] + E[j]) + f(x - E[i] - E[j])) / (4 * h * h)
                    for j in range(n)] for i in range(n)])
    return g, Hm


@given(seed=st.integers(0, 2**31 - 1), H=st.integers(1, 3), gamma=st.floats(0.5, 1.0))
def test_estimators_unbiased_on_tabular_mdp(seed, H, gamma):
    """E g = ∇J_H and E B = ∇²J_H exactly on a random 2-state, 2-action MDP with a tabular softmax policy:
    expectations by enumerating every trajectory; ∇J_H, ∇²J_H by central finite differences of the exact
    J_H (backward induction)."""
    rng = np.random.default_rng(seed)
    mdp = tabular_mdp.random_mdp(rng, 2, 2, gamma=gamma)
    theta = rng.normal(size=4)
    Eg, EB = np.zeros(4), np.zeros((4, 4))
    for p, sc, jac, r in _trajectories(mdp, theta, H):
        m = np.ones((1, H), bool)
        Eg += p * gpomdp_gradient(sc[None], r[None], m, gamma)[0]
        EB += p * hessian_estimate(sc[None], jac[None], r[None], m, gamma)[0]
    g_fd, H_fd = _fd_grad_hess(lambda th: _J_H(mdp, th, H), theta)
    np.testing.assert_allclose(Eg, g_fd, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(EB, H_fd, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------- the HARPG correction


def _legendre01(n=24):
    x, w = np.polynomial.legendre.leggauss(n)
    return 0.5 * (x + 1.0), 0.5 * w


@given(env=bandits, th_prev=thetas2, step=st.tuples(st.floats(-1, 1), st.floats(-0.5, 0.5)).map(np.array))
def test_harpg_correction_unbiased_exact(env, th_prev, step):
    """HARPG correction: E_{q~U[0,1], â~π_θ̂}[B(â, θ̂_q)(θ_t − θ_{t−1})] = ∇J(θ_t) − ∇J(θ_{t−1}) exactly, with
    θ̂_q = qθ_t + (1 − q)θ_{t−1} (Gauss-Legendre in q, Gauss-Hermite in â). The Hessian of this bandit depends
    on θ (through σ²), so the random point matters: B at θ_t alone would be biased whenever the std moves."""
    th = th_prev + step
    state = init_state(th_prev)
    state = type(state)(theta=th, theta_prev=th_prev, d=None, t=1)
    qs, ws = _legendre01()
    Ev = np.zeros(2)
    for q, w in zip(qs, ws):
        point = harpg_point(state, q)
        Ev += w * _bandit_estimates(env, point, lambda a, s, Hs, r: hessian_vector(
            s, Hs @ step, r, np.ones_like(r, bool), 1.0, step))
    np.testing.assert_allclose(Ev, gb.gradient(env, th) - gb.gradient(env, th_prev), rtol=1e-9, atol=1e-9)
    at_end = gb.hessian(env, th) @ step
    if abs(step[1]) > 0.05:
        assert np.abs(at_end - Ev).max() > 1e-4


@given(seed=st.integers(0, 2**31 - 1), H=st.integers(1, 2))
def test_harpg_correction_unbiased_on_tabular_mdp(seed, H):
    """The same identity on a random 2-state MDP with a softmax policy: E_{q,τ̂} B(τ̂, θ̂_q)Δ = ∇J_H(θ_t) −
    ∇J_H(θ_{t−1}) (enumeration × Gauss-Legendre; gradients by central finite differences of the exact J_H)."""
    rng = np.random.default_rng(seed)
    mdp = tabular_mdp.random_mdp(rng, 2, 2, gamma=0.9)
    th_prev, delta = rng.normal(size=4), rng.normal(size=4) * 0.7
    state = type(init_state(th_prev))(theta=th_prev + delta, theta_prev=th_prev, d=None, t=1)
    Ev = np.zeros(4)
    for q, w in zip(*_legendre01(16)):
        for p, sc, jac, r in _trajectories(mdp, harpg_point(state, q), H):
            Ev += w * p * hessian_vector(sc[None], (jac @ delta)[None], r[None], np.ones((1, H), bool), 0.9, delta)[0]
    g1 = _fd_grad_hess(lambda t: _J_H(mdp, t, H), th_prev + delta, h=1e-5)[0]
    g0 = _fd_grad_hess(lambda t: _J_H(mdp, t, H), th_prev, h=1e-5)[0]
    np.testing.assert_allclose(Ev, g1 - g0, rtol=1e-6, atol=1e-7)


def test_harpg_oracle_sampling_is_unbiased():
    """The sampling path the driver uses (q ~ U[0,1] from the generator, then the bandit's Hessian-vector
    oracle at θ̂_q) averages to ∇J(θ_t) − ∇J(θ_{t−1}): 8 000 seeded draws, each coordinate within 5 standard
    errors (false-alarm rate < 1e-6 per coordinate under the CLT)."""
    env = gb.GaussianBandit(a_star=0.5, c=1.0)
    th_prev, th = np.array([0.0, -0.2]), np.array([0.3, 0.1])
    state = type(init_state(th_prev))(theta=th, theta_prev=th_prev, d=None, t=1)
    _, hvp = bandit_oracles(env, batch=1)
    rng = np.random.default_rng(3)
    draws = np.array([hvp(rng, harpg_point(state, float(rng.random())), th - th_prev) for _ in range(8_000)])
    want = gb.gradient(env, th) - gb.gradient(env, th_prev)
    se = draws.std(axis=0) / np.sqrt(len(draws))
    assert (np.abs(draws.mean(axis=0) - want) <= 5 * se).all()


def test_lqr_estimators_unbiased():
    """On scalar LQR with u = θx + σε: the mean GPOMDP gradient is dJ_H/dθ and the mean B·v is d²J_H/dθ²·v
    (exact derivatives of the exact return); 60 000 seeded trajectories, within 5 standard errors
    (false-alarm rate < 1e-6 each)."""
    env = lqr.ScalarLQR(a=0.9, b=0.5, q=1.0, r=0.5, gamma=0.9, sigma_w=0.2, s0=1.0)
    th, sd, H, n, v = -0.4, 0.6, 8, 60_000, np.array([1.3])
    X, U, R = lqr.simulate(env, np.random.default_rng(7), th, sd, H, n)
    m = np.ones((n, H), bool)
    s = gaussian_scores(X[..., None], U, np.array([th]), sd)
    g = gpomdp_gradient(s, R, m, env.gamma)[:, 0]
    Bv = hessian_vector(s, gaussian_jac_v(X[..., None], v, sd), R, m, env.gamma, v)[:, 0]
    _, d1, d2 = lqr.objective_derivatives(env, th, sd, H)
    assert abs(g.mean() - d1) <= 5 * g.std() / np.sqrt(n)
    assert abs(Bv.mean() - d2 * v[0]) <= 5 * Bv.std() / np.sqrt(n)


def _naive_entry(X, A, R, m, theta, v, cfg):
    """g and B·v by explicit loops over trajectories and steps (the definitions, written out again)."""
    N, H, P = X.shape
    G, HV = np.zeros(P), np.zeros(P)
    for n in range(N):
        g, gradg, dPhi = np.zeros(P), np.zeros((P, P)), np.zeros(P)
        for t in range(H):
            if not m[n, t]:
                continue
            x = X[n, t]
            dPhi += (A[n, t] - theta @ x) * x / cfg.sigma**2
            acc_s = sum(((A[n, h] - theta @ X[n, h]) * X[n, h] / cfg.sigma**2 for h in range(t + 1) if m[n, h]),
                        np.zeros(P))
            acc_H = sum((-np.outer(X[n, h], X[n, h]) / cfg.sigma**2 for h in range(t + 1) if m[n, h]), np.zeros((P, P)))
            g += cfg.discount**t * R[n, t] * acc_s
            gradg += cfg.discount**t * R[n, t] * acc_H
        G += g / N
        HV += (gradg + np.outer(g, dPhi)) @ v / N
    return G, HV


@given(seed=st.integers(0, 2**31 - 1), discount=st.floats(0.0, 1.0), sigma=st.floats(0.3, 2.0))
def test_entry_matches_per_step_formulas(seed, discount, sigma):
    """The registry entry (batch means of g and B·v for a_t ~ N(θᵀx_t, σ²)) equals the definitions written as
    explicit loops; padding (NaN, ±inf, huge values at masked steps) is never read; an all-false mask gives 0."""
    rng = np.random.default_rng(seed)
    inp = make_inputs(rng)
    cfg = NHARPGConfig(discount=discount, sigma=sigma)
    g, hv = n_harpg_estimates(**inp, config=cfg)
    m = inp["mask"]
    clean = {k: np.where(m[..., None] if k == "states" else m, inp[k], 0.0) for k in ("states", "actions", "rewards")}
    g_ref, hv_ref = _naive_entry(clean["states"], clean["actions"], clean["rewards"], m, inp["theta"], inp["v"], cfg)
    np.testing.assert_allclose(g, g_ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(hv, hv_ref, rtol=1e-10, atol=1e-10)
    assert registry.get("n_harpg")(**inp, config=cfg)[0] == pytest.approx(g, rel=0, abs=0)
    empty = dict(inp, mask=np.zeros_like(m))
    assert all((x == 0).all() for x in n_harpg_estimates(**empty, config=cfg))


# ---------------------------------------------------------------------------- the recursions


@given(env=bandits, theta0=thetas2, eta0=st.floats(0.2, 1.0), normalized=st.booleans())
def test_harpg_recursion_tracks_exact_gradient(env, theta0, eta0, normalized):
    """(N)-HARPG's recursion is unbiased: fed the exact E g = ∇J(θ_t) and the exact E_{q,τ̂} v_t, its direction
    is d_t = ∇J(θ_t) at every one of 20 iterations (any η_0; normalized or not)."""
    cfg = NHARPGConfig(method="harpg", normalized=normalized, eta0=eta0, gamma0=0.05)
    state = init_state(theta0)
    qs, ws = _legendre01(12)
    for _ in range(20):
        disp = state.theta - state.theta_prev
        hv = sum(w * gb.hessian(env, harpg_point(state, q)) @ disp for q, w in zip(qs, ws))
        state = harpg_update(state, gb.gradient(env, state.theta), hv, cfg)
        np.testing.assert_allclose(state.d, gb.gradient(env, state.theta_prev), rtol=1e-9, atol=1e-9)


@given(seed=st.integers(0, 2**31 - 1), eta0=st.floats(0.3, 1.0), normalized=st.booleans())
def test_igt_transport_exact_on_quadratic(seed, eta0, normalized):
    """Implicit gradient transport (N-PG-IGT): on a quadratic J(θ) = −½(θ − θ*)ᵀA(θ − θ*) with exact gradients
    evaluated at θ̃_t, d_t = (1 − η_t)d_{t−1} + η_t∇J(θ̃_t) equals ∇J(θ_t) exactly at every step. This needs η_t in
    the extrapolation; the code's timing (η_{t−1}, ``igt_eta="previous"``) loses the identity."""
    rng = np.random.default_rng(seed)
    M = rng.normal(size=(3, 3))
    A, th_star = M @ M.T + 0.5 * np.eye(3), rng.normal(size=3)
    grad = lambda rng_, th: -A @ (th - th_star)  # noqa: E731
    for timing, exact in (("current", True), ("previous", False)):
        cfg = NHARPGConfig(method="igt", normalized=normalized, eta0=eta0, gamma0=0.05, igt_eta=timing)
        thetas, ds = npg_igt(grad, rng.normal(size=3), 30, cfg)
        err = max(np.abs(ds[t] - grad(None, thetas[t])).max() for t in range(30))
        if exact:
            assert err <= 1e-10
        else:
            assert err > 1e-6


@given(seed=st.integers(0, 2**31 - 1), method=st.sampled_from(["igt", "harpg"]), normalized=st.booleans(),
       g0=st.floats(0.01, 1.0), e0=st.floats(0.1, 1.0))
def test_normalized_step_length_and_schedules(seed, method, normalized, g0, e0):
    """Schedules (code): γ_t = γ_0·2/(t+2) (unnormalized HARPG: γ_0(2/(t+2))^{1/2}), η_t = η_0(2/(t+2))^{4/5}
    (IGT) or η_0·2/(t+2) (HARPG); a normalized step moves θ by exactly γ_t, an unnormalized one by γ_t·‖d_t‖."""
    cfg = NHARPGConfig(method=method, normalized=normalized, gamma0=g0, eta0=e0)
    for t in range(5):
        base = 2.0 / (t + 2)
        want_g = g0 * (np.sqrt(base) if (method == "harpg" and not normalized) else base)
        want_e = e0 * (base**0.8 if method == "igt" else base)
        assert step_size(t, cfg) == pytest.approx(want_g, rel=1e-14)
        assert momentum(t, cfg) == pytest.approx(want_e, rel=1e-14)
    rng = np.random.default_rng(seed)
    noisy = lambda r, th: r.normal(size=th.size) + 1.0  # noqa: E731
    thetas, ds = run(noisy, lambda r, th, v: r.normal(size=th.size), rng.normal(size=2), 12, cfg, seed)
    steps = np.linalg.norm(np.diff(thetas, axis=0), axis=1)
    want = np.array([step_size(t, cfg) * (1.0 if normalized else np.linalg.norm(ds[t])) for t in range(12)])
    np.testing.assert_allclose(steps, want, rtol=1e-12)


def test_updates_are_pure_and_replayable():
    """The steps are pure (the state and the estimates passed in are not modified) and replaying them one by one
    with the same random stream reproduces the drivers exactly (N-PG-IGT and N-HARPG on the bandit)."""
    env = gb.GaussianBandit(a_star=0.7)
    grad, hvp = bandit_oracles(env, batch=2)
    cfg_h, cfg_i = NHARPGConfig(method="harpg"), NHARPGConfig(method="igt", eta0=0.6)
    thetas_h, _ = run(grad, hvp, [0.1, -0.3], 15, cfg_h, seed=5)
    thetas_i, _ = run(grad, None, [0.1, -0.3], 15, cfg_i, seed=5)
    for cfg, want in ((cfg_h, thetas_h), (cfg_i, thetas_i)):
        rng = np.random.default_rng(5)
        state = init_state([0.1, -0.3])
        for t in range(15):
            before = (state.theta.copy(), state.theta_prev.copy(), None if state.d is None else state.d.copy())
            if cfg.method == "harpg":
                q = float(rng.random())
                disp = state.theta - state.theta_prev
                hv = np.zeros(2) if t == 0 else hvp(rng, harpg_point(state, q), disp)
                g = grad(rng, state.theta)
                g_copy, hv_copy = g.copy(), hv.copy()
                new = harpg_update(state, g, hv, cfg)
                assert (g == g_copy).all() and (hv == hv_copy).all()
            else:
                g = grad(rng, igt_point(state, cfg))
                new = igt_update(state, g, cfg)
            assert (state.theta == before[0]).all() and (state.theta_prev == before[1]).all()
            assert (before[2] is None and state.d is None) or (state.d == before[2]).all()
            state = new
            np.testing.assert_array_equal(state.theta, want[t + 1])


@given(env=bandits, mu=st.floats(-3.0, 3.0), sigma=st.floats(0.2, 2.0), shift=st.floats(-1.0, 1.0),
       sd_star=st.floats(0.05, 2.0))
def test_weak_gradient_domination_on_bandits(env, mu, sigma, shift, sd_star):
    """Relaxed weak gradient domination (our one-step form of the paper's lemma): for any comparator policy
    π' = N(a* + shift, σ'²) and the mean-parameterized Gaussian policy N(μ, σ²) with Fisher F = 1/σ²,
    J(π') − J(θ) = E_{π'}A^θ ≤ √ε_bias + G‖w*‖ ≤ √ε_bias + (G/μ_F)‖∇J‖, with w* = F⁻¹∇J,
    ε_bias = E_{π'}(A^θ − w*ᵀs_θ)², G² = E_{π'}‖s_θ‖² (exact quadrature under π')."""
    theta = np.array([mu])
    x, w = np.polynomial.hermite_e.hermegauss(24)
    a = env.a_star + shift + sd_star * x
    w = w / np.sqrt(2 * np.pi)
    J = gb.objective(env, theta, learn_std=False, sigma=sigma)
    adv = gb.reward(env, a) - J
    scores = gb.score(a, theta, learn_std=False, sigma=sigma)
    grad = gb.gradient(env, theta, learn_std=False, sigma=sigma)
    F = gb.fisher(theta, learn_std=False, sigma=sigma)
    gap, bound, eps_bias = gradient_domination_bound(w, adv, scores, grad, F)
    comparator = -env.c * (shift**2 + sd_star**2) + env.r0
    assert gap == pytest.approx(comparator - J, rel=1e-9, abs=1e-9)
    assert gap <= bound + 1e-9 * (1 + abs(bound))
    G = np.sqrt(w @ (scores**2).sum(axis=1))
    mu_F = np.linalg.eigvalsh(F).min()
    assert bound <= np.sqrt(eps_bias) + G / mu_F * np.linalg.norm(grad) + 1e-9 * (1 + abs(bound))


# ---------------------------------------------------------------------------- convergence


@pytest.mark.parametrize("name,cfg", [
    ("N-PG-IGT", NHARPGConfig(method="igt", discount=1.0, gamma0=0.3)),
    ("N-HARPG", NHARPGConfig(method="harpg", discount=1.0, gamma0=0.3)),
    ("HARPG", NHARPGConfig(method="harpg", normalized=False, discount=1.0, gamma0=0.05)),
])
def test_converges_on_gaussian_bandit(name, cfg):
    """The three methods, one sampled action per estimator (the paper's single trajectory), reach the optimal
    mean μ* = a* = 1 of the bandit r(a) = −(a − 1)², σ = 0.5 frozen, from μ_0 = 0 in 1000 iterations:
    |μ_T − a*| ≤ 0.08 for seeds 0, 1, 2. γ_0 is ours (0.3 normalized, 0.05 HARPG): the code's default 0.1 moves a
    normalized method at most 2γ_0 ln(T) in total, short of the distance 1."""
    env = gb.GaussianBandit(a_star=1.0, c=1.0)
    grad, hvp = bandit_oracles(env, batch=1, learn_std=False, sigma=0.5)
    for seed in range(3):
        thetas, _ = run(grad, hvp, [0.0], 1000, cfg, seed)
        assert abs(thetas[-1, 0] - 1.0) <= 0.08, (name, seed, thetas[-1])


def lqr_runs(seeds=(0, 1, 2)):
    """θ_0..θ_T of each method on the LQR of the convergence test, with θ*_H and J*_H."""
    th_star, J_star = lqr.optimal_gain(LQR, LQR_SIGMA, LQR_H)
    grad, hvp = lqr_oracles(LQR, LQR_SIGMA, LQR_H, batch=LQR_BATCH)
    runs = {name: [run(grad, hvp, [0.0], LQR_T, cfg, seed)[0][:, 0] for seed in seeds] for name, cfg in METHODS.items()}
    return runs, th_star, J_star


def test_converges_on_lqr():
    """Scalar LQR (a = b = q = r = 1, γ = 0.8, H = 10, u = θx + σε with σ = 1, batches of 32 trajectories,
    500 iterations, θ_0 = 0): N-PG-IGT and N-HARPG (γ_0 = 0.1, η_0 = 1, the code's defaults) and HARPG (γ_0 = 0.005,
    ours) end within 0.06 of the best gain θ*_H of the exact truncated return, with J*_H − J_H(θ_T) ≤ 0.5 % of
    |J*_H| (seeds 0, 1, 2)."""
    runs, th_star, J_star = lqr_runs()
    for name, traj in runs.items():
        for seed, th in enumerate(traj):
            gap = J_star - lqr.objective(LQR, th[-1], LQR_SIGMA, LQR_H)
            assert abs(th[-1] - th_star) <= 0.06 and gap <= 0.005 * abs(J_star), (name, seed, th[-1], th_star, gap)


def make_figure(path="docs/algorithms/img/n_harpg.png"):  # pragma: no cover - run by hand for the docs page
    """Write the docs figure: the gain θ_t of each method (3 seeds) against θ*_H on the LQR above."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs, th_star, _ = lqr_runs()
    fig, ax = plt.subplots(figsize=(7, 4))
    colors = {"N-PG-IGT": "tab:blue", "N-HARPG": "tab:orange", "HARPG": "tab:green"}
    for name, traj in runs.items():
        for i, th in enumerate(traj):
            ax.plot(th, color=colors[name], lw=1, alpha=0.8, label=name if i == 0 else None)
    ax.axhline(th_star, color="k", ls="--", lw=1, label=f"θ*_H = {th_star:.3f}")
    ax.axhline(lqr.riccati(LQR)[1], color="gray", ls=":", lw=1, label="Riccati gain (H = ∞)")
    ax.set_xlabel("iteration t")
    ax.set_ylabel("gain θ_t")
    ax.set_title("scalar LQR, u = θx + σε: iterates against the optimal gain")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------- optimized and bad input


def test_optimized_matches_reference():
    """optimized/n_harpg.py: autograd (double backward through log π, a forward-mode product for ∇Φ·v) gives the
    hand formulas' g and B·v in float64 on random batches with padding; its torch run of N-HARPG on the bandit
    replays the reference run."""
    torch = pytest.importorskip("torch")
    from rlspec import optimized

    fn = optimized.get("n_harpg")
    rng = np.random.default_rng(11)
    for _ in range(5):
        inp = make_inputs(rng)
        want = n_harpg_estimates(**inp)
        got = fn(**{k: torch.as_tensor(v, dtype=torch.float64) if v.dtype != bool else torch.as_tensor(v)
                    for k, v in inp.items()})
        for w, g in zip(want, got):
            np.testing.assert_allclose(g.numpy(), w, rtol=1e-10, atol=1e-12)
    from rlspec.optimized import n_harpg as opt

    env = gb.GaussianBandit(a_star=0.6)
    grad, hvp = bandit_oracles(env, batch=3)
    ref, _ = run(grad, hvp, [0.0, 0.0], 25, NHARPGConfig(method="harpg"), seed=2)
    got = opt.run_bandit(env, [0.0, 0.0], 25, NHARPGConfig(method="harpg"), seed=2, batch=3)
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)


def test_bad_input_raises():
    """Wrong shapes, NaN at a valid step, a float mask, θ of the wrong length, a bad method and η_0 ∉ (0, 1]
    raise RLSpecValueError naming the argument."""
    inp = make_inputs(np.random.default_rng(0))
    with pytest.raises(RLSpecValueError, match="states"):
        n_harpg_estimates(**dict(inp, states=inp["states"][..., 0]))
    bad = inp["rewards"].copy()
    bad[0, 0] = np.nan
    with pytest.raises(RLSpecValueError, match="rewards"):
        n_harpg_estimates(**dict(inp, rewards=bad))
    with pytest.raises(RLSpecValueError, match="mask"):
        n_harpg_estimates(**dict(inp, mask=inp["mask"].astype(float)))
    with pytest.raises(RLSpecValueError, match="theta"):
        n_harpg_estimates(**dict(inp, theta=np.zeros(inp["theta"].size + 1)))
    with pytest.raises(RLSpecValueError, match="method"):
        NHARPGConfig(method="sgd")
    with pytest.raises(RLSpecValueError, match="eta0"):
        NHARPGConfig(eta0=1.5)
    with pytest.raises(RLSpecValueError, match="T"):
        npg_igt(lambda r, t: t, [0.0], -1)
