"""Properties of the PPO clipped surrogate (arXiv 1707.06347 eq. 7) and dual clip (arXiv 1912.09729 eq. 5)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties.strategies import policy_batches
from rlspec.reference import aggregation, registry
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.ppo import PPOConfig, ppo_clip_loss

eps_pairs = st.tuples(st.sampled_from([0.1, 0.2, 0.3]), st.sampled_from([0.2, 0.28, 0.4]))


def clean(batch, key):
    return np.where(batch["mask"], batch[key], 0.0)


@given(batch=policy_batches(log_ratio_scale=1.0), eps=eps_pairs)
def test_clip_zeroes_gradient_where_it_binds(batch, eps):
    """PPO eq. 7: dlogp is exactly 0 where the clip binds in the direction the objective prefers
    (r > 1+ε_high with Â > 0, r < 1−ε_low with Â < 0) and equals the unclipped −Â·r·c elsewhere."""
    cfg = PPOConfig(eps_low=eps[0], eps_high=eps[1])
    _, dlogp = ppo_clip_loss(batch["logp"], batch["old_logp"], batch["adv"], batch["mask"], config=cfg)
    m = batch["mask"]
    r = np.exp(clean(batch, "logp") - clean(batch, "old_logp"))
    A = clean(batch, "adv")
    c = aggregation.coefficients(m, cfg.agg)
    binds = m & (((A > 0) & (r > 1 + eps[1])) | ((A < 0) & (r < 1 - eps[0])))
    assert (dlogp[binds] == 0).all()
    free = m & ~binds
    np.testing.assert_allclose(dlogp[free], (-A * r * c)[free], rtol=1e-12, atol=0)


@given(batch=policy_batches(), eps=eps_pairs, dual=st.sampled_from([None, 3.0]),
       agg=st.sampled_from(aggregation.MODES[:4]))
def test_on_policy_equals_vanilla_pg(batch, eps, dual, agg):
    """At ratio ≡ 1 every clipped variant gives the vanilla policy-gradient weight −Â·c (c = aggregation weight)."""
    on = dict(batch, old_logp=batch["logp"].copy())
    cfg = PPOConfig(eps_low=eps[0], eps_high=eps[1], dual_clip_c=dual, agg=agg)
    loss, dlogp = ppo_clip_loss(on["logp"], on["old_logp"], on["adv"], on["mask"], config=cfg)
    c = aggregation.coefficients(batch["mask"], agg)
    A = clean(batch, "adv")
    np.testing.assert_allclose(dlogp, -A * c, rtol=1e-12, atol=1e-15)
    assert loss == pytest.approx(float((-A * c).sum()), rel=1e-12, abs=1e-15)


@given(batch=policy_batches(log_ratio_scale=3.0), c=st.sampled_from([1.5, 3.0, 10.0]))
def test_dual_clip_bounds_negative_advantage_loss(batch, c):
    """Dual-clip eq. 5: for Â < 0 the per-token loss never exceeds −c·Â, and tokens where the cap is
    active have zero gradient; for Â ≥ 0 the dual clip changes nothing."""
    m = batch["mask"]
    A = clean(batch, "adv")
    cfg = PPOConfig(dual_clip_c=c, agg="token-mean")
    plain = PPOConfig(agg="token-mean")
    n = max(m.sum(), 1)
    # per-token losses recovered one token at a time via a one-hot advantage mask
    _, d_dual = ppo_clip_loss(batch["logp"], batch["old_logp"], batch["adv"], m, config=cfg)
    _, d_plain = ppo_clip_loss(batch["logp"], batch["old_logp"], batch["adv"], m, config=plain)
    r = np.exp(clean(batch, "logp") - clean(batch, "old_logp"))
    capped = m & (A < 0) & (-np.minimum(r * A, np.clip(r, 0.8, 1.2) * A) > -c * A)
    assert (d_dual[capped] == 0).all()
    same = m & ~capped
    np.testing.assert_array_equal(d_dual[same], d_plain[same])
    loss_dual, _ = ppo_clip_loss(batch["logp"], batch["old_logp"], batch["adv"], m, config=cfg)
    ell = np.where(capped, -c * A, -np.minimum(r * A, np.clip(r, 0.8, 1.2) * A))
    assert loss_dual == pytest.approx(float(np.where(m, ell, 0).sum() / n), rel=1e-10, abs=1e-12)


@given(batch=policy_batches())
def test_symmetric_clip_with_zero_advantage_is_flat(batch):
    """With Â ≡ 0 the objective is constant: loss 0 and gradient 0 for any ratio."""
    zero = dict(batch, adv=np.zeros_like(batch["adv"]))
    loss, dlogp = registry.get("ppo")(logp=zero["logp"], old_logp=zero["old_logp"], adv=zero["adv"],
                                      mask=zero["mask"])
    assert loss == 0.0
    assert (dlogp == 0).all()


@pytest.mark.parametrize("field,value", [("eps_low", -0.1), ("eps_high", float("nan")), ("dual_clip_c", 0.5),
                                         ("agg", "mean"), ("log_ratio_clamp", -1.0)])
def test_bad_config_raises(field, value):
    """Issue #2, bad input: out-of-range hyper-parameters and unknown aggregation modes raise, naming the field."""
    with pytest.raises(RLSpecValueError, match=field if field != "agg" else "agg"):
        PPOConfig(**{field: value})
