"""The exact solvers of :mod:`rlspec.reference.envs.tabular_mdp`, checked against each other and by hand.

Value iteration is checked against the linear solve of the greedy policy's evaluation, policy iteration
against brute force over all deterministic stationary policies, and the linear solve itself against a
truncated Neumann series (the definition V = Σ_t γ^t P_π^t r_π) and a two-state closed form.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.envs import tabular_mdp as tm

seeds = st.integers(0, 2**32 - 1)


@settings(max_examples=30, deadline=None)
@given(seed=seeds, S=st.integers(1, 6), A=st.integers(1, 4), gamma=st.floats(0.0, 0.95))
def test_evaluation_is_the_neumann_series(seed, S, A, gamma):
    """V_π = Σ_t γ^t P_π^t r_π (the definition), summed to 2000 terms, equals the linear solve."""
    rng = np.random.default_rng(seed)
    mdp = tm.random_mdp(rng, S, A, gamma)
    pi = rng.dirichlet(np.ones(A), size=S)
    P_pi = np.einsum("sa,sat->st", pi, mdp.P)
    r_pi = (pi * mdp.R).sum(1)
    series, term = np.zeros(S), r_pi.copy()
    for _ in range(2000):
        series += term
        term = gamma * P_pi @ term
    V, Q = tm.evaluate(mdp, pi)
    np.testing.assert_allclose(V, series, atol=1e-9)
    np.testing.assert_allclose((pi * Q).sum(1), V, atol=1e-9)  # V_π(s) = Σ_a π(a|s) Q_π(s, a)


def test_two_state_closed_form():
    """Two states, one action, s0 → s1 → s1 (absorbing), rewards r0, r1: V(s1) = r1/(1−γ),
    V(s0) = r0 + γ r1/(1−γ) (written out by hand)."""
    P = np.zeros((2, 1, 2))
    P[0, 0, 1] = P[1, 0, 1] = 1.0
    mdp = tm.TabularMDP(P=P, R=np.array([[2.0], [-1.0]]), gamma=0.8, d0=np.array([1.0, 0.0]))
    V, _ = tm.evaluate(mdp, np.ones((2, 1)))
    np.testing.assert_allclose(V, [2.0 + 0.8 * (-1.0) / 0.2, -1.0 / 0.2], atol=1e-12)
    assert tm.expected_return(mdp, np.ones((2, 1))) == pytest.approx(2.0 - 4.0)


@settings(max_examples=30, deadline=None)
@given(seed=seeds, S=st.integers(1, 6), A=st.integers(1, 4), gamma=st.floats(0.0, 0.97))
def test_value_iteration_against_linear_solve(seed, S, A, gamma):
    """Value iteration's V is within tol of V* = V_{π_greedy} computed by the linear solve, and is a
    fixed point of T up to the same tolerance (Puterman Thm 6.3.1: ‖V_{k+1} − V*‖ ≤ tol/2)."""
    rng = np.random.default_rng(seed)
    mdp = tm.random_mdp(rng, S, A, gamma, support=int(rng.integers(1, S + 1)))
    tol = 1e-9
    sol = tm.value_iteration(mdp, tol=tol)
    V_lin, _ = tm.evaluate(mdp, sol.pi)
    np.testing.assert_allclose(sol.V, V_lin, atol=tol)
    Q = mdp.R + gamma * np.einsum("sat,t->sa", mdp.P, sol.V)
    np.testing.assert_allclose(Q.max(1), sol.V, atol=tol)


@settings(max_examples=20, deadline=None)
@given(seed=seeds, S=st.integers(1, 5), A=st.integers(1, 3), gamma=st.floats(0.0, 0.95))
def test_policy_iteration_against_brute_force(seed, S, A, gamma):
    """Policy iteration's V equals max over all A^S deterministic stationary policies of V_π(s), for
    every s (enumerated here without the library's brute-force helper), and brute_force_optimum agrees."""
    rng = np.random.default_rng(seed)
    mdp = tm.random_mdp(rng, S, A, gamma)
    best = np.full(S, -np.inf)
    for actions in itertools.product(range(A), repeat=S):
        pi = np.eye(A)[list(actions)]
        P_pi = mdp.P[np.arange(S), list(actions)]
        r_pi = mdp.R[np.arange(S), list(actions)]
        best = np.maximum(best, np.linalg.solve(np.eye(S) - gamma * P_pi, r_pi))
        assert pi.shape == (S, A)
    sol = tm.policy_iteration(mdp)
    np.testing.assert_allclose(sol.V, best, atol=1e-9)
    np.testing.assert_allclose(tm.brute_force_optimum(mdp).V, best, atol=1e-9)
    np.testing.assert_allclose(tm.value_iteration(mdp, tol=1e-10).V, best, atol=1e-9)
    V_pi, _ = tm.evaluate(mdp, tm.brute_force_optimum(mdp).pi)
    np.testing.assert_allclose(V_pi, best, atol=1e-9)  # the returned policy attains V* everywhere


@settings(max_examples=20, deadline=None)
@given(seed=seeds, S=st.integers(1, 4), A=st.integers(1, 3), H=st.integers(1, 4), gamma=st.floats(0.0, 1.0))
def test_backward_induction_against_brute_force_finite_horizon(seed, S, A, H, gamma):
    """Finite horizon (γ = 1 allowed): backward induction's V_0 equals the max over all (A^S)^H
    deterministic Markov policies of their value, evaluated by explicit path enumeration."""
    rng = np.random.default_rng(seed)
    mdp = tm.random_mdp(rng, S, A, gamma)
    while H > 1 and (A ** S) ** H * S ** H > 20000:
        H -= 1
    best = np.full(S, -np.inf)
    for flat in itertools.product(range(A), repeat=S * H):
        act = np.array(flat).reshape(H, S)
        # value of each start state by enumerating every state path of length H
        V0 = np.zeros(S)
        for path in itertools.product(range(S), repeat=H):        # path = (s_0, ..., s_{H-1})
            prob, ret = 1.0, 0.0
            for t in range(H):
                s, a = path[t], act[t, path[t]]
                ret += gamma ** t * mdp.R[s, a]
                if t + 1 < H:
                    prob *= mdp.P[s, a, path[t + 1]]
            V0[path[0]] += prob * ret
        best = np.maximum(best, V0)
    sol = tm.backward_induction(mdp, H)
    np.testing.assert_allclose(sol.V[0], best, atol=1e-9)
    V, _ = tm.evaluate_finite(mdp, sol.pi, H)
    np.testing.assert_allclose(V[0], best, atol=1e-9)


def test_finite_horizon_tends_to_discounted_value():
    """For γ < 1, the H-step optimal value tends to V* (error ≤ γ^H max|R|/(1−γ))."""
    mdp = tm.random_mdp(np.random.default_rng(3), 4, 3, 0.7)
    V_star = tm.value_iteration(mdp, tol=1e-12).V
    H = 80
    err = np.abs(tm.backward_induction(mdp, H).V[0] - V_star).max()
    assert err <= 0.7 ** H * np.abs(mdp.R).max() / 0.3 + 1e-10


def test_value_iteration_is_not_the_identity():
    """A broken Bellman operator (no discount on the max) would fail here: V* of a one-state MDP with
    reward 1 and γ = 0.5 is exactly 2."""
    mdp = tm.TabularMDP(P=np.ones((1, 2, 1)), R=np.array([[1.0, 0.0]]), gamma=0.5, d0=np.ones(1))
    assert tm.value_iteration(mdp).V[0] == pytest.approx(2.0, abs=1e-9)
    assert tm.policy_iteration(mdp).pi.tolist() == [[1.0, 0.0]]


def test_bad_input_raises():
    P = np.full((2, 2, 2), 0.5)
    R = np.zeros((2, 2))
    d0 = np.array([0.5, 0.5])
    with pytest.raises(RLSpecValueError, match="P"):
        tm.TabularMDP(P=P * 2, R=R, gamma=0.9, d0=d0)
    with pytest.raises(RLSpecValueError, match="R"):
        tm.TabularMDP(P=P, R=np.zeros(2), gamma=0.9, d0=d0)
    with pytest.raises(RLSpecValueError, match="R"):
        tm.TabularMDP(P=P, R=np.full((2, 2), np.nan), gamma=0.9, d0=d0)
    with pytest.raises(RLSpecValueError, match="d0"):
        tm.TabularMDP(P=P, R=R, gamma=0.9, d0=np.array([1.0, 1.0]))
    with pytest.raises(RLSpecValueError, match="gamma"):
        tm.TabularMDP(P=P, R=R, gamma=1.5, d0=d0)
    mdp1 = tm.TabularMDP(P=P, R=R, gamma=1.0, d0=d0)
    with pytest.raises(RLSpecValueError, match="gamma"):
        tm.evaluate(mdp1, np.full((2, 2), 0.5))
    mdp = tm.TabularMDP(P=P, R=R, gamma=0.9, d0=d0)
    with pytest.raises(RLSpecValueError, match="pi"):
        tm.evaluate(mdp, np.ones((2, 2)))
    with pytest.raises(RLSpecValueError, match="H"):
        tm.backward_induction(mdp, 0)


@settings(max_examples=20, deadline=None)
@given(seed=seeds, S=st.integers(1, 4), A=st.integers(1, 3), K=st.integers(1, 4))
def test_reward_kernel_mdp_marginals(seed, S, A, K):
    """RewardKernelMDP.expected(): P(s'|s,a) = Σ_k PR[s,a,s',k] and R(s,a) = Σ_{s',k} PR[s,a,s',k] r_k,
    written out with explicit loops; random_reward_kernel_mdp puts mass on `support` outcomes."""
    rng = np.random.default_rng(seed)
    r = rng.normal(size=K)
    m = tm.random_reward_kernel_mdp(rng, S, A, r, gamma=0.7, support=2)
    e = m.expected()
    for s, a in itertools.product(range(S), range(A)):
        assert (m.PR[s, a] > 0).sum() == min(2, S * K)
        for s2 in range(S):
            assert e.P[s, a, s2] == pytest.approx(sum(m.PR[s, a, s2, k] for k in range(K)))
        assert e.R[s, a] == pytest.approx(sum(m.PR[s, a, s2, k] * r[k] for s2 in range(S) for k in range(K)))
    with pytest.raises(RLSpecValueError, match="PR"):
        tm.RewardKernelMDP(PR=m.PR * 2, r_atoms=r, gamma=0.7, d0=m.d0)
    with pytest.raises(RLSpecValueError, match="r_atoms"):
        tm.RewardKernelMDP(PR=m.PR, r_atoms=np.append(r, 1.0), gamma=0.7, d0=m.d0)
