"""Properties of DR-RPO (arXiv 2510.14246): robust duals, regularised robust DP, the mirror-descent step.

Independent references: scipy.optimize.linprog for the TV worst case (the primal LP over the simplex),
scipy.optimize.minimize (SLSQP) for the KL worst case and for the policy step's argmax, the nominal
finite-horizon solvers of :mod:`rlspec.reference.envs.tabular_mdp` for the ρ = 0 limit, and explicit
finite-horizon evaluation under kernels sampled from the uncertainty set.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize
from scipy.special import xlogy

from rlspec.reference import registry
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.envs import tabular_mdp as tm

try:
    from rlspec.reference import dr_rpo as D
except ImportError:  # pragma: no cover - during development
    from rlspec.reference import _wip_dr_rpo as D

seeds = st.integers(0, 2**32 - 1)


def lp_tv(V, mu0, rho):
    """min_μ μ·V s.t. ½‖μ − μ⁰‖₁ ≤ ρ, μ ∈ Δ: variables (μ, t), t ≥ |μ − μ⁰|. Returns (value, μ)."""
    S = len(V)
    c = np.concatenate([V, np.zeros(S)])
    I = np.eye(S)
    A_ub = np.block([[I, -I], [-I, -I], [np.zeros((1, S)), np.ones((1, S))]])
    b_ub = np.concatenate([mu0, -mu0, [2 * rho]])
    A_eq = np.concatenate([np.ones(S), np.zeros(S)])[None]
    res = optimize.linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=[1.0], bounds=[(0, None)] * (2 * S),
                           method="highs")
    assert res.status == 0
    return res.fun, res.x[:S]


def direct_kl(V, mu0, rho):
    """min_μ μ·V s.t. KL(μ‖μ⁰) ≤ ρ, μ ∈ Δ(supp μ⁰), by SLSQP from several starts (a convex program)."""
    supp = mu0 > 0
    v, m = V[supp], mu0[supp]
    cons = [{"type": "eq", "fun": lambda x: x.sum() - 1.0, "jac": lambda x: np.ones_like(x)},
            {"type": "ineq", "fun": lambda x: rho - np.sum(xlogy(x, x) - xlogy(x, m)),
             "jac": lambda x: -(np.log(np.maximum(x, 1e-300)) + 1 - np.log(m))}]
    best = np.inf
    for x0 in (m, 0.5 * m + 0.5 * np.eye(len(m))[np.argmin(v)]):
        res = optimize.minimize(lambda x: x @ v, x0, jac=lambda x: v, method="SLSQP", constraints=cons,
                                bounds=[(0.0, 1.0)] * len(m), options={"ftol": 1e-14, "maxiter": 500})
        x = np.maximum(res.x, 0)
        x /= x.sum()
        if np.sum(xlogy(x, x) - xlogy(x, m)) <= rho + 1e-7:
            best = min(best, x @ v)
    return best


def random_problem(rng, S=3, A=2, d=None, tabular=False):
    if tabular:
        d = S * A
        phi = np.eye(d).reshape(S, A, d)
    else:
        d = d or int(rng.integers(2, 4))
        phi = rng.dirichlet(np.ones(d), size=(S, A))
    return phi, rng.dirichlet(np.ones(S), size=d), rng.uniform(0, 1, size=(S, A)), rng.dirichlet(2 * np.ones(A), size=S)


@settings(max_examples=60, deadline=None)
@given(seed=seeds, S=st.integers(1, 7), rho=st.floats(0.0, 1.2))
def test_tv_dual_equals_linprog(seed, S, rho):
    """TV duality: max_α {E_μ⁰ min(V,α) − ρ(α − min V)} = min_μ {μ·V : TV(μ, μ⁰) ≤ ρ} (linprog, HiGHS)."""
    rng = np.random.default_rng(seed)
    V = rng.normal(size=S) * rng.choice([0.1, 1.0, 10.0])
    if rng.random() < 0.3:
        V = np.round(V)  # ties
    mu0 = rng.dirichlet(np.ones(S) * rng.choice([0.3, 1.0]))
    if rng.random() < 0.3 and S > 1:
        mu0[rng.integers(S)] = 0.0  # mass may move to states outside the support
        mu0 /= mu0.sum()
    lp, _ = lp_tv(V, mu0, rho)
    assert D.tv_worst_case(V, mu0, rho) == pytest.approx(lp, abs=1e-8 * (1 + np.abs(V).max()))


@settings(max_examples=40, deadline=None)
@given(seed=seeds, S=st.integers(1, 6), rho=st.floats(0.0, 3.0))
def test_kl_dual_equals_direct_convex_solve(seed, S, rho):
    """KL duality: sup_λ {−λ log E e^{−V/λ} − λρ} = min_μ {μ·V : KL(μ‖μ⁰) ≤ ρ} (direct SLSQP solve of the
    primal; both sides within 1e-5 relative to the range of V)."""
    rng = np.random.default_rng(seed)
    V = rng.normal(size=S) * rng.choice([0.3, 1.0, 3.0])
    mu0 = rng.dirichlet(np.ones(S))
    if rng.random() < 0.3 and S > 2:
        mu0[rng.integers(S)] = 0.0
        mu0 /= mu0.sum()
    got = float(D.kl_worst_case(V, mu0, rho))
    assert got == pytest.approx(direct_kl(V, mu0, rho), abs=1e-5 * (1 + np.ptp(V)))


@settings(max_examples=40, deadline=None)
@given(seed=seeds, S=st.integers(2, 6), div=st.sampled_from(["tv", "kl"]))
def test_worst_case_limits_and_monotonicity(seed, S, div):
    """ρ = 0 gives E_μ⁰ V; a large ρ gives min V (TV: over all states; KL: over supp μ⁰); the worst case is
    non-increasing in ρ, never above the nominal mean, never below min V, and shifts with V + c."""
    rng = np.random.default_rng(seed)
    V, mu0 = rng.normal(size=S), rng.dirichlet(np.ones(S))
    f = D.tv_worst_case if div == "tv" else D.kl_worst_case
    assert float(f(V, mu0, 0.0)) == pytest.approx(mu0 @ V, abs=1e-12)
    assert float(f(V, mu0, 50.0)) == pytest.approx(V.min(), abs=1e-9)
    rhos = np.sort(rng.uniform(0, 2, size=6))
    vals = np.array([float(f(V, mu0, r)) for r in rhos])
    assert (np.diff(vals) <= 1e-9).all()
    assert (vals <= mu0 @ V + 1e-12).all() and (vals >= V.min() - 1e-12).all()
    c = float(rng.normal() * 5)
    assert float(f(V + c, mu0, rhos[2])) == pytest.approx(vals[2] + c, abs=1e-7)


@settings(max_examples=20, deadline=None)
@given(seed=seeds, rho=st.floats(0.0, 0.8))
def test_d_rectangular_worst_case_equals_joint_lp(seed, rho):
    """d-rectangular set: min over (μ_1 … μ_d), each in its TV ball, of Σ_i φ_i(s,a) μ_i·V — one joint LP per
    (s, a) — equals Σ_i φ_i(s,a) · (factor-wise dual) = robust_expectation."""
    rng = np.random.default_rng(seed)
    S, A, d = 4, 2, 3
    phi, mu0, _, _ = random_problem(rng, S, A, d)
    V = rng.normal(size=S)
    got = D.robust_expectation(phi, mu0, V, rho, "tv")
    I = np.eye(S)
    for s in range(S):
        for a in range(A):
            c = np.concatenate([np.concatenate([phi[s, a, i] * V, np.zeros(S)]) for i in range(d)])
            blocks_ub, b_ub, A_eq = [], [], []
            n = 2 * S * d
            for i in range(d):
                off = 2 * S * i
                row = np.zeros((2 * S + 1, n))
                row[:S, off:off + S], row[:S, off + S:off + 2 * S] = I, -I
                row[S:2 * S, off:off + S], row[S:2 * S, off + S:off + 2 * S] = -I, -I
                row[2 * S, off + S:off + 2 * S] = 1.0
                blocks_ub.append(row)
                b_ub.append(np.concatenate([mu0[i], -mu0[i], [2 * rho]]))
                eq = np.zeros(n)
                eq[off:off + S] = 1.0
                A_eq.append(eq)
            res = optimize.linprog(c, A_ub=np.vstack(blocks_ub), b_ub=np.concatenate(b_ub), A_eq=np.array(A_eq),
                                   b_eq=np.ones(d), bounds=[(0, None)] * n, method="highs")
            assert got[s, a] == pytest.approx(res.fun, abs=1e-8)


@settings(max_examples=20, deadline=None)
@given(seed=seeds, H=st.integers(1, 4), div=st.sampled_from(["tv", "kl"]))
def test_zero_radius_recovers_value_iteration(seed, H, div):
    """ρ = 0 and β_r = 0: the robust regularised optimum is the nominal MDP's backward induction (standard
    finite-horizon value iteration, tabular_mdp), and robust evaluation of any π is nominal evaluation."""
    rng = np.random.default_rng(seed)
    phi, mu0, R, pi_ref = random_problem(rng, 3, 2)
    cfg = D.DRRPOConfig(H=H, rho=0.0, beta_r=0.0, divergence=div)
    mdp = tm.TabularMDP(P=phi @ mu0, R=R, gamma=1.0, d0=np.ones(3) / 3)
    np.testing.assert_allclose(D.robust_optimal_values(phi, mu0, R, pi_ref, cfg).V, tm.backward_induction(mdp, H).V,
                               atol=1e-10)
    pi = rng.dirichlet(np.ones(2), size=(H, 3))
    V, Q = D.robust_policy_evaluation(phi, mu0, R, pi, pi_ref, cfg)
    V_nom, Q_nom = tm.evaluate_finite(mdp, pi, H)
    np.testing.assert_allclose(V, V_nom, atol=1e-10)
    np.testing.assert_allclose(Q, Q_nom, atol=1e-10)


def _ball_sample(rng, mu0, rho, div):
    """A random distribution in the ball: μ⁰ + t(q − μ⁰), t the largest in [0, 1] with D ≤ ρ (D convex in t)."""
    q = rng.dirichlet(np.ones(len(mu0)) * 0.5)
    if div == "kl":
        q = np.where(mu0 > 0, q, 0.0)
        q /= q.sum()

    def dist(t):
        m = mu0 + t * (q - mu0)
        return 0.5 * np.abs(m - mu0).sum() if div == "tv" else np.sum(xlogy(m, m) - xlogy(m, mu0))
    lo, hi = 0.0, 1.0
    if dist(1.0) <= rho:
        lo = 1.0
    else:
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if dist(mid) <= rho else (lo, mid)
    return mu0 + lo * (q - mu0)


def _evaluate_under(kernels, R, pi, pi_ref, beta_r):
    """Regularised finite-horizon value of π under the step kernels P_h (H, S, A, S)."""
    H, S = pi.shape[0], R.shape[0]
    V = np.zeros((H + 1, S))
    for h in range(H - 1, -1, -1):
        Q = R + kernels[h] @ V[h + 1]
        V[h] = (pi[h] * Q).sum(1) - beta_r * (pi[h] * np.log(pi[h] / pi_ref)).sum(1)
    return V


@settings(max_examples=10, deadline=None)
@given(seed=seeds, div=st.sampled_from(["tv", "kl"]), rho=st.floats(0.01, 0.5))
def test_robust_value_is_min_over_the_uncertainty_set(seed, div, rho):
    """Rectangularity: the robust regularised value of π is ≤ its value under every kernel sequence drawn
    from U^ρ (30 draws), and (TV) equals its value under the kernels built from linprog's per-factor argmins."""
    rng = np.random.default_rng(seed)
    S, A, H = 3, 2, 3
    phi, mu0, R, pi_ref = random_problem(rng, S, A)
    pi = rng.dirichlet(np.ones(A), size=(H, S))
    cfg = D.DRRPOConfig(H=H, rho=rho, divergence=div, beta_r=0.2)
    V_rob, _ = D.robust_policy_evaluation(phi, mu0, R, pi, pi_ref, cfg)
    for _ in range(30):
        kernels = np.stack([phi @ np.stack([_ball_sample(rng, m, rho, div) for m in mu0]) for _ in range(H)])
        assert (V_rob[0] <= _evaluate_under(kernels, R, pi, pi_ref, 0.2)[0] + 1e-9).all()
    if div == "tv":
        V = np.zeros((H + 1, S))
        kernels = np.zeros((H, S, A, S))
        for h in range(H - 1, -1, -1):                      # adversary's argmins, step by step
            kernels[h] = phi @ np.stack([lp_tv(V[h + 1], m, rho)[1] for m in mu0])
            V[h] = _evaluate_under(kernels[h:], R, pi[h:], pi_ref, 0.2)[0]
        np.testing.assert_allclose(V[0], V_rob[0], atol=1e-8)


@settings(max_examples=30, deadline=None)
@given(seed=seeds, A=st.integers(2, 5), eta=st.floats(0.05, 5.0), beta=st.floats(0.0, 2.0))
def test_md_step_is_the_simplex_argmax(seed, A, eta, beta):
    """The closed-form step maximises η⟨Q,π⟩ − ηβ KL(π‖π_ref) − KL(π‖π^k) over the simplex (SLSQP from two
    starts does no better, and the objectives match); β = 0 gives π^k e^{ηQ}; η → ∞ gives π_ref e^{Q/β}."""
    rng = np.random.default_rng(seed)
    Q, pk, pref = rng.normal(size=A), rng.dirichlet(np.ones(A)), rng.dirichlet(np.ones(A))

    def obj(p):
        p = np.maximum(p, 1e-300)
        return eta * p @ Q - eta * beta * np.sum(p * np.log(p / pref)) - np.sum(p * np.log(p / pk))
    got = D.md_policy_step(pk, pref, Q, eta, beta)
    cons = [{"type": "eq", "fun": lambda x: x.sum() - 1}]
    for x0 in (np.ones(A) / A, pk):
        res = optimize.minimize(lambda x: -obj(x), x0, method="SLSQP", constraints=cons,
                                bounds=[(1e-12, 1)] * A, options={"ftol": 1e-14, "maxiter": 1000})
        assert obj(got) >= -res.fun - 1e-7
    w = pk * np.exp(eta * Q)
    np.testing.assert_allclose(D.md_policy_step(pk, pref, Q, eta, 0.0), w / w.sum(), atol=1e-12)
    if beta > 0.05:
        w = pref * np.exp(Q / beta)
        np.testing.assert_allclose(D.md_policy_step(pk, pref, Q, 1e9, beta), w / w.sum(), atol=1e-6)


@pytest.mark.parametrize("div", ["tv", "kl"])
def test_policy_iteration_improves_and_converges(div):
    """Mirror-descent policy iteration with exact robust evaluation: V^{π_{k+1}}_0 ≥ V^{π_k}_0 at every state
    (the step improves the one-step regularised objective and the robust operator is monotone), and V → V*
    of the regularised robust Bellman optimality equation (‖·‖∞ ≤ 1e-8 after 60 steps, η = 5, β_r = 0.1)."""
    rng = np.random.default_rng(7)
    phi, mu0, R, pi_ref = random_problem(rng, 4, 3)
    cfg = D.DRRPOConfig(H=3, rho=0.2, divergence=div, beta_r=0.1, eta=5.0)
    vals = D.robust_policy_iteration(phi, mu0, R, pi_ref, cfg, iterations=60)
    assert all((b >= a - 1e-10).all() for a, b in zip(vals, vals[1:]))
    V_star = D.robust_optimal_values(phi, mu0, R, pi_ref, cfg).V[0]
    np.testing.assert_allclose(vals[-1], V_star, atol=1e-8)
    assert np.abs(vals[0] - V_star).max() > 1e-3  # it did have to move


@settings(max_examples=10, deadline=None)
@given(seed=seeds, div=st.sampled_from(["tv", "kl"]))
def test_linear_fa_estimate_is_exact_with_expected_targets(seed, div):
    """With d = 3 < S·A features, one data point per (s, a) whose target is the expected next-state vector
    P⁰(·|s,a), and λ = 1e-10, the ridge factors recover μ⁰ and the optimistic Q̂ (no bonus, no clipping
    active) equals the exact robust backup R + Σ_i φ_i inf E_{μ_i} V."""
    rng = np.random.default_rng(seed)
    S, A = 4, 2
    phi, mu0, R, _ = random_problem(rng, S, A, d=3)
    P0 = phi @ mu0
    M_hat, Lam_inv = D.ridge_factors(phi.reshape(-1, 3), P0.reshape(-1, S), 1e-10)
    np.testing.assert_allclose(M_hat, mu0, atol=1e-6)
    V = rng.uniform(0, 1, size=S)
    cfg = D.DRRPOConfig(H=2, rho=0.15, divergence=div, bonus=0.0)
    Q = D.optimistic_q(phi, R, M_hat, Lam_inv, V, 0, cfg, r_max=10.0)
    np.testing.assert_allclose(Q, R + D.robust_expectation(phi, mu0, V, 0.15, div), atol=1e-6)


def test_online_dr_rpo_reaches_the_robust_optimum():
    """Online DR-RPO (ridge + UCB bonus + mirror descent, tabular features, TV ρ = 0.1, β_r = 0.05) on a
    3-state, 2-action, H = 3 problem: for seeds 0, 1, 2, after 150 episodes the robust regularised value of
    the last policy is within 0.01 of the optimum (about 1% of V*), from a gap above 0.3 at the start
    (values computed exactly by robust DP, no sampling in the check)."""
    for seed in range(3):
        gaps = _online_gaps(episodes=150, seed=seed)
        assert gaps[0] > 0.3
        assert gaps[-1] <= 0.01, (seed, gaps[-1])


def _online_problem():
    rng = np.random.default_rng(11)
    phi, mu0, R, _ = random_problem(rng, 3, 2, tabular=True)
    pi_ref = np.full((3, 2), 0.5)
    cfg = D.DRRPOConfig(H=3, rho=0.1, divergence="tv", beta_r=0.05, eta=1.0, ridge=1.0, bonus=0.1)
    return phi, mu0, R, pi_ref, cfg


def _online_gaps(episodes: int, seed: int) -> np.ndarray:
    phi, mu0, R, pi_ref, cfg = _online_problem()
    d0 = np.ones(3) / 3
    out = D.dr_rpo_online(phi, mu0, R, pi_ref, d0, episodes, cfg, seed=seed)
    V_star = d0 @ D.robust_optimal_values(phi, mu0, R, pi_ref, cfg).V[0]
    return np.array([V_star - d0 @ D.robust_policy_evaluation(phi, mu0, R, p, pi_ref, cfg)[0][0]
                     for p in out["policies"]])


def plot_online(path="docs/algorithms/img/dr_rpo.png"):  # pragma: no cover - docs figure
    """Write the docs figure: suboptimality gap of online DR-RPO per episode, three seeds."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for seed in range(3):
        ax.plot(_online_gaps(300, seed), label=f"seed {seed}")
    ax.set_yscale("log")
    ax.set_xlabel("episode")
    ax.set_ylabel("V*_rob − V^π_rob (exact)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def test_bad_input_raises():
    spec = registry.get("dr_rpo")
    inp = D.make_inputs(np.random.default_rng(0))
    with pytest.raises(RLSpecValueError, match="divergence"):
        spec.config(divergence="chi2")
    with pytest.raises(RLSpecValueError, match="rho"):
        spec.config(rho=-0.1)
    with pytest.raises(RLSpecValueError, match="mu0"):
        spec(**{**inp, "mu0": inp["mu0"] * 2})
    with pytest.raises(RLSpecValueError, match="phi"):
        spec(**{**inp, "phi": inp["phi"][..., :1] * 0})
    with pytest.raises(RLSpecValueError, match="pi_ref"):
        spec(**{**inp, "pi_ref": np.eye(inp["R"].shape[1])[np.zeros(inp["R"].shape[0], int)]})
    with pytest.raises(RLSpecValueError, match="R"):
        spec(**{**inp, "R": np.full_like(inp["R"], np.nan)})
    out = spec(**inp)
    assert set(out) == {"Q", "V", "pi_next"} and all(np.isfinite(v).all() for v in out.values())
