"""The exact solvers of :mod:`rlspec.reference.envs.token_tree`, checked by brute-force enumeration.

Every quantity computed by a recursion in the module (values, Q, sequence and state probabilities, soft
values and the soft-optimal policy) is recomputed here by walking every response with ``itertools``.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.envs import token_tree as tt

seeds = st.integers(0, 2**32 - 1)
shapes = st.tuples(st.integers(2, 3), st.integers(1, 3))  # (K, d)


def brute(tree, pi=None):
    """{prefix tuple: probability of the prefix} and {full response: probability}, by walking the tree."""
    pi = tree.pi0 if pi is None else pi
    prob = {(): 1.0}
    for t in range(tree.d):
        for s in itertools.product(range(tree.K), repeat=t):
            i = tt.prefix_index(np.array(s, dtype=np.int64), tree.K) if t else 0
            for a in range(tree.K):
                prob[s + (a,)] = prob[s] * pi[t][int(i), a]
    return prob


def random_policy(rng, tree):
    return tuple(rng.dirichlet(np.ones(tree.K), size=tree.K**t) for t in range(tree.d))


@settings(max_examples=25, deadline=None)
@given(seed=seeds, shape=shapes)
def test_values_and_probabilities_match_enumeration(seed, shape):
    """π(y) = Π_t π(y_t|y_<t); V^π(s) = Σ_{y ⊒ s} π(y|s) r(y); Q^π(s,a) = V^π(s⊕a); J = Σ π(y) r(y)."""
    rng = np.random.default_rng(seed)
    K, d = shape
    tree = tt.random_tree(rng, K, d)
    pi = random_policy(rng, tree)
    prob = brute(tree, pi)
    full = list(itertools.product(range(K), repeat=d))
    p_seq = np.array([prob[y] for y in full])
    np.testing.assert_allclose(tt.sequence_probs(tree, pi), p_seq, atol=1e-14)
    assert abs(p_seq.sum() - 1) < 1e-12
    V = tt.values(tree, pi)
    Q = tt.q_values(tree, pi)
    dpi = tt.state_probs(tree, pi)
    for t in range(d):
        for s in itertools.product(range(K), repeat=t):
            i = int(tt.prefix_index(np.array(s, dtype=np.int64), K)) if t else 0
            ext = [y for y in full if y[:t] == s]
            cond = sum(prob[y] / prob[s] * tree.r[int(tt.prefix_index(np.array(y), K))] for y in ext)
            assert abs(V[t][i] - cond) < 1e-12
            assert abs(dpi[t][i] - prob[s]) < 1e-14
            for a in range(K):
                ext_a = [y for y in full if y[:t + 1] == s + (a,)]
                qa = sum(prob[y] / prob[s + (a,)] * tree.r[int(tt.prefix_index(np.array(y), K))] for y in ext_a)
                assert abs(Q[t][i, a] - qa) < 1e-12
    assert abs(tt.expected_reward(tree, pi) - p_seq @ tree.r) < 1e-12


@settings(max_examples=25, deadline=None)
@given(seed=seeds, shape=shapes, beta=st.floats(0.05, 20.0))
def test_soft_optimum_is_the_tilted_sequence_distribution(seed, shape, beta):
    """Soft VI: π*_β(y) = π₀(y)e^{βr(y)}/Z and V*_β(∅) = (1/β) log E_{π₀} e^{βr} = max_π F_β(π)."""
    rng = np.random.default_rng(seed)
    tree = tt.random_tree(rng, *shape)
    p0 = tt.sequence_probs(tree)
    w = p0 * np.exp(beta * tree.r)
    pi_star = tt.soft_optimal_policy(tree, beta)
    np.testing.assert_allclose(tt.sequence_probs(tree, pi_star), w / w.sum(), rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(tt.tilted_sequence_probs(tree, beta), w / w.sum(), rtol=1e-9, atol=1e-15)
    V0 = tt.soft_values(tree, beta)[0][0]
    assert abs(V0 - np.log(w.sum()) / beta) < 1e-9
    assert abs(tt.kl_objective(tree, pi_star, beta) - V0) < 1e-9
    for _ in range(5):  # the soft optimum beats any other policy on F_β
        assert tt.kl_objective(tree, random_policy(rng, tree), beta) <= V0 + 1e-12


@settings(max_examples=20, deadline=None)
@given(seed=seeds, shape=shapes)
def test_sequence_kl_is_the_sum_of_expected_stepwise_kls(seed, shape):
    """KL(π‖π₀) over responses = Σ_t E_{s∼d^π_t} KL(π(·|s) ‖ π₀(·|s)) (the chain rule)."""
    rng = np.random.default_rng(seed)
    tree = tt.random_tree(rng, *shape)
    pi = random_policy(rng, tree)
    dpi = tt.state_probs(tree, pi)
    step = sum(dpi[t] @ (pi[t] * np.log(pi[t] / tree.pi0[t])).sum(axis=1) for t in range(tree.d))
    assert abs(tt.kl(tree, pi) - step) < 1e-10


def test_sampling_matches_sequence_probabilities():
    """Empirical response frequencies of 40 000 draws are within 5 binomial standard errors of π(y)
    for every y (seeded; a correct sampler fails this with probability < 1e-4 over the 27 responses)."""
    rng = np.random.default_rng(0)
    tree = tt.random_tree(rng, 3, 3)
    n = 40_000
    tokens, rewards = tt.sample(tree, tree.pi0, n, np.random.default_rng(1))
    idx = tt.prefix_index(tokens, 3)
    np.testing.assert_array_equal(rewards, tree.r[idx])
    freq = np.bincount(idx, minlength=27) / n
    p = tt.sequence_probs(tree)
    assert (np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / n) + 1e-12).all()


def test_bad_input_raises():
    """Rows off the simplex, wrong shapes, non-finite rewards and β ≤ 0 raise, naming the argument."""
    rng = np.random.default_rng(0)
    tree = tt.random_tree(rng, 2, 2)
    bad = (np.array([[0.7, 0.7]]), tree.pi0[1])
    with pytest.raises(RLSpecValueError, match="pi0"):
        tt.TokenTree(pi0=bad, r=tree.r)
    with pytest.raises(RLSpecValueError, match="r"):
        tt.TokenTree(pi0=tree.pi0, r=np.array([0.0, np.nan, 1.0, 1.0]))
    with pytest.raises(RLSpecValueError, match="r"):
        tt.TokenTree(pi0=tree.pi0, r=np.zeros(5))
    with pytest.raises(RLSpecValueError, match="policy"):
        tt.expected_reward(tree, (tree.pi0[0],))
    with pytest.raises(RLSpecValueError, match="beta"):
        tt.soft_values(tree, 0.0)
