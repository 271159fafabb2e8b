"""Properties of the FlashREINFORCE advantage (OpenRLHF estimator 'flash_reinforce'): Â_i = R_i − mean_batch R."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from properties import strategies as S
from rlspec.reference.flash_reinforce import flash_reinforce_advantage


def seq_adv(b):
    """Per-sequence advantages read back from the token array (rows with a valid token)."""
    A = flash_reinforce_advantage(b["rewards"], b["group"], b["mask"])
    rows = b["mask"].any(axis=1)
    return A, rows


@given(S.outcome_batches())
def test_advantages_sum_to_zero_over_the_batch(b):
    """Defining property of a batch-mean baseline: Σ_i Â_i = 0 over all B rollouts, and every valid token of
    rollout i carries the same Â_i (checked on an all-valid mask so that every rollout is visible)."""
    full = np.ones_like(b["mask"])
    A = flash_reinforce_advantage(b["rewards"], b["group"], full)
    assert np.allclose(A, A[:, :1])
    assert abs(A[:, 0].sum()) <= 1e-9 * max(1.0, np.abs(b["rewards"]).sum())


@given(S.outcome_batches(), st.floats(-1e3, 1e3))
def test_invariant_to_a_constant_reward_shift(b, c):
    """A baseline equal to the mean makes the advantage invariant to R → R + c (shift of the reward scale)."""
    A, _ = seq_adv(b)
    A2 = flash_reinforce_advantage(b["rewards"] + c, b["group"], b["mask"])
    np.testing.assert_allclose(A2, A, atol=1e-9 * (1 + abs(c)))


@given(S.outcome_batches(), S.seeds())
def test_prompt_ids_do_not_matter(b, rng):
    """The baseline ignores prompts (the single-rollout regime has no group): any relabelling gives the same Â."""
    A, _ = seq_adv(b)
    other = rng.integers(-100, 100, size=b["group"].shape)
    np.testing.assert_array_equal(flash_reinforce_advantage(b["rewards"], other, b["mask"]), A)


@given(S.outcome_batches())
def test_equals_leave_one_out_scaled(b):
    """Algebraic identity: R_i − mean_j R_j = ((B−1)/B)·(R_i − mean_{j≠i} R_j) (B ≥ 2): the batch-mean baseline
    is the leave-one-out (RLOO-style) baseline over the whole batch, shrunk by (B−1)/B. B = 1 gives 0."""
    R = b["rewards"]
    B = R.size
    A = flash_reinforce_advantage(R, b["group"], np.ones((B, 1), bool))[:, 0]
    if B == 1:
        assert A[0] == 0.0
        return
    loo = R - (R.sum() - R) / (B - 1)
    np.testing.assert_allclose(A, (B - 1) / B * loo, atol=1e-12 * (1 + np.abs(R).max()))


def test_baseline_keeps_the_policy_gradient_unbiased_up_to_1_over_B():
    """Claim (REINFORCE with a baseline): on a 2-armed bandit with softmax policy, exact enumeration of all
    batches of B draws shows E[Σ_i Â_i ∇log π(a_i)] = (B−1)·∇J — the batch mean includes the sample itself, so
    the estimate is the true gradient scaled by (B−1)/B per sample, never biased in direction."""
    import itertools

    theta = np.array([0.3, -0.4])
    p = np.exp(theta) / np.exp(theta).sum()
    r = np.array([1.0, 0.2])
    grad_logp = np.eye(2) - p  # row a: ∇_θ log π(a)
    true = (p[:, None] * r[:, None] * grad_logp).sum(0)  # ∇J
    for B in (1, 2, 3, 4):
        est = np.zeros(2)
        for actions in itertools.product((0, 1), repeat=B):
            prob = np.prod(p[list(actions)])
            R = r[list(actions)]
            A = flash_reinforce_advantage(R, np.zeros(B, int), np.ones((B, 1), bool))[:, 0]
            est += prob * (A[:, None] * grad_logp[list(actions)]).sum(0)
        np.testing.assert_allclose(est, (B - 1) * true, atol=1e-12)
