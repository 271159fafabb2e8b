"""Properties of DAPO (arXiv 2503.14476): clip-higher loss, soft overlong punishment, dynamic sampling."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties import strategies as S
from rlspec.reference import aggregation
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.dapo import (
    DAPOConfig,
    DynamicSamplingConfig,
    OverlongConfig,
    dapo_dynamic_sampling,
    dapo_loss,
    dapo_overlong,
)

MODES = st.sampled_from(aggregation.MODES)


def _near_kink(r, eps_low, eps_high, tol=1e-4):
    return (np.abs(r - (1 - eps_low)) < tol) | (np.abs(r - (1 + eps_high)) < tol)


@given(S.policy_batches(), MODES)
def test_hand_gradient_matches_finite_differences(batch, mode):
    """Claim: the hand-derived dlogp equals central finite differences of the loss (float64), and
    padding garbage (NaN/inf at masked positions) changes neither the loss nor the gradient."""
    cfg = DAPOConfig(agg=mode)
    m = batch["mask"]
    kw = dict(old_logp=batch["old_logp"], adv=batch["adv"], mask=m, config=cfg, group=batch["group"])
    loss, d = dapo_loss(batch["logp"], **kw)
    clean_kw = dict(kw, old_logp=S.clean(batch["old_logp"], m), adv=S.clean(batch["adv"], m))
    loss0, d0 = dapo_loss(S.clean(batch["logp"], m), **clean_kw)
    assert loss == loss0 and np.array_equal(d, d0)
    x = S.clean(batch["logp"], m)
    fd = S.finite_difference(lambda lp: dapo_loss(lp, **clean_kw)[0], x, m)
    r = np.exp(x - S.clean(batch["old_logp"], m))
    ok = m & ~_near_kink(r, cfg.eps_low, cfg.eps_high)
    np.testing.assert_allclose(d[ok], fd[ok], rtol=1e-5, atol=1e-8)
    assert np.all(d[~m] == 0)


@given(S.policy_batches(garbage=False), MODES)
def test_clip_zeroes_gradient_where_it_binds(batch, mode):
    """Claim (clip-higher, §3.1): dlogp is exactly 0 where the clip binds in the preferred direction
    (r > 1+ε_high with Â > 0, r < 1−ε_low with Â < 0) and equals −Â·r·c elsewhere."""
    cfg = DAPOConfig(agg=mode)
    m, A = batch["mask"], batch["adv"]
    _, d = dapo_loss(batch["logp"], batch["old_logp"], A, m, config=cfg, group=batch["group"])
    r = np.exp(batch["logp"] - batch["old_logp"])
    c = aggregation.coefficients(m, mode, group=batch["group"])
    binds = ((A > 0) & (r > 1.28)) | ((A < 0) & (r < 0.8))
    assert np.all(d[m & binds] == 0.0)
    free = m & ~binds
    np.testing.assert_allclose(d[free], (-A * r * c)[free], rtol=1e-12, atol=1e-15)


@given(S.policy_batches(garbage=False), MODES)
def test_on_policy_equals_vanilla_pg(batch, mode):
    """Claim: at ratio ≡ 1 (old = current policy) the loss is −Σ c Â and the gradient is the vanilla
    policy-gradient weight −Â·c."""
    m, A = batch["mask"], batch["adv"]
    loss, d = dapo_loss(batch["logp"], batch["logp"], A, m, config=DAPOConfig(agg=mode), group=batch["group"])
    c = aggregation.coefficients(m, mode, group=batch["group"])
    np.testing.assert_allclose(d, np.where(m, -A * c, 0.0), rtol=1e-12, atol=1e-15)
    assert loss == pytest.approx(float(-(c * np.where(m, A, 0.0)).sum()), rel=1e-12, abs=1e-15)


@given(S.policy_batches())
def test_token_mean_is_length_weighted_seq_mean(batch):
    """Claim (§3.3): the token-level loss equals the mean of per-sequence token-means weighted by the
    sequences' lengths n_i/Σn — longer responses weigh more than under GRPO's sample-level loss."""
    m = batch["mask"]
    n = m.sum(axis=1)
    loss, _ = dapo_loss(batch["logp"], batch["old_logp"], batch["adv"], m)
    per_seq = [dapo_loss(batch["logp"][i:i + 1], batch["old_logp"][i:i + 1], batch["adv"][i:i + 1], m[i:i + 1],
                         config=DAPOConfig(agg="seq-mean-token-mean"))[0] for i in range(len(n))]
    expected = float(np.dot(n, per_seq) / n.sum()) if n.sum() else 0.0
    assert loss == pytest.approx(expected, rel=1e-12, abs=1e-14)


# ------------------------------------------------------------------ overlong punishment
CONFIGS = st.builds(lambda L_cache, extra: OverlongConfig(L_max=L_cache + extra, L_cache=L_cache),
                    st.integers(1, 64), st.integers(0, 64))


@given(CONFIGS)
def test_overlong_piecewise_values(cfg):
    """Claim (eq. (13)): R_len = 0 up to L_max − L_cache, ((L_max−L_cache)−|y|)/L_cache in the buffer,
    −1 beyond L_max; checked at the breakpoints and one step on either side."""
    L0, L1, Lc = cfg.L_max - cfg.L_cache, cfg.L_max, cfg.L_cache
    lengths = np.array([0, L0, L0 + 1, L1, L1 + 1, L1 + 100])
    got = dapo_overlong(lengths, cfg)
    expected = [0.0, 0.0, -1.0 / Lc, -1.0, -1.0, -1.0]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    if L0 > 0:
        assert dapo_overlong(np.array([L0 - 1]), cfg)[0] == 0.0


@given(CONFIGS, st.sampled_from(["paper", "linear"]))
def test_overlong_continuous_and_monotone(cfg, beyond):
    """Claim: R_len is continuous at L_max − L_cache and at L_max (consecutive lengths never differ by
    more than the ramp's slope 1/L_cache) and non-increasing in |y|; it lies in [−1, 0] in 'paper' mode."""
    cfg = OverlongConfig(L_max=cfg.L_max, L_cache=cfg.L_cache, beyond_max=beyond)
    lengths = np.arange(0, cfg.L_max + 3 * cfg.L_cache + 2)
    R = dapo_overlong(lengths, cfg)
    steps = np.diff(R)
    assert np.all(steps <= 0)
    assert np.all(np.abs(steps) <= 1.0 / cfg.L_cache + 1e-12)
    if beyond == "paper":
        assert R.min() >= -1.0 and R.max() <= 0.0


def test_overlong_paper_defaults():
    """Claim (§4.1): defaults L_max = 20480, L_cache = 4096; a 16384-token answer is not punished,
    a 18432-token answer gets −0.5."""
    np.testing.assert_allclose(dapo_overlong(np.array([16384, 18432, 20480])), [0.0, -0.5, -1.0])


# ------------------------------------------------------------------ dynamic sampling
@given(S.seeds(), st.integers(1, 20), st.booleans())
def test_dynamic_sampling_drops_exactly_all_equal_groups(rng, B, keep_singletons):
    """Claim (§3.2, eq. (11)): a sequence is kept iff its group's rewards are not all equal (for binary
    accuracy: 0 < #correct < G). Singletons are all-equal and dropped (kept with keep_singletons, verl)."""
    rewards = rng.integers(0, 2, size=B).astype(float) if rng.random() < 0.7 else rng.normal(size=B).round(1)
    group = rng.integers(-3, 3, size=B)
    keep = dapo_dynamic_sampling(rewards, group, DynamicSamplingConfig(keep_singletons=keep_singletons))
    assert keep.dtype == np.bool_ and keep.shape == (B,)
    for i in range(B):
        members = {float(rewards[j]) for j in range(B) if group[j] == group[i]}
        size = int((group == group[i]).sum())
        assert keep[i] == (len(members) > 1 or (keep_singletons and size == 1))


# ------------------------------------------------------------------ bad input
def _batch():
    rng = np.random.default_rng(0)
    return S.policy_batch(rng, 3, 4, garbage=False)


@pytest.mark.parametrize("change", ["shape", "mask_float", "nan", "eps"])
def test_dapo_bad_input_raises(change):
    """Claim: bad input (shape mismatch, non-bool mask, NaN at an unmasked position, negative ε) raises
    RLSpecValueError naming the argument."""
    b = _batch()
    args = [b["logp"], b["old_logp"], b["adv"], b["mask"]]
    kw = {}
    if change == "shape":
        args[1] = args[1][:, :2]
    elif change == "mask_float":
        args[3] = args[3].astype(float) * 0.5
    elif change == "nan":
        args[0] = args[0].copy()
        args[0][0, 0] = np.nan
        args[3] = args[3].copy()
        args[3][0, 0] = True
    with pytest.raises(RLSpecValueError):
        if change == "eps":
            kw["config"] = DAPOConfig(eps_high=-0.1)
        dapo_loss(*args, **kw)


@pytest.mark.parametrize("bad", [dict(lengths=np.array([[1, 2]])), dict(lengths=np.array([-1, 3])),
                                 dict(lengths=np.array([1.5])), dict(lengths=np.array([np.nan]))])
def test_overlong_bad_input_raises(bad):
    """Claim: lengths must be a 1-D array of non-negative integers; anything else raises RLSpecValueError."""
    with pytest.raises(RLSpecValueError):
        dapo_overlong(**bad)


def test_overlong_bad_config_raises():
    """Claim: L_cache > L_max, non-positive lengths and negative penalty factors are rejected."""
    for kw in (dict(L_max=10, L_cache=20), dict(L_cache=0), dict(penalty_factor=-1.0), dict(beyond_max="x")):
        with pytest.raises(RLSpecValueError):
            OverlongConfig(**kw)


@pytest.mark.parametrize("bad", [dict(rewards=np.array([1.0, np.nan]), group=np.array([0, 0])),
                                 dict(rewards=np.array([1.0, 0.0]), group=np.array([0])),
                                 dict(rewards=np.array([1.0, 0.0]), group=np.array([0.5, 1.0])),
                                 dict(rewards=np.ones((2, 2)), group=np.array([0, 0]))])
def test_dynamic_sampling_bad_input_raises(bad):
    """Claim: NaN rewards, mismatched or non-integer group ids, and 2-D rewards raise RLSpecValueError."""
    with pytest.raises(RLSpecValueError):
        dapo_dynamic_sampling(**bad)
