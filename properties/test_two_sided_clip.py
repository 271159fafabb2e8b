"""Properties of two-sided clipping (INTELLECT-2, arXiv 2505.07291 §4.1)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties import strategies as S
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.aggregation import coefficients
from rlspec.reference.ppo import PPOConfig, ppo_clip_loss
from rlspec.reference.two_sided_clip import TwoSidedClipConfig, two_sided_clip_loss

DELTAS = st.sampled_from([1.5, 2.0, 4.0, 10.0])


@given(S.policy_batches(garbage=False, log_ratio_scale=2.0), DELTAS)
def test_negative_advantage_loss_is_bounded_by_delta(batch, delta):
    """Claim (§4.1, the purpose of δ): a token with Â < 0 contributes at most −δ·Â to the per-token loss,
    however large its ratio; PPO's per-token loss −r·Â is unbounded. Checked on single-token batches per
    position so that the per-token loss is read off the token-mean loss exactly."""
    m = batch["mask"]
    for b, t in zip(*np.nonzero(m & (batch["adv"] < 0))):
        one = np.zeros_like(m)
        one[b, t] = True
        loss, _ = two_sided_clip_loss(batch["logp"], batch["old_logp"], batch["adv"], one,
                                      config=TwoSidedClipConfig(delta=delta))
        assert loss <= -delta * batch["adv"][b, t] + 1e-12


@given(S.policy_batches(garbage=True, log_ratio_scale=0.1))
def test_equals_ppo_when_cap_does_not_bind(batch):
    """Claim: with every ratio below δ the two-sided loss is PPO's, value and gradient (δ only caps large ratios)."""
    m = batch["mask"]
    r = np.exp(S.clean(batch["logp"], m) - S.clean(batch["old_logp"], m))
    delta = max(float(r.max()) * 1.01, 1.3)
    a = two_sided_clip_loss(batch["logp"], batch["old_logp"], batch["adv"], m, config=TwoSidedClipConfig(delta=delta))
    b = ppo_clip_loss(batch["logp"], batch["old_logp"], batch["adv"], m, config=PPOConfig())
    assert a[0] == pytest.approx(b[0], rel=1e-12, abs=1e-15)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-12, atol=1e-15)


@given(S.policy_batches(garbage=True, log_ratio_scale=2.0), st.sampled_from([1.3, 3.0, 6.0]))
def test_equals_dual_clip_when_delta_exceeds_clip_range(batch, delta):
    """Claim (module docstring): for δ > 1 + ε_high the two-sided clip equals the dual clip of Ye et al.
    (arXiv 1912.09729 eq. 5) with c = δ, in value and gradient."""
    m = batch["mask"]
    a = two_sided_clip_loss(batch["logp"], batch["old_logp"], batch["adv"], m, config=TwoSidedClipConfig(delta=delta))
    b = ppo_clip_loss(batch["logp"], batch["old_logp"], batch["adv"], m, config=PPOConfig(dual_clip_c=delta))
    assert a[0] == pytest.approx(b[0], rel=1e-12, abs=1e-15)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-12, atol=1e-15)


@given(S.policy_batches(garbage=False, log_ratio_scale=2.0), DELTAS)
def test_gradient_zero_beyond_delta_for_negative_advantage(batch, delta):
    """Claim: where Â < 0 and r > δ the cap binds and the token's gradient is exactly 0; where Â < 0 and
    1 + ε < r < δ the gradient is PPO's unclipped −c·Â·r (the token is still pushed down)."""
    m = batch["mask"]
    r = np.exp(np.where(m, batch["logp"] - batch["old_logp"], 0.0))
    _, d = two_sided_clip_loss(batch["logp"], batch["old_logp"], batch["adv"], m, config=TwoSidedClipConfig(delta=delta))
    neg = m & (batch["adv"] < 0)
    assert np.all(d[neg & (r > delta)] == 0)
    c = coefficients(m, "token-mean")
    mid = neg & (r > 1.2) & (r < delta)
    np.testing.assert_allclose(d[mid], (-c * batch["adv"] * r)[mid], rtol=1e-12)


def test_delta_must_exceed_one():
    """Bad input: δ ≤ 1 would cap on-policy ratios; rejected naming the field."""
    with pytest.raises(RLSpecValueError, match="delta"):
        TwoSidedClipConfig(delta=1.0)
