"""Properties of CISPO (MiniMax-M1, arXiv 2506.13585 §3.1)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties import strategies as S
from rlspec.reference import aggregation
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.cispo import CISPOConfig, cispo_loss
from rlspec.reference.ppo import PPOConfig, ppo_clip_loss

MODES = st.sampled_from(aggregation.MODES)
EPS = st.sampled_from([(None, 4.0), (0.2, 0.28), (None, 0.1), (0.05, 0.05)])


@given(S.policy_batches(), MODES, EPS)
def test_hand_gradient_matches_finite_differences(batch, mode, eps):
    """Claim: CISPO's gradient is the derivative of its loss with the IS weight under stop-gradient:
    central FD in logp while old_logp moves with logp (so r, hence sg(clip(r)), stays fixed) equals the
    hand dlogp = −c·sg(clip(r))·Â. Padding garbage changes neither loss nor gradient."""
    cfg = CISPOConfig(agg=mode, eps_low=eps[0], eps_high=eps[1])
    m = batch["mask"]
    kw = dict(adv=batch["adv"], mask=m, config=cfg, group=batch["group"])
    loss, d = cispo_loss(batch["logp"], batch["old_logp"], **kw)
    x0, old0 = S.clean(batch["logp"], m), S.clean(batch["old_logp"], m)
    ckw = dict(kw, adv=S.clean(batch["adv"], m))
    loss0, d0 = cispo_loss(x0, old0, **ckw)
    assert loss == loss0 and np.array_equal(d, d0) and np.all(d[~m] == 0)
    fd = S.finite_difference(lambda x: cispo_loss(x, old0 + (x - x0), **ckw)[0], x0, m)
    np.testing.assert_allclose(d[m], fd[m], rtol=1e-6, atol=1e-9)


@given(S.policy_batches(garbage=False, log_ratio_scale=1.0), MODES, EPS)
def test_gradient_never_zero_where_advantage_nonzero(batch, mode, eps):
    """Claim (§3.1): CISPO keeps every token's gradient — dlogp ≠ 0 wherever Â ≠ 0 and the token counts,
    including tokens whose ratio is clipped; it equals −c·clip(r)·Â. PPO-clip zeroes the clipped ones."""
    m, A = batch["mask"], batch["adv"]
    cfg = CISPOConfig(agg=mode, eps_low=eps[0], eps_high=eps[1])
    _, d = cispo_loss(batch["logp"], batch["old_logp"], A, m, config=cfg, group=batch["group"])
    c = aggregation.coefficients(m, mode, group=batch["group"])
    active = m & (A != 0) & (c != 0)
    assert np.all(d[active] != 0)
    r = np.exp(batch["logp"] - batch["old_logp"])
    lo = 0.0 if eps[0] is None else 1 - eps[0]
    np.testing.assert_allclose(d[m], (-c * np.clip(r, lo, 1 + eps[1]) * A)[m], rtol=1e-12, atol=1e-15)
    _, dp = ppo_clip_loss(batch["logp"], batch["old_logp"], A, m, group=batch["group"],
                          config=PPOConfig(agg=mode, eps_low=eps[0] or 0.2, eps_high=eps[1]))
    clipped = active & (((A > 0) & (r > 1 + eps[1])) | ((A < 0) & (r < 1 - (eps[0] or 0.2))))
    assert np.all(dp[clipped] == 0) and np.all(d[clipped] != 0)


@given(S.policy_batches(garbage=False), MODES, EPS)
def test_on_policy_equals_vanilla_pg(batch, mode, eps):
    """Claim: at r ≡ 1 the CISPO gradient is the vanilla policy gradient weight −c·Â (the same as PPO's)."""
    m, A = batch["mask"], batch["adv"]
    cfg = CISPOConfig(agg=mode, eps_low=eps[0], eps_high=eps[1])
    _, d = cispo_loss(batch["logp"], batch["logp"], A, m, config=cfg, group=batch["group"])
    c = aggregation.coefficients(m, mode, group=batch["group"])
    np.testing.assert_allclose(d, np.where(m, -c * A, 0.0), rtol=1e-12, atol=1e-15)


def test_one_sided_clip_has_no_lower_bound():
    """Claim (§3.1, practice): with no lower clip (eps_low=None) the weight of a token with r < 1 is r
    itself; the two-sided variant (verl) floors it at 1 − ε_low."""
    logp, old = np.array([[np.log(0.3)]]), np.zeros((1, 1))
    A, m = np.ones((1, 1)), np.ones((1, 1), bool)
    _, d1 = cispo_loss(logp, old, A, m, config=CISPOConfig(eps_low=None, eps_high=0.28))
    _, d2 = cispo_loss(logp, old, A, m, config=CISPOConfig(eps_low=0.2, eps_high=0.28))
    assert d1[0, 0] == pytest.approx(-0.3) and d2[0, 0] == pytest.approx(-0.8)


@pytest.mark.parametrize("change", ["shape", "mask_float", "nan", "eps_low", "eps_high"])
def test_bad_input_raises(change):
    """Claim: shape mismatch, non-bool mask, NaN at an unmasked position and negative ε raise RLSpecValueError."""
    b = S.policy_batch(np.random.default_rng(0), 3, 4, garbage=False)
    args = [b["logp"], b["old_logp"], b["adv"], b["mask"].copy()]
    with pytest.raises(RLSpecValueError):
        if change == "shape":
            args[0] = args[0][:, :1]
        elif change == "mask_float":
            args[3] = args[3].astype(float) * 0.5
        elif change == "nan":
            args[2] = args[2].copy()
            args[2][0, 0] = np.nan
            args[3][0, 0] = True
        elif change == "eps_low":
            CISPOConfig(eps_low=-0.2)
        else:
            CISPOConfig(eps_high=-1.0)
        cispo_loss(*args)
