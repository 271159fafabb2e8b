"""Properties of GMPO, the geometric-mean policy objective (arXiv 2507.20673)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties import strategies as S
from rlspec.reference import aggregation
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.gmpo import GMPOConfig, gmpo_loss
from rlspec.reference.ppo import PPOConfig, ppo_clip_loss

MODES = st.sampled_from(aggregation.MODES)
EPS = st.sampled_from([(0.4, 0.4), (0.2, 0.28), (0.05, 0.1)])


def seq_adv(adv, m):
    """Masked token-mean of adv per row (0 for empty rows), written out."""
    n = m.sum(1)
    return np.array([adv[i, m[i]].mean() if n[i] else 0.0 for i in range(len(n))])


def clipped_log_ratio(d, A, eps):
    """Sign-aware clip, written out: cap d at ε_high when Â ≥ 0, floor it at −ε_low when Â < 0."""
    return np.where(A[:, None] >= 0, np.minimum(d, eps[1]), np.maximum(d, -eps[0]))


def clean(batch):
    m = batch["mask"]
    return {k: (np.where(m, v, 0.0) if k in ("logp", "old_logp", "adv") else v) for k, v in batch.items()}


@given(S.policy_batches(), MODES, EPS)
def test_hand_gradient_matches_finite_differences(batch, mode, eps):
    """Claim: GMPO's hand gradient −C_i Â_i s_i/|o_i| (coupled over the sequence, zero at clipped tokens)
    equals central finite differences of the loss; tokens within 1e-5 of a clip boundary d = ε_high or
    d = −ε_low (log space) are excluded, since the derivative is one-sided there."""
    cfg = GMPOConfig(agg=mode, eps_low=eps[0], eps_high=eps[1])
    m = batch["mask"]
    c = clean(batch)
    kw = dict(old_logp=c["old_logp"], adv=c["adv"], mask=m, config=cfg, group=batch["group"])
    loss, d = gmpo_loss(batch["logp"], batch["old_logp"], batch["adv"], m, config=cfg, group=batch["group"])
    loss0, d0 = gmpo_loss(c["logp"], **kw)
    assert loss == loss0 and np.array_equal(d, d0) and (d[~m] == 0).all()
    fd = S.finite_difference(lambda lp: gmpo_loss(lp, **kw)[0], c["logp"], m)
    lr = c["logp"] - c["old_logp"]
    near = (np.abs(lr - eps[1]) < 1e-5) | (np.abs(lr + eps[0]) < 1e-5)
    ok = m & ~near.any(axis=1, keepdims=True)  # a kink anywhere in a row moves the whole row's gradient
    np.testing.assert_allclose(d[ok], fd[ok], rtol=1e-5, atol=1e-8)


@given(S.seeds(), st.integers(1, 8), st.sampled_from([0.05, 0.3, 1.0, 3.0]))
def test_geometric_mean_below_arithmetic_mean(rng, T, scale):
    """AM-GM: without clipping and with Â = 1, the GMPO objective s = (Π_t ρ_t)^{1/T} is ≤ the arithmetic mean
    (1/T) Σ_t ρ_t that GRPO averages, with equality iff all ratios are equal (both cases checked)."""
    cfg = GMPOConfig(eps_low=1e3, eps_high=1e3)  # no clip binds for these log-ratios
    m = np.ones((1, T), dtype=bool)
    old = -rng.gamma(2.0, 1.0, size=(1, T))
    d = rng.normal(scale=scale, size=(1, T))
    gm = -gmpo_loss(old + d, old, np.ones((1, T)), m, config=cfg)[0]
    am = np.exp(d).mean()
    assert gm <= am * (1 + 1e-12)
    if np.ptp(d) > 1e-3:
        assert am - gm > 1e-9 * am
    const = np.full((1, T), d[0, 0])
    gm_eq = -gmpo_loss(old + const, old, np.ones((1, T)), m, config=cfg)[0]
    assert gm_eq == pytest.approx(np.exp(d[0, 0]), rel=1e-13)


@given(S.policy_batches(max_T=1), EPS, st.sampled_from(aggregation.MODES))
def test_single_token_equals_ppo_clip(batch, eps, agg):
    """T = 1: the geometric mean of one clipped ratio is that ratio, so GMPO is PPO's clipped surrogate
    −min(ρÂ, clip(ρ, e^{−ε_low}, e^{ε_high})Â), i.e. PPO with eps_low = 1 − e^{−ε_low}, eps_high = e^{ε_high} − 1
    (same loss and gradient, every aggregation)."""
    m, grp = batch["mask"], batch["group"]
    args = (batch["logp"], batch["old_logp"], batch["adv"], m)
    lg, dg = gmpo_loss(*args, config=GMPOConfig(agg=agg, eps_low=eps[0], eps_high=eps[1]), group=grp)
    ppo = PPOConfig(agg=agg, eps_low=-np.expm1(-eps[0]), eps_high=np.expm1(eps[1]))
    lp, dp = ppo_clip_loss(*args, config=ppo, group=grp)
    assert lg == pytest.approx(lp, rel=1e-12, abs=1e-14)
    np.testing.assert_allclose(dg, dp, rtol=1e-12, atol=1e-14)


@given(S.seeds(), st.integers(1, 8), EPS, st.sampled_from([0.05, 0.3, 1.0]))
def test_bounded_by_token_mean_clipped_objective(rng, T, eps, scale):
    """Per sequence, with the same log-space clip: Â > 0 ⇒ ℓ_GMPO = −Â·GM(ρ̃) ≥ −Â·AM(ρ̃) = ℓ_GRPO (PPO surrogate,
    token-mean); Â < 0 ⇒ ℓ_GMPO ≤ ℓ_GRPO (AM-GM on the clipped ratios, the sign flips with Â)."""
    m = np.ones((1, T), dtype=bool)
    old = -rng.gamma(2.0, 1.0, size=(1, T))
    lp = old + rng.normal(scale=scale, size=(1, T))
    for A in (abs(rng.normal()) + 0.1, -abs(rng.normal()) - 0.1):
        adv = np.full((1, T), A)
        lg, _ = gmpo_loss(lp, old, adv, m, config=GMPOConfig(eps_low=eps[0], eps_high=eps[1]))
        ppo = PPOConfig(agg="seq-mean-token-mean", eps_low=-np.expm1(-eps[0]), eps_high=np.expm1(eps[1]))
        lr, _ = ppo_clip_loss(lp, old, adv, m, config=ppo)
        tol = 1e-12 * max(1.0, abs(lr))
        assert (lg >= lr - tol) if A > 0 else (lg <= lr + tol)


@given(S.policy_batches(log_ratio_scale=1.0), EPS, MODES)
def test_uniform_weight_over_unclipped_tokens(batch, eps, agg):
    """The gradient is a weighted policy gradient whose weight is shared by the sequence: every token whose
    clip does not bind gets dlogp = −C_i Â_i s_i/|o_i|, clipped tokens get 0, with s_i the geometric mean of the
    clipped ratios (written out here), which lies between their min and max."""
    m, grp = batch["mask"], batch["group"]
    cfg = GMPOConfig(agg=agg, eps_low=eps[0], eps_high=eps[1])
    _, dlogp = gmpo_loss(batch["logp"], batch["old_logp"], batch["adv"], m, config=cfg, group=grp)
    c = clean(batch)
    d = c["logp"] - c["old_logp"]
    A = seq_adv(c["adv"], m)
    dt = clipped_log_ratio(d, A, eps)
    clipped = np.where(A[:, None] >= 0, d > eps[1], d < -eps[0])
    C = aggregation.coefficients(m, agg, group=grp).sum(1)
    for i in np.flatnonzero(m.any(1)):
        rho = np.exp(dt[i, m[i]])
        s = np.prod(rho) ** (1.0 / m[i].sum())
        assert rho.min() * (1 - 1e-12) <= s <= rho.max() * (1 + 1e-12)
        free = m[i] & ~clipped[i]
        np.testing.assert_allclose(dlogp[i, free], -C[i] * A[i] * s / m[i].sum(), rtol=1e-10, atol=1e-15)
        assert (dlogp[i, m[i] & clipped[i]] == 0).all()


@given(S.policy_batches())
def test_verl_row_mean_is_normalizer_B(batch):
    """verl's geo_mean averages ℓ_i over all B rows, fully masked ones included (ℓ = 0 there): that is
    agg='seq-mean-token-mean' with normalizer = B. Written out with s_i = (Π_t ρ̃_it)^{1/|o_i|}."""
    m = batch["mask"]
    B = m.shape[0]
    loss, _ = gmpo_loss(batch["logp"], batch["old_logp"], batch["adv"], m, config=GMPOConfig(normalizer=float(B)))
    c = clean(batch)
    A = seq_adv(c["adv"], m)
    dt = clipped_log_ratio(c["logp"] - c["old_logp"], A, (0.4, 0.4))
    ell = [-A[i] * np.prod(np.exp(dt[i, m[i]])) ** (1.0 / m[i].sum()) if m[i].any() else 0.0 for i in range(B)]
    assert loss == pytest.approx(np.mean(ell), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("field, value", [("eps_low", -0.1), ("eps_high", float("nan")), ("agg", "sum")])
def test_bad_config_raises(field, value):
    """Out-of-range clip ranges and unknown aggregation modes are rejected, naming the field."""
    with pytest.raises(RLSpecValueError, match=field):
        GMPOConfig(**{field: value})
