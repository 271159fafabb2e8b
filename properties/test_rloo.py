"""Properties of the RLOO leave-one-out advantage (arXiv 2402.14740; Kool et al. 2019)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties.strategies import outcome_batches, seeds
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.grpo import dr_grpo_advantage
from rlspec.reference.rloo import RLOOConfig, leave_one_out_baseline, rloo_advantage


def per_row(adv, mask):
    """The sequence advantage of each row, read from its tokens (rows without tokens: NaN)."""
    out = np.full(adv.shape[0], np.nan)
    for b in range(adv.shape[0]):
        if mask[b].any():
            vals = adv[b, mask[b]]
            assert np.all(vals == vals[0]), "a sequence advantage must be broadcast unchanged over its tokens"
            out[b] = vals[0]
    return out


def full_mask(B, T=3):
    return np.ones((B, T), dtype=bool)


@given(batch=outcome_batches())
def test_sum_over_group_is_zero(batch):
    """Σ_{i∈group} Â_i = Σ_i R_i − (1/(G−1)) Σ_i Σ_{j≠i} R_j = 0 for every group of size ≥ 2."""
    R, g = batch["rewards"], batch["group"]
    A = per_row(rloo_advantage(R, g, full_mask(len(R))), full_mask(len(R)))
    for k in np.unique(g):
        rows = g == k
        if rows.sum() >= 2:
            assert abs(A[rows].sum()) <= 1e-12 * max(1.0, np.abs(R[rows]).max()) * rows.sum()


@given(batch=outcome_batches())
def test_equals_scaled_dr_grpo(batch):
    """Â_RLOO = G/(G−1) · Â_DrGRPO = G/(G−1)·(R_i − mean R), for groups of size G ≥ 2."""
    R, g, M = batch["rewards"], batch["group"], batch["mask"]
    A = rloo_advantage(R, g, M)
    D = dr_grpo_advantage(R, g, M)
    G = np.array([(g == k).sum() for k in g], dtype=float)
    big = (G >= 2)[:, None] & M
    scaled = (G / np.maximum(G - 1, 1))[:, None] * D
    np.testing.assert_allclose(A[big], scaled[big], rtol=1e-12, atol=1e-12)


@given(rng=seeds(), G=st.integers(2, 6), delta=st.floats(-5, 5).filter(lambda d: abs(d) > 1e-3))
def test_baseline_independent_of_own_reward(rng, G, delta):
    """The baseline of rollout i, b_i = R_i − Â_i, does not change when R_i changes (it is built from the
    other rollouts only); the baselines of the others move by δ/(G−1)."""
    R = rng.normal(size=G)
    g = np.zeros(G, dtype=int)
    i = int(rng.integers(G))
    M = full_mask(G)
    b_before = R - per_row(rloo_advantage(R, g, M), M)
    R2 = R.copy()
    R2[i] += delta
    b_after = R2 - per_row(rloo_advantage(R2, g, M), M)
    assert b_after[i] == pytest.approx(b_before[i], abs=1e-12)
    others = np.arange(G) != i
    np.testing.assert_allclose(b_after[others] - b_before[others], delta / (G - 1), atol=1e-12)
    # and the exposed helper is the mean of the others, computed independently here
    b, _ = leave_one_out_baseline(R, g)
    np.testing.assert_allclose(b, [(R.sum() - R[k]) / (G - 1) for k in range(G)], atol=1e-12)


def softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def expected_gradient(theta, r, G, advantage_fn):
    """E[(1/G) Σ_i Â_i ∇θ log π(a_i)] by exact enumeration of all K^G joint samples of a softmax bandit."""
    pi = softmax(theta)
    K = len(theta)
    total = np.zeros(K)
    g = np.zeros(G, dtype=int)
    M = full_mask(G, 1)
    for joint in itertools.product(range(K), repeat=G):
        a = np.array(joint)
        p = np.prod(pi[a])
        A = advantage_fn(r[a], g, M)[:, 0]
        score = np.eye(K)[a] - pi  # ∇θ log π(a) = e_a − π for a softmax policy
        total += p * (A[:, None] * score).mean(axis=0)
    return total


@given(rng=seeds(), K=st.integers(2, 4), G=st.integers(2, 3))
def test_policy_gradient_unbiased_exact(rng, K, G):
    """Kool et al. / arXiv 2402.14740: with the leave-one-out baseline the REINFORCE estimator stays unbiased,
    E[(1/G) Σ_i Â_i ∇log π(a_i)] = ∇J(θ) = Σ_a π(a) r(a) (e_a − π) — exact enumeration, softmax bandit."""
    theta = rng.normal(size=K)
    r = rng.normal(size=K)
    pi = softmax(theta)
    true_grad = pi * r - pi * (pi @ r)  # Σ_a π(a) r(a)(e_a − π)
    est = expected_gradient(theta, r, G, rloo_advantage)
    np.testing.assert_allclose(est, true_grad, atol=1e-12)


@given(rng=seeds(), K=st.integers(2, 4), G=st.integers(2, 3))
def test_mean_baseline_shrinks_gradient_exact(rng, K, G):
    """Contrast that shows the enumeration can fail: the mean-including-itself baseline (Dr. GRPO) gives
    E[ĝ] = (G−1)/G · ∇J, i.e. RLOO's G/(G−1) rescaling is exactly what removes the bias."""
    theta = rng.normal(size=K)
    r = rng.normal(size=K)
    pi = softmax(theta)
    true_grad = pi * r - pi * (pi @ r)
    est = expected_gradient(theta, r, G, dr_grpo_advantage)
    np.testing.assert_allclose(est, (G - 1) / G * true_grad, atol=1e-12)


@given(rng=seeds(), c=st.floats(-10, 10), G=st.integers(2, 6))
def test_singleton_and_constant_groups_defined(rng, c, G):
    """A singleton group gets 0 (default) or its raw reward ("raw"); an all-equal group gets exactly 0;
    nothing is NaN; masked positions are 0."""
    R = np.concatenate([[rng.normal()], np.full(G, c)])
    g = np.array([7] + [3] * G)
    M = np.ones((G + 1, 4), dtype=bool)
    M[0, 2:] = False
    A0 = rloo_advantage(R, g, M)
    assert np.isfinite(A0).all()
    assert (A0 == 0).all()
    Araw = rloo_advantage(R, g, M, RLOOConfig(singleton="raw"))
    assert (Araw[0, :2] == R[0]).all() and (Araw[0, 2:] == 0).all()
    assert (Araw[1:] == 0).all()


@given(batch=outcome_batches())
def test_masked_positions_zero_and_mask_layout_irrelevant(batch):
    """Â is zero wherever mask is False, and the per-sequence value does not depend on the mask layout."""
    R, g, M = batch["rewards"], batch["group"], batch["mask"]
    A = rloo_advantage(R, g, M)
    assert (A[~M] == 0).all()
    full = rloo_advantage(R, g, full_mask(len(R), M.shape[1]))[:, 0]
    rows = M.any(axis=1)
    np.testing.assert_array_equal(per_row(A, M)[rows], full[rows])


@pytest.mark.parametrize("kwargs, arg", [
    (dict(rewards=np.ones(3), group=np.zeros(3, int), mask=np.ones((3, 2))), "mask"),
    (dict(rewards=np.ones(2), group=np.zeros(3, int), mask=np.ones((3, 2), bool)), "rewards"),
    (dict(rewards=np.array([1.0, np.nan, 0.0]), group=np.zeros(3, int), mask=np.ones((3, 2), bool)), "rewards"),
    (dict(rewards=np.ones(3), group=np.array([0.5, 0, 1]), mask=np.ones((3, 2), bool)), "group"),
    (dict(rewards=np.ones(3), group=np.zeros(3, int), mask=np.ones(3, bool)), "mask"),
])
def test_bad_input_raises(kwargs, arg):
    """Bad input raises RLSpecValueError naming the argument."""
    with pytest.raises(RLSpecValueError, match=arg):
        rloo_advantage(**kwargs)


def test_bad_config_raises():
    """An unknown singleton policy is rejected at config construction."""
    with pytest.raises(RLSpecValueError, match="singleton"):
        RLOOConfig(singleton="nan")
