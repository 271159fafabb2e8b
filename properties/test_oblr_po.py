"""Properties of OBLR-PO (arXiv 2511.23310): unbiasedness, exact variance, the gradient-weighted optimal
baseline, the loss bound and the SNR learning rate — by exact enumeration on a small softmax bandit
(:mod:`rlspec.reference.envs.softmax_bandit`). The paper body was not readable: the statements tested are
the classical results its abstract names (see the module docstring of ``reference/oblr_po.py``)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from properties.strategies import outcome_batches, seeds
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.envs.softmax_bandit import SoftmaxBandit, exact_moments, iid_outcomes
from rlspec.reference.grpo import dr_grpo_advantage
from rlspec.reference.oblr_po import (
    OBLRPOConfig,
    OBLRPOLRConfig,
    estimate_snr,
    estimator_covariance,
    estimator_variance,
    improvement_lower_bound,
    loo_estimator_variance,
    oblr_po_advantage,
    oblr_po_learning_rate,
    optimal_baseline,
    policy_gradient_estimate,
    signal_to_noise,
    snr_learning_rate,
)
from rlspec.reference.opo import opo_advantage
from rlspec.reference.rloo import rloo_advantage


def bandit_and_theta(rng, X=1, K=3, scale=1.0):
    env = SoftmaxBandit(rng.normal(size=(X, K)) if rng.random() < 0.5 else rng.random((X, K)),
                        rho=rng.dirichlet(np.ones(X)) if X > 1 else None)
    return env, scale * rng.normal(size=env.P)


def group_outcomes(env, theta, G):
    """(x, actions, probability) of one prompt x ~ ρ and G i.i.d. responses a_i ~ π(·|x)."""
    pi = env.policy(theta)
    for x in range(env.X):
        for acts, q in iid_outcomes(pi[x], G):
            yield x, np.array(acts), env.rho[x] * q


def seq_adv(A2d):
    """The per-rollout advantage of a (G, 1) output."""
    return A2d[:, 0]


def weighted_adv(R, w, cfg):
    G = len(R)
    return seq_adv(oblr_po_advantage(R, np.zeros(G, dtype=int), np.ones((G, 1), bool), cfg, grad_sq=w))


@given(rng=seeds(), X=st.integers(1, 2), K=st.integers(2, 3), G=st.integers(2, 3))
def test_unbiased_for_action_independent_baselines(rng, X, K, G):
    """Unbiasedness (abstract: 'establishes unbiasedness'): E ĝ = ∇J for every baseline that does not depend
    on the rollout it scores — a constant, a function of the prompt b(x), the population optimum b*(x), the
    leave-one-out mean, and OBLR-PO's gradient-weighted leave-one-out plug-in (weights ‖s_j‖² of the OTHER
    rollouts). Exact: every prompt and every ordered G-tuple of responses is enumerated."""
    env, theta = bandit_and_theta(rng, X, K)
    S, r = env.scores(theta), env.r
    sq = (S ** 2).sum(axis=2)  # (X, K) ‖s(x, a)‖²
    pi = env.policy(theta)
    c, bx = rng.normal(), rng.normal(size=X)
    bstar = np.array([optimal_baseline(r[x], sq[x], pi[x]) for x in range(X)])
    means = {k: np.zeros(env.P) for k in ("const", "prompt", "bstar", "loo", "gw_loo")}
    for x, a, q in group_outcomes(env, theta, G):
        R, Sa = r[x, a], S[x, a]
        loo = np.array([np.delete(R, i).mean() for i in range(G)])
        means["const"] += q * policy_gradient_estimate(R, Sa, c)
        means["prompt"] += q * policy_gradient_estimate(R, Sa, bx[x])
        means["bstar"] += q * policy_gradient_estimate(R, Sa, bstar[x])
        means["loo"] += q * policy_gradient_estimate(R, Sa, loo)
        A = weighted_adv(R, sq[x, a], OBLRPOConfig())
        means["gw_loo"] += q * (A[:, None] * Sa).mean(axis=0)
    grad = env.gradient(theta)
    for name, m in means.items():
        np.testing.assert_allclose(m, grad, atol=1e-12, err_msg=name)


@given(rng=seeds(), K=st.integers(2, 3), G=st.integers(2, 4))
def test_self_inclusive_mean_shrinks_gradient(rng, K, G):
    """The group mean including the scored rollout (GRPO/Dr. GRPO's baseline) depends on y_i: outcome by outcome
    ĝ_mean = ((G−1)/G) ĝ_LOO, so E ĝ_mean = (1 − 1/G) ∇J (exact enumeration)."""
    env, theta = bandit_and_theta(rng, 1, K)
    S = env.scores(theta)[0]
    Eg = np.zeros(env.P)
    for a, q in iid_outcomes(env.policy(theta)[0], G):
        a = np.array(a)
        R = env.r[0, a]
        g_mean = policy_gradient_estimate(R, S[a], R.mean())
        g_loo = policy_gradient_estimate(R, S[a], np.array([np.delete(R, i).mean() for i in range(G)]))
        np.testing.assert_allclose(g_mean, (G - 1) / G * g_loo, atol=1e-13)
        Eg += q * g_mean
    np.testing.assert_allclose(Eg, (1 - 1 / G) * env.gradient(theta), atol=1e-12)


@given(rng=seeds(), X=st.integers(1, 2), K=st.integers(2, 3), G=st.integers(2, 3))
def test_variance_expressions_equal_enumeration(rng, X, K, G):
    """Exact variance (abstract: 'derives exact variance expressions'): for G i.i.d. rollouts and a constant
    baseline, Cov ĝ = (1/G)(E[(R−b)² s sᵀ] − ∇J∇Jᵀ); for the leave-one-out baseline
    tr Cov ĝ = (1/G)(E[(R−μ)²‖s‖²] + σ²E‖s‖²/(G−1)) − (G−2)‖∇J‖²/(G(G−1)). Both against the covariance of ĝ
    over every G-tuple of (prompt, response) draws."""
    env, theta = bandit_and_theta(rng, X, K)
    p = env.joint(theta).reshape(-1)
    R = env.r.reshape(-1)
    S = env.scores(theta).reshape(env.X * env.K, env.P)
    b = rng.normal()
    g_const, g_loo, probs = [], [], []
    for idx, q in iid_outcomes(p, G):
        idx = np.array(idx)
        g_const.append(policy_gradient_estimate(R[idx], S[idx], b))
        g_loo.append(policy_gradient_estimate(R[idx], S[idx], np.array([np.delete(R[idx], i).mean() for i in range(G)])))
        probs.append(q)
    _, cov_const = exact_moments(g_const, probs)
    _, cov_loo = exact_moments(g_loo, probs)
    np.testing.assert_allclose(estimator_covariance(p, R, S, b, G), cov_const, atol=1e-12)
    assert estimator_variance(p, R, S, b, G) == pytest.approx(np.trace(cov_const), abs=1e-12)
    assert loo_estimator_variance(p, R, S, G) == pytest.approx(np.trace(cov_loo), abs=1e-12)


@given(rng=seeds(), K=st.integers(3, 4))
def test_optimal_baseline_minimises_variance(rng, K):
    """The variance-optimal baseline is gradient-weighted (abstract): b* = E[‖s‖²R]/E[‖s‖²] gives the smallest
    exact tr Cov ĝ among constant baselines (a grid of 40 others, G = 2, enumerated), and it is not the plain
    mean reward E R when ‖s‖² varies with the action — the mean does strictly worse."""
    env, theta = bandit_and_theta(rng, 1, K, scale=1.5)
    pi, S, r = env.policy(theta)[0], env.scores(theta)[0], env.r[0]
    sq = (S ** 2).sum(axis=1)
    bstar = optimal_baseline(r, sq, pi)
    mu = pi @ r
    assume(abs(bstar - mu) > 1e-6)

    def exact_var(b):
        gs, qs = zip(*[(policy_gradient_estimate(r[list(a)], S[list(a)], b), q) for a, q in iid_outcomes(pi, 2)])
        return np.trace(exact_moments(list(gs), list(qs))[1])

    v_star = exact_var(bstar)
    for b in bstar + np.concatenate([np.linspace(-3, -0.01, 20), np.linspace(0.01, 3, 20)]):
        assert exact_var(b) > v_star
    assert exact_var(mu) > v_star + 1e-15
    # quadratic in b with curvature E‖s‖²/G: Var(b) − Var(b*) = (E‖s‖²/2)(b − b*)²
    assert exact_var(bstar + 0.7) - v_star == pytest.approx(0.5 * (pi @ sq) * 0.49, rel=1e-9)


def exact_step(env, theta, G, eta):
    """E J(θ + η ĝ_LOO) and the exact tr Cov ĝ_LOO, over every G-tuple of responses (single context)."""
    pi, S, r = env.policy(theta)[0], env.scores(theta)[0], env.r[0]
    EJ, gs, qs = 0.0, [], []
    for a, q in iid_outcomes(pi, G):
        a = np.array(a)
        g = policy_gradient_estimate(r[a], S[a], np.array([np.delete(r[a], i).mean() for i in range(G)]))
        EJ += q * env.objective(theta + eta * g)
        gs.append(g)
        qs.append(q)
    return EJ, float(np.trace(exact_moments(gs, qs)[1]))


@settings(max_examples=15)
@given(rng=seeds(), K=st.integers(2, 4))
def test_loss_bound_holds(rng, K):
    """Optimisation-loss bound (abstract): for L-smooth J and an unbiased ĝ,
    E J(θ + ηĝ) ≥ J(θ) + η‖∇J‖² − (Lη²/2)(‖∇J‖² + tr Cov ĝ). Exact expectation over G = 2 rollouts for η on a
    grid; L = (5/2)·(max r − min r), and the Hessian's norm at random points is checked against L."""
    env, theta = bandit_and_theta(rng, 1, K, scale=2.0)
    L = env.smoothness()
    for _ in range(20):
        assert np.abs(np.linalg.eigvalsh(env.hessian(rng.normal(scale=3.0, size=env.P)))).max() <= L
    g2 = float(env.gradient(theta) @ env.gradient(theta))
    J0 = env.objective(theta)
    for eta in (0.05, 0.3, 1.0, 3.0, 10.0):
        EJ, tr = exact_step(env, theta, 2, eta)
        assert EJ - J0 >= improvement_lower_bound(eta, g2, tr, L) - 1e-12


@given(g2=st.floats(1e-6, 10.0), tr=st.floats(0.0, 10.0), L=st.floats(0.1, 10.0))
def test_snr_learning_rate_maximises_bound(g2, tr, L):
    """SNR learning rate (abstract): η* = (1/L)·SNR/(1+SNR), SNR = ‖∇J‖²/tr Cov ĝ, maximises the bound
    η‖∇J‖² − (Lη²/2)(‖∇J‖² + tr Cov ĝ); its value there is ‖∇J‖⁴/(2L(‖∇J‖² + tr Cov)) = ‖∇J‖²SNR/(2L(1+SNR))."""
    eta = snr_learning_rate(signal_to_noise(g2, tr), 1.0 / L)
    best = improvement_lower_bound(eta, g2, tr, L)
    assert best == pytest.approx(g2 ** 2 / (2 * L * (g2 + tr)), rel=1e-9)
    for f in (0.0, 0.5, 0.9, 0.99, 1.01, 1.1, 2.0, 5.0):
        assert improvement_lower_bound(f * eta, g2, tr, L) <= best + 1e-15 * max(1.0, abs(best))


@settings(max_examples=8)
@given(rng=seeds())
def test_convergence_sum_of_progress_bounded(rng):
    """Convergence (abstract: 'convergence guarantees'), as the telescoped descent bound: with the oracle SNR step
    η_t = (1/L)·SNR_t/(1+SNR_t), E J(θ_T) − J(θ_0) ≥ Σ_t E[‖∇J_t‖² SNR_t/(2L(1+SNR_t))] ≥ 0, and that sum is at
    most J* − J(θ_0). Exact: all 9³ response paths of T = 3 steps (K = 3 actions, G = 2 rollouts, LOO baseline)."""
    env, theta0 = bandit_and_theta(rng, 1, 3, scale=1.0)
    L, G, T = env.smoothness(), 2, 3

    def expand(theta, q, t):
        """(E J_T contribution, Σ progress contribution) of the subtree below θ at depth t, weighted by q."""
        if t == T:
            return q * env.objective(theta), 0.0
        pi, S, r = env.policy(theta)[0], env.scores(theta)[0], env.r[0]
        grad = env.gradient(theta)
        _, tr = exact_step(env, theta, G, 0.0)
        snr = signal_to_noise(float(grad @ grad), tr)
        eta = snr_learning_rate(snr, 1.0 / L)
        prog = q * improvement_lower_bound(eta, float(grad @ grad), tr, L)
        EJ = 0.0
        for a, qa in iid_outcomes(pi, G):
            a = np.array(a)
            g = policy_gradient_estimate(r[a], S[a], np.array([np.delete(r[a], i).mean() for i in range(G)]))
            ej, pr = expand(theta + eta * g, q * qa, t + 1)
            EJ, prog = EJ + ej, prog + pr
        return EJ, prog

    EJT, progress = expand(theta0, 1.0, 0)
    J0 = env.objective(theta0)
    assert progress >= 0.0
    assert EJT - J0 >= progress - 1e-12
    assert progress <= env.r.max() - J0 + 1e-12


@given(rng=seeds(), K=st.integers(2, 3), N=st.integers(2, 3), P=st.integers(1, 3))
def test_snr_estimator_is_unbiased(rng, K, N, P):
    """The SNR plug-in of ``oblr_po_lr``: over N i.i.d. per-sample gradients (every N-tuple of a K-point
    distribution enumerated), E[Σ‖g_n − ḡ‖²/(N(N−1))] = tr Cov ḡ and E[‖ḡ‖² − noise] = ‖E ḡ‖²."""
    V, q = rng.normal(size=(K, P)), rng.dirichlet(np.ones(K))
    mean = q @ V
    trcov_one = float(q @ ((V - mean) ** 2).sum(axis=1))
    E_noise = E_sig = 0.0
    for idx, pr in iid_outcomes(q, N):
        plug, noise, _ = estimate_snr(V[list(idx)], "plugin")
        E_noise += pr * noise
        E_sig += pr * (plug - noise)
    assert E_noise == pytest.approx(trcov_one / N, abs=1e-12)
    assert E_sig == pytest.approx(float(mean @ mean), abs=1e-12)


@given(rng=seeds())
def test_learning_rate_monotone_and_bounded(rng):
    """lr = lr_max·SNR/(1+SNR) is increasing in SNR, in [0, lr_max), and lr_max at zero noise; identical
    samples have infinite SNR, all-zero samples SNR 0 and lr 0."""
    lr_max = float(rng.uniform(0.1, 3.0))
    snrs = np.sort(rng.exponential(2.0, size=10))
    lrs = [snr_learning_rate(s, lr_max) for s in snrs]
    assert all(0 <= a <= b < lr_max for a, b in zip(lrs, lrs[1:]))
    assert snr_learning_rate(np.inf, lr_max) == lr_max
    cfg = OBLRPOLRConfig(lr_max=lr_max)
    row = rng.normal(size=3) + 0.5
    assert oblr_po_learning_rate(np.tile(row, (4, 1)), cfg) == (np.inf, lr_max)
    assert oblr_po_learning_rate(np.zeros((3, 2)), cfg) == (0.0, 0.0)
    snr, lr = oblr_po_learning_rate(row + 0.1 * rng.normal(size=(6, 3)), cfg)
    assert 0 < lr < lr_max and lr == pytest.approx(lr_max * snr / (1 + snr))


@given(batch=outcome_batches())
def test_practical_estimator_special_cases(batch):
    """Uniform weights: leave-one-out = RLOO, group = Dr. GRPO (R − mean); length proxy + group = OPO's
    length-weighted baseline. With given weights and baseline='group', Σ_i w_i Â_i = 0 in each group, i.e. b is
    the w-weighted mean."""
    R, g, M = batch["rewards"], batch["group"], batch["mask"]
    u = OBLRPOConfig(weight_proxy="uniform")
    np.testing.assert_allclose(oblr_po_advantage(R, g, M, u), rloo_advantage(R, g, M), atol=1e-12)
    np.testing.assert_allclose(oblr_po_advantage(R, g, M, OBLRPOConfig(weight_proxy="uniform", baseline="group")),
                               dr_grpo_advantage(R, g, M), atol=1e-12)
    np.testing.assert_allclose(oblr_po_advantage(R, g, M, OBLRPOConfig(baseline="group")), opo_advantage(R, g, M),
                               atol=1e-12)
    w = np.random.default_rng(len(R)).gamma(2.0, size=len(R))
    A = oblr_po_advantage(R, g, np.ones_like(M), OBLRPOConfig(baseline="group"), grad_sq=w)[:, 0]
    for k in np.unique(g):
        rows = g == k
        assert abs((w[rows] * A[rows]).sum()) <= 1e-10 * max(1.0, np.abs(R).max()) * w[rows].sum()


@given(rng=seeds(), K=st.integers(2, 3), G=st.integers(2, 3))
def test_weighted_leave_one_out_is_unbiased_for_any_weights(rng, K, G):
    """The leave-one-out plug-in stays unbiased whatever the weights (they only need to come from the other
    rollouts): arbitrary positive per-action weights w(a). The self-inclusive weighted plug-in does not (its
    E ĝ differs from ∇J for non-constant weights, which is why leave-one-out is the default)."""
    env, theta = bandit_and_theta(rng, 1, K)
    S, r, pi = env.scores(theta)[0], env.r[0], env.policy(theta)[0]
    wa = rng.uniform(0.2, 3.0, size=K)
    E_loo, E_grp = np.zeros(env.P), np.zeros(env.P)
    for a, q in iid_outcomes(pi, G):
        a = np.array(a)
        E_loo += q * (weighted_adv(r[a], wa[a], OBLRPOConfig())[:, None] * S[a]).mean(axis=0)
        E_grp += q * (weighted_adv(r[a], wa[a], OBLRPOConfig(baseline="group"))[:, None] * S[a]).mean(axis=0)
    np.testing.assert_allclose(E_loo, env.gradient(theta), atol=1e-12)
    grad = env.gradient(theta)
    assume(np.linalg.norm(grad) > 1e-3 and np.ptp(wa) > 0.5)
    assert np.linalg.norm(E_grp - grad) > 1e-9


def test_singletons_zero_weights_and_masks_defined():
    """Defined cases: a singleton gets 0 (or its reward with singleton='raw'); zero total weight on the other
    rollouts leaves the baseline undefined (same rule); an all-equal group gets exactly 0; masked positions and
    fully masked rows are 0."""
    R = np.array([1.0, 0.0, 2.0, 3.0, 5.0, 5.0, 5.0])
    g = np.array([7, 1, 1, 2, 3, 3, 3])
    M = np.ones((7, 3), bool)
    M[1, 1:] = False
    M[6] = False
    w = np.array([1.0, 0.0, 2.0, 1.0, 1.0, 2.0, 3.0])
    A = oblr_po_advantage(R, g, M, grad_sq=w)
    assert A[0].tolist() == [0, 0, 0] and A[3].tolist() == [0, 0, 0]  # singletons
    assert A[2].tolist() == [0, 0, 0]  # its only partner has weight 0
    assert A[1, 0] == (0.0 - 2.0) and A[1, 1:].tolist() == [0, 0]  # partner weight 2 > 0; padding 0
    assert (A[4:] == 0).all()  # all-equal group; row 6 fully masked
    raw = oblr_po_advantage(R, g, M, OBLRPOConfig(singleton="raw"), grad_sq=w)
    assert raw[0, 0] == 1.0 and raw[3, 0] == 3.0 and raw[2, 0] == 2.0


def test_bad_input_raises():
    """Bad input raises RLSpecValueError naming the argument."""
    R, g, M = np.array([1.0, 0.0]), np.array([0, 0]), np.ones((2, 2), bool)
    with pytest.raises(RLSpecValueError, match="grad_sq"):
        oblr_po_advantage(R, g, M, grad_sq=np.array([1.0, -1.0]))
    with pytest.raises(RLSpecValueError, match="grad_sq"):
        oblr_po_advantage(R, g, M, grad_sq=np.array([1.0, np.nan]))
    with pytest.raises(RLSpecValueError, match="grad_sq"):
        oblr_po_advantage(R, g, M, grad_sq=np.array([1.0]))
    with pytest.raises(RLSpecValueError, match="baseline"):
        OBLRPOConfig(baseline="mean")
    with pytest.raises(RLSpecValueError, match="weight_proxy"):
        OBLRPOConfig(weight_proxy="norm")
    with pytest.raises(RLSpecValueError, match="lr_max"):
        OBLRPOLRConfig(lr_max=0.0)
    with pytest.raises(RLSpecValueError, match="g_samples"):
        oblr_po_learning_rate(np.ones((1, 3)))
    with pytest.raises(RLSpecValueError, match="g_samples"):
        oblr_po_learning_rate(np.array([[1.0, np.inf], [0.0, 1.0]]))
