"""Properties of GPG's advantage and loss (arXiv 2504.02546 §2)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties.strategies import outcome_batches, policy_batches, seeds
from rlspec.reference import aggregation
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.gpg import GPGConfig, GPGLossConfig, gpg_advantage, gpg_loss
from rlspec.reference.grpo import GRPOConfig, dr_grpo_advantage, grpo_advantage
from rlspec.reference.ppo import PPOConfig, ppo_clip_loss


def per_row(adv, mask):
    return np.array([adv[b, mask[b]][0] if mask[b].any() else np.nan for b in range(adv.shape[0])])


def full(R, T=2):
    return np.ones((len(R), T), dtype=bool)


def alpha_by_hand(R, g):
    """α = B/(B − M), M = rollouts of groups whose rewards are all equal (singletons included); 1 if M = B."""
    B = len(R)
    M = sum((g == k).sum() for k in np.unique(g) if R[g == k].min() == R[g == k].max())
    return B / (B - M) if M < B else 1.0


@given(batch=outcome_batches(), mode=st.sampled_from(["paper", "verl", "one"]))
def test_zero_sum_per_group_before_alpha(batch, mode):
    """Σ_{i∈group} (R_i − mean R) = 0 for every group of ≥ 2 rollouts; α is one batch-wide scalar, so the
    group sums stay 0 after it (any α convention)."""
    R, g = batch["rewards"], batch["group"]
    A = per_row(gpg_advantage(R, g, full(R), GPGConfig(alpha=mode)), full(R))
    for k in np.unique(g):
        rows = g == k
        if rows.sum() >= 2:
            assert abs(A[rows].sum()) <= 1e-12 * max(1.0, np.abs(A[rows]).max()) * rows.sum()


@given(batch=outcome_batches())
def test_alpha_rescales_dr_grpo(batch):
    """Paper's advantage with F_norm = 1: Â_GPG = α·(R_i − mean R) = α·Â_DrGRPO, α = B/(B − M) with M the
    rollouts of all-equal groups (computed independently here); α = 1 is exactly Dr. GRPO."""
    R, g, M = batch["rewards"], batch["group"], batch["mask"]
    D = dr_grpo_advantage(R, g, M)
    np.testing.assert_allclose(gpg_advantage(R, g, M), alpha_by_hand(R, g) * D, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(gpg_advantage(R, g, M, GPGConfig(alpha="one")), D)


@given(batch=outcome_batches(), rng=seeds())
def test_alpha_gives_mean_over_valid_rollouts(batch, rng):
    """Accurate gradient estimation (§2): with α = B/(B − M) the batch mean (1/B) Σ_i Â_i ∇log π(o_i) equals the
    mean over the B − M rollouts that carry a gradient, (1/(B − M)) Σ_valid (R_i − mean R) ∇log π(o_i);
    random vectors stand in for the score vectors ∇log π(o_i)."""
    R, g = batch["rewards"], batch["group"]
    B = len(R)
    x = rng.normal(size=(B, 3))
    A = per_row(gpg_advantage(R, g, full(R)), full(R))
    D = per_row(dr_grpo_advantage(R, g, full(R)), full(R))
    valid = np.array([R[g == k].min() != R[g == k].max() for k in g])
    if valid.any():
        np.testing.assert_allclose((A[:, None] * x).mean(axis=0), (D[valid, None] * x[valid]).mean(axis=0),
                                   rtol=1e-10, atol=1e-12)
    else:
        assert (A == 0).all()


def test_verl_variant():
    """verl's estimator (alpha='verl', singleton='raw'): α = B/max(#{R ≠ 0}, 1) and a lone rollout is scored
    against mean 0. Expected values: verl 0.9.1's own output on this batch (notes/peers.md §2.5), and a
    singleton case worked by hand."""
    cfg = GPGConfig(alpha="verl", singleton="raw")
    R = np.array([1.0, 0, 1, 1, 0, 0, 0, 1])
    g = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    np.testing.assert_allclose(gpg_advantage(R, g, full(R), cfg)[:, 0], [0.5, -1.5, 0.5, 0.5, -0.5, -0.5, -0.5, 1.5],
                               atol=1e-12)
    # B = 3, two non-zero rewards → α = 1.5; singleton 2.0 → 3.0; pair (1, 0) → ±0.75
    A = gpg_advantage(np.array([2.0, 1.0, 0.0]), np.array([9, 4, 4]), full(np.ones(3)), cfg)[:, 0]
    np.testing.assert_allclose(A, [3.0, 0.75, -0.75], atol=1e-12)
    # the paper's α on the same batch: the singleton's group has no gradient → M = 1, α = 3/2, singleton 0
    A = gpg_advantage(np.array([2.0, 1.0, 0.0]), np.array([9, 4, 4]), full(np.ones(3)))[:, 0]
    np.testing.assert_allclose(A, [0.0, 0.75, -0.75], atol=1e-12)


@given(batch=outcome_batches())
def test_f_norm_std_is_alpha_times_grpo(batch):
    """F_norm = std{R} (the paper's other setting): Â = α·Â_GRPO with the same ddof/ε conventions."""
    R, g, M = batch["rewards"], batch["group"], batch["mask"]
    got = gpg_advantage(R, g, M, GPGConfig(f_norm="std"))
    np.testing.assert_allclose(got, alpha_by_hand(R, g) * grpo_advantage(R, g, M, GRPOConfig()), rtol=1e-12,
                               atol=1e-14)


@given(c=st.floats(-5, 5), G=st.integers(1, 5), n=st.integers(1, 3))
def test_degenerate_batches_defined(c, G, n):
    """Every group all-equal (M = B): every advantage is 0 (α defined as 1), no NaN, under every convention
    except verl's raw singletons."""
    R = np.full(G * n, c)
    g = np.repeat(np.arange(n), G)
    for cfg in (GPGConfig(), GPGConfig(f_norm="std"), GPGConfig(alpha="verl")):
        A = gpg_advantage(R, g, full(R), cfg)
        assert np.isfinite(A).all() and (A == 0).all()


@given(batch=policy_batches(), agg=st.sampled_from(aggregation.MODES))
def test_loss_equals_vanilla_pg_weight_of_ppo_on_policy(batch, agg):
    """gpg_loss is REINFORCE on the current log-probs: its gradient −c·Â equals PPO's at r ≡ 1 (the vanilla
    policy-gradient weight) for every aggregation, and does not depend on old_logp at all."""
    m, grp = batch["mask"], batch["group"]
    on = np.where(m, batch["logp"], 0.0)
    _, d_ppo = ppo_clip_loss(batch["logp"], on, batch["adv"], m, config=PPOConfig(agg=agg), group=grp)
    _, d_gpg = gpg_loss(batch["logp"], batch["old_logp"], batch["adv"], m, config=GPGLossConfig(agg=agg), group=grp)
    np.testing.assert_allclose(d_gpg, d_ppo, rtol=1e-12, atol=1e-15)
    c = aggregation.coefficients(m, agg, group=grp)
    np.testing.assert_allclose(d_gpg, -np.where(m, batch["adv"], 0.0) * c, rtol=1e-12, atol=1e-15)


@given(batch=policy_batches(), agg=st.sampled_from(aggregation.MODES))
def test_loss_value_and_gradient_written_out(batch, agg):
    """loss = −Σ_bt c_bt Â_bt logp_bt (written out with the aggregation coefficients); padding is never read."""
    m, grp = batch["mask"], batch["group"]
    loss, _ = gpg_loss(batch["logp"], batch["old_logp"], batch["adv"], m, config=GPGLossConfig(agg=agg), group=grp)
    c = aggregation.coefficients(m, agg, group=grp)
    want = -(c * np.where(m, batch["adv"] * batch["logp"], 0.0)).sum()
    assert loss == pytest.approx(want, rel=1e-12, abs=1e-14)


@pytest.mark.parametrize("field, value", [("alpha", "max"), ("f_norm", "mad"), ("ddof", 2), ("eps", -1.0),
                                          ("singleton", "nan")])
def test_bad_config_raises(field, value):
    """Unknown conventions and out-of-range numbers are rejected at config construction, naming the field."""
    with pytest.raises(RLSpecValueError, match=field):
        GPGConfig(**{field: value})
