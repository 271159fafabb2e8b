"""Properties of decoupled PPO (AReaL, arXiv 2505.24298 §5)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties import strategies as S
from rlspec.reference import aggregation
from rlspec.reference.decoupled_ppo import DecoupledPPOConfig, decoupled_ppo_loss
from rlspec.reference.ppo import PPOConfig, ppo_clip_loss

MODES = st.sampled_from(aggregation.MODES)


def with_prox(rng, batch, scale):
    """A proximal policy between behaviour (old_logp) and current; garbage padding kept."""
    m = batch["mask"]
    prox = batch["old_logp"] + rng.normal(scale=scale, size=m.shape)
    return np.where(m, prox, batch["old_logp"])


@given(S.policy_batches(), MODES, st.sampled_from([None, 3.0]))
def test_reduces_to_ppo_when_proximal_is_behaviour(batch, mode, c):
    """§5: with π_prox = π_behav the weight is 1 and the decoupled objective is PPO's (value and gradient), for
    every aggregation and with the dual clip."""
    kw = dict(logp=batch["logp"], old_logp=batch["old_logp"], adv=batch["adv"], mask=batch["mask"], group=batch["group"])
    a = decoupled_ppo_loss(**kw, prox_logp=batch["old_logp"], config=DecoupledPPOConfig(agg=mode, dual_clip_c=c))
    b = ppo_clip_loss(**kw, config=PPOConfig(agg=mode, dual_clip_c=c))
    assert a[0] == pytest.approx(b[0], rel=1e-12, abs=1e-14)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-12, atol=1e-15)


@given(S.policy_batches(garbage=True), S.seeds(), MODES)
def test_gradient_is_ppo_gradient_scaled_by_behaviour_weight(batch, rng, mode):
    """The decoupling: the trust region is PPO's around π_prox, and the staleness correction w = π_prox/π_behav
    rescales each token's loss and gradient — dlogp = w ⊙ (PPO gradient with π_old := π_prox)."""
    prox = with_prox(rng, batch, 0.5)
    m = batch["mask"]
    kw = dict(logp=batch["logp"], adv=batch["adv"], mask=m, group=batch["group"])
    loss, d = decoupled_ppo_loss(**kw, old_logp=batch["old_logp"], prox_logp=prox,
                                 config=DecoupledPPOConfig(agg=mode))
    _, d_ppo = ppo_clip_loss(**kw, old_logp=prox, config=PPOConfig(agg=mode))
    w = np.exp(S.clean(prox, m) - S.clean(batch["old_logp"], m))
    np.testing.assert_allclose(d, w * d_ppo, rtol=1e-12, atol=1e-15)
    assert np.all(d[~m] == 0) and np.isfinite(loss)


@given(S.policy_batches(max_B=4, max_T=4), S.seeds(), st.sampled_from([(None, "mask"), (1.5, "mask"), (1.5, "clamp")]))
def test_hand_gradient_matches_finite_differences_with_prox(batch, rng, cap):
    """dlogp = ∂loss/∂logp by central FD when π_prox ≠ π_behav (w does not depend on logp), away from the clip."""
    prox = with_prox(rng, batch, 0.3)
    m = batch["mask"]
    cfg = DecoupledPPOConfig(behave_cap=cap[0], behave_cap_mode=cap[1])
    x0 = S.clean(batch["logp"], m)
    u = x0 - S.clean(prox, m)
    if m.any() and np.min(np.abs(np.abs(u[m]) - np.log1p(0.2))) < 1e-3:
        return
    kw = dict(old_logp=batch["old_logp"], adv=batch["adv"], mask=m, prox_logp=prox, config=cfg)
    _, d = decoupled_ppo_loss(batch["logp"], **kw)
    fd = S.finite_difference(lambda x: decoupled_ppo_loss(x, **kw)[0], x0, m)
    np.testing.assert_allclose(d, fd, rtol=1e-5, atol=1e-8)


def test_unbiased_for_the_behaviour_policy_on_policy_gradient():
    """Claim (§5, off-policy correction): at θ = θ_prox the expected decoupled gradient under stale samples from
    π_behav equals the on-policy gradient E_{π_θ}[Â ∇log π_θ] — exact enumeration on a 3-token softmax bandit.
    Without the weight (behave_weight=False, AReaL's default path) the expectation is taken under π_behav: biased."""
    logits_theta = np.array([0.5, -0.2, 0.1])
    logits_behav = np.array([-0.3, 0.4, 0.0])
    pi = np.exp(logits_theta) / np.exp(logits_theta).sum()
    beh = np.exp(logits_behav) / np.exp(logits_behav).sum()
    A = np.array([1.0, -0.5, 0.3])
    dlogpi = np.eye(3) - pi  # ∇_logits log π(a), row a
    true = (pi * A) @ dlogpi  # ∇ E_π[Â] with Â fixed: the policy-gradient target
    for weight, should_match in ((True, True), (False, False)):
        g = np.zeros(3)
        for a in range(3):
            lp = np.array([[np.log(pi[a])]])
            _, d = decoupled_ppo_loss(lp, np.array([[np.log(beh[a])]]), np.array([[A[a]]]), np.ones((1, 1), bool),
                                      prox_logp=lp.copy(), config=DecoupledPPOConfig(behave_weight=weight))
            g += beh[a] * (-d[0, 0]) * dlogpi[a]
        assert np.allclose(g, true, atol=1e-12) == should_match


@given(S.policy_batches(max_B=5, max_T=5), S.seeds(), st.floats(1.0, 3.0))
def test_cap_modes(batch, rng, U):
    """behave_cap: 'clamp' uses min(w, U); 'mask' drops tokens with w > U from the numerator but keeps the
    aggregation denominators of the full mask (AReaL rejection sampling keeps the original token count)."""
    prox = with_prox(rng, batch, 1.0)
    m = batch["mask"]
    kw = dict(logp=batch["logp"], old_logp=batch["old_logp"], adv=batch["adv"], mask=m, prox_logp=prox)
    _, d_full = decoupled_ppo_loss(**kw)
    _, d_clamp = decoupled_ppo_loss(**kw, config=DecoupledPPOConfig(behave_cap=U, behave_cap_mode="clamp"))
    _, d_mask = decoupled_ppo_loss(**kw, config=DecoupledPPOConfig(behave_cap=U, behave_cap_mode="mask"))
    w = np.exp(S.clean(prox, m) - S.clean(batch["old_logp"], m))
    big = (w > U) & m
    assert np.all(d_mask[big] == 0)
    np.testing.assert_array_equal(d_mask[~big], d_full[~big])
    np.testing.assert_allclose(d_clamp[big], (d_full / np.where(big, w, 1.0) * U)[big], rtol=1e-12, atol=1e-15)
