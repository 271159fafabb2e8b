"""Properties of BRRL / BPO / GBPO (Bounded Ratio Reinforcement Learning, arXiv 2604.18578).

The per-state problem is checked exactly on small categorical distributions (scipy's LP and SLSQP solvers
are the independent references), Thm 4.2 on exact tabular MDPs (``reference/envs/tabular_mdp.py``), the
losses by central finite differences; expected values are written here from closed forms (scipy's expit,
numpy's median), never read from the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import optimize
from scipy.special import expit

from properties.strategies import clean, finite_difference, policy_batches, seeds
from rlspec.reference import aggregation, brrl
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.envs import tabular_mdp
from rlspec.reference.grpo import GRPOConfig, grpo_advantage
from rlspec.reference.ppo import PPOConfig, ppo_clip_loss

eps_pairs = st.sampled_from([(0.3, 0.3), (0.2, 0.28), (0.1, 0.5), (0.5, 0.1), (1.0, 0.3)])
aggs = st.sampled_from(aggregation.MODES)


def categorical(rng: np.random.Generator, ties: bool, S: int | None = None, A: int | None = None):
    """(π0, Q) of shape (S, A): π0 Dirichlet (some zero entries), Q continuous or integer-valued (ties)."""
    S = int(rng.integers(1, 4)) if S is None else S
    A = int(rng.integers(2, 7)) if A is None else A
    pi0 = rng.dirichlet(np.ones(A) * rng.choice([0.3, 1.0, 3.0]), size=S)
    if A > 2 and rng.random() < 0.3:
        pi0[:, 0] = 0.0
        pi0 /= pi0.sum(axis=1, keepdims=True)
    Q = rng.integers(-2, 3, size=(S, A)).astype(float) if ties else rng.normal(size=(S, A))
    return pi0, Q


def r_of(batch):
    return np.exp(clean(batch["logp"], batch["mask"]) - clean(batch["old_logp"], batch["mask"]))


def gbpo_r_star(batch, eps, T, singleton="median-self"):
    """GBPO's target per row (B, 1), written independently: numpy's median over the counted rows of a prompt."""
    m, g = batch["mask"], batch["group"]
    n = m.sum(axis=1)
    A = np.where(n > 0, clean(batch["adv"], m).sum(axis=1) / np.maximum(n, 1), 0.0)
    t = np.zeros_like(A)
    for k in np.unique(g[n > 0]):
        rows = (g == k) & (n > 0)
        if rows.sum() == 1:
            t[rows] = A[rows] / T if singleton == "median-zero" else 0.0
        else:
            t[rows] = (A[rows] - np.median(A[rows])) / T
    return (1 - eps[0] + (eps[0] + eps[1]) * expit(t))[:, None]


# --------------------------------------------------------------------------- gradients
@given(batch=policy_batches(max_B=5, max_T=5), eps=eps_pairs, lam=st.sampled_from([1e-3, 0.5, 2.0]),
       tv=st.sampled_from([0.0, 0.1]), agg=aggs, clamp=st.sampled_from([None, 20.0]), rng=seeds(),
       with_target=st.booleans())
def test_bpo_hand_gradient_matches_finite_differences(batch, eps, lam, tv, agg, clamp, rng, with_target):
    """Gradient claim (derived): ∂loss/∂logp = c·(|Â| + c_tv)·sign(r − r*)·r equals the central finite difference
    (float64), on ragged batches with garbage padding, with and without an explicit target_adv."""
    m = batch["mask"]
    cfg = brrl.BRRLConfig(eps_low=eps[0], eps_high=eps[1], lam=lam, tv_coef=tv, agg=agg, log_ratio_clamp=clamp)
    target = np.where(m, rng.normal(scale=2.0, size=m.shape), np.nan) if with_target else None
    z = clean(target, m) if with_target else clean(batch["adv"], m) / lam
    r_star = 1 - eps[0] + (eps[0] + eps[1]) * expit(z)
    assume(not m.any() or (np.abs(r_of(batch) - r_star)[m] > 1e-4).all())  # away from the |·| kink

    def f(lp):
        return brrl.bpo_loss(lp, batch["old_logp"], batch["adv"], m, config=cfg, target_adv=target,
                             group=batch["group"])[0]

    _, dlogp = brrl.bpo_loss(batch["logp"], batch["old_logp"], batch["adv"], m, config=cfg, target_adv=target,
                             group=batch["group"])
    fd = finite_difference(f, batch["logp"], m)
    np.testing.assert_allclose(dlogp, fd, atol=1e-6 * max(1.0, np.abs(fd).max()), rtol=1e-5)
    assert (dlogp[~m] == 0).all()


@given(batch=policy_batches(max_B=6, max_T=4), eps=eps_pairs, T=st.sampled_from([1e-4, 0.3, 2.0]), agg=aggs,
       singleton=st.sampled_from(brrl.SINGLETONS))
def test_gbpo_hand_gradient_matches_finite_differences(batch, eps, T, agg, singleton):
    """Gradient claim (derived): GBPO's ∂loss/∂logp = c·|Â|·sign(r − r*)·r equals the central finite difference;
    the target (a function of Â and the groups only) does not move with logp."""
    m = batch["mask"]
    cfg = brrl.GBPOConfig(eps_low=eps[0], eps_high=eps[1], temperature=T, agg=agg, singleton=singleton)

    def run(lp):
        return brrl.gbpo_loss(lp, batch["old_logp"], batch["adv"], m, config=cfg, group=batch["group"])

    loss, dlogp = run(batch["logp"])
    fd = finite_difference(lambda lp: run(lp)[0], batch["logp"], m)
    ok = m & (np.abs(r_of(batch) - gbpo_r_star(batch, eps, T, singleton)) > 1e-4)  # off the |·| kink
    np.testing.assert_allclose(dlogp[ok], fd[ok], atol=1e-6 * max(1.0, np.abs(fd).max()), rtol=1e-5)
    assert (dlogp[~m] == 0).all() and np.isfinite(loss)


# --------------------------------------------------------------------------- Theorem 4.1 (exact)
@given(rng=seeds(), eps=eps_pairs, ties=st.booleans())
def test_optimum_is_normalized_and_within_bounds(rng, eps, ties):
    """Thm 4.1: the bounded-ratio optimum is a distribution inside its ratio bounds — E_{π0}[r*] = 1 and
    1 − ε_l ≤ r* ≤ 1 + ε_h exactly (ties in Q and zero-probability actions included), π* = r*·π0 ≥ 0 sums to 1."""
    pi0, Q = categorical(rng, ties)
    r = brrl.bounded_ratio_optimum(pi0, Q, *eps)
    assert ((r >= 1 - eps[0] - 1e-15) & (r <= 1 + eps[1] + 1e-15)).all()
    np.testing.assert_allclose((pi0 * r).sum(axis=1), 1.0, rtol=0, atol=1e-12)
    pi_star = brrl.optimal_policy(pi0, Q, *eps)
    assert (pi_star >= 0).all()
    np.testing.assert_allclose(pi_star.sum(axis=1), 1.0, rtol=0, atol=1e-12)


@given(rng=seeds(), eps=eps_pairs, ties=st.booleans())
def test_optimum_solves_the_linear_program(rng, eps, ties):
    """Thm 4.1 (optimality): per state r* attains max E_{π0}[r·A] s.t. c_l ≤ r ≤ c_h, E_{π0}[r] = 1, as found by
    scipy's HiGHS LP solver (an independent solver)."""
    pi0, Q = categorical(rng, ties)
    r = brrl.bounded_ratio_optimum(pi0, Q, *eps)
    for s in range(pi0.shape[0]):
        A = Q[s] - pi0[s] @ Q[s]
        res = optimize.linprog(-(pi0[s] * A), A_eq=pi0[s][None, :], b_eq=[1.0],
                               bounds=[(1 - eps[0], 1 + eps[1])] * Q.shape[1], method="highs")
        assert res.status == 0
        assert float(pi0[s] * A @ r[s]) >= -res.fun - 1e-9


@given(rng=seeds(), eps=st.floats(0.01, 0.99), half=st.integers(1, 4))
def test_optimum_page_form_without_ties(rng, eps, half):
    """Thm 4.1 as the page writes it: when π0 puts exactly half its mass on actions with Q above the median,
    π*(a) = [1 + ε·sign(Q(a) − μ)]·π0(a) with μ any π0-median (here the midpoint of the two middle values)."""
    Q = np.sort(rng.normal(size=2 * half))[::-1] + np.linspace(0, 1e-3, 2 * half)[::-1]  # distinct, descending
    assume(np.all(np.diff(Q) < 0))
    pi0 = np.concatenate([0.5 * rng.dirichlet(np.ones(half)), 0.5 * rng.dirichlet(np.ones(half))])
    pi0 /= pi0.sum()
    mu = 0.5 * (Q[half - 1] + Q[half])
    np.testing.assert_allclose(brrl.optimal_policy(pi0, Q, eps, eps), (1 + eps * np.sign(Q - mu)) * pi0,
                               rtol=1e-12, atol=1e-14)


@given(rng=seeds(), eps=st.floats(0.01, 1.0), ties=st.booleans())
def test_improvement_term_is_eps_mean_abs_deviation(rng, eps, ties):
    """Improvement term (Thm 4.2's per-state quantity, our exact identity): with ε_l = ε_h = ε,
    E_{π0}[(r* − 1)·A] = ε·E_{π0}|Q − μ| ≥ 0, μ the π0-median; zero iff Q is π0-a.s. equal to μ."""
    pi0, Q = categorical(rng, ties)
    r = brrl.bounded_ratio_optimum(pi0, Q, eps, eps)
    mu = np.array([_weighted_median(pi0[s], Q[s]) for s in range(Q.shape[0])])
    expected = eps * (pi0 * np.abs(Q - mu[:, None])).sum(axis=1)
    np.testing.assert_allclose(brrl.improvement_term(pi0, Q, r), expected, rtol=1e-10, atol=1e-13)
    assert (expected >= 0).all()


def _weighted_median(p: np.ndarray, q: np.ndarray) -> float:
    """Upper π0-median of q: the largest q-value with π0(Q ≥ q) ≥ ½ (written here independently)."""
    best = -np.inf
    for v in q[p > 0]:
        if p[q >= v].sum() >= 0.5 - 1e-12:
            best = max(best, v)
    return best


# --------------------------------------------------------------------------- Theorem 4.2 (exact MDPs)
@settings(max_examples=25)
@given(rng=seeds(), eps=st.floats(0.02, 0.6), gamma=st.sampled_from([0.0, 0.5, 0.9, 0.99]))
def test_monotonic_improvement_on_tabular_mdps(rng, eps, gamma):
    """Thm 4.2 (monotonic improvement): η(π*) − η(π0) ≥ ε·B ≥ 0 on random tabular MDPs solved exactly, with our
    B = E_{s∼d0} E_{a∼π0}|Q(s,a) − μ(s)|; and the exact performance-difference form
    η(π*) − η(π0) = (1/(1−γ))·Σ_s d_{π*}(s)·ε·E_{π0}|Q(s,·) − μ(s)| (B > 0 iff the median advantage ≠ 0)."""
    mdp = tabular_mdp.random_mdp(rng, int(rng.integers(2, 6)), int(rng.integers(2, 5)), gamma)
    pi0 = rng.dirichlet(np.ones(mdp.A), size=mdp.S)
    _, Q = tabular_mdp.evaluate(mdp, pi0)
    pi_star = brrl.optimal_policy(pi0, Q, eps, eps)
    mad = np.array([pi0[s] @ np.abs(Q[s] - _weighted_median(pi0[s], Q[s])) for s in range(mdp.S)])
    gain = tabular_mdp.expected_return(mdp, pi_star) - tabular_mdp.expected_return(mdp, pi0)
    B = float(mdp.d0 @ mad)
    assert gain >= eps * B - 1e-10 * (1 + abs(gain)) and B > 0
    exact = (tabular_mdp.visitation(mdp, pi_star) @ (eps * mad)) / (1 - gamma)
    np.testing.assert_allclose(gain, exact, rtol=1e-8, atol=1e-12)


@settings(max_examples=15)
@given(rng=seeds(), eps=st.floats(0.05, 0.5))
def test_iterating_the_optimum_improves_monotonically(rng, eps):
    """Thm 4.2 iterated (the notes' tabular experiment): π_{k+1} = π*(π_k) never decreases η, for 30 steps."""
    mdp = tabular_mdp.random_mdp(rng, 4, 3, 0.9)
    pi = rng.dirichlet(np.ones(mdp.A), size=mdp.S)
    eta = tabular_mdp.expected_return(mdp, pi)
    for _ in range(30):
        _, Q = tabular_mdp.evaluate(mdp, pi)
        pi = brrl.optimal_policy(pi, Q, eps, eps)
        new = tabular_mdp.expected_return(mdp, pi)
        assert new >= eta - 1e-10 * (1 + abs(eta))
        eta = new


@given(rng=seeds(), kappa=st.sampled_from([0.1, 0.2, 0.25, 0.5, 0.7]))
def test_cem_limit_keeps_the_elite(rng, kappa):
    """§4.6 (BRRL ↔ cross-entropy method): with c_l = 0 and c_h = 1/κ the optimum is π0 restricted to its top-κ
    mass of Q ("elite"), renormalised — the action straddling the κ boundary keeps the fraction that fits."""
    pi0, Q = categorical(rng, ties=False, S=1, A=int(rng.integers(2, 8)))
    p, q = pi0[0], Q[0]
    pi_star = brrl.optimal_policy(p, q, 1.0, 1.0 / kappa - 1.0)
    expected, filled = np.zeros_like(p), 0.0
    for a in np.argsort(-q):
        take = min(p[a], max(kappa - filled, 0.0))
        expected[a], filled = take / kappa, filled + take
    np.testing.assert_allclose(pi_star, expected, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- the regularised target
@given(rng=seeds(), eps=eps_pairs.filter(lambda e: e[0] < 1.0), ties=st.booleans())
def test_smooth_target_tends_to_the_optimum(rng, eps, ties):
    """λ → 0 (official code's smooth target with the normalising baseline u_λ): r*_λ = c_l + Δσ((Q − u_λ)/λ) is
    normalised for every λ and converges to the LP optimum r* (ties included: u_λ → μ, σ → the fraction)."""
    pi0, Q = categorical(rng, ties, S=1)
    gaps = np.diff(np.unique(Q))
    scale = gaps.min() if gaps.size else 1.0
    r_opt = brrl.bounded_ratio_optimum(pi0, Q, *eps)
    errs = []
    for lam in (1e-1 * scale, 1e-3 * scale, 1e-5 * scale):
        u = brrl.normalizing_baseline(pi0, Q, lam, *eps)
        r = brrl.target_ratio((Q - u[..., None]) / lam, *eps)
        np.testing.assert_allclose((pi0 * r).sum(axis=-1), 1.0, atol=1e-9)
        errs.append(float((pi0 * np.abs(r - r_opt)).sum()))
    assert errs[-1] < 1e-6


@settings(max_examples=25)
@given(rng=seeds(), eps=eps_pairs.filter(lambda e: e[0] < 1.0), lam=st.sampled_from([0.05, 0.3, 1.0]))
def test_smooth_target_maximizes_regularized_problem(rng, eps, lam):
    """Regularised problem (reconstructed: one regulariser with the code's optimum): r*_λ with the normalising
    u maximises E_{π0}[rQ] + λΔ·E_{π0}[H_b((r − c_l)/Δ)] s.t. E_{π0}[r] = 1, c_l ≤ r ≤ c_h — no point found by
    scipy's SLSQP (started at 1 and at random feasible points) does better."""
    pi0, Q = categorical(rng, ties=False, S=1, A=int(rng.integers(2, 5)))
    p, q = pi0[0], Q[0]
    assume((p > 1e-3).all())
    u = brrl.normalizing_baseline(p, q, lam, *eps)
    ours = float(brrl.regularized_objective(p, q, brrl.target_ratio((q - u) / lam, *eps), lam, *eps))
    bounds = [(1 - eps[0], 1 + eps[1])] * q.size
    cons = [{"type": "eq", "fun": lambda r: p @ r - 1.0}]
    for start in (np.ones_like(q), 1 + rng.uniform(-eps[0], eps[1], size=q.size) * 0.5):
        res = optimize.minimize(lambda r: -float(brrl.regularized_objective(p, q, r, lam, *eps)), start,
                                method="SLSQP", bounds=bounds, constraints=cons, options={"ftol": 1e-12})
        if res.success and abs(p @ res.x - 1) < 1e-8:
            assert -res.fun <= ours + 1e-7


@given(rng=seeds(), eps=eps_pairs.filter(lambda e: e[0] < 1.0), lam=st.sampled_from([1e-3, 0.1, 1.0, 10.0]),
       ties=st.booleans())
def test_smooth_target_improvement_nonnegative(rng, eps, lam, ties):
    """Improvement of the smooth target (our derivation): with the normalising baseline, E_{π0}[(r*_λ − 1)·A] ≥ 0 —
    r*_λ − 1 and A are both non-decreasing in Q and E_{π0}[r*_λ − 1] = 0 (Chebyshev's sum inequality)."""
    pi0, Q = categorical(rng, ties)
    u = brrl.normalizing_baseline(pi0, Q, lam, *eps)
    r = brrl.target_ratio((Q - u[:, None]) / lam, *eps)
    assert (brrl.improvement_term(pi0, Q, r) >= -1e-12).all()


def test_u_loss_normalizes_target_only_at_unit_temperature():
    """Flag (the code's u-loss vs its target): u minimising E[softplus(Q − u) − ½(Q − u)] solves E σ(Q − u) = ½,
    which makes E_{π0}[r*_λ] = 1 at λ = 1 but not at the code's λ = 1e-3 (r*_λ uses σ((Q − u)/λ)). The u-loss
    derivative equals its finite difference; its minimiser is found here by brentq on ½ − E σ(Q − u)."""
    pi0, Q = np.array([0.6, 0.2, 0.2]), np.array([0.0, 1.0, 10.0])
    value, grad = brrl.u_loss(Q, 0.7)
    fd = (brrl.u_loss(Q, 0.7 + 1e-6)[0] - brrl.u_loss(Q, 0.7 - 1e-6)[0]) / 2e-6
    np.testing.assert_allclose(grad, fd, rtol=1e-6)
    u = optimize.brentq(lambda x: float(pi0 @ (0.5 - expit(Q - x))), -50, 50, xtol=1e-14)
    assert abs(float(pi0 @ brrl.u_loss(Q, u)[1])) < 1e-10
    mean_r = {lam: float(pi0 @ brrl.target_ratio((Q - u) / lam, 0.3, 0.3)) for lam in (1.0, 1e-3)}
    assert abs(mean_r[1.0] - 1.0) < 1e-10
    assert abs(mean_r[1e-3] - 1.0) > 1e-2


@given(rng=seeds())
def test_u_loss_tends_to_median_at_large_scale(rng):
    """Median baseline (code's intent): for Q scaled by c → ∞, the u-loss minimiser divided by c tends to the
    π0-median of Q (the distribution is drawn so that no atom sits exactly at the ½ level)."""
    pi0, Q = categorical(rng, ties=False, S=1, A=5)
    p, q = pi0[0], Q[0]
    cdf = np.cumsum(p[np.argsort(q)])
    assume(np.abs(cdf - 0.5).min() > 1e-3 and (p > 1e-3).all())
    med = _weighted_median(p, q)
    c = 1e6
    u = optimize.brentq(lambda x: float(p @ brrl.u_loss(c * q, x)[1]), c * q.min() - 1e3, c * q.max() + 1e3,
                        xtol=1e-9)
    assert abs(u / c - med) < 1e-3


# --------------------------------------------------------------------------- PPO link, loss behaviour
@given(batch=policy_batches(max_B=6, max_T=6), eps=st.sampled_from([0.1, 0.2, 0.3]))
def test_ppo_is_a_one_sided_hinge_to_the_bang_bang_target(batch, eps):
    """Page claim (PPO drives π towards π*), in our exact form: PPO's clipped loss per token equals
    |Â|·(sign(Â)(r_Â − r))⁺ − Â·r_Â with r_Â = 1 + ε·sign(Â) — a one-sided hinge towards the bang-bang target
    (mean baseline). BPO with that target (λ → 0) has PPO's gradient wherever 1 − ε < r < 1 + ε; where PPO's
    clip binds (r past its target) PPO's gradient is 0 and BPO's pulls r back."""
    m = batch["mask"]
    A, r = clean(batch["adv"], m), r_of(batch)
    c = aggregation.coefficients(m, "token-mean")
    loss_ppo, d_ppo = ppo_clip_loss(batch["logp"], batch["old_logp"], batch["adv"], m,
                                    config=PPOConfig(eps_low=eps, eps_high=eps))
    rA = 1 + eps * np.sign(A)
    hinge = np.abs(A) * np.maximum(np.sign(A) * (rA - r), 0.0) - A * rA
    assert loss_ppo == pytest.approx(float((c * hinge).sum()), rel=1e-10, abs=1e-12)
    cfg = brrl.BRRLConfig(eps_low=eps, eps_high=eps, lam=1e-200)
    _, d_bpo = brrl.bpo_loss(batch["logp"], batch["old_logp"], batch["adv"], m, config=cfg)
    inside = m & (r > 1 - eps) & (r < 1 + eps) & (A != 0)
    np.testing.assert_allclose(d_bpo[inside], d_ppo[inside], rtol=1e-12, atol=0)
    past = m & (A != 0) & (np.sign(A) * (r - rA) > 0)
    assert (d_ppo[past] == 0).all()
    assert (np.sign(d_bpo[past]) == np.sign(A[past])).all()  # descent lowers r for Â > 0: back towards 1 + ε


@given(batch=policy_batches(max_B=6, max_T=5), eps=eps_pairs, agg=aggs)
def test_default_target_is_sign_of_advantage(batch, eps, agg):
    """Code's u = V branch (target_adv absent): z = Â/λ, and λ → 0 gives r* = 1 + ε_h for Â > 0, 1 − ε_l for Â < 0;
    on-policy (r ≡ 1) the loss is Σ c·|Â|·(ε_h or ε_l)."""
    m = batch["mask"]
    A = clean(batch["adv"], m)
    on = dict(batch, old_logp=batch["logp"].copy())
    cfg = brrl.BRRLConfig(eps_low=eps[0], eps_high=eps[1], lam=1e-200, agg=agg)
    loss, _ = brrl.bpo_loss(on["logp"], on["old_logp"], on["adv"], m, config=cfg, group=batch["group"])
    c = aggregation.coefficients(m, agg, group=batch["group"])
    expected = (c * np.abs(A) * np.where(A > 0, eps[1], np.where(A < 0, eps[0], 0.0))).sum()
    assert loss == pytest.approx(float(expected), rel=1e-12, abs=1e-15)


@given(batch=policy_batches(max_B=6, max_T=5), eps=eps_pairs, rng=seeds())
def test_gradient_pushes_ratio_toward_target(batch, eps, rng):
    """The loss moves r towards its target: −dlogp (the descent direction, ∝ the change of log r) has the sign of
    r* − r at every valid token with Â ≠ 0 (r* = c_l + Δ·expit(z), computed here with scipy)."""
    m = batch["mask"]
    z = rng.normal(scale=3.0, size=m.shape)
    _, d = brrl.bpo_loss(batch["logp"], batch["old_logp"], batch["adv"], m,
                         config=brrl.BRRLConfig(eps_low=eps[0], eps_high=eps[1]), target_adv=z)
    r_star = 1 - eps[0] + (eps[0] + eps[1]) * expit(z)
    r = r_of(batch)
    live = m & (clean(batch["adv"], m) != 0) & (np.abs(r - r_star) > 1e-12)
    assert (np.sign(-d[live]) == np.sign(r_star - r)[live]).all()


@given(batch=policy_batches(max_B=4, max_T=4, log_ratio_scale=0.0), sign=st.sampled_from([-50.0, 50.0]),
       name=st.sampled_from(["bpo", "gbpo"]))
def test_extreme_log_ratios_are_finite(batch, sign, name):
    """log r = ±50: loss and gradient are finite (no NaN); r = e^50 lies above every target, so the gradient is
    c·|Â|·r ≥ 0, and r = e^−50 below, so it is −c·|Â|·r ≤ 0."""
    m = batch["mask"]
    old = np.where(m, batch["logp"] - sign, batch["old_logp"])
    fn = brrl.bpo_loss if name == "bpo" else brrl.gbpo_loss
    loss, d = fn(batch["logp"], old, batch["adv"], m, group=batch["group"])
    assert np.isfinite(loss) and np.isfinite(d).all()
    c = aggregation.coefficients(m, "token-mean")
    np.testing.assert_allclose(d, np.sign(sign) * c * np.abs(clean(batch["adv"], m)) * np.exp(sign), rtol=1e-12)


# --------------------------------------------------------------------------- GBPO
def _outcome(rng):
    sizes = rng.integers(1, 7, size=int(rng.integers(1, 5)))
    g = np.repeat(np.arange(sizes.size) * 3 - 4, sizes)
    R = rng.integers(0, 2, size=g.size).astype(float) if rng.random() < 0.5 else rng.normal(size=g.size)
    return R, g


@given(rng=seeds(), T=st.sampled_from([1.0, 0.5, 3.0]))
def test_gbpo_target_matches_verl_reward_formula(rng, T):
    """GBPO target (official verl code): from the scores, t_i = (R_i − median_g R)/(std_g R + ε)/T (std ddof 1,
    ε = 1e-6; a lone rollout against mean 0, std 1, median 0). Our form (Â_i − median_g Â)/T from verl's GRPO
    advantage gives the same numbers (the median commutes with increasing affine maps)."""
    R, g = _outcome(rng)
    mask = np.ones((g.size, 3), bool)
    expected = np.zeros_like(R)
    for k in np.unique(g):
        x = R[g == k]
        expected[g == k] = x / (1 + 1e-6) / T if x.size == 1 else (x - np.median(x)) / (x.std(ddof=1) + 1e-6) / T
    A = grpo_advantage(R, g, mask, GRPOConfig(singleton="mean0std1"))
    t = brrl.gbpo_target(A[:, 0], mask.any(axis=1), g, T, "median-zero")
    np.testing.assert_allclose(t, expected, rtol=1e-9, atol=1e-9)
    A2, t2 = brrl.gbpo_advantage_and_target(R, g, mask, temperature=T)
    np.testing.assert_allclose(t2[:, 0], expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(A2, A, rtol=1e-12, atol=1e-12)


@given(rng=seeds(), eps=eps_pairs, T=st.sampled_from([1e-4, 1.0, 10.0]))
def test_gbpo_target_within_bounds(rng, eps, T):
    """GBPO: r* = 1 − ε_l + (ε_l + ε_h)σ(t) ∈ [1 − ε_l, 1 + ε_h]; strictly inside when |t| is moderate (T ≥ 1,
    |Â| ≤ 10), reaching the ends only where σ saturates in float64 (T = 1e-4)."""
    R, g = _outcome(rng)
    A = grpo_advantage(R, g, np.ones((g.size, 1), bool))[:, 0]
    r_star = brrl.target_ratio(brrl.gbpo_target(A, np.ones(g.size, bool), g, T), *eps)
    assert ((r_star >= 1 - eps[0]) & (r_star <= 1 + eps[1])).all()
    if T >= 1.0 and np.abs(A).max() <= 10:
        assert ((r_star > 1 - eps[0]) & (r_star < 1 + eps[1])).all()


@given(batch=policy_batches(max_B=6, max_T=5), eps=eps_pairs.filter(lambda e: e[0] < 1.0),
       T=st.sampled_from([1e-4, 1.0]), agg=aggs)
def test_gbpo_loss_nonnegative_and_zero_at_target(batch, eps, T, agg):
    """GBPO: the loss is ≥ 0, and 0 exactly when every counted token sits at its target (r = r*); moving one
    token with Â ≠ 0 off its target makes it positive."""
    m, g = batch["mask"], batch["group"]
    cfg = brrl.GBPOConfig(eps_low=eps[0], eps_high=eps[1], temperature=T, agg=agg)
    loss, _ = brrl.gbpo_loss(batch["logp"], batch["old_logp"], batch["adv"], m, config=cfg, group=g)
    assert loss >= 0
    log_r_star = np.log(gbpo_r_star(batch, eps, T))
    at_target = np.where(m, batch["logp"] - log_r_star, batch["old_logp"])
    loss0, _ = brrl.gbpo_loss(batch["logp"], at_target, batch["adv"], m, config=cfg, group=g)
    assert abs(loss0) < 1e-12
    live = np.argwhere(m & (clean(batch["adv"], m) != 0) & (aggregation.coefficients(m, agg, group=g) > 0))
    if live.size:
        b, tt = live[0]
        moved = at_target.copy()
        moved[b, tt] -= 0.1
        assert brrl.gbpo_loss(batch["logp"], moved, batch["adv"], m, config=cfg, group=g)[0] > 0


@given(batch=policy_batches(max_B=6, max_T=5), eps=eps_pairs, T=st.sampled_from([1e-4, 0.5]))
def test_gbpo_gradient_pushes_ratio_toward_target(batch, eps, T):
    """GBPO: −dlogp has the sign of r* − r at every valid token with Â ≠ 0 (r* from numpy's median and scipy's
    expit here), so gradient descent moves each ratio towards its group-relative target."""
    m, g = batch["mask"], batch["group"]
    _, d = brrl.gbpo_loss(batch["logp"], batch["old_logp"], batch["adv"], m,
                          config=brrl.GBPOConfig(eps_low=eps[0], eps_high=eps[1], temperature=T), group=g)
    r_star = gbpo_r_star(batch, eps, T)
    r = r_of(batch)
    live = m & (clean(batch["adv"], m) != 0) & (np.abs(r - r_star) > 1e-12)
    assert (np.sign(-d[live]) == np.sign(r_star - r)[live]).all()


@given(rng=seeds(), n=st.integers(2, 9), eps=st.floats(0.05, 0.9))
def test_gbpo_half_above_median_mean_target_is_one(rng, n, eps):
    """GBPO (notes' claim): with no ties in a group and T → 0, half the rows lie above the median (r* = 1 + ε), half
    below (1 − ε), and an odd group's median row gets σ(0) = ½ (r* = 1): the group's mean target is exactly 1."""
    A = rng.normal(size=n)
    assume(np.abs(np.subtract.outer(A, A))[~np.eye(n, dtype=bool)].min() > 1e-6)
    t = brrl.gbpo_target(A, np.ones(n, bool), np.zeros(n, int), 1e-12)
    r_star = brrl.target_ratio(t, eps, eps)
    assert set(np.round(r_star, 12)) <= {round(1 - eps, 12), 1.0, round(1 + eps, 12)}
    assert float(r_star.mean()) == pytest.approx(1.0, abs=1e-12)


@given(batch=policy_batches(max_B=6, max_T=4))
def test_gbpo_group_none_is_one_group(batch):
    """Convention: without prompt ids (group=None) the whole batch is one prompt — the same loss and gradient as
    group = all zeros."""
    m = batch["mask"]
    a = brrl.gbpo_loss(batch["logp"], batch["old_logp"], batch["adv"], m, group=None)
    b = brrl.gbpo_loss(batch["logp"], batch["old_logp"], batch["adv"], m, group=np.zeros(m.shape[0], int))
    assert a[0] == b[0] and (a[1] == b[1]).all()


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("field,bad", [("eps_low", 1.5), ("eps_low", -0.1), ("eps_high", -0.1), ("lam", 0.0),
                                       ("tv_coef", -1.0)])
def test_bpo_config_rejects_bad_values(field, bad):
    """Bad input: the config names the field that is out of range."""
    with pytest.raises(RLSpecValueError, match=field):
        brrl.BRRLConfig(**{field: bad})


@pytest.mark.parametrize("field,bad", [("temperature", 0.0), ("singleton", "drop"), ("eps_high", float("nan"))])
def test_gbpo_config_rejects_bad_values(field, bad):
    """Bad input: GBPO's config names the field that is out of range."""
    with pytest.raises(RLSpecValueError, match=field):
        brrl.GBPOConfig(**{field: bad})


def test_target_adv_nan_at_valid_position_rejected():
    """Bad input: a NaN in target_adv where the mask counts raises, naming target_adv; NaN padding is ignored."""
    m = np.array([[True, False]])
    lp = np.array([[-1.0, np.nan]])
    with pytest.raises(RLSpecValueError, match="target_adv"):
        brrl.bpo_loss(lp, lp, np.ones((1, 2)), m, target_adv=np.array([[np.nan, 0.0]]))
    loss, _ = brrl.bpo_loss(lp, lp, np.ones((1, 2)), m, target_adv=np.array([[0.0, np.nan]]))
    assert np.isfinite(loss)


def test_exact_problem_rejects_bad_distributions():
    """Bad input: π0 must be a distribution on the last axis and Q the same shape."""
    with pytest.raises(RLSpecValueError, match="pi0"):
        brrl.bounded_ratio_optimum(np.array([0.5, 0.6]), np.array([0.0, 1.0]), 0.2, 0.2)
    with pytest.raises(RLSpecValueError, match="Q"):
        brrl.bounded_ratio_optimum(np.array([0.5, 0.5]), np.array([0.0, 1.0, 2.0]), 0.2, 0.2)
