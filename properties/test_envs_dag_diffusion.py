"""The tiny DAG diffusion (:mod:`rlspec.reference.envs.dag_diffusion`) checked before DGPO uses it.

Expected values come from outside the module's formulas: step matrices multiplied out and Bayes' rule by
enumeration, kernel entries written as explicit sums, seeded Monte-Carlo trajectories, central finite
differences of the exact J, and closed walks (trace of adjacency powers) for acyclicity.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.envs import dag_diffusion as dd

SPACE = dd.DagSpace()


def _random_marginal(rng, K):
    m = rng.uniform(0.1, 1.0, size=K)
    return m / m.sum()


@given(seed=st.integers(0, 2**32 - 1), K=st.integers(2, 4), T=st.integers(1, 4))
def test_posterior_is_bayes_rule(seed, K, T):
    """q(x_s | x_t, x_0) ∝ q(x_t | x_s) q(x_s | x_0), with q(x_s | x_0) the product of the one-step matrices
    Q_1 ⋯ Q_s (not the closed form Q̄), normalised by brute force over x_s."""
    rng = np.random.default_rng(seed)
    m = _random_marginal(rng, K)
    abar = np.concatenate([[1.0], np.cumprod(rng.uniform(0.3, 0.95, size=T))])
    steps = [None] + [(abar[t] / abar[t - 1]) * np.eye(K) + (1 - abar[t] / abar[t - 1]) * np.outer(np.ones(K), m)
                      for t in range(1, T + 1)]
    cum = [np.eye(K)]
    for t in range(1, T + 1):
        cum.append(cum[-1] @ steps[t])
    for t in range(1, T + 1):
        for xt in range(K):
            post = dd.posterior(xt, abar[t - 1], abar[t], m)
            for x0 in range(K):
                joint = cum[t - 1][x0, :] * steps[t][:, xt]
                np.testing.assert_allclose(post[x0], joint / joint.sum(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(cum[T], dd.Qbar(abar[T], m), atol=1e-12)


@given(seed=st.integers(0, 2**32 - 1))
@settings(max_examples=10)
def test_reverse_kernel_is_a_product_of_component_mixtures(seed):
    """K_t[g, g'] = Π_c Σ_{x0} p̂(x0 | g)_c q(g'_c | g_c, x0), written out entry by entry; rows sum to 1."""
    rng = np.random.default_rng(seed)
    T = 2
    a = dd.cosine_alpha_bar(T)
    theta = rng.normal(size=(T, SPACE.N, SPACE.C, SPACE.Kmax))
    S = SPACE.states
    for t in (1, 2):
        K = dd.step_kernel(SPACE, theta, a, t)[0]
        np.testing.assert_allclose(K.sum(axis=1), 1.0, atol=1e-12)
        for g, g2 in rng.integers(0, SPACE.N, size=(5, 2)):
            prod = 1.0
            for c in range(SPACE.C):
                logits = theta[t - 1, g, c, :SPACE.card[c]]
                p = np.exp(logits - logits.max())
                p /= p.sum()
                m = SPACE.m_x if c < SPACE.n else SPACE.m_e
                prod *= sum(p[x0] * dd.posterior(S[g, c], a[t - 1], a[t], m)[x0, S[g2, c]] for x0 in range(len(p)))
            assert K[g, g2] == pytest.approx(prod, rel=1e-10)


def test_exact_reward_matches_monte_carlo():
    """J(θ) by forward recursion equals the mean reward of 20 000 sampled trajectories within 5 standard
    errors (seeded; false-alarm rate ≈ 6e-7)."""
    rng = np.random.default_rng(3)
    T = 2
    a = dd.cosine_alpha_bar(T)
    theta = rng.normal(size=(T, SPACE.N, SPACE.C, SPACE.Kmax))
    r = rng.uniform(size=SPACE.N)
    traj = dd.sample(SPACE, theta, a, 20000, np.random.default_rng(4))
    x = r[traj[:, 0]]
    assert abs(x.mean() - dd.expected_reward(SPACE, theta, a, r)) <= 5 * x.std() / np.sqrt(x.size)
    P0 = dd.marginals(SPACE, theta, a)[0]
    np.testing.assert_allclose(P0.sum(), 1.0, atol=1e-12)


@given(seed=st.integers(0, 2**32 - 1), T=st.integers(1, 3), conv=st.sampled_from(["clean0", "code"]))
@settings(max_examples=8)
def test_reinforce_gradient_matches_finite_differences(seed, T, conv):
    """The enumerated REINFORCE gradient Σ_t E[r ∇ log p_θ(G_{t−1}|G_t)] equals central differences of J(θ)
    on 12 random coordinates (padding class slots included: both are 0 there)."""
    rng = np.random.default_rng(seed)
    a = dd.cosine_alpha_bar(T, convention=conv)
    theta = rng.normal(size=(T, SPACE.N, SPACE.C, SPACE.Kmax))
    r = rng.normal(size=SPACE.N)
    g = dd.reinforce_gradient(SPACE, theta, a, r)
    h = 1e-6
    for _ in range(12):
        idx = tuple(int(rng.integers(s)) for s in theta.shape)
        tp, tm = theta.copy(), theta.copy()
        tp[idx] += h
        tm[idx] -= h
        fd = (dd.expected_reward(SPACE, tp, a, r) - dd.expected_reward(SPACE, tm, a, r)) / (2 * h)
        assert g[idx] == pytest.approx(fd, abs=1e-8)


@pytest.mark.parametrize("T", [1, 2, 5, 800])
def test_cosine_schedules(T):
    """clean0: ᾱ_0 = 1, ᾱ_T ≈ 0, non-increasing. code: ᾱ_0 = 1 − β_0 < 1 (large for small T, ≈ 1 for T = 800),
    and equals the clean0 curve of T+1 grid points shifted by one step (the code's grid has T+2 points)."""
    a = dd.cosine_alpha_bar(T)
    assert a[0] == 1.0 and a[-1] < 1e-12 and (np.diff(a) <= 0).all()
    c = dd.cosine_alpha_bar(T, convention="code")
    assert c[0] < 1.0 and (np.diff(c) <= 0).all()
    assert (c[0] < 0.9) == (T <= 2)
    if T == 800:
        assert c[0] > 1 - 1e-4
    s = 0.008
    steps = T + 2
    grid = np.arange(steps) * steps / (steps - 1)
    f = np.cos(0.5 * np.pi * (grid / steps + s) / (1 + s)) ** 2
    np.testing.assert_allclose(c[:-1], (f / f[0])[1:-1], rtol=1e-9)
    with pytest.raises(RLSpecValueError, match="alpha_bar"):
        dd.check_alpha_bar(np.array([1.0, 0.5, 0.7]))


def _acyclic_by_walks(adj):
    """A digraph is acyclic iff it has no closed walk: trace(A^k) = 0 for k = 1..n."""
    A = (np.asarray(adj) != 0).astype(np.int64)
    P = np.eye(A.shape[0], dtype=np.int64)
    for _ in range(A.shape[0]):
        P = P @ A
        if np.trace(P):
            return False
    return True


@pytest.mark.parametrize("n", [2, 3, 4])
def test_acyclicity_check_agrees_with_closed_walks(n):
    """is_acyclic (Kahn) agrees with the closed-walk test on every digraph without self-loops; the counts of
    acyclic digraphs on 2, 3, 4 labelled nodes are 3, 25, 543 (OEIS A003024)."""
    count = 0
    for adj in dd.directed_graphs(n):
        a = dd.is_acyclic(adj)
        assert a == _acyclic_by_walks(adj)
        count += a
    assert count == {2: 3, 3: 25, 4: 543}[n]


def test_state_indexing_and_relabelling():
    """index(states) = 0..N−1; relabelling by a permutation then its inverse is the identity and maps the
    symmetric edge matrix as P E Pᵀ."""
    S = SPACE.states
    np.testing.assert_array_equal(SPACE.index(S), np.arange(SPACE.N))
    assert SPACE.N == 64 and S.shape == (64, 6)
    for perm in itertools.permutations(range(3)):
        perm = np.array(perm)
        inv = np.argsort(perm)
        np.testing.assert_array_equal(SPACE.permute(SPACE.permute(S, perm), inv), S)
        E = dd.symmetric_E(S[:, 3:], 3)
        Pm = np.eye(3, dtype=np.int64)[:, perm]   # Pm[perm[i], i] = 1
        E2 = dd.symmetric_E(SPACE.permute(S, perm)[:, 3:], 3)
        np.testing.assert_array_equal(E2, Pm @ E @ Pm.T)
    with pytest.raises(RLSpecValueError, match="m_x"):
        dd.DagSpace(m_x=np.array([0.5, 0.6]))
