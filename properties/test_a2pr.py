"""Properties of A2PR (arXiv 2405.19909): the actor loss, the augmented behaviour policy, EPBL, the critic guard.

Expected values come from outside the code under test: central finite differences of a frozen-factor
loss (λ, the mask and the choice of ã held fixed, as the method detaches them), exact policy evaluation
on random tabular MDPs (:mod:`rlspec.reference.envs.tabular_mdp`), enumeration of all (a, â) pairs, and,
for the training run, the exact stationary point, itself checked by averaging the per-pair gradient.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlspec.reference import a2pr as A
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.envs import a2pr_offline_bandit as ob
from rlspec.reference.envs import tabular_mdp as tm

seeds = st.integers(0, 2**32 - 1)


def _quadratic_critic(rng, B, d):
    """Q_b(x) = c_b − ½ (x − μ_b)ᵀ H_b (x − μ_b) with H_b positive definite."""
    M = rng.normal(size=(B, d, d))
    H = M @ np.swapaxes(M, 1, 2) + 0.2 * np.eye(d)
    mu, c = rng.normal(size=(B, d)), rng.normal(size=B) - 3.0

    def Q(x):
        z = x - mu
        return c - 0.5 * np.einsum("bi,bij,bj->b", z, H, z)

    def dQ(x):
        return -np.einsum("bij,bj->bi", H, x - mu)

    return Q, dQ


@settings(max_examples=40, deadline=None)
@given(seed=seeds, B=st.integers(1, 8), d=st.integers(1, 3), with_jac=st.booleans(),
       kappa=st.sampled_from([0.4, 0.5, 1.0]), alpha=st.sampled_from([2.5, 40.0]))
def test_hand_gradient_matches_finite_differences(seed, B, d, with_jac, kappa, alpha):
    """dpi equals the central FD of L_π(π) = −λ₀·mean Q(π) + mean m₀(π − ã(π))² with λ₀, m₀ and the choice of ã
    frozen at π₀ (they are detached in the method), where ã(π) = â(π) = â₀ + J(π − π₀) on the rows that chose â
    (J = 0 without the Jacobian path); the loss value at π₀ equals that frozen loss."""
    rng = np.random.default_rng(seed)
    Q, dQ = _quadratic_critic(rng, B, d)
    pi0, a, ah0 = rng.normal(size=(3, B, d))
    J = 0.5 * rng.normal(size=(B, d, d)) if with_jac else np.zeros((B, d, d))
    v = rng.normal(size=B) - 3.0
    qd, qh = Q(a), Q(ah0)
    cfg = A.A2PRConfig(alpha=alpha, kappa=kappa)
    loss, dpi = A.a2pr_actor_loss(pi0, dQ(pi0), Q(pi0), a, qd, ah0, qh, v, J if with_jac else None, config=cfg)
    lam = alpha / np.abs(Q(pi0)).mean()
    use = qh >= qd
    m = kappa * ((qh >= v).astype(float) + (qd > v).astype(float))

    def frozen(p):
        at = np.where(use[:, None], ah0 + np.einsum("bij,bj->bi", J, p - pi0), a)
        return -lam * Q(p).mean() + (m[:, None] * (p - at) ** 2).mean()

    assert abs(loss - frozen(pi0)) <= 1e-12 * (1 + abs(loss))
    h, fd = 1e-6, np.zeros_like(pi0)
    for b in range(B):
        for j in range(d):
            e = np.zeros_like(pi0)
            e[b, j] = h
            fd[b, j] = (frozen(pi0 + e) - frozen(pi0 - e)) / (2 * h)
    np.testing.assert_allclose(dpi, fd, rtol=1e-6, atol=1e-8)


@settings(max_examples=60, deadline=None)
@given(seed=seeds, B=st.integers(1, 16), ties=st.booleans())
def test_target_selects_the_higher_advantage_action(seed, B, ties):
    """Claim (abstract: "select high-advantage actions"): A(s, ã) = max(A(s, a), A(s, â)) ≥ A(s, a), row by row;
    ties pick â, as in the official code (``>=``)."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=B)
    qd = rng.integers(-2, 3, B).astype(float) if ties else rng.normal(size=B)
    qh = rng.integers(-2, 3, B).astype(float) if ties else rng.normal(size=B)
    a, ah = np.arange(B)[:, None] * 1.0, np.arange(B)[:, None] + 100.0
    at, use = A.augmented_action(a, ah, qd, qh)
    q_sel = np.where(at[:, 0] >= 100, qh, qd)
    np.testing.assert_array_equal(A.advantage(q_sel, v), np.maximum(A.advantage(qd, v), A.advantage(qh, v)))
    assert (A.advantage(q_sel, v) >= A.advantage(qd, v)).all()
    assert (use == (qh >= qd)).all() and (at[qh == qd, 0] >= 100).all()


@settings(max_examples=60, deadline=None)
@given(seed=seeds, B=st.integers(1, 16), kappa=st.floats(0.01, 2.0))
def test_mask_values_and_zero_on_bad_pairs(seed, B, kappa):
    """m ∈ {0, κ, 2κ}; m = 0 exactly when Q(s, â) < V(s) and Q(s, a) ≤ V(s) (both candidates bad: no pull
    towards them), m = 2κ when both are good; the actor loss then reduces to −λ·mean Q on m = 0 rows."""
    rng = np.random.default_rng(seed)
    v = rng.integers(-1, 2, B).astype(float)
    qd, qh = rng.integers(-1, 2, (2, B)).astype(float)
    m = A.regularization_weight(qd, qh, v, kappa)
    assert set(np.unique(m)) <= {0.0, kappa, 2 * kappa}
    np.testing.assert_array_equal(m == 0, (qh < v) & (qd <= v))
    np.testing.assert_array_equal(m == 2 * kappa, (qh >= v) & (qd > v))


@settings(max_examples=40, deadline=None)
@given(seed=seeds, S=st.integers(1, 6), nA=st.integers(2, 5), gamma=st.floats(0.0, 0.95), fit=st.booleans())
def test_augmented_behaviour_policy_improves_on_behaviour(seed, S, nA, gamma, fit):
    """Behaviour-policy improvement (abstract; our tabular form): ã = argmax of A^β over {a ~ β, â ~ β⁺} gives
    V^{π̃}(s) ≥ V^β(s) at every state of a random MDP (exact policy evaluation), for an arbitrary density model β⁺
    and for the EPBL fit β⁺ ∝ β·1[A^β > 0] (then V^{β⁺} ≥ V^β as well); and E_{π̃} A^β ≥ 0 state by state."""
    rng = np.random.default_rng(seed)
    mdp = tm.random_mdp(rng, S, nA, gamma)
    beta = rng.dirichlet(np.ones(nA), size=S)
    V, Q = tm.evaluate(mdp, beta)
    Adv = Q - V[:, None]
    bplus = A.positive_behaviour_fit(beta, Adv) if fit else rng.dirichlet(np.ones(nA) * 0.5, size=S)
    pt = A.augmented_behaviour_policy(beta, bplus, Q)
    np.testing.assert_allclose(pt.sum(1), 1.0, atol=1e-12)
    assert ((pt * Adv).sum(1) >= -1e-12).all()
    Vt, _ = tm.evaluate(mdp, pt)
    assert (Vt >= V - 1e-9 * (1 + np.abs(V))).all()
    if fit:                                        # the EPBL fit alone is an improvement too: E_{β⁺} A^β ≥ 0
        assert (tm.evaluate(mdp, bplus)[0] >= V - 1e-9 * (1 + np.abs(V))).all()


@settings(max_examples=30, deadline=None)
@given(seed=seeds, nA=st.integers(1, 5), ties=st.booleans())
def test_augmented_behaviour_policy_is_the_law_of_the_selection(seed, nA, ties):
    """π̃(·|s) equals the law of ã obtained by running :func:`augmented_action` on every pair (a, â) of the
    action set, weighted by β(a)·β⁺(â) (enumeration), ties included."""
    rng = np.random.default_rng(seed)
    beta, bplus = rng.dirichlet(np.ones(nA)), rng.dirichlet(np.ones(nA))
    Q = rng.integers(0, 3, nA).astype(float) if ties else rng.normal(size=nA)
    a, ah = np.repeat(np.arange(nA), nA), np.tile(np.arange(nA), nA)
    at, _ = A.augmented_action(a[:, None] * 1.0, ah[:, None] * 1.0, Q[a], Q[ah])
    law = np.zeros(nA)
    np.add.at(law, at[:, 0].astype(int), beta[a] * bplus[ah])
    np.testing.assert_allclose(A.augmented_behaviour_policy(beta[None], bplus[None], Q[None])[0], law, atol=1e-14)


@settings(max_examples=40, deadline=None)
@given(seed=seeds, nA=st.integers(2, 6), eps=st.sampled_from([0.0, 0.1, -0.1]))
def test_epbl_fit_is_the_weighted_mle_and_improves(seed, nA, eps):
    """EPBL in tabular form: β⁺ minimises the weighted negative log-likelihood Σ_a β(a)·1[A(a) > ε_A]·(−log p(a))
    over the simplex (beats 200 random p, Gibbs' inequality), :class:`EmpiricalDensity` fit on samples puts mass
    ∝ weights, and E_{β⁺} A ≥ min(ε_A, 0)·1[some A > ε_A] (β⁺ only keeps actions above the threshold)."""
    rng = np.random.default_rng(seed)
    beta, Adv = rng.dirichlet(np.ones(nA)), rng.normal(size=nA)
    bp = A.positive_behaviour_fit(beta[None], Adv[None], eps)[0]
    wts = beta * (Adv > eps)
    if wts.sum() > 0:
        nll = -(wts * np.log(np.where(bp > 0, bp, 1.0))).sum()
        for p in rng.dirichlet(np.ones(nA), size=200):
            assert nll <= -(wts * np.log(p)).sum() + 1e-12
        assert (bp * Adv).sum() >= eps - 1e-12
        dens = A.EmpiricalDensity().fit(np.arange(nA, dtype=float)[:, None], wts)
        np.testing.assert_allclose(dens.probs, bp, atol=1e-14)
    else:
        np.testing.assert_allclose(bp, beta)


@settings(max_examples=60, deadline=None)
@given(seed=seeds, B=st.integers(1, 16), gamma=st.floats(0.0, 1.0))
def test_value_target_never_exceeds_critic_target(seed, B, gamma):
    """Overestimation guard of the code's value learning: t_Q = min(y, y_current) ≤ y and ≤ y_current elementwise,
    with y = r + γ(1 − d)·min_i Q̄_i; and the target action stays in [−a_max, a_max] within noise_clip of π̄(s′)."""
    rng = np.random.default_rng(seed)
    r, q1, q2, p1, p2 = rng.normal(size=(5, B))
    nd = rng.integers(0, 2, B).astype(float)
    y = A.critic_target(r, nd, q1, q2, gamma)
    np.testing.assert_allclose(y, r + gamma * nd * np.minimum(q1, q2))
    t = A.value_target(r, nd, y, p1, p2, gamma)
    assert (t <= y).all() and (t <= r + gamma * nd * np.minimum(p1, p2)).all()
    pi_next, noise = np.tanh(rng.normal(size=(B, 2))), rng.normal(size=(B, 2))
    cfg = A.A2PRConfig()
    ta = A.target_action(pi_next, noise, cfg)
    assert (np.abs(ta) <= cfg.max_action).all() and (np.abs(ta - pi_next) <= cfg.noise_clip + 1e-15).all()


@settings(max_examples=30, deadline=None)
@given(seed=seeds, B=st.integers(1, 6), d=st.integers(1, 3), eps=st.sampled_from([0.0, 0.5]))
def test_vae_loss_gradient_and_positive_only(seed, B, d, eps):
    """EPBL's loss: its gradients w.r.t. the reconstruction, μ and σ equal central FD; rows with A ≤ ε_A have a
    zero reconstruction gradient (only positive-advantage data are reconstructed)."""
    rng = np.random.default_rng(seed)
    rec, a = rng.normal(size=(2, B, d))
    mu, sd = rng.normal(size=(B, 2 * d)), np.exp(rng.normal(size=(B, 2 * d)) * 0.5)
    q, v = rng.normal(size=(2, B))
    cfg = A.A2PRConfig(eps_A=eps, vae_weight=1.5)
    _, gr, gm, gs = A.epbl_vae_loss(rec, a, mu, sd, q, v, cfg)
    for x, g, i in ((rec, gr, 0), (mu, gm, 2), (sd, gs, 3)):
        fd = np.zeros_like(x)
        for idx in np.ndindex(*x.shape):
            e = np.zeros_like(x)
            e[idx] = 1e-6
            args = [rec, a, mu, sd]
            args[i] = x + e
            lp = A.epbl_vae_loss(*args, q, v, cfg)[0]
            args[i] = x - e
            fd[idx] = (lp - A.epbl_vae_loss(*args, q, v, cfg)[0]) / 2e-6
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9)
    assert (gr[q - v <= eps] == 0).all()


ENV = ob.OfflineBandit()
DATA = ob.dataset(ENV, np.random.default_rng(0), 400)


def test_bandit_training_reaches_the_exact_fixed_point():
    """Offline bandit, 50/50 good/bad dataset (400 actions), exact critic: A2PR's SGD (rate 0.1/√(k+1), batch 64,
    1000 steps) ends within 1e−3 of the exact stationary point for each of 3 seeds (mean of the last 200 iterates).
    The stationary point is checked independently: the per-pair gradient of :func:`a2pr_actor_loss`, averaged over
    every (data action, model atom) pair, vanishes there. Its true reward beats TD3+BC's limit (pulled to the bad
    mode) by > 0.02 and the behaviour value by > 0.5."""
    cfg = A.A2PRConfig()
    theta = A.bandit_fixed_point(ENV, DATA, cfg)
    V = ob.behaviour_value(ENV)
    dens = A.EmpiricalDensity().fit(DATA[:, None], (ob.reward(ENV, DATA) > V).astype(float))
    a = np.repeat(DATA, dens.actions.shape[0])[:, None]
    ah = np.tile(dens.actions[:, 0], DATA.size)[:, None]
    w = np.repeat(np.full(DATA.size, 1 / DATA.size), dens.actions.shape[0]) * np.tile(dens.probs, DATA.size)
    pi = np.full_like(a, theta)
    _, g = A.a2pr_actor_loss(pi, ob.reward_grad(ENV, pi), ob.reward(ENV, pi[:, 0]), a, ob.reward(ENV, a[:, 0]), ah,
                             ob.reward(ENV, ah[:, 0]), np.full(a.shape[0], V), config=cfg)
    assert abs((g[:, 0] * a.shape[0] * w).sum()) < 1e-9
    for seed in range(3):
        traj = A.bandit_train(ENV, DATA, 1000, 0.1, config=cfg, seed=seed)
        assert abs(traj[-200:].mean() - theta) < 1e-3, (seed, traj[-200:].mean(), theta)
    td3 = A.bandit_fixed_point(ENV, DATA, cfg, td3bc=True)
    assert ob.reward(ENV, theta) > ob.reward(ENV, td3) + 0.02
    assert ob.reward(ENV, theta) > V + 0.5
    assert abs(A.bandit_train(ENV, DATA, 1000, 0.1, config=cfg, td3bc=True)[-200:].mean() - td3) < 5e-3


def test_optimized_matches_reference():
    """The torch registry function (autograd) reproduces the reference loss and hand gradient in float64 on
    make_inputs draws, and the torch bandit run reproduces the reference trajectory (same random stream)."""
    from rlspec.optimized import a2pr as T

    for i in range(20):
        inp = A.make_inputs(np.random.default_rng(i))
        ref = A.a2pr_actor_loss(**inp)
        got = T.a2pr_actor_loss(**{k: torch.as_tensor(v) for k, v in inp.items()})
        assert abs(float(got[0]) - ref[0]) <= 1e-12 * (1 + abs(ref[0]))
        np.testing.assert_allclose(got[1].numpy(), ref[1], rtol=1e-10, atol=1e-13)
    for td3bc in (False, True):
        r = A.bandit_train(ENV, DATA, 200, 0.5, seed=3, td3bc=td3bc)
        t = T.bandit_train(ENV, DATA, 200, 0.5, seed=3, td3bc=td3bc)
        np.testing.assert_allclose(t, r, rtol=1e-10, atol=1e-12)


def test_bad_input_raises():
    inp = A.make_inputs(np.random.default_rng(0))
    with pytest.raises(RLSpecValueError, match="q_pi"):
        A.a2pr_actor_loss(**{**inp, "q_pi": np.zeros_like(inp["q_pi"])})
    with pytest.raises(RLSpecValueError, match="a_vae"):
        A.a2pr_actor_loss(**{**inp, "a_vae": inp["a_vae"][:, :0]})
    with pytest.raises(RLSpecValueError, match="v"):
        A.a2pr_actor_loss(**{**inp, "v": np.full_like(inp["v"], np.nan)})
    with pytest.raises(RLSpecValueError, match="dvae_dpi"):
        A.a2pr_actor_loss(**{**inp, "dvae_dpi": np.zeros((1, 1, 1, 1))})
    with pytest.raises(RLSpecValueError, match="kappa"):
        A.A2PRConfig(kappa=-1.0)
    with pytest.raises(RLSpecValueError, match="gamma"):
        A.A2PRConfig(gamma=1.5)


def plot_bandit(path: str = "docs/algorithms/img/a2pr.png") -> None:
    """The docs figure: A2PR and TD3+BC actor trajectories on the offline bandit, with the exact limits."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = A.A2PRConfig()
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    for seed, ls in zip(range(3), ("-", "--", ":")):
        ax[0].plot(A.bandit_train(ENV, DATA, 1000, 0.1, config=cfg, seed=seed), "C0", ls=ls, lw=1,
                   label="A2PR" if seed == 0 else None)
        ax[0].plot(A.bandit_train(ENV, DATA, 1000, 0.1, config=cfg, seed=seed, td3bc=True), "C1", ls=ls, lw=1,
                   label="TD3+BC" if seed == 0 else None)
    for th, c, lab in ((A.bandit_fixed_point(ENV, DATA, cfg), "C0", "A2PR limit (exact)"),
                       (A.bandit_fixed_point(ENV, DATA, cfg, td3bc=True), "C1", "TD3+BC limit (exact)"),
                       (ENV.a_star, "k", "a*")):
        ax[0].axhline(th, color=c, lw=0.8, alpha=0.6, label=lab)
    ax[0].set_xscale("symlog", linthresh=10)
    ax[0].set_xlim(0, 1000)
    ax[0].set(xlabel="SGD step", ylabel="actor action θ", title="actor on the offline bandit (3 seeds)")
    ax[0].legend(fontsize=7)
    grid = np.linspace(-1.2, 1.0, 400)
    ax[1].hist(DATA, bins=60, density=True, color="0.7", label="dataset (β)")
    ax2 = ax[1].twinx()
    ax2.plot(grid, ob.reward(ENV, grid), "k", lw=1, label="r(a)")
    ax2.axhline(ob.behaviour_value(ENV), color="0.4", ls=":", lw=1, label="V^β")
    for th, c in ((A.bandit_fixed_point(ENV, DATA, cfg), "C0"), (A.bandit_fixed_point(ENV, DATA, cfg, td3bc=True), "C1")):
        ax[1].axvline(th, color=c, lw=1.2)
    ax[1].set(xlabel="action", title="data, reward, limits (blue A2PR, orange TD3+BC)")
    ax2.legend(fontsize=7, loc="lower center")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
