"""Properties of HAPO (Heterogeneous Adaptive Policy Optimization, arXiv 2509.16591).

Claims from the abstract (four components and their intent) and from the stated ranges of the method
(h̃ ∈ [−1, 1], clip ranges between the base and (1 + α)× the base, redistribution factor ∈ [0, 2], temperature
> 0 iff τz > −1, token-level group advantages summing to zero). Expected values are written here from
independent formulas (NumPy's nearest quantile, the PPO reference, a literal NumPy transcription of the
official code's entropy normalisation), never read back from the HAPO code under test.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from properties.strategies import clean, finite_difference, seeds
from rlspec.reference import aggregation
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.grpo import GRPOConfig, grpo_advantage
from rlspec.reference.hapo import (
    HAPOAdvantageConfig,
    HAPOConfig,
    HAPOTemperatureConfig,
    adaptive_clip,
    adaptive_temperature,
    entropy_statistics,
    hapo_advantage,
    hapo_loss,
    redistribution_factor,
    token_entropy_signal,
)
from rlspec.reference.ppo import PPOConfig, ppo_clip_loss

GARBAGE = (np.nan, np.inf, -np.inf, 1e30)


# --------------------------------------------------------------------------- inputs
def entropy_batch(rng: np.random.Generator, B: int | None = None, T: int | None = None, scale: float | None = None):
    """Ragged policy batch with token entropies; garbage padding."""
    B = int(rng.integers(1, 7)) if B is None else B
    T = int(rng.integers(1, 9)) if T is None else T
    mask = np.arange(T)[None, :] < rng.integers(0, T + 1, size=B)[:, None]
    logp = -rng.gamma(2.0, 1.0, size=(B, T))
    s = float(rng.choice([0.05, 0.2, 0.5])) if scale is None else scale
    old = logp - rng.normal(scale=s, size=(B, T))
    adv = np.repeat(rng.normal(size=(B, 1)), T, axis=1) + (rng.random() < 0.3) * rng.normal(scale=0.5, size=(B, T))
    H = np.where(rng.random((B, T)) < 0.05, 0.0, rng.gamma(0.5, 1.0, size=(B, T)))
    pad = lambda a: np.where(mask, a, rng.choice(GARBAGE, size=(B, T)))  # noqa: E731
    return {"logp": pad(logp), "old_logp": pad(old), "adv": pad(adv), "entropy": pad(H), "mask": mask,
            "group": np.arange(B) // 2}


def x_of(batch) -> np.ndarray:
    return np.log(np.maximum(batch["entropy"][batch["mask"]], 1e-8))


def official_h_hat(H: np.ndarray, mask: np.ndarray, pivot: float) -> np.ndarray:
    """The official compute_entropy_h transcribed in NumPy (log H floored at 1e-8, nearest quantile, RMS about it,
    h/max for h > 0 and h·(1/min) for h ≤ 0, maxima clamped at ±1e-8)."""
    x = np.log(np.maximum(np.where(mask, H, 1.0), 1e-8))
    q = np.quantile(x[mask], pivot, method="nearest")
    h = x - q
    sd = np.sqrt(max((h[mask] ** 2).sum() / max(mask.sum(), 1), 1e-8))
    h = h / sd
    pos_max = max(np.where(mask & (h > 0), h, 0.0).max(), 1e-8)
    neg_min = min(np.where(mask & (h < 0), h, 0.0).min(), -1e-8)
    return np.where(mask, np.where(h > 0, h / pos_max, h / neg_min), 0.0)


def run(batch, cfg, **kw):
    keys = ("logp", "old_logp", "adv", "mask", "group", "entropy")
    return hapo_loss(**{k: batch[k] for k in keys}, config=cfg, **kw)


# --------------------------------------------------------------------------- the loss
@given(rng=seeds(), sign=st.sampled_from(["paper", "code"]), agg=st.sampled_from(aggregation.MODES),
       alpha=st.sampled_from([0.0, 1.0, 2.0]), beta=st.sampled_from([0.0, 0.5, 1.0]),
       dual=st.sampled_from([None, 3.0]), zone_adaptive=st.booleans())
def test_hand_gradient_matches_finite_differences(rng, sign, agg, alpha, beta, dual, zone_adaptive):
    """Gradient claim (derived): ∂loss/∂logp = −c·Â·r on the unclipped branch, 0 where the per-token clip or the
    dual-clip cap binds; h̃, ε_L, ε_R and the zone indicator are constant under a small change of logp (tokens
    within 1e-4 of a zone or clip edge are excluded: the loss jumps at the zone edge)."""
    batch = entropy_batch(rng)
    cfg = HAPOConfig(low_entropy_sign=sign, agg=agg, clip_alpha=alpha, adv_beta=beta, dual_clip_c=dual,
                     zone_uses_adaptive_clip=zone_adaptive)
    m = batch["mask"]
    h = token_entropy_signal(batch["entropy"], m, cfg)
    eL, eR = adaptive_clip(h, cfg.eps_low, cfg.eps_high, alpha)
    r = np.exp(clean(batch["logp"], m) - clean(batch["old_logp"], m))
    edges = [1 - eL / 2, 1 + eR / 2, 1 - cfg.eps_low / 2, 1 + cfg.eps_high / 2, 1 - eL, 1 + eR] + ([dual] if dual else [])
    assume(all((np.abs(r - e)[m] > 1e-4).all() for e in edges))
    _, dlogp = run(batch, cfg)
    fd = finite_difference(lambda lp: run(dict(batch, logp=lp), cfg)[0], clean(batch["logp"], m), m, h=1e-7)
    np.testing.assert_allclose(dlogp, fd, atol=1e-6 * max(1.0, np.abs(fd).max()), rtol=1e-5)
    assert (dlogp[~m] == 0).all()


@given(rng=seeds(), pivot=st.sampled_from([0.0, 0.5, 0.8, 1.0]))
def test_entropy_signal_range_and_extremes(rng, pivot):
    """Stated range: h̃ ∈ [−1, 1]; the highest-entropy token has h̃ = 1 (if above the pivot quantile), the lowest
    h̃ = −1 (if below it), and tokens at the ρ-quantile (NumPy's 'nearest') have h̃ = 0."""
    batch = entropy_batch(rng)
    m = batch["mask"]
    assume(m.any())
    h = token_entropy_signal(batch["entropy"], m, HAPOConfig(pivot=pivot))[m]
    x = x_of(batch)
    q = np.quantile(x, pivot, method="nearest")
    assert (h >= -1).all() and (h <= 1).all()
    assert (h[x == q] == 0).all()
    if x.max() > q:
        assert h[x == x.max()] == pytest.approx(1.0, rel=1e-15)
    if x.min() < q:
        assert h[x == x.min()] == pytest.approx(-1.0, rel=1e-15)
    np.testing.assert_allclose(h, np.where(x > q, (x - q) / max(x.max() - q, 1e-300),
                                           (x - q) / max(q - x.min(), 1e-300)), rtol=1e-12, atol=1e-15)


@given(rng=seeds())
def test_entropy_signal_monotone_in_entropy(rng):
    """Paper convention: h̃ is non-decreasing in the token entropy over the whole batch (one signal orders
    tokens from 'certain' to 'forking'); the official code's convention is not (it folds h ≤ 0 onto [0, 1])."""
    batch = entropy_batch(rng, B=4, T=8)
    m = batch["mask"]
    H = batch["entropy"][m]
    assume(len(np.unique(H)) >= 3)
    order = np.argsort(H, kind="stable")
    h = token_entropy_signal(batch["entropy"], m, HAPOConfig())[m][order]
    assert (np.diff(h) >= 0).all()
    hc = token_entropy_signal(batch["entropy"], m, HAPOConfig(low_entropy_sign="code"))[m][order]
    if (h < 0).any():  # tokens strictly below the pivot exist: the code's signal decreases there
        assert (np.diff(hc) < 0).any()


@given(rng=seeds(), pivot=st.sampled_from([0.5, 0.8]))
def test_code_sign_convention_maps_low_entropy_to_positive(rng, pivot):
    """Paper vs official code (named option low_entropy_sign='code'): the code divides h ≤ 0 by h_min < 0, so
    (i) the option reproduces a NumPy transcription of the official compute_entropy_h; (ii) h̃_code = |h̃_paper|
    ∈ [0, 1] for h ≤ 0 and is equal above the pivot; (iii) hence under the code no token ever gets a widened
    lower range (ε_L ≡ ε_L^b) and every low-entropy token (h < 0) gets a widened UPPER range, whereas the paper
    widens ε_L for exactly those tokens and leaves their ε_R at the base; (iv) the losses differ."""
    batch = entropy_batch(rng, B=5, T=8, scale=0.3)
    m = batch["mask"]
    assume(m.sum() >= 3)
    paper = token_entropy_signal(batch["entropy"], m, HAPOConfig(pivot=pivot))
    code = token_entropy_signal(batch["entropy"], m, HAPOConfig(pivot=pivot, low_entropy_sign="code"))
    np.testing.assert_allclose(code, official_h_hat(batch["entropy"], m, pivot), rtol=1e-9, atol=1e-12)
    low = m & (paper < 0)
    np.testing.assert_array_equal(code[m & (paper > 0)], paper[m & (paper > 0)])
    np.testing.assert_allclose(code[low], -paper[low], rtol=0, atol=0)
    assert (code[m] >= 0).all() and (code[m] <= 1).all()
    bL, bR = 0.2, 0.28
    eL_c, eR_c = adaptive_clip(code, bL, bR, 1.0)
    eL_p, eR_p = adaptive_clip(paper, bL, bR, 1.0)
    assert (eL_c[m] == bL).all()
    assert (eR_c[low] > bR).all() and (eR_p[low] == bR).all() and (eL_p[low] > bL).all()
    if low.any():
        a = dict(batch, adv=np.where(m, -1.0, np.nan), old_logp=np.where(m, batch["logp"] + 0.25, np.nan))  # r ≈ 0.78
        assert run(a, HAPOConfig(pivot=pivot))[0] != run(a, HAPOConfig(pivot=pivot, low_entropy_sign="code"))[0]


@given(h=st.lists(st.floats(-1.0, 1.0), min_size=1, max_size=20), alpha=st.floats(0.0, 3.0),
       bL=st.floats(0.0, 0.5), bR=st.floats(0.0, 0.5))
def test_clip_ranges_within_base_and_doubled(h, alpha, bL, bR):
    """Stated range of (D): ε_L ∈ [ε_L^b, (1 + α) ε_L^b], ε_R ∈ [ε_R^b, (1 + α) ε_R^b] (α = 1: [base, 2·base]);
    asymmetric: a token widens at most one side, the lower one iff h̃ < 0, the upper one iff h̃ > 0, linearly."""
    h = np.asarray(h)
    eL, eR = adaptive_clip(h, bL, bR, alpha)
    tol = 1e-12
    assert (eL >= bL - tol).all() and (eL <= (1 + alpha) * bL + tol).all()
    assert (eR >= bR - tol).all() and (eR <= (1 + alpha) * bR + tol).all()
    assert ((eL == bL) | (eR == bR)).all()
    np.testing.assert_allclose(eL, bL * (1 + alpha * np.maximum(-h, 0.0)), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(eR, bR * (1 + alpha * np.maximum(h, 0.0)), rtol=1e-12, atol=1e-15)


@given(h=st.lists(st.floats(-1.0, 1.0), min_size=1, max_size=20), beta=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
       data=st.data())
def test_redistribution_factor_range_and_rule(h, beta, data):
    """(C): factor ∈ [0, 1 + β] ⊂ [0, 2] (β ≤ 1); = 1 + βh̃ exactly for (h̃ > 0, r outside the neutral zone) and
    (h̃ ≤ 0, r inside), = 1 otherwise: high-entropy tokens are amplified off-zone, low-entropy ones damped in-zone."""
    h = np.asarray(h)
    zone = np.asarray(data.draw(st.lists(st.booleans(), min_size=h.size, max_size=h.size)))
    f = redistribution_factor(h, zone, beta)
    assert (f >= 0).all() and (f <= 1 + beta + 1e-15).all()
    want = np.where((h > 0) & ~zone, 1 + beta * h, np.where((h <= 0) & zone, 1 + beta * h, 1.0))
    np.testing.assert_array_equal(f, want)
    assert (f[(h > 0) & ~zone] >= 1).all() and (f[(h < 0) & zone] <= 1).all()


def test_low_entropy_tokens_can_be_pushed_down_further():
    """Abstract, Asymmetric Adaptive Clipping: 'aggressive probability reduction for noisy low-entropy tokens while
    enabling exploration for high-entropy tokens'. Tokens: the lowest-entropy one (h̃ = −1) with Â < 0 at
    r = 1 − 1.5ε_L^b, the highest-entropy one (h̃ = +1) with Â > 0 at r = 1 + 1.5ε_R^b. PPO with the base range
    clips both (zero gradient); HAPO keeps both (ε doubled) with weight −c·Â·r. The opposite directions get no
    extra room: the low-entropy token with Â > 0 at r = 1 + 1.5ε_R^b stays clipped."""
    cfg = HAPOConfig(adaptive_advantage=False, dual_clip_c=None)
    H = np.array([[0.01, 0.5, 5.0, 0.01]])
    r = np.array([[1 - 1.5 * 0.2, 1.0, 1 + 1.5 * 0.28, 1 + 1.5 * 0.28]])
    adv = np.array([[-1.0, 0.3, 1.0, 1.0]])
    logp = np.full((1, 4), -1.0)
    batch = {"logp": logp, "old_logp": logp - np.log(r), "adv": adv, "mask": np.ones((1, 4), bool), "entropy": H}
    _, d = hapo_loss(**batch, config=cfg)
    _, d_ppo = ppo_clip_loss(batch["logp"], batch["old_logp"], adv, batch["mask"], config=PPOConfig(eps_low=0.2, eps_high=0.28))
    c = 1 / 4
    assert d_ppo[0, 0] == 0 and d_ppo[0, 2] == 0
    assert d[0, 0] == pytest.approx(-c * adv[0, 0] * r[0, 0]) and d[0, 2] == pytest.approx(-c * adv[0, 2] * r[0, 2])
    assert d[0, 3] == 0


@given(rng=seeds(), agg=st.sampled_from(aggregation.MODES), dual=st.sampled_from([None, 3.0, 10.0]))
def test_components_off_is_ppo_dual_clip(rng, agg, dual):
    """With (C) and (D) switched off (the code's adaptive_advantage/adaptive_clip flags) HAPO is the PPO clipped
    surrogate with the base range and dual clip (rlspec.reference.ppo), whatever the entropies."""
    batch = entropy_batch(rng)
    cfg = HAPOConfig(adaptive_clip=False, adaptive_advantage=False, agg=agg, dual_clip_c=dual)
    loss, d = run(batch, cfg)
    lp, dp = ppo_clip_loss(batch["logp"], batch["old_logp"], batch["adv"], batch["mask"], group=batch["group"],
                           config=PPOConfig(eps_low=0.2, eps_high=0.28, dual_clip_c=dual, agg=agg))
    assert loss == pytest.approx(lp, rel=1e-12, abs=1e-15)
    np.testing.assert_allclose(d, dp, rtol=1e-12, atol=1e-15)


@given(rng=seeds(), H0=st.floats(0.0, 5.0))
def test_without_entropy_every_token_is_at_the_pivot(rng, H0):
    """Defined case: entropy=None means h̃ ≡ 0 (every token at the pivot): the loss equals HAPO on a batch whose
    entropies are all equal (all tokens at the quantile) and the PPO clip-higher loss with dual clip c = 3."""
    batch = entropy_batch(rng)
    cfg = HAPOConfig()
    none = hapo_loss(batch["logp"], batch["old_logp"], batch["adv"], batch["mask"], config=cfg)
    const = run(dict(batch, entropy=np.full(batch["mask"].shape, H0)), cfg)
    ppo = ppo_clip_loss(batch["logp"], batch["old_logp"], batch["adv"], batch["mask"],
                        config=PPOConfig(eps_low=0.2, eps_high=0.28, dual_clip_c=3.0))
    for got in (none, const):
        assert got[0] == pytest.approx(ppo[0], rel=1e-12, abs=1e-15)
        np.testing.assert_allclose(got[1], ppo[1], rtol=1e-12, atol=1e-15)


@given(r=st.floats(0.01, 100.0), adv=st.floats(-5.0, -0.01), H=st.floats(0.0, 3.0), c=st.floats(1.5, 10.0))
def test_dual_clip_bounds_the_loss(r, adv, H, c):
    """Dual clip (the code's clip_ratio_c): for Â < 0 the token loss never exceeds −c·Â, Â the redistributed
    advantage; the token here sits at or below the pivot (h̃ ≤ 0), where redistribution only shrinks |Â|, so
    −c·A bounds it too; the gradient is 0 once r > c."""
    one = np.ones((1, 2), bool)
    batch = {"logp": np.array([[-1.0, -1.0]]), "old_logp": np.array([[-1.0 - np.log(r), -1.0]]),
             "adv": np.array([[adv, 1.0]]), "mask": one, "entropy": np.array([[H, 1.0]])}
    cfg = HAPOConfig(dual_clip_c=c, agg="seq-mean-token-sum")
    loss, d = hapo_loss(**batch, config=cfg)
    loss_token0 = loss - hapo_loss(**dict(batch, adv=np.array([[0.0, 1.0]])), config=cfg)[0]
    assert loss_token0 <= -c * adv * (1 + 1e-12)
    if r > c * (1 + 1e-9):
        assert d[0, 0] == 0


@given(rng=seeds(), agg=st.sampled_from(aggregation.MODES[:4]))
def test_sharding_with_full_batch_entropy_stats(rng, agg):
    """Batch coupling, and its remedy: with the full batch's entropy statistics and the global normalizer, shard
    losses and gradients add up to the full-batch ones (the quantile and h_max/h_min are batch statistics)."""
    batch = entropy_batch(rng, B=int(rng.integers(2, 7)))
    m = batch["mask"]
    norm = aggregation.global_normalizer(m, agg)
    assume(norm > 0)
    stats = entropy_statistics(batch["entropy"], m, 0.8)
    full = run(batch, HAPOConfig(agg=agg))
    cut = int(rng.integers(1, m.shape[0]))
    total, grad = 0.0, np.zeros(m.shape)
    for rows in (slice(0, cut), slice(cut, None)):
        part = {k: v[rows] for k, v in batch.items()}
        cfg = HAPOConfig(agg=agg, normalizer=norm, const=float(m.shape[1]) if agg == "seq-mean-token-sum-norm" else None)
        loss, d = run(part, cfg, entropy_stats=stats)
        total, grad[rows] = total + loss, d
    assert total == pytest.approx(full[0], rel=1e-12, abs=1e-14)
    np.testing.assert_allclose(grad, full[1], rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------- token-level group average
@st.composite
def outcome(draw, max_B=10, max_T=6):
    rng = draw(seeds())
    B, T = draw(st.integers(1, max_B)), draw(st.integers(1, max_T))
    mask = np.arange(T)[None, :] < rng.integers(0, T + 1, size=B)[:, None]
    R = rng.integers(0, 2, size=B).astype(float) if rng.random() < 0.5 else rng.normal(size=B)
    return R, rng.integers(0, max(1, B // 3), size=B) - 2, mask


@given(batch=outcome())
def test_token_level_advantages_sum_to_zero_per_group(batch):
    """(B) Token Level Group Average: within each group the advantages of all valid tokens sum to 0,
    Σ_i L_i A_i = 0 (so under token-mean aggregation the group's on-policy gradient weights cancel); GRPO's
    sequence-level z-scores do not, once lengths differ (a rollout of 1 token vs one of 3)."""
    R, g, M = batch
    A = hapo_advantage(R, g, M)
    for k in np.unique(g):
        assert abs(A[g == k].sum()) <= 1e-9 * max(1.0, np.abs(A[g == k]).sum())
    M2 = np.array([[1, 0, 0], [1, 1, 1]], bool)
    assert abs(grpo_advantage(np.array([1.0, 0.0]), np.array([0, 0]), M2).sum()) > 0.5
    assert abs(hapo_advantage(np.array([1.0, 0.0]), np.array([0, 0]), M2).sum()) < 1e-12


@given(batch=outcome())
def test_token_level_std_is_one(batch):
    """With ε = 0 the token advantages of a group have mean 0 and population std 1 over its valid tokens
    (unless every counted rollout has the same reward, then all are 0)."""
    R, g, M = batch
    A = hapo_advantage(R, g, M, HAPOAdvantageConfig(eps=0.0))
    for k in np.unique(g):
        vals = A[g == k][M[g == k]]
        if vals.size == 0:
            continue
        if len(np.unique(R[(g == k) & M.any(axis=1)])) == 1:
            assert (vals == 0).all()
        else:
            assert vals.std() == pytest.approx(1.0, rel=1e-12)


@given(rng=seeds(), L=st.integers(1, 6), G=st.integers(1, 5), P=st.integers(1, 4))
def test_equal_lengths_recover_population_grpo(rng, L, G, P):
    """'Non-biased treatment': when every rollout has the same length the token-level statistics are the
    sequence-level ones, so the advantage equals GRPO's with the population std (ddof = 0) and the same ε."""
    R = rng.normal(size=G * P)
    g = np.repeat(np.arange(P), G)
    M = np.ones((G * P, L), bool)
    np.testing.assert_allclose(hapo_advantage(R, g, M), grpo_advantage(R, g, M, GRPOConfig(ddof=0, eps=1e-6)),
                               rtol=1e-12, atol=1e-14)


@given(batch=outcome(), a=st.floats(0.1, 10.0), b=st.floats(-5.0, 5.0))
def test_affine_invariance_in_rewards(batch, a, b):
    """R → aR + b (a > 0) leaves the token-level advantage unchanged (ε = 0)."""
    R, g, M = batch
    cfg = HAPOAdvantageConfig(eps=0.0)
    np.testing.assert_allclose(hapo_advantage(a * R + b, g, M, cfg), hapo_advantage(R, g, M, cfg), rtol=1e-8, atol=1e-9)


def test_degenerate_groups_are_zero():
    """Defined cases: a singleton group, an all-equal group, a group whose rollouts have no valid token, and
    a group whose only differing reward belongs to a fully masked rollout all get advantage 0."""
    R = np.array([1.0, 0.5, 0.5, 2.0, 3.0, 1.0, 0.0])
    g = np.array([0, 1, 1, 2, 2, 3, 3])
    M = np.array([[1, 1], [1, 0], [1, 1], [0, 0], [0, 0], [1, 0], [0, 0]], bool)
    assert (hapo_advantage(R, g, M) == 0).all()


def test_code_fallback_to_grpo():
    """Official code only (fallback_threshold=5.0): a group whose token-level score reaches |A| ≥ 5 takes verl's
    GRPO advantage (sample std + 1e-6). Group: one 1-token rollout with R = 1 and one 24-token rollout with R = 0:
    μ = 1/25, σ = √24/25, so the short rollout scores 24/√24 = √24 ≈ 4.9 < 5 (kept); with a 30-token partner it
    scores √30 ≈ 5.48 ≥ 5 and the group falls back to GRPO of {1, 0}: ±0.5/(std₁ + 1e-6) ≈ ±0.7071."""
    g = np.array([0, 0])
    for L, fallback in ((24, False), (30, True)):
        M = np.zeros((2, L), bool)
        M[0, 0] = True
        M[1, :] = True
        A = hapo_advantage(np.array([1.0, 0.0]), g, M, HAPOAdvantageConfig(fallback_threshold=5.0))
        paper = hapo_advantage(np.array([1.0, 0.0]), g, M)
        assert paper[0, 0] == pytest.approx(np.sqrt(L) / (1 + 1e-6 * (L + 1) / np.sqrt(L)), rel=1e-9)
        if fallback:
            sd = np.std([1.0, 0.0], ddof=1)
            assert A[0, 0] == pytest.approx(0.5 / (sd + 1e-6)) and A[1, 0] == pytest.approx(-0.5 / (sd + 1e-6))
        else:
            np.testing.assert_array_equal(A, paper)


# --------------------------------------------------------------------------- adaptive temperature
def prev_step(rng):
    B, T = 4, 6
    m = np.arange(T)[None, :] < rng.integers(1, T + 1, size=B)[:, None]
    return np.where(m, 0.05 + rng.gamma(0.7, 1.0, size=(B, T)), np.nan), m


@given(rng=seeds(), tau=st.floats(0.05, 2.0))
def test_temperature_positive_iff_tau_z_above_minus_one(rng, tau):
    """(A), paper form T = T_base(1 + τz), z = (log H − q̂)/σ̂ with the previous step's q̂ (nearest ρ-quantile) and
    σ̂ (std): T > 0 exactly when τz > −1; a token below that is rejected rather than given a temperature ≤ 0."""
    pH, pm = prev_step(rng)
    x = np.log(pH[pm])
    q, s = np.quantile(x, 0.8, method="nearest"), x.std()
    assume(s > 1e-3)
    z_cut = -1.0 / tau
    ok = np.exp(q + s * np.array([[z_cut * 0.99, 0.0, 1.0]]))
    assume(ok.min() > 1e-8)  # above the log floor, so that z is exactly the one constructed
    T = adaptive_temperature(ok, np.ones((1, 3), bool), pH, pm, HAPOTemperatureConfig(tau=tau))
    assert (T > 0).all()
    np.testing.assert_allclose(T, 1 + tau * np.array([[z_cut * 0.99, 0.0, 1.0]]), rtol=1e-9, atol=1e-9)
    bad = np.exp(q + s * np.array([[z_cut * 1.01]]))
    assume(bad[0, 0] > 1e-8)
    with pytest.raises(RLSpecValueError, match="entropy"):
        adaptive_temperature(bad, np.ones((1, 1), bool), pH, pm, HAPOTemperatureConfig(tau=tau))


@given(rng=seeds())
def test_temperature_rises_with_entropy(rng):
    """Abstract (A): 'promoting exploration at high-entropy tokens while preserving coherence at low-entropy ones':
    T is strictly increasing in H, equals T_base at the previous step's pivot quantile, is below T_base under it."""
    pH, pm = prev_step(rng)
    q = np.quantile(np.log(pH[pm]), 0.8, method="nearest")
    H = np.sort(np.exp(q + rng.normal(scale=0.5, size=(1, 12))), axis=1)
    H[0, 5] = np.exp(q)
    H = np.sort(H, axis=1)
    T = adaptive_temperature(H, np.ones_like(H, bool), pH, pm)
    assert (np.diff(T[0])[np.diff(H[0]) > 0] > 0).all()
    assert T[0][H[0] == np.exp(q)] == pytest.approx(1.0, abs=1e-12)
    assert (T[0][H[0] < np.exp(q) * (1 - 1e-9)] < 1.0).all()


@given(rng=seeds(), tau=st.floats(0.01, 0.5))
def test_code_temperature_bounds_and_sign(rng, tau):
    """Official sampler (form='code'): T = T_base(1 + τ·clip(h̃, −1, 1)) ∈ [T_base(1 − τ), T_base(1 + τ)]. With the
    code's own sign convention h̃ ≥ 0 everywhere, so no token is ever cooled (low-entropy tokens are heated as
    much as high-entropy ones of the same |h|) — the paper form cools them."""
    pH, pm = prev_step(rng)
    H = np.exp(rng.normal(scale=1.5, size=(3, 7)))
    M = np.ones_like(H, bool)
    for sign in ("paper", "code"):
        T = adaptive_temperature(H, M, pH, pm, HAPOTemperatureConfig(form="code", tau=tau, low_entropy_sign=sign))
        assert (T >= 1 - tau - 1e-12).all() and (T <= 1 + tau + 1e-12).all()
    Tc = adaptive_temperature(H, M, pH, pm, HAPOTemperatureConfig(form="code", tau=tau, low_entropy_sign="code"))
    Tp = adaptive_temperature(H, M, pH, pm, HAPOTemperatureConfig(tau=0.01))  # paper form, τ small enough: T > 0
    q = np.quantile(np.log(pH[pm]), 0.8, method="nearest")
    below = np.log(H) < q
    assert (Tc >= 1.0).all()
    assert (Tc[below] > 1.0).all() and (Tp[below] < 1.0).all()


def test_first_step_has_no_statistics():
    """No previous step (no valid previous token): the temperature is T_base (the code's first step), 0 at padding."""
    H = np.array([[0.1, 2.0, np.nan]])
    M = np.array([[True, True, False]])
    T = adaptive_temperature(H, M, np.full((2, 2), np.nan), np.zeros((2, 2), bool), HAPOTemperatureConfig(t_base=0.7))
    np.testing.assert_array_equal(T, [[0.7, 0.7, 0.0]])


@pytest.mark.parametrize("kw", [{"pivot": 1.5}, {"low_entropy_sign": "other"}, {"dual_clip_c": 1.0}, {"eps_low": -0.1}])
def test_bad_config_rejected(kw):
    """Bad input: out-of-range hyperparameters raise naming the field."""
    with pytest.raises(RLSpecValueError, match=next(iter(kw))):
        HAPOConfig(**kw)


def test_negative_entropy_rejected():
    """Bad input: a negative entropy at a valid position raises naming 'entropy'; padding is never read."""
    one = np.ones((1, 2), bool)
    z = np.zeros((1, 2))
    with pytest.raises(RLSpecValueError, match="entropy"):
        hapo_loss(z, z, z, one, entropy=np.array([[0.3, -0.1]]))
    hapo_loss(z, z, z, np.array([[True, False]]), entropy=np.array([[0.3, np.nan]]))
