"""Properties of TIS, truncated importance sampling for the rollout/trainer mismatch (Yao et al., 2025)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties import strategies as S
from rlspec.reference import aggregation
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.ppo import PPOConfig, ppo_clip_loss
from rlspec.reference.tis import TISConfig, _tis_inputs, tis_loss, truncated_is_weight

CFGS = st.sampled_from([TISConfig(), TISConfig(C=1.5, C_min=0.5), TISConfig(mode="mask", C=2.0, C_min=0.5),
                        TISConfig(agg="seq-mean-token-mean"), TISConfig(dual_clip_c=3.0)])


@given(S.seeds(), CFGS)
def test_hand_gradient_matches_finite_differences_with_rollout_logp(rng, cfg):
    """Claim: w = trunc(π_old/π_rollout) does not depend on π_θ, so dlogp = w·∂ℓ_PPO/∂logp is the derivative of
    the loss value (central FD, rollout_logp given); garbage padding changes neither loss nor gradient."""
    b = _tis_inputs(rng)
    m = b["mask"]
    x0 = S.clean(b["logp"], m)
    r = np.exp(S.clean(b["logp"], m) - S.clean(b["old_logp"], m))
    if np.any(np.abs(np.log(r[m])[:, None] - np.log([0.8, 1.2, 3.0])[None, :]) < 1e-4):
        return  # a clip boundary within the FD step
    kw = dict(old_logp=S.clean(b["old_logp"], m), adv=S.clean(b["adv"], m), mask=m,
              rollout_logp=S.clean(b["rollout_logp"], m), config=cfg)
    loss, d = tis_loss(b["logp"], b["old_logp"], b["adv"], m, rollout_logp=b["rollout_logp"], config=cfg)
    loss0, d0 = tis_loss(x0, **kw)
    assert loss == loss0 and np.array_equal(d, d0) and np.all(d[~m] == 0)
    fd = S.finite_difference(lambda x: tis_loss(x, **kw)[0], x0, m)
    np.testing.assert_allclose(d[m], fd[m], rtol=1e-6, atol=1e-9)


@given(S.seeds(), st.sampled_from([0.5, 1.0, 2.0, 5.0]))
def test_weight_never_exceeds_cap(rng, C):
    """Claim (TIS): the weight is min(π_old/π_rollout, C) ∈ [0, C], equal to the raw ratio where that is below C."""
    old = rng.normal(scale=3.0, size=50)
    roll = old + rng.normal(scale=3.0, size=50)
    w = truncated_is_weight(old, roll, C)
    rho = np.exp(old - roll)
    assert np.all((w >= 0) & (w <= C))
    np.testing.assert_allclose(w[rho < C], rho[rho < C], rtol=1e-15)
    assert np.all(w[rho >= C] == C)


@given(S.policy_batches(garbage=True))
def test_no_mismatch_equals_ppo(batch):
    """Claim: when the rollout engine agrees with the trainer (π_rollout = π_old) the weight is 1 and TIS is PPO."""
    m = batch["mask"]
    a = tis_loss(batch["logp"], batch["old_logp"], batch["adv"], m, rollout_logp=batch["old_logp"])
    b = ppo_clip_loss(batch["logp"], batch["old_logp"], batch["adv"], m, config=PPOConfig())
    assert a[0] == b[0] and np.array_equal(a[1], b[1])


def test_untruncated_weight_is_unbiased():
    """Claim (importance sampling, the motivation of TIS): E_{y∼π_rollout}[ρ(y)·f(y)] = E_{y∼π_old}[f(y)] with
    ρ = π_old/π_rollout, exactly by enumeration over a 5-token vocabulary; truncation at C < max ρ biases it."""
    rng = np.random.default_rng(7)
    p_roll, p_old = rng.dirichlet(np.ones(5)), rng.dirichlet(np.ones(5))
    f = rng.normal(size=5)
    rho = truncated_is_weight(np.log(p_old), np.log(p_roll), C=1e9)
    assert np.sum(p_roll * rho * f) == pytest.approx(np.sum(p_old * f), rel=1e-12)
    C = 0.5 * rho.max()
    w = truncated_is_weight(np.log(p_old), np.log(p_roll), C=C)
    assert abs(np.sum(p_roll * w * f) - np.sum(p_old * f)) > 1e-6


def test_mode_mask_zeroes_out_of_range_weights_and_validates():
    """Option 'mask' (TRL token_mask): weights outside [C_min, C] become 0; C_min ≥ C is rejected."""
    w = truncated_is_weight(np.log(np.array([0.1, 1.0, 5.0])), np.zeros(3), C=2.0, C_min=0.5, mode="mask")
    np.testing.assert_allclose(w, [0.0, 1.0, 0.0])
    with pytest.raises(RLSpecValueError, match="C_min"):
        TISConfig(C=1.0, C_min=2.0)
    with pytest.raises(RLSpecValueError, match="rollout_logp"):
        tis_loss(np.zeros((1, 2)), np.zeros((1, 2)), np.ones((1, 2)), np.ones((1, 2), bool),
                 rollout_logp=np.array([[np.nan, 0.0]]))
    assert aggregation.MODES  # aggregation options are PPO's (shared config fields)
