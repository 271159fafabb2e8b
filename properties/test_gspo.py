"""Properties of GSPO and GSPO-token (arXiv 2507.18071)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties import strategies as S
from rlspec.reference import aggregation
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.gspo import GSPOConfig, gspo_loss, gspo_token_loss, sequence_ratio
from rlspec.reference.ppo import PPOConfig, clipped_surrogate, ppo_clip_loss

MODES = st.sampled_from(aggregation.MODES)
EPS = st.sampled_from([(3e-4, 4e-4), (0.2, 0.28), (0.05, 0.05)])


def _seq_ratio(logp, old, mask):
    """s_i computed here, independently: the n_i-th root of the product of token ratios."""
    n = mask.sum(axis=1)
    prod = np.prod(np.where(mask, np.exp(logp - old), 1.0), axis=1)
    return np.where(n > 0, prod ** (1.0 / np.maximum(n, 1)), 1.0)


def _garbage_invariant(loss_fn, batch, m, kw):
    loss, d = loss_fn(batch["logp"], **kw)
    ckw = dict(kw, old_logp=S.clean(batch["old_logp"], m), adv=S.clean(batch["adv"], m))
    loss0, d0 = loss_fn(S.clean(batch["logp"], m), **ckw)
    assert loss == loss0 and np.array_equal(d, d0)
    assert np.all(d[~m] == 0)
    return d, ckw


def _kink_rows(s, eps):
    """Rows whose s_i is within reach of a clip boundary (an FD step could straddle the kink)."""
    return (np.abs(s - (1 - eps[0])) < 1e-5) | (np.abs(s - (1 + eps[1])) < 1e-5)


@given(S.policy_batches(), MODES, EPS)
def test_hand_gradient_matches_finite_differences(batch, mode, eps):
    """Claim: GSPO's hand gradient (coupled over the sequence, ∂s_i/∂logp_it = s_i/|y_i|) equals central
    finite differences of the loss (float64); padding garbage changes neither loss nor gradient."""
    cfg = GSPOConfig(agg=mode, eps_low=eps[0], eps_high=eps[1])
    m = batch["mask"]
    kw = dict(old_logp=batch["old_logp"], adv=batch["adv"], mask=m, config=cfg, group=batch["group"])
    d, ckw = _garbage_invariant(gspo_loss, batch, m, kw)
    x = S.clean(batch["logp"], m)
    fd = S.finite_difference(lambda lp: gspo_loss(lp, **ckw)[0], x, m)
    ok = m & ~_kink_rows(_seq_ratio(x, ckw["old_logp"], m), eps)[:, None]
    np.testing.assert_allclose(d[ok], fd[ok], rtol=1e-5, atol=1e-8)


@given(S.policy_batches(), MODES, EPS)
def test_token_variant_gradient_matches_frozen_finite_differences(batch, mode, eps):
    """Claim (eq. (13)): GSPO-token's gradient is the derivative of Σ c ℓ(s_it, Â_it) with
    s_it = sg[s_i]·π_θ/sg[π_θ], i.e. central FD of that objective with s_i frozen at the current point
    (built here from PPO's surrogate ℓ and the aggregation coefficients); its value is Σ c ℓ(s_i, Â_it)."""
    cfg = GSPOConfig(agg=mode, eps_low=eps[0], eps_high=eps[1])
    m = batch["mask"]
    kw = dict(old_logp=batch["old_logp"], adv=batch["adv"], mask=m, config=cfg, group=batch["group"])
    d, ckw = _garbage_invariant(gspo_token_loss, batch, m, kw)
    x0 = S.clean(batch["logp"], m)
    s0 = _seq_ratio(x0, ckw["old_logp"], m)[:, None]  # sg[s_i]
    c = aggregation.coefficients(m, mode, group=batch["group"])
    A = ckw["adv"]

    def frozen(x):
        ell, _ = clipped_surrogate(s0 * np.exp(x - x0), A, eps[0], eps[1])
        return float((c * np.where(m, ell, 0.0)).sum())

    assert gspo_token_loss(x0, **ckw)[0] == pytest.approx(frozen(x0), rel=1e-10, abs=1e-14)
    fd = S.finite_difference(frozen, x0, m)
    ok = m & ~_kink_rows(s0[:, 0], eps)[:, None]
    np.testing.assert_allclose(d[ok], fd[ok], rtol=1e-5, atol=1e-8)


@given(S.policy_batches(garbage=False))
def test_sequence_ratio_is_geometric_mean(batch):
    """Claim (eq. (7)): s_i = (π_θ(y_i)/π_old(y_i))^{1/|y_i|}, the geometric mean of the token ratios."""
    m = batch["mask"]
    s, _, _ = sequence_ratio(batch["logp"], batch["old_logp"], m)
    np.testing.assert_allclose(s, _seq_ratio(batch["logp"], batch["old_logp"], m), rtol=1e-10)


@given(S.seeds(), st.integers(1, 10), EPS, st.sampled_from(["token-mean", "seq-mean-token-mean"]))
def test_single_token_equals_ppo_clip(rng, B, eps, mode):
    """Claim: with one token per sequence (T = 1) GSPO is token-level PPO-clip (GRPO-style per-token
    loss) with the same ε: s_i = r_i, and loss and gradient coincide."""
    b = S.policy_batch(rng, B, 1)
    args = (b["logp"], b["old_logp"], b["adv"], b["mask"])
    lg, dg = gspo_loss(*args, config=GSPOConfig(agg=mode, eps_low=eps[0], eps_high=eps[1]))
    lp, dp = ppo_clip_loss(*args, config=PPOConfig(agg=mode, eps_low=eps[0], eps_high=eps[1]))
    assert lg == pytest.approx(lp, rel=1e-12, abs=1e-15)
    np.testing.assert_allclose(dg, dp, rtol=1e-12, atol=1e-15)


@given(S.policy_batches(), MODES, EPS)
def test_token_variant_equals_gspo_for_shared_advantage(batch, mode, eps):
    """Claim (§4.3): when all tokens of a sequence share Â, GSPO-token has the same value and the same
    gradient as GSPO. Holds exactly under every aggregation mode (c is constant along a sequence)."""
    m = batch["mask"]
    A = np.where(m, np.random.default_rng(0).normal(size=(m.shape[0], 1)), np.nan)  # broadcast Â_i
    cfg = GSPOConfig(agg=mode, eps_low=eps[0], eps_high=eps[1])
    args = (batch["logp"], batch["old_logp"], A, m)
    l1, d1 = gspo_loss(*args, config=cfg, group=batch["group"])
    l2, d2 = gspo_token_loss(*args, config=cfg, group=batch["group"])
    assert l1 == pytest.approx(l2, rel=1e-12, abs=1e-15)
    np.testing.assert_allclose(d1, d2, rtol=1e-10, atol=1e-15)


@given(S.policy_batches(garbage=False), MODES, EPS)
def test_token_variant_upper_bounds_gspo_loss(batch, mode, eps):
    """Claim (derived): with token-varying Â, GSPO uses the sequence mean Â_i while GSPO-token averages
    the per-token losses; −min(sÂ, clip(s)Â) is convex in Â, so by Jensen GSPO-token's loss ≥ GSPO's."""
    m = batch["mask"]
    A = batch["adv"] + np.random.default_rng(1).normal(size=m.shape)
    cfg = GSPOConfig(agg=mode, eps_low=eps[0], eps_high=eps[1])
    args = (batch["logp"], batch["old_logp"], A, m)
    l1, _ = gspo_loss(*args, config=cfg, group=batch["group"])
    l2, _ = gspo_token_loss(*args, config=cfg, group=batch["group"])
    assert l2 >= l1 - 1e-12


@given(S.policy_batches(), st.sampled_from(["seq-mean-token-mean", "token-mean", "seq-mean-token-sum"]))
def test_empty_sequence_contributes_nothing(batch, mode):
    """Claim: a sequence with no valid token contributes zero loss and gets zero gradient; appending one
    (filled with garbage) leaves the loss of the others unchanged."""
    m = batch["mask"]
    T = m.shape[1]
    garbage = np.full((1, T), np.nan)
    ext = {k: np.vstack([batch[k], garbage]) for k in ("logp", "old_logp", "adv")}
    mext = np.vstack([m, np.zeros((1, T), bool)])
    cfg = GSPOConfig(agg=mode)
    l0, d0 = gspo_loss(batch["logp"], batch["old_logp"], batch["adv"], m, config=cfg)
    l1, d1 = gspo_loss(ext["logp"], ext["old_logp"], ext["adv"], mext, config=cfg)
    assert l0 == pytest.approx(l1, rel=1e-12, abs=1e-15)
    assert np.all(d1[-1] == 0) and np.allclose(d1[:-1], d0, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("fn", [gspo_loss, gspo_token_loss])
@pytest.mark.parametrize("change", ["shape", "mask_float", "nan", "eps"])
def test_bad_input_raises(fn, change):
    """Claim: shape mismatch, non-bool mask, NaN at an unmasked position and negative ε raise RLSpecValueError."""
    b = S.policy_batch(np.random.default_rng(0), 3, 4, garbage=False)
    args = [b["logp"], b["old_logp"], b["adv"], b["mask"].copy()]
    with pytest.raises(RLSpecValueError):
        if change == "shape":
            args[2] = args[2][:2]
        elif change == "mask_float":
            args[3] = args[3].astype(float) * 0.5
        elif change == "nan":
            args[1] = args[1].copy()
            args[1][0, 0] = np.nan
            args[3][0, 0] = True
        else:
            GSPOConfig(eps_low=-3e-4)
        fn(*args)
