"""Properties of R²VPO's ratio-variance penalty and its dual update (arXiv 2601.03320; reconstructed form).

ℓ = −(r Â − λ (r − 1)²), gradient −r (Â − 2λ (r − 1)); λ ← max(0, λ + η (V̂ − δ)). Exact claims are
checked by enumeration on small categorical distributions: a batch that holds each action a in
proportion to π_old(a) (counts k_a / N) makes every token-mean an exact expectation under π_old.
Expected values are computed here from independent closed forms (χ² = Σ (p − q)²/q, KL, TV, the
aggregation coefficients, the PPO reference), never read back from the R²VPO code under test.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from properties.strategies import finite_difference, policy_batches, ragged_mask, seeds
from rlspec.reference import aggregation
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.ppo import PPOConfig, ppo_clip_loss
from rlspec.reference.r2vpo import (
    R2VPOConfig,
    R2VPOState,
    dual_update,
    init_state,
    r2vpo_loss,
    ratio_variance,
    tabular_optimal_ratio,
)

lams = st.sampled_from([0.0, 0.1, 1.0, 4.0])


def run(batch, cfg, lam=None):
    return r2vpo_loss(batch["logp"], batch["old_logp"], batch["adv"], batch["mask"], config=cfg,
                      group=batch.get("group"), lam=lam)


def clean(batch, key):
    return np.where(batch["mask"], batch[key], 0.0)


def enumerated(counts, log_pi, log_q, A):
    """A batch of N = Σ counts one-token rows, action a repeated counts[a] times (its π_old share)."""
    acts = np.repeat(np.arange(len(counts)), counts)
    col = lambda v: np.asarray(v, dtype=np.float64)[acts][:, None]  # noqa: E731
    return acts, {"logp": col(log_pi), "old_logp": col(log_q), "adv": col(A), "mask": np.ones((acts.size, 1), bool)}


def softmax(theta):
    e = np.exp(theta - theta.max())
    return e / e.sum()


def logit_gradient(dlogp, acts, pi):
    """∂loss/∂θ for softmax logits θ: Σ_i dlogp_i (e_{a_i} − π)."""
    onehot = (acts[:, None] == np.arange(pi.size)[None, :]).astype(np.float64)
    return dlogp[:, 0] @ (onehot - pi[None, :])


@given(batch=policy_batches(max_B=5, max_T=5), lam=lams, agg=st.sampled_from(aggregation.MODES),
       clamp=st.sampled_from([None, 20.0, 0.5]))
def test_hand_gradient_matches_finite_differences(batch, lam, agg, clamp):
    """Gradient (derived): ∂loss/∂logp = −c·r·(Â − 2λ(r − 1)) equals the central finite difference (float64), for
    every aggregation mode, with and without the log-ratio clamp, on ragged batches with NaN/inf padding."""
    cfg = R2VPOConfig(agg=agg, log_ratio_clamp=clamp)
    if clamp is not None:  # the clamp is a kink: keep FD steps away from it
        m = batch["mask"]
        x = clean(batch, "logp") - clean(batch, "old_logp")
        assume(np.all(np.abs(np.abs(x[m]) - clamp) > 1e-4))
    _, dlogp = run(batch, cfg, lam)
    fd = finite_difference(lambda lp: run(dict(batch, logp=lp), cfg, lam)[0], batch["logp"], batch["mask"])
    scale = max(1.0, np.abs(fd).max())
    np.testing.assert_allclose(dlogp, fd, atol=1e-6 * scale, rtol=1e-5)
    assert (dlogp[~batch["mask"]] == 0).all()


@given(rng=seeds(), K=st.integers(2, 6), N=st.integers(6, 40))
def test_ratio_variance_is_chi2(rng, K, N):
    """Abstract (the variance of the policy ratio) with the identity E_{π_old}[r] = 1: Var_{π_old}(r) =
    E_{π_old}[(r − 1)²] = χ²(π ‖ π_old) = Σ_a (π_a − q_a)²/q_a, exactly, on a categorical distribution.
    (a) enumerated batch, q_a = k_a/N: the token-mean V̂ is the exact expectation;
    (b) arbitrary q with probability weights; the centred variance Σq r² − (Σq r)² agrees since Σ q r = 1."""
    assume(N >= K)
    counts = 1 + rng.multinomial(N - K, np.ones(K) / K)
    q = counts / counts.sum()
    pi = rng.dirichlet(np.ones(K) * rng.choice([0.3, 1.0, 5.0]))
    pi = np.maximum(pi, 1e-12) / np.maximum(pi, 1e-12).sum()
    chi2 = float(((pi - q) ** 2 / q).sum())
    _, b = enumerated(counts, np.log(pi), np.log(q), np.zeros(K))
    assert ratio_variance(b["logp"], b["old_logp"], b["mask"]) == pytest.approx(chi2, rel=1e-10, abs=1e-14)
    q2 = rng.dirichlet(np.ones(K))
    q2 = np.maximum(q2, 1e-6) / np.maximum(q2, 1e-6).sum()
    r = pi / q2
    chi2b = float(((pi - q2) ** 2 / q2).sum())
    assert float(q2 @ r) == pytest.approx(1.0, rel=1e-12)
    assert float(q2 @ r**2 - (q2 @ r) ** 2) == pytest.approx(chi2b, rel=1e-8, abs=1e-12)
    v = ratio_variance(np.log(pi)[None, :], np.log(q2)[None, :], np.ones((1, K), bool), weights=q2[None, :])
    assert v == pytest.approx(chi2b, rel=1e-10, abs=1e-14)


@given(rng=seeds(), K=st.integers(2, 6), conc=st.sampled_from([0.5, 2.0, 20.0]))
def test_chi2_bounds_trust_region(rng, K, conc):
    """Abstract: constraining the ratio variance is a principled (local) approximation of a trust region. Our
    precise form: with V = Var_{π_old}(r) measured by the reference, KL(π‖π_old) ≤ log(1 + V) ≤ V and
    TV(π, π_old) ≤ √V / 2 (so V ≤ δ bounds both); and locally V = 2·KL·(1 + O(t)) where t = max_a |π_a/π_old,a − 1|:
    |V/(2 KL) − 1| ≤ t for t ∈ {0.2, 0.05, 0.01} (the Taylor series of (1+x)log(1+x) gives about t/2)."""
    q = rng.dirichlet(np.ones(K) * conc)
    q = np.maximum(q, 1e-4) / np.maximum(q, 1e-4).sum()
    pi = rng.dirichlet(np.ones(K) * conc)
    pi = np.maximum(pi, 1e-4) / np.maximum(pi, 1e-4).sum()
    ones = np.ones((1, K), bool)

    def V(p):
        return ratio_variance(np.log(p)[None, :], np.log(q)[None, :], ones, weights=q[None, :], log_ratio_clamp=None)

    kl = float(pi @ np.log(pi / q))
    tv = 0.5 * float(np.abs(pi - q).sum())
    v = V(pi)
    assert kl <= np.log1p(v) + 1e-12 and np.log1p(v) <= v + 1e-15
    assert tv <= 0.5 * np.sqrt(v) + 1e-12
    d = rng.normal(size=K) * q
    d -= d.sum() * q / q.sum()  # Σ d = 0 keeps a distribution
    for t in (0.2, 0.05, 0.01):
        p = q + t * d / np.abs(d / q).max()  # relative deviations x_a = p_a/q_a − 1, max |x| = t
        two_kl = 2 * float(p @ np.log(p / q))
        assert abs(V(p) / two_kl - 1.0) <= t  # Σq x² vs Σq(x² − x³/3 + …): relative gap ≤ ~t/2


def test_dual_update_drives_variance_to_target():
    """Primal–dual claim (abstract): alternating primal steps on the R²VPO loss (softmax logits of a 4-armed
    bandit, exact expectations by enumeration, 10 gradient steps per dual step) with λ ← max(0, λ + η(V̂ − δ))
    drives the ratio variance χ²(π‖π_old) to the target δ = 0.04, and λ to the tabular fixed point
    λ* = std_{π_old}(A) / (2√δ) (module docstring), from λ₀ = 0 where the unconstrained optimum overshoots."""
    counts = np.array([8, 6, 4, 2])
    q = counts / counts.sum()
    A = np.array([0.0, 1.0, -0.5, 2.0])
    delta = 0.04
    lam_star = np.sqrt(q @ (A - q @ A) ** 2) / (2 * np.sqrt(delta))
    cfg = R2VPOConfig(delta=delta, lr_dual=1.0, lam_init=0.0, log_ratio_clamp=None)
    state = init_state(cfg)
    theta = np.log(q)
    history = []
    for _ in range(300):
        for _ in range(10):
            pi = softmax(theta)
            acts, b = enumerated(counts, np.log(pi), np.log(q), A)
            _, dlogp = run(b, cfg, lam=state.lam)
            theta = theta - 0.1 * logit_gradient(dlogp, acts, pi)
        pi = softmax(theta)
        chi2 = float(((pi - q) ** 2 / q).sum())
        _, b = enumerated(counts, np.log(pi), np.log(q), A)
        state = dual_update(state, ratio_variance(b["logp"], b["old_logp"], b["mask"], log_ratio_clamp=None), cfg)
        history.append(chi2)
    assert max(history[:20]) > 1.05 * delta  # the multiplier had something to correct
    assert abs(history[-1] - delta) < 1e-5
    assert state.lam == pytest.approx(lam_star, rel=1e-4)


@given(lam=st.floats(0.0, 100.0), v=st.floats(0.0, 10.0), delta=st.floats(1e-4, 1.0), eta=st.floats(1e-3, 10.0),
       rng=seeds())
def test_dual_update_rule(lam, v, delta, eta, rng):
    """Dual step: λ' = max(0, λ + η(V̂ − δ)) ≥ 0; λ rises iff V̂ > δ (and falls or stays at 0 otherwise); the update
    is pure (the input state is unchanged). A stale batch (larger ratio drift) has a larger V̂ than a fresh one
    drawn from the same noise, and so moves λ up more."""
    cfg = R2VPOConfig(delta=delta, lr_dual=eta)
    s = R2VPOState(lam=lam)
    s2 = dual_update(s, v, cfg)
    assert s.lam == lam
    assert s2.lam >= 0.0
    assert s2.lam == pytest.approx(max(0.0, lam + eta * (v - delta)), rel=1e-12, abs=1e-15)
    if v > delta:
        assert s2.lam > lam
    else:
        assert s2.lam <= lam
    z = rng.normal(size=(4, 6))
    m = np.ones((4, 6), bool)
    logp = -rng.gamma(2.0, 1.0, size=(4, 6))
    fresh = ratio_variance(logp, logp - 0.05 * z, m)
    stale = ratio_variance(logp, logp - 0.5 * z, m)
    assert stale > fresh
    assert dual_update(s, stale, cfg).lam >= dual_update(s, fresh, cfg).lam


@given(rng=seeds(), K=st.integers(2, 5), N=st.integers(10, 60), slack=st.floats(1.0, 10.0))
def test_tabular_optimum_is_stationary(rng, K, N, slack):
    """Tabular optimum (derived from the Lagrangian): over ratios with E_old[r] = 1 the maximiser of
    E_old[r A − λ(r − 1)²] is r*_a = 1 + (A_a − Ā)/(2λ), feasible for λ ≥ max_a(Ā − A_a)/2. At π* = π_old·r* the
    R²VPO loss has zero gradient w.r.t. softmax logits, every feasible perturbation raises the loss (it is
    concave in r), and χ²(π*‖π_old) = Var_old(A)/(4λ²)."""
    assume(N >= K)
    counts = 1 + rng.multinomial(N - K, np.ones(K) / K)
    q = counts / counts.sum()
    A = rng.normal(size=K)
    Abar = float(q @ A)
    lam = slack * max(1e-3, float(np.max(Abar - A)) / 2)
    r_star = 1.0 + (A - Abar) / (2 * lam)
    np.testing.assert_allclose(tabular_optimal_ratio(A, q, lam), r_star, rtol=1e-13)
    pi = q * r_star
    assume(pi.min() > 1e-9)
    cfg = R2VPOConfig(log_ratio_clamp=None)
    acts, b = enumerated(counts, np.log(pi), np.log(q), A)
    loss, dlogp = run(b, cfg, lam=lam)
    np.testing.assert_allclose(logit_gradient(dlogp, acts, pi), 0.0, atol=1e-12 * max(1.0, np.abs(A).max()))
    assert float(((pi - q) ** 2 / q).sum()) == pytest.approx(float(q @ (A - Abar) ** 2) / (4 * lam**2), rel=1e-9)
    for _ in range(5):
        theta = np.log(pi) + rng.normal(scale=0.1, size=K)
        p2 = softmax(theta)
        _, b2 = enumerated(counts, np.log(p2), np.log(q), A)
        assert run(b2, cfg, lam=lam)[0] >= loss - 1e-12


@given(adv=st.floats(0.05, 5.0), sign=st.sampled_from([-1.0, 1.0]), lam=st.floats(0.05, 10.0),
       f1=st.floats(0.01, 0.98), f2=st.floats(0.01, 0.98))
def test_stale_samples_are_down_weighted(adv, sign, lam, f1, f2):
    """Abstract (down-weights stale data instead of discarding it), our reading: a sample whose ratio has drifted
    in the direction its advantage asks for, r = 1 + sign(Â)·d (what training does to stale data it has since
    learned from), keeps the gradient −r·Ã with Ã = Â − 2λ(r − 1): its weight relative to the importance-weighted
    PG, Ã/Â = 1 − 2λd/|Â|, is < 1, strictly decreasing in the drift d, zero at r* = 1 + Â/(2λ) and negative
    beyond (pulled back). PPO-clip (ε = 0.2) instead zeroes every such sample once d > 0.2."""
    A = sign * adv
    d_star = adv / (2 * lam)
    d_cap = d_star if sign > 0 else min(d_star, 0.999)  # r = 1 − d must stay > 0
    d1, d2 = sorted((f1 * d_cap, f2 * d_cap))
    assume(d2 - d1 > 1e-6 * d_cap)
    cfg = R2VPOConfig(log_ratio_clamp=None)
    m = np.ones((1, 1), bool)

    def rel_weight(d):
        r = 1.0 + sign * d
        _, g = r2vpo_loss(np.log([[r]]), np.zeros((1, 1)), np.full((1, 1), A), m, config=cfg, lam=lam)
        return float(g[0, 0] / (-r * A))  # relative to the IS policy-gradient weight −r·Â

    w1, w2 = rel_weight(d1), rel_weight(d2)
    assert 1.0 > w1 > w2 > 0.0
    assert w1 == pytest.approx(1 - 2 * lam * d1 / adv, rel=1e-9, abs=1e-12)
    if sign > 0 or d_star < 0.999:
        assert abs(rel_weight(d_star)) < 1e-9
        if sign > 0:
            assert rel_weight(1.5 * d_star) < 0
    d = max(d2, 0.25)
    if sign > 0 or d < 0.999:
        r = 1.0 + sign * d
        _, g_ppo = ppo_clip_loss(np.log([[r]]), np.zeros((1, 1)), np.full((1, 1), A), m, config=PPOConfig())
        assert g_ppo[0, 0] == 0.0


@given(rng=seeds(), lam=st.floats(0.01, 5.0))
def test_no_dead_zone_unlike_ppo(rng, lam):
    """Abstract ('soft brake' that preserves the gradient of high-return, high-divergence actions): with Â ≠ 0
    no valid token has an exactly zero gradient (zero only at the single point r* = 1 + Â/(2λ)), while PPO-clip
    (ε = 0.2) zeroes a whole band of the same batch (log-ratio spread N(0, 1))."""
    B, T = 8, 16
    m = ragged_mask(rng, B, T, p_empty=0.0)
    logp = -rng.gamma(2.0, 1.0, size=(B, T))
    x = rng.normal(size=(B, T))
    adv = rng.normal(size=(B, T))
    adv = np.where(np.abs(adv) < 1e-3, 1.0, adv)
    r = np.exp(x)
    assume(np.all(np.abs(adv - 2 * lam * (r - 1))[m] > 1e-9))
    cfg = R2VPOConfig(log_ratio_clamp=None)
    _, d = r2vpo_loss(np.where(m, logp, np.nan), logp - x, adv, m, config=cfg, lam=lam)
    _, d_ppo = ppo_clip_loss(logp, logp - x, adv, m, config=PPOConfig())
    assert (d[m] != 0).all()
    assert (d_ppo[m] == 0).mean() > 0


@given(batch=policy_batches(max_B=6, max_T=6), agg=st.sampled_from(aggregation.MODES[:4]))
def test_lambda_zero_is_unclipped_is_surrogate(batch, agg):
    """λ = 0 (the constraint inactive) is the unclipped token-IS surrogate: loss = −Σ c·r·Â, dlogp = −c·r·Â."""
    m = batch["mask"]
    loss, dlogp = run(batch, R2VPOConfig(agg=agg, log_ratio_clamp=None), lam=0.0)
    r = np.exp(clean(batch, "logp") - clean(batch, "old_logp"))
    c = aggregation.coefficients(m, agg)
    A = clean(batch, "adv")
    assert loss == pytest.approx(float(-(c * r * A).sum()), rel=1e-12, abs=1e-14)
    np.testing.assert_allclose(dlogp, -c * r * A, rtol=1e-12, atol=1e-15)


@given(batch=policy_batches(max_B=6, max_T=6), lam=lams, agg=st.sampled_from(aggregation.MODES[:4]))
def test_on_policy_gradient_is_vanilla_pg(batch, lam, agg):
    """On-policy (r ≡ 1) the penalty's gradient 2λ(r − 1) vanishes: dlogp = −c·Â for every λ, PPO's gradient there,
    and the loss is −Σ c·Â (zero variance)."""
    on = dict(batch, old_logp=batch["logp"].copy())
    loss, dlogp = run(on, R2VPOConfig(agg=agg), lam)
    _, d_ppo = ppo_clip_loss(on["logp"], on["old_logp"], on["adv"], on["mask"], config=PPOConfig(agg=agg))
    c = aggregation.coefficients(batch["mask"], agg)
    np.testing.assert_allclose(dlogp, -c * clean(batch, "adv"), rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(dlogp, d_ppo, rtol=1e-13, atol=1e-16)
    assert loss == pytest.approx(float(-(c * clean(batch, "adv")).sum()), rel=1e-12, abs=1e-15)


@given(batch=policy_batches(max_B=6, max_T=6), lam=lams)
def test_penalty_equals_lambda_times_variance_estimate(batch, lam):
    """With the default token-mean aggregation the loss is −(mean_t r Â − λ·V̂): the penalty is λ times the variance
    estimate that the dual step reads (V̂ = token-mean of (r − 1)², computed here with expm1)."""
    m = batch["mask"]
    assume(m.any())
    cfg = R2VPOConfig(log_ratio_clamp=None)
    x = clean(batch, "logp") - clean(batch, "old_logp")
    loss, _ = run(batch, cfg, lam)
    v_hat = float((np.expm1(x) ** 2)[m].mean())
    assert ratio_variance(batch["logp"], batch["old_logp"], m, log_ratio_clamp=None) == pytest.approx(v_hat, rel=1e-12)
    expected = -float((np.exp(x) * clean(batch, "adv"))[m].mean()) + lam * v_hat
    assert loss == pytest.approx(expected, rel=1e-11, abs=1e-12)


def test_bad_input_raises():
    """Bad input: λ, λ₀ ≥ 0 finite; δ, η_λ > 0; the state must be an R2VPOState; V̂ ≥ 0; empty masks give V̂ = 0."""
    b = {"logp": np.zeros((1, 2)), "old_logp": np.zeros((1, 2)), "adv": np.ones((1, 2)), "mask": np.ones((1, 2), bool)}
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(RLSpecValueError, match="lam"):
            run(b, R2VPOConfig(), lam=bad)
        with pytest.raises(RLSpecValueError, match="lam_init"):
            R2VPOConfig(lam_init=bad)
    for field in ("delta", "lr_dual"):
        with pytest.raises(RLSpecValueError, match=field):
            R2VPOConfig(**{field: 0.0})
    with pytest.raises(RLSpecValueError, match="state"):
        dual_update(1.0, 0.1)
    with pytest.raises(RLSpecValueError, match="var_hat"):
        dual_update(R2VPOState(lam=1.0), -0.1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        R2VPOState(lam=1.0).lam = 2.0
    assert ratio_variance(np.zeros((2, 3)), np.ones((2, 3)), np.zeros((2, 3), bool)) == 0.0
    loss, d = run(dict(b, mask=np.zeros((1, 2), bool)), R2VPOConfig(), 1.0)
    assert loss == 0.0 and (d == 0).all()
