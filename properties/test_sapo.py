"""Properties of SAPO's soft gate (Soft Adaptive Policy Optimization, arXiv 2511.20347).

f_τ(r) = (4/τ)σ(τ(r−1)); per-token loss −f·Â; gradient −Â·w(r)·r with w = 4σ(1−σ) = sech²(τ(r−1)/2).
Expected values are computed here from independent closed forms (cosh, the PPO reference, the
aggregation coefficients), never from the SAPO code under test.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from properties.strategies import policy_batches, seeds
from rlspec.reference import aggregation
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.ppo import PPOConfig, ppo_clip_loss
from rlspec.reference.sapo import SAPOConfig, sapo_gate, sapo_loss, sapo_weight

taus = st.sampled_from([0.1, 1.0, 1.05, 3.0])
any_tau = st.floats(1e-3, 1e3)


def clean(batch, key):
    return np.where(batch["mask"], batch[key], 0.0)


def run(batch, cfg):
    return sapo_loss(batch["logp"], batch["old_logp"], batch["adv"], batch["mask"], config=cfg, group=batch["group"])


def sech2(u):
    return 1.0 / np.cosh(u) ** 2


@given(batch=policy_batches(max_B=5, max_T=5), tau_pos=taus, tau_neg=taus,
       agg=st.sampled_from(aggregation.MODES), clamp=st.sampled_from([None, 20.0]))
def test_hand_gradient_matches_finite_differences(batch, tau_pos, tau_neg, agg, clamp):
    """Gradient claim (derived): ∂loss/∂logp = −c·Â·w(r)·r equals the central finite difference (float64),
    on ragged batches with NaN/inf padding, for every aggregation mode and both temperatures."""
    cfg = SAPOConfig(tau_pos=tau_pos, tau_neg=tau_neg, agg=agg, log_ratio_clamp=clamp)
    _, dlogp = run(batch, cfg)
    h = 1e-6
    fd = np.zeros_like(dlogp)
    for b, t in zip(*np.nonzero(batch["mask"])):
        plus, minus = batch["logp"].copy(), batch["logp"].copy()
        plus[b, t] += h
        minus[b, t] -= h
        fd[b, t] = (run(dict(batch, logp=plus), cfg)[0] - run(dict(batch, logp=minus), cfg)[0]) / (2 * h)
    scale = max(1.0, np.abs(fd).max())
    np.testing.assert_allclose(dlogp, fd, atol=1e-6 * scale, rtol=1e-5)
    assert (dlogp[~batch["mask"]] == 0).all()


@given(tau=any_tau)
def test_weight_is_one_on_policy(tau):
    """w(1) = 1 for every τ > 0 (the gate's slope at r = 1 equals the vanilla PG slope), and f_τ(1) = 2/τ."""
    assert sapo_weight(1.0, tau) == 1.0
    assert sapo_gate(1.0, tau) == pytest.approx(2.0 / tau, rel=1e-15)


@given(r=st.floats(1e-6, 60.0), tau=st.floats(1e-2, 10.0))
def test_weight_in_unit_interval(r, tau):
    """0 < w(r) ≤ 1, and w = sech²(τ(r−1)/2) (checked against numpy's cosh) where w does not underflow."""
    assume(tau * abs(r - 1.0) < 700)
    w = float(sapo_weight(r, tau))
    assert 0.0 < w <= 1.0
    assert w == pytest.approx(sech2(tau * (r - 1.0) / 2.0), rel=1e-12, abs=1e-300)


@given(x=st.floats(0.0, 0.999), tau=any_tau)
def test_weight_symmetric_in_r_minus_one(x, tau):
    """w depends on r only through |r − 1|: w(1 + x) = w(1 − x) (up to the rounding of 1 ± x)."""
    np.testing.assert_allclose(sapo_weight(1.0 + x, tau), sapo_weight(1.0 - x, tau), rtol=1e-11, atol=1e-300)


@given(tau1=st.floats(1e-2, 10.0), factor=st.floats(1.01, 3.0), x=st.floats(1e-2, 2.0), sign=st.sampled_from([-1, 1]))
def test_weight_strictly_decreasing_in_tau(tau1, factor, x, sign):
    """At fixed r ≠ 1, τ₁ < τ₂ ⇒ w_τ₁(r) > w_τ₂(r): a higher temperature shrinks the trust region."""
    r = 1.0 + sign * x
    assume(r > 0)
    tau2 = tau1 * factor
    assume(tau2 * x < 600)  # both weights representable (no underflow to 0)
    assert sapo_weight(r, tau1) > sapo_weight(r, tau2)


@given(tau=st.floats(1e-2, 100.0))
def test_half_weight_point(tau):
    """w = 1/2 exactly at |r − 1| = 2 ln(1+√2)/τ ≈ 1.763/τ (cosh(u) = √2 ⇔ u = ln(1+√2))."""
    x = 2.0 * np.log(1.0 + np.sqrt(2.0)) / tau
    assert sapo_weight(1.0 + x, tau) == pytest.approx(0.5, rel=1e-11)
    if x < 1.0:
        assert sapo_weight(1.0 - x, tau) == pytest.approx(0.5, rel=1e-11)


@given(batch=policy_batches(), tau=st.sampled_from([1e-6, 1e-4, 1e-2]), agg=st.sampled_from(aggregation.MODES[:4]))
def test_small_tau_recovers_unclipped_pg(batch, tau, agg):
    """τ → 0 recovers the unclipped token-IS policy gradient −Â·r·c: since 1 − sech²(u) = tanh²(u) ≤ u²,
    |dlogp − (−Â r c)| ≤ |Â r c|·τ²(r−1)²/4 for every token."""
    cfg = SAPOConfig(tau_pos=tau, tau_neg=tau, agg=agg)
    _, dlogp = run(batch, cfg)
    r = np.exp(clean(batch, "logp") - clean(batch, "old_logp"))
    pg = -clean(batch, "adv") * r * aggregation.coefficients(batch["mask"], agg)
    bound = np.abs(pg) * (tau**2 * (r - 1.0) ** 2 / 4.0 + 1e-12)
    assert (np.abs(dlogp - pg) <= bound + 1e-300).all()


@given(batch=policy_batches(), tau_pos=taus, tau_neg=taus, agg=st.sampled_from(aggregation.MODES[:4]))
def test_on_policy_equals_vanilla_pg_and_ppo(batch, tau_pos, tau_neg, agg):
    """At r ≡ 1 SAPO's gradient is the vanilla PG weight −Â·c, the same as PPO's (rlspec.reference.ppo) at r ≡ 1;
    the loss is −Σ c·(2/τ)·Â since f_τ(1) = 2/τ."""
    on = dict(batch, old_logp=batch["logp"].copy())
    loss, dlogp = run(on, SAPOConfig(tau_pos=tau_pos, tau_neg=tau_neg, agg=agg))
    _, d_ppo = ppo_clip_loss(on["logp"], on["old_logp"], on["adv"], on["mask"], config=PPOConfig(agg=agg))
    A = clean(batch, "adv")
    c = aggregation.coefficients(batch["mask"], agg)
    np.testing.assert_allclose(dlogp, -A * c, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dlogp, d_ppo, rtol=1e-12, atol=1e-15)
    tau = np.where(A > 0, tau_pos, tau_neg)
    assert loss == pytest.approx(float((-c * 2.0 / tau * A).sum()), rel=1e-12, abs=1e-15)


@given(rng=seeds(), tau=taus)
def test_no_dead_tokens_unlike_ppo(rng, tau):
    """Abstract's claim (no hard clipping band): with Â ≠ 0 no valid token gets an exactly-zero gradient under
    SAPO, while PPO-clip (ε = 0.2) zeroes some tokens of the same batch (log-ratio spread N(0,1), |log r| ≤ 4,
    where w ≥ 4e^{−τ·54} cannot underflow in float64)."""
    B, T = 8, 16
    m = np.arange(T)[None, :] < rng.integers(4, T + 1, size=B)[:, None]  # ragged, every row ≥ 4 tokens
    logp = -rng.gamma(2.0, 1.0, size=(B, T))
    lr = np.clip(rng.normal(size=(B, T)), -4.0, 4.0)
    adv = rng.normal(size=(B, T))
    adv = np.where(np.abs(adv) < 1e-3, 1.0, adv)
    batch = {"logp": np.where(m, logp, np.nan), "old_logp": np.where(m, logp - lr, -np.inf),
             "adv": np.where(m, adv, np.inf), "mask": m, "group": None}
    _, d_sapo = run(batch, SAPOConfig(tau_pos=tau, tau_neg=tau))
    _, d_ppo = ppo_clip_loss(batch["logp"], batch["old_logp"], batch["adv"], m, config=PPOConfig())
    assert (d_sapo[m] != 0).all()
    assert (d_ppo[m] == 0).mean() > 0


@given(rng=seeds(), tau=st.floats(0.1, 3.0), m=st.floats(0.01, 0.3), sign=st.sampled_from([-1.0, 1.0]),
       n=st.integers(2, 64))
def test_sequence_coherence_approximation(rng, tau, m, sign, n):
    """Sequence coherence (abstract: SAPO is 'sequence-coherent' like GSPO), in our precise form:
    token log-ratios log r_t = μ + ε z_t with Σ z_t = 0, s = exp(mean_t log r_t) GSPO's sequence ratio.
    (i) the sequence's mean token weight mean_t w(r_t) → w(s) = sech²(τ(s−1)/2) as ε → 0, with gap O(ε²)
        (halving ε divides the gap by ≈ 4: ratio in [0.2, 0.3]);
    (ii) w(s) = sech²(τ·log s/2) + O(|log s|³) (halving μ divides the gap by ≈ 8: ratio in [0.09, 0.16]).
    Valid for τ|s−1|/2 below sech²'s inflection (here ≤ 0.53), where the curvature does not vanish."""
    mu = sign * m
    z = rng.normal(size=n)
    z -= z.mean()
    assume(np.abs(z).max() > 1e-3)

    def gap(eps):
        lr = mu + eps * z
        s = np.exp(lr.mean())
        return abs(float(np.mean(sapo_weight(np.exp(lr), tau))) - sech2(tau * (s - 1.0) / 2.0))

    g = [gap(e) for e in (0.04, 0.02, 0.01)]
    assert 0.2 <= g[1] / g[0] <= 0.3 and 0.2 <= g[2] / g[1] <= 0.3
    assert gap(1e-4) < 1e-7

    def gap_log(mm):
        return abs(float(sapo_weight(np.exp(mm), tau)) - sech2(tau * mm / 2.0))

    assert 0.09 <= gap_log(mu / 2) / gap_log(mu) <= 0.16


@given(batch=policy_batches(max_B=4, max_T=4, log_ratio_scale=0.0), sign=st.sampled_from([-50.0, 50.0]),
       tau_pos=taus, tau_neg=taus)
def test_extreme_log_ratios_are_finite(batch, sign, tau_pos, tau_neg):
    """log r = ±50 (r = e^{±50}): no overflow or NaN; the gate takes its limits f = (4/τ)σ(τ(r−1)) computed
    here with exp(−τ(r−1)) → 0 (r = e^50: f = 4/τ, zero gradient) and f = (4/τ)/(1+e^{τ(1−r)}) (r = e^−50)."""
    m = batch["mask"]
    shifted = dict(batch, old_logp=np.where(m, batch["logp"] - sign, batch["old_logp"]))
    loss, dlogp = run(shifted, SAPOConfig(tau_pos=tau_pos, tau_neg=tau_neg))
    assert np.isfinite(loss) and np.isfinite(dlogp).all()
    A = clean(batch, "adv")
    tau = np.where(A > 0, tau_pos, tau_neg)
    r = np.exp(sign)
    f = 4.0 / tau if sign > 0 else (4.0 / tau) / (1.0 + np.exp(tau * (1.0 - r)))
    c = aggregation.coefficients(m, "seq-mean-token-mean")
    assert loss == pytest.approx(float((-c * f * A).sum()), rel=1e-12, abs=1e-15)
    if sign > 0:
        assert (dlogp == 0).all()
    else:
        np.testing.assert_allclose(dlogp, -c * A * sech2(tau * (r - 1.0) / 2.0) * r, rtol=1e-12, atol=0)


@pytest.mark.parametrize("field", ["tau_pos", "tau_neg"])
@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_nonpositive_temperature_rejected(field, bad):
    """Bad input: τ must be a finite number > 0 (config and the public gate functions)."""
    with pytest.raises(RLSpecValueError, match=field):
        SAPOConfig(**{field: bad})
    with pytest.raises(RLSpecValueError, match="tau"):
        sapo_weight(np.ones(3), bad)
