"""Properties of FiberPO's fiber-bundle gating (Fibration Policy Optimization, arXiv 2603.08239).

G_t = w_base(τ) · r̃_t: a trajectory-level base gate on the sign-split mean log-ratios log s^± and a
token-level fiber gate on the residuals (equations as restated in arXiv 2604.03044 §3.3). Expected values
are written here from independent closed forms (exp of the log-ratio, the PPO reference, the aggregation
coefficients, the piecewise definition of g), never read back from the FiberPO code under test.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from properties.strategies import finite_difference, policy_batches, ragged_mask, seeds
from rlspec.reference import aggregation
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.fiberpo import (
    FiberPOConfig,
    aggregate_gate,
    aggregate_gate_slope,
    base_weight,
    channel_aggregates,
    fiber_factor,
    fiber_residuals,
    fiberpo_gate,
    fiberpo_loss,
)
from rlspec.reference.ppo import PPOConfig, ppo_clip_loss

budgets = st.sampled_from([0.005, 0.02, 0.08, 0.12, 0.5])
epsilons = st.sampled_from([0.002, 0.01, 0.05, 0.3])


def run(batch, cfg):
    return fiberpo_loss(batch["logp"], batch["old_logp"], batch["adv"], batch["mask"], config=cfg,
                        group=batch.get("group"))


def fd_check(batch, cfg):
    _, dlogp = run(batch, cfg)
    fd = finite_difference(lambda lp: run(dict(batch, logp=lp), cfg)[0], batch["logp"], batch["mask"])
    scale = max(1.0, np.abs(fd).max())
    np.testing.assert_allclose(dlogp, fd, atol=1e-6 * scale, rtol=1e-5)
    assert (dlogp[~batch["mask"]] == 0).all()


def hard_clip(a, C):
    return np.where(np.abs(a) <= C, a, 0.0)


def regime_batch(rng, means, T, noise):
    """One row per mean: log-ratios mean + noise (noise re-centred so the row mean is exact), all tokens valid."""
    z = rng.normal(size=(len(means), T))
    z -= z.mean(axis=1, keepdims=True)
    x = np.asarray(means)[:, None] + noise * z
    logp = -rng.gamma(2.0, 1.0, size=x.shape)
    return {"logp": logp, "old_logp": logp - x, "adv": rng.normal(size=x.shape), "mask": np.ones(x.shape, bool),
            "group": None}


@given(batch=policy_batches(max_B=5, max_T=5), c_pos=budgets, c_neg=budgets, eps=epsilons,
       agg=st.sampled_from(aggregation.MODES), clamp=st.sampled_from([None, 0.5]))
def test_hand_gradient_matches_finite_differences(batch, c_pos, c_neg, eps, agg, clamp):
    """Gradient claim (derived, module docstring): the hand chain rule through the base and fiber gates equals
    the central finite difference of the loss (float64), for every aggregation mode, with NaN/inf padding."""
    fd_check(batch, FiberPOConfig(c_pos=c_pos, c_neg=c_neg, eps=eps, agg=agg, log_ratio_clamp=clamp))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("eps", [0.003, 1.0])
def test_hand_gradient_in_every_base_regime(seed, eps):
    """Same gradient claim, with rows placed by construction in each regime of each channel (C⁺ = 0.12,
    C⁻ = 0.08, T = 4): pass-through, rollback (mean 0.135 ∈ (C⁺, 1.25 C⁺); −0.09 ∈ −(C⁻, 1.25 C⁻)), zeroed
    (±0.5), and a mixed-sign row; the small ε also engages the fiber clips."""
    rng = np.random.default_rng(seed)
    batch = regime_batch(rng, [0.05, 0.135, 0.5, -0.03, -0.09, -0.5], 4, noise=0.003)
    mixed = regime_batch(rng, [0.0, 0.0], 4, noise=0.4)
    batch = {k: (np.concatenate([batch[k], mixed[k]]) if k != "group" else None) for k in batch}
    fd_check(batch, FiberPOConfig(c_pos=0.12, c_neg=0.08, eps=eps))


@given(rng=seeds(), B=st.integers(1, 5), T=st.integers(1, 8), agg=st.sampled_from(aggregation.MODES[:4]))
def test_gate_equals_ratio_inside_trust_region(rng, B, T, agg):
    """Checkable statement (notes [D]): inside the trust region (log s^± ≤ C^±, |l u|, |l v| ≤ ε) G_t = r_t
    exactly, so FiberPO is the unclipped token-IS surrogate −Σ c·r·Â and its gradient is −c·Â·r.
    Here |log r| ≤ 0.01, C^± = ε = 0.05 (so |l u| ≤ 0.02, |l v| ≤ 0.01)."""
    m = ragged_mask(rng, B, T)
    x = rng.uniform(-0.01, 0.01, size=(B, T))
    logp = -rng.gamma(2.0, 1.0, size=(B, T))
    adv = rng.normal(size=(B, T))
    r = np.exp(x)
    G = fiberpo_gate(x, m, 0.05, 0.05, 0.05)
    np.testing.assert_allclose(G[m], r[m], rtol=1e-13, atol=0)
    loss, dlogp = fiberpo_loss(np.where(m, logp, np.nan), logp - x, np.where(m, adv, np.inf), m,
                               config=FiberPOConfig(c_pos=0.05, c_neg=0.05, eps=0.05, agg=agg))
    c = aggregation.coefficients(m, agg)
    assert loss == pytest.approx(float(-(c * r * np.where(m, adv, 0)).sum()), rel=1e-12, abs=1e-15)
    np.testing.assert_allclose(dlogp, np.where(m, -c * adv * r, 0.0), rtol=1e-12, atol=1e-15)


@given(rng=seeds(), B=st.integers(1, 4), T=st.integers(1, 6), c_pos=budgets, c_neg=budgets, eps=epsilons,
       agg=st.sampled_from(aggregation.MODES[:4]))
def test_identity_jacobian_on_policy(rng, B, T, c_pos, c_neg, eps, agg):
    """Abstract: the FiberPO Jacobian 'reduces to identity at on-policy' (first-order agreement with the true
    RL objective). The finite-difference Jacobian ∂G/∂r over all valid tokens of the batch at r ≡ 1 is I,
    for any budgets, although the max(·, 0) kinks of log s^± sit exactly at r = 1; the gradient there is
    the vanilla policy gradient −c·Â, the same as PPO's (rlspec.reference.ppo) on-policy."""
    m = ragged_mask(rng, B, T)
    assume(m.any())
    idx = np.argwhere(m)
    h = 1e-7
    J = np.zeros((len(idx), len(idx)))
    for j, (b, t) in enumerate(idx):
        xp, xm = np.zeros((B, T)), np.zeros((B, T))
        xp[b, t], xm[b, t] = np.log1p(h), np.log1p(-h)
        J[:, j] = ((fiberpo_gate(xp, m, c_pos, c_neg, eps) - fiberpo_gate(xm, m, c_pos, c_neg, eps)) / (2 * h))[m]
    np.testing.assert_allclose(J, np.eye(len(idx)), atol=1e-7)
    logp = -rng.gamma(2.0, 1.0, size=(B, T))
    adv = rng.normal(size=(B, T))
    _, dlogp = fiberpo_loss(logp, logp, adv, m, config=FiberPOConfig(c_pos=c_pos, c_neg=c_neg, eps=eps, agg=agg))
    _, d_ppo = ppo_clip_loss(logp, logp, adv, m, config=PPOConfig(agg=agg))
    c = aggregation.coefficients(m, agg)
    np.testing.assert_allclose(dlogp, np.where(m, -c * adv, 0.0), rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(dlogp, d_ppo, rtol=1e-13, atol=1e-16)


@given(batch=policy_batches(max_B=5, max_T=5), c_pos=budgets, c_neg=budgets, eps=epsilons, rng=seeds())
def test_jacobian_block_diagonal_over_trajectories(batch, c_pos, c_neg, eps, rng):
    """Abstract: the FiberPO Jacobian is block-diagonal over trajectories. Changing the log-ratio of any token
    of trajectory b′ leaves G of every other trajectory bit-identical; and the gradient of trajectory b
    does not change when another trajectory's log-ratios and advantages are redrawn (seq-mean-token-mean,
    fixed row lengths: no coupling across sequences)."""
    m = batch["mask"]
    x = np.where(m, batch["logp"], 0.0) - np.where(m, batch["old_logp"], 0.0)
    assume(m.any(axis=1).sum() >= 2)
    G = fiberpo_gate(x, m, c_pos, c_neg, eps)
    b2, t2 = np.argwhere(m)[rng.integers(m.sum())]
    x2 = x.copy()
    x2[b2, t2] += rng.normal()
    G2 = fiberpo_gate(x2, m, c_pos, c_neg, eps)
    others = np.arange(m.shape[0]) != b2
    np.testing.assert_array_equal(G2[others], G[others])
    cfg = FiberPOConfig(c_pos=c_pos, c_neg=c_neg, eps=eps)
    _, d1 = run(batch, cfg)
    redrawn = dict(batch, old_logp=batch["old_logp"].copy(), adv=batch["adv"].copy())
    redrawn["old_logp"][b2] = batch["logp"][b2] - rng.normal(scale=0.5, size=m.shape[1])
    redrawn["adv"][b2] = rng.normal(size=m.shape[1])
    _, d2 = run(redrawn, cfg)
    np.testing.assert_array_equal(d2[others], d1[others])


def log_gate_jacobian(x_row, c_pos, c_neg, eps, h=1e-7):
    """FD Jacobian ∂log G_t/∂log r_s of one trajectory (T, T)."""
    T = x_row.size
    m = np.ones((1, T), bool)
    J = np.zeros((T, T))
    for s in range(T):
        xp, xm = x_row.copy()[None], x_row.copy()[None]
        xp[0, s] += h
        xm[0, s] -= h
        J[:, s] = (np.log(fiberpo_gate(xp, m, c_pos, c_neg, eps)[0]) -
                   np.log(fiberpo_gate(xm, m, c_pos, c_neg, eps)[0])) / (2 * h)
    return J


@given(rng=seeds(), T=st.integers(2, 12), scale=st.sampled_from([0.02, 0.1, 0.5]), c_pos=budgets, c_neg=budgets,
       eps=epsilons)
def test_scale_separation(rng, T, scale, c_pos, c_neg, eps):
    """Claimed scale separation (notes (iii)): the local term is O(1), the trajectory coupling O(1/T_τ).
    Outside the rollback band: |∂log G_t/∂log r_s| ≤ 1/T for s ≠ t, and the diagonal is the fiber clip's
    indicator φ'_t = 1[|x_t − l_t log s^{(l_t)}| ≤ ε] within 1/T (log s^± computed here from their definition).
    Inside the positive rollback band with all log r > 0 and no fiber clip, the coupling is O(1):
    ∂log G_t/∂log r_s = −(1 + 1/T) exactly for s ≠ t (the restorative slope −T times 1/T, plus the fiber's −1/T)."""
    x = rng.normal(scale=scale, size=T)
    sp, sn = np.maximum(x, 0).mean(), np.maximum(-x, 0).mean()
    in_band = lambda a, C: C < a < C * (1 + 1 / T)  # noqa: E731
    margin = 1e-5
    assume(all(abs(a - b) > margin for a in (sp, sn) for b in (c_pos, c_neg, c_pos * (1 + 1 / T), c_neg * (1 + 1 / T))))
    own = np.where(x >= 0, sp, sn)
    lu = x - np.where(x >= 0, 1.0, -1.0) * own
    assume(np.all(np.abs(np.abs(lu) - eps) > margin) and abs(sp - eps) > margin and abs(sn - eps) > margin)
    assume(np.all(np.abs(x) > margin))
    J = log_gate_jacobian(x, c_pos, c_neg, eps)
    if not (in_band(sp, c_pos) or in_band(sn, c_neg)):
        off = J[~np.eye(T, dtype=bool)]
        assert np.abs(off).max() <= 1.0 / T + 1e-6
        phi = (np.abs(lu) <= eps).astype(float)
        assert np.abs(np.diag(J) - phi).max() <= 1.0 / T + 1e-6
    C = 0.12
    mu = C * (1 + 0.5 / T)  # the middle of the positive rollback band
    z = rng.uniform(-1, 1, size=T)
    xr = mu + 1e-3 * C / T * (z - z.mean())  # all > 0, row mean exactly in the band
    Jr = log_gate_jacobian(xr, C, C, 1.0)
    np.testing.assert_allclose(Jr[~np.eye(T, dtype=bool)], -(1.0 + 1.0 / T), rtol=1e-6)


@given(batch=policy_batches(max_B=6, max_T=7))
def test_channel_identity(batch):
    """Notes: mean_t log r_t = log s⁺ − log s⁻ (both channels ≥ 0), per trajectory; empty rows give 0, 0."""
    m = batch["mask"]
    x = np.where(m, batch["logp"], 0.0) - np.where(m, batch["old_logp"], 0.0)
    sp, sn, T = channel_aggregates(np.where(m, x, np.nan), m)
    n = m.sum(axis=1)
    mean = np.divide(x.sum(axis=1), n, out=np.zeros(len(n)), where=n > 0)
    np.testing.assert_allclose(sp - sn, mean, rtol=1e-12, atol=1e-15)
    assert (sp >= 0).all() and (sn >= 0).all()
    np.testing.assert_array_equal(T, n)


@given(C=st.floats(1e-3, 2.0), T=st.integers(1, 10_000), sign=st.sampled_from([-1.0, 1.0]))
def test_aggregate_gate_continuity_and_slopes(C, T, sign):
    """Aggregate gate (report §3.3): g = a on |a| ≤ C, sign(a)(T+1)C − T a on C < |a| < (1+1/T)C, 0 beyond.
    It is continuous at |a| = C (value ±C) and at |a| = (1+1/T)C (value 0); its slopes are 1 (pass-through),
    −T (rollback) and 0 (zeroed), measured by finite differences inside each regime; the rollback band has
    width C/T (non-zero just inside (1+1/T)C, zero just beyond)."""
    hi = C * (1 + 1 / T)
    w = C / T
    for b, val in ((C, C), (hi, 0.0)):
        for eta in (1e-9 * w, 1e-6 * w):
            left, right = aggregate_gate(sign * (b - eta), C, T), aggregate_gate(sign * (b + eta), C, T)
            assert abs(left - sign * val) <= 1.1 * (T + 1) * eta + 1e-15 * C * T
            assert abs(right - sign * val) <= 1.1 * (T + 1) * eta + 1e-15 * C * T
    for a, slope in ((0.5 * C, 1.0), (C + 0.5 * w, -float(T)), (2 * hi, 0.0)):
        h = 1e-3 * w
        fd = (aggregate_gate(sign * (a + h), C, T) - aggregate_gate(sign * (a - h), C, T)) / (2 * h * sign)
        assert fd == pytest.approx(slope, rel=1e-6, abs=1e-9)
        assert aggregate_gate_slope(sign * a, C, T) == slope
    assert aggregate_gate(sign * (hi - 0.01 * w), C, T) != 0.0
    assert aggregate_gate(sign * (hi + 0.01 * w), C, T) == 0.0


@given(C=st.floats(0.01, 1.0))
def test_aggregate_gate_tends_to_hard_clip(C):
    """Notes: as T → ∞ the aggregate gate tends to hard clipping at ±C, a·1[|a| ≤ C]: the two agree exactly
    outside the rollback bands, whose width C/T → 0, and the L¹ gap (two triangles of area C²/(2T)) → 0."""
    a = np.linspace(-3 * C, 3 * C, 60_001)
    da = a[1] - a[0]
    gaps = []
    for T in (1, 10, 100):
        g = aggregate_gate(a, C, T)
        band = (np.abs(a) > C) & (np.abs(a) < C * (1 + 1 / T) * (1 + 1e-12))  # rounding at the band's end
        assert (g[~band] == hard_clip(a, C)[~band]).all()
        gaps.append(float(np.abs(g - hard_clip(a, C)).sum() * da))
        assert gaps[-1] == pytest.approx(C**2 / T, rel=0.02, abs=4 * C * da)
    assert gaps == sorted(gaps, reverse=True)


@given(rng=seeds(), T=st.integers(1, 20), c_pos=budgets, c_neg=budgets, f_pos=st.floats(1.0, 50.0),
       f_neg=st.floats(1.0, 50.0))
def test_both_channels_zeroed_gives_unit_base_weight(rng, T, c_pos, c_neg, f_pos, f_neg):
    """Notes: when both channels are zeroed (log s^± ≥ (1+1/T) C^±) the base weight is exactly 1."""
    sp = c_pos * (1 + 1 / T) * f_pos
    sn = c_neg * (1 + 1 / T) * f_neg
    assert base_weight(np.array([sp]), np.array([sn]), np.array([float(T)]), c_pos, c_neg)[0] == 1.0


@given(T=st.integers(1, 500), C=st.floats(0.01, 1.0), frac=st.floats(0.05, 0.95), other=st.floats(0.0, 0.9))
def test_rollback_is_restorative(T, C, frac, other):
    """Notes: in rollback ∂w_base/∂log s⁺ < 0 — past C⁺ a further positive drift lowers the base weight
    (slope −T·w_base), pulling the trajectory back when Â > 0; mirror: ∂w_base/∂log s⁻ = +T·w_base > 0 in the
    negative channel's rollback. (The other channel sits in pass-through at `other`·C.)"""
    a = C * (1 + frac / T)
    h = 1e-4 * C / T
    Tv = np.array([float(T)])

    def w(sp, sn):
        return base_weight(np.array([sp]), np.array([sn]), Tv, C, C)[0]

    d_pos = (w(a + h, other * C) - w(a - h, other * C)) / (2 * h)
    d_neg = (w(other * C, a + h) - w(other * C, a - h)) / (2 * h)
    assert d_pos < 0 and d_neg > 0
    assert d_pos == pytest.approx(-T * w(a, other * C), rel=1e-6)
    assert d_neg == pytest.approx(T * w(other * C, a), rel=1e-6)


@given(rng=seeds(), T=st.integers(1, 16), sign=st.sampled_from([-1.0, 1.0]), inside=st.booleans(),
       eps=epsilons)
def test_uniform_drift_is_carried_by_the_base(rng, T, sign, inside, eps):
    """Notes' experiment: when a whole trajectory drifts uniformly (log r_t = μ for every t) the fiber factor
    is 1 (the residuals vanish, up to the rounding of the mean) and G = w_base: G = r = e^μ while |μ| ≤ C, and
    G = 1 once |μ| is beyond the rollback band — whereas PPO-clip (ε = 0.2) zeroes the gradient of every token
    of the trajectory when Â > 0 and μ > log 1.2."""
    C = 0.12 if sign > 0 else 0.08
    mu = sign * (C * rng.uniform(0.1, 1.0) if inside else C * (1 + 1 / T) * rng.uniform(1.01, 20.0))
    x = np.full((1, T), mu)
    m = np.ones((1, T), bool)
    sp, sn, Tv = channel_aggregates(x, m)
    l, lu, lv = fiber_residuals(x, sp, sn)
    np.testing.assert_allclose(fiber_factor(lu, lv, eps), 1.0, rtol=0, atol=1e-14)  # the mean's rounding only
    G = fiberpo_gate(x, m, 0.12, 0.08, eps)
    np.testing.assert_allclose(G, np.exp(mu) if inside else 1.0, rtol=1e-14)
    if not inside and sign > 0 and mu > np.log(1.2):
        logp = -rng.gamma(2.0, 1.0, size=(1, T))
        _, d_ppo = ppo_clip_loss(logp, logp - x, np.ones((1, T)), m, config=PPOConfig())
        assert (d_ppo == 0).all()


@given(batch=policy_batches(max_B=4, max_T=5, log_ratio_scale=0.0), sign=st.sampled_from([-50.0, 50.0]),
       c_pos=budgets, c_neg=budgets, eps=epsilons, rng=seeds())
def test_gate_bounded_and_finite_at_extreme_ratios(batch, sign, c_pos, c_neg, eps, rng):
    """The gate never exponentiates the raw ratio: g(log s⁺) ∈ [0, C⁺], g(log s⁻) ∈ [0, C⁻] and each clip is in
    [−ε, ε], so log G ∈ [−C⁻ − 2ε, C⁺ + 2ε] for any log-ratios, and log r = ±50 (mixed with noise) gives a
    finite loss and gradient."""
    m = batch["mask"]
    x = np.where(m, sign * rng.uniform(0, 1, size=m.shape) + rng.normal(size=m.shape), 0.0)
    logG = np.log(fiberpo_gate(x, m, c_pos, c_neg, eps)[m])
    assert (logG >= -c_neg - 2 * eps - 1e-12).all() and (logG <= c_pos + 2 * eps + 1e-12).all()
    shifted = dict(batch, old_logp=np.where(m, batch["logp"] - x, batch["old_logp"]))
    loss, dlogp = run(shifted, FiberPOConfig(c_pos=c_pos, c_neg=c_neg, eps=eps))
    assert np.isfinite(loss) and np.isfinite(dlogp).all()


@pytest.mark.parametrize("field", ["c_pos", "c_neg", "eps"])
@pytest.mark.parametrize("bad", [0.0, -0.1, float("nan"), float("inf")])
def test_bad_config_rejected(field, bad):
    """Bad input: the budgets C^± and the fiber clip ε must be finite and > 0 (config and gate functions)."""
    with pytest.raises(RLSpecValueError, match=field):
        FiberPOConfig(**{field: bad})
    kw = {**dict(c_pos=0.1, c_neg=0.1, eps=0.1), field: bad}
    with pytest.raises(RLSpecValueError, match=field):
        fiberpo_gate(np.zeros((1, 2)), np.ones((1, 2), bool), **kw)
    with pytest.raises(RLSpecValueError, match="log_r"):
        fiberpo_gate(np.full((1, 2), np.nan), np.ones((1, 2), bool), 0.1, 0.1, 0.1)
