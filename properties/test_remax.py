"""Properties of the ReMax greedy-baseline advantage (arXiv 2310.10505 §4)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties.strategies import seeds
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.remax import ReMaxConfig, remax_advantage


def softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def expected_gradient(theta, r, G, baseline_of):
    """E[(1/G) Σ_i Â_i ∇θ log π(a_i)] over all K^G joint samples of a softmax bandit (one prompt, G rollouts),
    Â from :func:`remax_advantage` with the baseline ``baseline_of(sampled actions)``."""
    pi = softmax(theta)
    K = len(theta)
    total = np.zeros(K)
    mask = np.ones((G, 1), dtype=bool)
    group = np.zeros(G, dtype=int)
    for joint in itertools.product(range(K), repeat=G):
        a = np.array(joint)
        A = remax_advantage(r[a], baseline_of(a), mask, group=group)[:, 0]
        score = np.eye(K)[a] - pi  # ∇θ log π(a) = e_a − π for a softmax policy
        total += np.prod(pi[a]) * (A[:, None] * score).mean(axis=0)
    return total


@given(rng=seeds(), K=st.integers(2, 5), G=st.integers(1, 2))
def test_policy_gradient_unbiased_exact(rng, K, G):
    """ReMax (arXiv 2310.10505 §4): the greedy response ā = argmax π_θ is fixed given θ, so its reward
    b = r(ā) does not depend on the sampled response and E[(r(a) − b) ∇log π(a)] = ∇J(θ) exactly —
    checked by exact enumeration on a softmax bandit, ∇J = Σ_a π(a) r(a) (e_a − π)."""
    theta = rng.normal(size=K)
    r = rng.normal(size=K)
    pi = softmax(theta)
    b = r[int(np.argmax(pi))]  # reward of the greedy action
    est = expected_gradient(theta, r, G, lambda a: np.full(len(a), b))
    np.testing.assert_allclose(est, pi * r - pi * (pi @ r), atol=1e-12)


@given(rng=seeds(), K=st.integers(2, 5))
def test_sample_dependent_baseline_is_biased_exact(rng, K):
    """Contrast that shows the enumeration can fail: a baseline that mixes in the sampled response's own
    reward, b = (r(a) + r(ā))/2, halves the expected gradient, E[ĝ] = ∇J/2."""
    theta = rng.normal(size=K)
    r = rng.normal(size=K)
    pi = softmax(theta)
    b = r[int(np.argmax(pi))]
    est = expected_gradient(theta, r, 1, lambda a: 0.5 * (r[a] + b))
    true = pi * r - pi * (pi @ r)
    np.testing.assert_allclose(est, 0.5 * true, atol=1e-12)
    if np.abs(true).max() > 1e-6:
        assert np.abs(est - true).max() > 1e-7


def ragged(rng, B, T):
    lengths = rng.integers(0, T + 1, size=B)
    return np.arange(T)[None, :] < lengths[:, None]


@given(rng=seeds(), B=st.integers(1, 8), T=st.integers(1, 6), rtg=st.booleans())
def test_advantage_is_reward_minus_greedy_reward(rng, B, T, rtg):
    """Â_it = R_i − b_i at every valid token of sequence i, 0 at padding (outcome rewards (B,))."""
    M = ragged(rng, B, T)
    R, b = rng.normal(size=B), rng.normal(size=B)
    A = remax_advantage(R, b, M, config=ReMaxConfig(reward_to_go=rtg))
    want = np.where(M, (R - b)[:, None], 0.0)
    np.testing.assert_array_equal(A, want)


@given(rng=seeds(), B=st.integers(1, 8), T=st.integers(1, 6))
def test_reward_to_go_agrees_for_outcome_rewards(rng, B, T):
    """verl's reverse-cumsum form equals the paper's form when the reward sits on the last valid token;
    for general token rewards the paper's form puts Σ_t r_t − b at every token and verl's Σ_{t'≥t} r_t' − b
    (both written out here); garbage padding is never read."""
    M = ragged(rng, B, T)
    R, b = rng.normal(size=B), rng.normal(size=B)
    tok = np.zeros((B, T))
    for i in range(B):
        if M[i].any():
            tok[i, np.flatnonzero(M[i])[-1]] = R[i]
    tok[~M] = np.nan
    outcome = remax_advantage(R, b, M)
    for rtg in (False, True):
        np.testing.assert_allclose(remax_advantage(tok, b, M, config=ReMaxConfig(reward_to_go=rtg)), outcome,
                                   rtol=0, atol=1e-14)
    dense = np.where(M, rng.normal(size=(B, T)), np.inf)
    seq = remax_advantage(dense, b, M)
    rtg = remax_advantage(dense, b, M, config=ReMaxConfig(reward_to_go=True))
    for i in range(B):
        valid = np.flatnonzero(M[i])
        for t in valid:
            assert seq[i, t] == pytest.approx(dense[i, valid].sum() - b[i], abs=1e-12)
            assert rtg[i, t] == pytest.approx(dense[i, valid[valid >= t]].sum() - b[i], abs=1e-12)
    assert (seq[~M] == 0).all() and (rtg[~M] == 0).all()


@given(rng=seeds(), B=st.integers(1, 8), c=st.floats(-100, 100))
def test_shift_invariance(rng, B, c):
    """Adding the same constant to every reward (sampled and greedy) leaves Â unchanged."""
    M = ragged(rng, B, 4)
    R, b = rng.normal(size=B), rng.normal(size=B)
    np.testing.assert_allclose(remax_advantage(R + c, b + c, M), remax_advantage(R, b, M), atol=1e-12)


@pytest.mark.parametrize("kwargs, arg", [
    (dict(rewards=np.ones(3), baseline_rewards=np.ones(2), mask=np.ones((3, 2), bool)), "baseline_rewards"),
    (dict(rewards=np.ones(3), baseline_rewards=np.array([0.0, np.nan, 1.0]), mask=np.ones((3, 2), bool)),
     "baseline_rewards"),
    (dict(rewards=np.ones(3), baseline_rewards=np.array([0.0, 1.0, 1.0]), mask=np.ones((3, 2), bool),
          group=np.array([0, 0, 1])), "baseline_rewards"),
    (dict(rewards=np.ones(2), baseline_rewards=np.ones(3), mask=np.ones((3, 2), bool)), "rewards"),
    (dict(rewards=np.ones((3, 2, 1)), baseline_rewards=np.ones(3), mask=np.ones((3, 2), bool)), "rewards"),
    (dict(rewards=np.array([[1.0, np.nan]] * 3), baseline_rewards=np.ones(3), mask=np.ones((3, 2), bool)), "rewards"),
    (dict(rewards=np.ones(3), baseline_rewards=np.ones(3), mask=np.ones((3, 2))), "mask"),
    (dict(rewards=np.ones(3), baseline_rewards=np.ones(3), mask=np.ones((3, 2), bool), group=np.ones(2, int)),
     "group"),
])
def test_bad_input_raises(kwargs, arg):
    """Bad input raises RLSpecValueError naming the argument (a prompt's rollouts share one greedy baseline)."""
    with pytest.raises(RLSpecValueError, match=arg):
        remax_advantage(**kwargs)


def test_empty_rows_and_padding_defined():
    """A row with no valid token is all zero; NaN token rewards at padding are not read."""
    M = np.array([[True, True, False], [False, False, False]])
    tok = np.array([[1.0, 2.0, np.nan], [np.nan, np.inf, -np.inf]])
    A = remax_advantage(tok, np.array([0.5, 0.5]), M, config=ReMaxConfig(reward_to_go=True))
    np.testing.assert_array_equal(A, [[2.5, 1.5, 0.0], [0.0, 0.0, 0.0]])
