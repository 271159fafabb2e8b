"""Properties of the pass@k leave-one-out advantage (arXiv 2503.19595; verl grpo_passk)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from properties import strategies as S
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.grpo_passk import GRPOPassKConfig, grpo_passk_advantage


def _groups_of_two_or_more(batch):
    """The batch with every singleton group merged into another group (so no group has one rollout)."""
    assume(len(batch["rewards"]) >= 2)
    g = batch["group"].copy()
    ids, counts = np.unique(g, return_counts=True)
    lone = ids[counts == 1]
    if len(ids) == len(lone):  # all singletons: one big group
        g[:] = 0
    else:
        g[np.isin(g, lone)] = ids[counts > 1][0]
    return dict(batch, group=g)


@given(S.outcome_batches(), st.booleans())
def test_only_the_unique_best_rollout_is_credited(batch, std_normalize):
    """Claim (k = n pass@k with leave-one-out baseline): every rollout except a group's unique best gets Â = 0,
    the best gets Â ≥ 0 (> 0 exactly when it beats every other rollout), and a tied maximum gives 0 everywhere."""
    b = _groups_of_two_or_more(batch)
    R, g, M = b["rewards"], b["group"], b["mask"]
    A = grpo_passk_advantage(R, g, np.ones_like(M), config=GRPOPassKConfig(std_normalize=std_normalize))[:, 0] \
        if M.shape[1] else np.zeros(len(R))
    for k in np.unique(g):
        rows = np.flatnonzero(g == k)
        top = R[rows].max()
        unique_best = (R[rows] == top).sum() == 1
        credited = rows[A[rows] != 0]
        assert np.all(A[rows] >= 0)
        if unique_best and (R[rows] < top).any():
            assert list(credited) == [rows[np.argmax(R[rows])]]
        else:
            assert credited.size == 0


@given(S.outcome_batches())
def test_equals_brute_force_leave_one_out_max(batch):
    """Claim (definition): Â_i = max_j R_j − max_{j≠i} R_j for every rollout, computed here by deleting rollout i;
    masked positions are 0."""
    b = _groups_of_two_or_more(batch)
    R, g, M = b["rewards"], b["group"], b["mask"]
    A = grpo_passk_advantage(R, g, M)
    expect = np.zeros(len(R))
    for i in range(len(R)):
        others = R[(g == g[i]) & (np.arange(len(R)) != i)]
        expect[i] = R[g == g[i]].max() - others.max()
    np.testing.assert_array_equal(A, np.where(M, expect[:, None], 0.0))


@pytest.mark.parametrize("n", [2, 3])
def test_unbiased_gradient_of_expected_max_by_enumeration(n):
    """Claim (leave-one-out control variate, arXiv 2503.19595): for n i.i.d. samples of a softmax policy,
    E[Σ_i Â_i ∇_θ log π(y_i)] = ∇_θ E[max_i R(y_i)], checked by exact enumeration of all n-tuples against a
    central finite difference of the exact expected maximum."""
    rng = np.random.default_rng(n)
    theta, Rv = rng.normal(size=4), rng.normal(size=4)

    def pi(th):
        e = np.exp(th - th.max())
        return e / e.sum()

    def expected_max(th):
        p = pi(th)
        return sum(np.prod(p[list(y)]) * Rv[list(y)].max() for y in itertools.product(range(4), repeat=n))

    p = pi(theta)
    grad = np.zeros(4)
    for y in itertools.product(range(4), repeat=n):
        A = grpo_passk_advantage(Rv[list(y)], np.zeros(n, int), np.ones((n, 1), bool))[:, 0]
        score = sum(A[i] * (np.eye(4)[y[i]] - p) for i in range(n))
        grad += np.prod(p[list(y)]) * score
    h = 1e-6
    fd = np.array([(expected_max(theta + h * e) - expected_max(theta - h * e)) / (2 * h) for e in np.eye(4)])
    np.testing.assert_allclose(grad, fd, atol=1e-8)


@given(S.outcome_batches(), st.floats(0.1, 10.0), st.floats(-5.0, 5.0))
def test_std_normalization_and_shift_invariance(batch, a, c):
    """Claim: Â depends on reward differences only (R → R + c leaves it unchanged); unnormalised it scales with a
    (R → aR gives aÂ); with std normalisation it equals the unnormalised value / (sample std + ε)."""
    b = _groups_of_two_or_more(batch)
    R, g, M = b["rewards"], b["group"], np.ones((len(b["rewards"]), 1), bool)
    A = grpo_passk_advantage(R, g, M)[:, 0]
    np.testing.assert_allclose(grpo_passk_advantage(R + c, g, M)[:, 0], A, atol=1e-9)
    np.testing.assert_allclose(grpo_passk_advantage(a * R, g, M)[:, 0], a * A, rtol=1e-9, atol=1e-12)
    An = grpo_passk_advantage(R, g, M, config=GRPOPassKConfig(std_normalize=True, eps=1e-6))[:, 0]
    std = np.array([R[g == k].std(ddof=1) for k in g])
    np.testing.assert_allclose(An, A / (std + 1e-6), rtol=1e-12, atol=1e-15)


def test_singleton_policies():
    """Claim (defined edge cases): a group of one gets Â = 0 under singleton='zero' and is rejected under
    singleton='raise' (verl); an all-false mask gives all zeros."""
    R, g, M = np.array([0.3, 1.0, 0.2]), np.array([5, 7, 7]), np.ones((3, 2), bool)
    A = grpo_passk_advantage(R, g, M)
    np.testing.assert_array_equal(A[:, 0], [0.0, 0.8, 0.0])
    with pytest.raises(RLSpecValueError, match="group"):
        grpo_passk_advantage(R, g, M, config=GRPOPassKConfig(singleton="raise"))
    assert not grpo_passk_advantage(R, g, np.zeros((3, 2), bool)).any()
    with pytest.raises(RLSpecValueError):
        GRPOPassKConfig(singleton="drop")
    with pytest.raises(RLSpecValueError):
        grpo_passk_advantage(np.array([np.nan, 1.0]), np.array([0, 0]), np.ones((2, 1), bool))
