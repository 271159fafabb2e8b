"""Properties of CAPO's curvature-aware token masking (arXiv 2510.00819; estimators read in the official code).

m_F = ½η²(vᵀu)², m_H = η⟨g, P(g)⟩ + ½η²A[(vᵀu)² − uᵀFu], u = P(g)h, v = e_a − π, π = softmax(Wh), g = A v hᵀ.
Expected values come from an independent route: the exact softmax-linear policy (scipy.special), derivatives by
central finite differences, expectations by enumerating the vocabulary, Adam from torch.optim.Adam, PPO from
rlspec.reference.ppo. Nothing asserted here is a value the CAPO module computed for itself.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import log_softmax, softmax

from properties.strategies import seeds
from rlspec.reference import aggregation
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.capo_curvature import (
    CAPOCurvatureConfig,
    accept,
    adam_direction,
    adam_moments_update,
    capo_curvature_loss,
    capo_curvature_mask,
    fisher_shift,
    hessian_shift,
    logit_shift,
    make_inputs,
    score_direction,
    softmax_policy,
    token_gradient,
)
from rlspec.reference.ppo import PPOConfig, ppo_clip_loss

HEAD_KEYS = ("h", "W", "actions", "adam_m", "adam_v", "adam_step")


def head(rng, K=None, d=None, scale=1.0):
    """A small softmax-linear head with logits of order one: W (K, d), one hidden state h (d,), a ∼ π, A."""
    K = int(rng.integers(2, 7)) if K is None else K
    d = int(rng.integers(1, 5)) if d is None else d
    W = rng.normal(size=(K, d))
    h = rng.normal(scale=scale, size=d)
    a = int(rng.choice(K, p=softmax(W @ h)))
    return W, h, a, float(rng.normal())


def exact_logpi(W, h, a):
    return log_softmax(W @ h)[a]


def fd_grad_W(f, W, eps=1e-6):
    """Central-difference gradient of the scalar f(W) w.r.t. every entry of W."""
    G = np.zeros_like(W)
    for idx in np.ndindex(W.shape):
        Wp, Wm = W.copy(), W.copy()
        Wp[idx] += eps
        Wm[idx] -= eps
        G[idx] = (f(Wp) - f(Wm)) / (2 * eps)
    return G


def derivatives_along(f, scale=1.0):
    """(f'(0), f''(0)) of a scalar function of s whose natural scale is 1/scale (f depends on s·u, scale = max|u|):
    central differences at steps σ and σ/2, σ = 10⁻²/scale, combined by Richardson extrapolation (truncation O(σ⁴))."""
    s = 1e-2 / max(scale, 1e-12)
    f0 = f(0.0)

    def central(x):
        fp, fm = f(x), f(-x)
        return (fp - fm) / (2 * x), (fp - 2 * f0 + fm) / x**2

    (d1a, d2a), (d1b, d2b) = central(s), central(s / 2)
    return (4 * d1b - d1a) / 3, (4 * d2b - d2a) / 3


def third_order(err, scale, unit):
    """err(η) = c₃η³ + O(η⁴) ⇔ q(η) = err(η)/η³ stays bounded as η → 0. Checked at η, η/2, η/4 with η = 10⁻³/scale
    (scale = max|u|, so that ηu is small): q moves by less than 1 % of unit = |A|·scale³ (the size of a third
    derivative; c₄η ~ 10⁻³·unit, rounding ~ 10⁻⁵·unit). A second-order term off by only 1 % puts ~10·unit/η-growth
    into q (×4 over the range) and fails."""
    eta = 1e-3 / max(scale, 1e-12)
    q = [err(x) / x**3 for x in (eta, eta / 2, eta / 4)]
    return max(q) - min(q) <= 1e-2 * unit


def pieces(W, h, a, A, P):
    """The module's per-token pieces for one token and an arbitrary direction P (K, d)."""
    pi = softmax_policy(W, h[None])
    v = score_direction(pi, np.array([a]))
    g = token_gradient(np.array([A]), v, h[None])
    u = logit_shift(P[None], h[None])
    return pi, v, g, u


@given(rng=seeds())
def test_token_gradient_is_the_gradient_of_advantage_times_logprob(rng):
    """g = A (e_a − π) hᵀ equals ∇_W [A log softmax(W h)_a] (central FD on the exact softmax)."""
    W, h, a, A = head(rng)
    _, _, g, _ = pieces(W, h, a, A, np.zeros_like(W))
    fd = fd_grad_W(lambda Wx: A * exact_logpi(Wx, h, a), W)
    np.testing.assert_allclose(g[0], fd, atol=1e-8, rtol=1e-6)


@given(rng=seeds(), lr=st.sampled_from([0.05, 0.3, 1.7]))
def test_hessian_estimate_is_exact_second_order_model_of_ratio_surrogate(rng, lr):
    """The objective-shift estimate is the exact 2nd-order Taylor model of the ratio surrogate J(W) = A π_a(W)/π_a^old
    along ΔW = η P, for ANY direction P: m_H(η) = η J'(0) + ½η² J''(0) with J', J'' the central-FD derivatives of
    s ↦ A softmax((W + sP)h)_a / softmax(Wh)_a (on-policy, π^old = π)."""
    W, h, a, A = head(rng)
    P = rng.normal(size=W.shape)
    pi, v, g, u = pieces(W, h, a, A, P)
    m_H = hessian_shift(np.array([A]), v, u, pi, g, P[None], lr)[0]
    p_old = softmax(W @ h)[a]
    d1, d2 = derivatives_along(lambda s: A * softmax((W + s * P) @ h)[a] / p_old, np.abs(P @ h).max())
    assert m_H == pytest.approx(lr * d1 + 0.5 * lr**2 * d2, rel=1e-6, abs=1e-9 * abs(A))


@given(rng=seeds())
def test_hessian_model_error_is_third_order_in_lr(rng):
    """Consequence: m_H(η) = J(W + ηP) − J(W) + O(η³) — the model error divided by η³ converges as η → 0."""
    W, h, a, A = head(rng)
    P = rng.normal(size=W.shape)
    pi, v, g, u = pieces(W, h, a, A, P)
    p_old = softmax(W @ h)[a]

    def err(lr):  # signed: ΔJ − m_H
        exact = A * softmax((W + lr * P) @ h)[a] / p_old - A
        return exact - hessian_shift(np.array([A]), v, u, pi, g, P[None], lr)[0]

    scale = np.abs(P @ h).max()
    assert third_order(err, scale, abs(A) * scale**3)


@given(rng=seeds(), lr=st.sampled_from([0.01, 0.1, 1.0]))
def test_fisher_estimate_is_sampled_fisher_form_and_unbiased(rng, lr):
    """Policy-shift estimate, for a fixed direction P:
    (i) vᵀu = d/ds log π_a(W + sP) at 0 (FD), so m_F = ½η² (d log π_a)² is the sampled token's empirical Fisher form;
    (ii) enumerating the vocabulary, Σ_a π_a m_F(a) = ½η² Var_{k∼π}(u_k) = ½η² uᵀFu, and uᵀFu = ∂²_s KL(π ‖
         softmax((W + sP)h)) at 0 (FD of the exact KL): the estimator is unbiased for the Fisher form of the step."""
    W, h, a, A = head(rng)
    P = rng.normal(size=W.shape)
    _, v, _, u = pieces(W, h, a, A, P)
    scale = np.abs(P @ h).max()
    d1, _ = derivatives_along(lambda s: exact_logpi(W + s * P, h, a), scale)
    assert fisher_shift(v, u, lr)[0] == pytest.approx(0.5 * lr**2 * d1**2, rel=1e-6, abs=1e-14 * lr**2 * scale**2)
    pi = softmax(W @ h)
    K = len(pi)
    all_v = score_direction(np.tile(pi, (K, 1)), np.arange(K))  # one row per possible sampled token
    mean_mF = float((pi * fisher_shift(all_v, np.tile(u[0], (K, 1)), lr)).sum())
    kl = lambda s: float((pi * (np.log(pi) - log_softmax((W + s * P) @ h))).sum())  # noqa: E731
    uu = P @ h
    var_u = float(pi @ (uu - pi @ uu) ** 2)  # Var_{k∼π}(u_k) = uᵀ(diag π − ππᵀ)u
    assert mean_mF == pytest.approx(0.5 * lr**2 * var_u, rel=1e-10, abs=1e-300)
    _, kl2 = derivatives_along(kl, scale)
    assert var_u == pytest.approx(kl2, rel=1e-5, abs=1e-7 * scale**2)  # FD truncation ~ σ⁴·scale⁶ = 1e-8·scale²


@given(rng=seeds())
def test_fisher_form_is_second_order_kl(rng):
    """For small η the expected m_F is KL(π_old ‖ π_new) to second order: KL − E m_F = O(η³) (the gap divided by η³
    converges as η → 0), KL computed exactly over the vocabulary."""
    W, h, a, A = head(rng)
    P = rng.normal(size=W.shape)
    pi = softmax(W @ h)
    K = len(pi)
    u = np.tile(logit_shift(P[None], h[None])[0], (K, 1))
    all_v = score_direction(np.tile(pi, (K, 1)), np.arange(K))

    def gap(lr):  # signed: KL − E m_F
        kl = float((pi * (np.log(pi) - log_softmax((W + lr * P) @ h))).sum())
        return kl - float((pi * fisher_shift(all_v, u, lr)).sum())

    scale = np.abs(P @ h).max()
    assert third_order(gap, scale, scale**3)


def _adam_P(g, m, v2, t, b1=0.9, b2=0.999, eps=1e-8):
    """Adam's step direction from torch.optim.Adam itself: state (m, v, t) built by replaying, then one step with g."""
    return adam_direction(g[None], m, v2, t, b1, b2, eps)[0]


@given(rng=seeds(), t=st.integers(0, 6))
def test_adam_direction_is_torch_adams_next_step(rng, t):
    """The modelled optimiser: after t steps with gradients G_1..G_t (our moments via adam_moments_update), the
    direction P(g) equals −ΔW/lr of torch.optim.Adam's next step with gradient g (same β₁, β₂, ε)."""
    K, d = 3, 2
    Gs = [rng.normal(size=(K, d)) for _ in range(t)] + [rng.normal(size=(K, d))]
    w = torch.zeros(K, d, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([w], lr=1.0, betas=(0.9, 0.999), eps=1e-8)
    m, v2 = np.zeros((K, d)), np.zeros((K, d))
    for i, G in enumerate(Gs):
        before = w.detach().clone()
        w.grad = torch.as_tensor(G)
        opt.step()
        if i < t:
            m, v2, _ = adam_moments_update(m, v2, i, G, 0.9, 0.999)
    step = (before - w.detach()).numpy()  # = lr · m̂/(√v̂ + ε) with lr = 1
    np.testing.assert_allclose(adam_direction(Gs[-1][None], m, v2, t, 0.9, 0.999, 1e-8)[0], step, rtol=1e-10, atol=1e-14)


@given(rng=seeds())
@settings(max_examples=40)
def test_batch_estimates_equal_exact_values_on_a_softmax_linear_policy(rng):
    """End to end on a batch: for every valid token, capo_curvature_mask's m_F and m_H equal values built here
    independently — g by FD of A log softmax(W h)_a, P(g) by replaying torch.optim.Adam (or g itself without state),
    m_F = ½η² (∂_s log π_a(W + sP))², m_H = η J'(0) + ½η² J''(0) of the exact ratio surrogate (FD)."""
    B, T, K, d = 2, 3, int(rng.integers(2, 5)), int(rng.integers(1, 4))
    W = rng.normal(size=(K, d))
    h = rng.normal(size=(B, T, d))
    mask = np.arange(T)[None, :] < rng.integers(1, T + 1, size=B)[:, None]
    actions = np.array([[rng.choice(K, p=softmax(W @ h[b, t])) for t in range(T)] for b in range(B)])
    adv = rng.normal(size=(B, T))
    lr = float(rng.choice([0.01, 0.5]))
    state = {}
    if rng.random() < 0.6:
        m = rng.normal(scale=0.3, size=(K, d))
        state = dict(adam_m=m, adam_v=m**2 + rng.gamma(1.0, 0.1, size=(K, d)), adam_step=int(rng.integers(0, 5)))
    cfg = CAPOCurvatureConfig(lr=lr)
    out = capo_curvature_mask(np.where(mask[..., None], h, np.nan), W, np.where(mask, actions, -1),
                              np.where(mask, adv, np.nan), mask, **state, config=cfg)
    for b, t in zip(*np.nonzero(mask)):
        A, x, a = adv[b, t], h[b, t], actions[b, t]
        g = fd_grad_W(lambda Wx, A=A, x=x, a=a: A * exact_logpi(Wx, x, a), W)
        if state:
            b1, b2, eps, s = 0.9, 0.999, 1e-8, state["adam_step"] + 1
            m1 = (b1 * state["adam_m"] + (1 - b1) * g) / (1 - b1**s)
            v1 = (b2 * state["adam_v"] + (1 - b2) * g**2) / (1 - b2**s)
            P = m1 / (np.sqrt(v1) + eps)
        else:
            P = g
        scale = np.abs(P @ x).max()
        dlog, _ = derivatives_along(lambda s, P=P, x=x, a=a: exact_logpi(W + s * P, x, a), scale)
        p_old = softmax(W @ x)[a]
        d1, d2 = derivatives_along(lambda s, A=A, P=P, x=x, a=a, p0=p_old: A * softmax((W + s * P) @ x)[a] / p0, scale)
        assert out["m_F"][b, t] == pytest.approx(0.5 * lr**2 * dlog**2, rel=1e-5, abs=1e-12 * lr**2 * scale**2)
        assert out["m_H"][b, t] == pytest.approx(lr * d1 + 0.5 * lr**2 * d2, rel=1e-5,
                                                 abs=1e-8 * abs(A) * (lr * scale + lr**2 * scale**2))
    assert (out["m_F"][~mask] == 0).all() and not out["keep"][~mask].any()


@given(rng=seeds(), lr=st.floats(1e-3, 10.0))
def test_sgd_closed_form(rng, lr):
    """With SGD, P(g) = g and u = A‖h‖² v, so m_F = ½η²A²‖h‖⁴‖v‖⁴ and m_H = ηA²‖h‖²‖v‖² + ½η²A³‖h‖⁴(‖v‖⁴ − vᵀFv)."""
    W, h, a, A = head(rng)
    cfg = CAPOCurvatureConfig(lr=lr, optimizer="sgd")
    out = capo_curvature_mask(h[None, None], W, np.array([[a]]), np.array([[A]]), np.ones((1, 1), bool), config=cfg)
    pi = softmax(W @ h)
    v = -pi
    v[a] += 1
    hh, vv = h @ h, v @ v
    vFv = pi @ v**2 - (pi @ v) ** 2
    assert out["m_F"][0, 0] == pytest.approx(0.5 * lr**2 * A**2 * hh**2 * vv**2, rel=1e-10, abs=1e-300)
    expect = lr * A**2 * hh * vv + 0.5 * lr**2 * A**3 * hh**2 * (vv**2 - vFv)
    assert out["m_H"][0, 0] == pytest.approx(expect, rel=1e-9, abs=1e-12 * (1 + abs(lr * A**2 * hh * vv)))


@given(m_H=st.lists(st.floats(-1.0, 1.0), min_size=1, max_size=20), seed=st.integers(0, 2**31),
       rule=st.sampled_from(["symmetric", "nonnegative", "lower"]), tau_H=st.sampled_from([None, 0.01, 0.3]),
       tau_F=st.sampled_from([None, 1e-4, 0.2]))
def test_acceptance_rules(m_H, seed, rule, tau_H, tau_F):
    """Acceptance: m_F < τ_F and (symmetric: −τ_H < m_H < τ_H [code, CAPO recipe]; nonnegative: 0 ≤ m_H < τ_H [code's
    other branch]; lower: m_H ≥ τ_H [Theorem 5.1's m_H ≥ δ_H]); a threshold None skips its test."""
    m_H = np.array(m_H)
    m_F = np.random.default_rng(seed).uniform(0, 0.4, size=m_H.size)
    keep = accept(m_H, m_F, CAPOCurvatureConfig(hessian_rule=rule, tau_H=tau_H, tau_F=tau_F))
    for k, h_, f_ in zip(keep, m_H, m_F):
        ok_f = tau_F is None or f_ < tau_F
        ok_h = tau_H is None or {"symmetric": -tau_H < h_ < tau_H, "nonnegative": 0 <= h_ < tau_H,
                                 "lower": h_ >= tau_H}[rule]
        assert k == (ok_f and ok_h)


def split(d):
    return {k: d[k] for k in ("logp", "old_logp", "adv", "mask")}, {k: d[k] for k in HEAD_KEYS if k in d}


@given(rng=seeds(), agg=st.sampled_from(aggregation.MODES[:4]), rule=st.sampled_from(["symmetric", "lower"]))
def test_masking_rejects_only_the_flagged_tokens(rng, agg, rule):
    """The mask removes exactly the flagged tokens — those with m_F ≥ τ_F or m_H outside the Hessian band — from the
    PPO/GRPO loss: dlogp is exactly 0 there; elsewhere dlogp is PPO's (rlspec.reference.ppo) computed on mask ∧ keep
    (denominators of the kept tokens, the code's), and with mask_denominators='original' it is PPO's on the full
    mask, i.e. unchanged."""
    d = make_inputs(rng)
    base, headin = split(d)
    tau_H = 0.01 if rule == "symmetric" else 1e-4
    cfg = CAPOCurvatureConfig(agg=agg, hessian_rule=rule, tau_H=tau_H)
    est = capo_curvature_mask(**headin, adv=d["adv"], mask=d["mask"], config=cfg)
    band = np.abs(est["m_H"]) < tau_H if rule == "symmetric" else est["m_H"] >= tau_H
    flagged = d["mask"] & ~((est["m_F"] < 1e-4) & band)
    kept = d["mask"] & ~flagged
    for denominators, ppo_mask in (("kept", kept), ("original", d["mask"])):
        c = CAPOCurvatureConfig(agg=agg, hessian_rule=rule, tau_H=tau_H, mask_denominators=denominators)
        _, dlogp = capo_curvature_loss(**base, **headin, config=c)
        _, d_ppo = ppo_clip_loss(base["logp"], base["old_logp"], base["adv"], ppo_mask,
                                 config=PPOConfig(agg=agg, seq_denominator="all"))
        assert (dlogp[flagged] == 0).all() and (dlogp[~d["mask"]] == 0).all()
        np.testing.assert_allclose(dlogp[kept], d_ppo[kept], rtol=1e-13, atol=1e-300)


@given(rng=seeds())
def test_hand_gradient_matches_finite_differences_with_curvature_inputs(rng):
    """dlogp = ∂loss/∂logp (central FD, float64) on batches from a softmax-linear head with some tokens rejected:
    the mask depends on (h, W, a, A) only, so it is constant under perturbations of logp."""
    d = make_inputs(rng)
    base, headin = split(d)
    cfg = CAPOCurvatureConfig()
    _, dlogp = capo_curvature_loss(**base, **headin, config=cfg)
    fd = np.zeros_like(dlogp)
    for b, t in zip(*np.nonzero(d["mask"])):
        up, dn = base["logp"].copy(), base["logp"].copy()
        up[b, t] += 1e-6
        dn[b, t] -= 1e-6
        fd[b, t] = (capo_curvature_loss(**dict(base, logp=up), **headin, config=cfg)[0] -
                    capo_curvature_loss(**dict(base, logp=dn), **headin, config=cfg)[0]) / 2e-6
    lr_tok = np.where(d["mask"], base["logp"] - np.where(d["mask"], base["old_logp"], 0), 0)
    if np.abs(np.abs(lr_tok[d["mask"]]) - np.log1p(0.2)).min(initial=1) < 1e-3:
        return  # a clip boundary within the FD step
    np.testing.assert_allclose(dlogp, fd, atol=1e-6 * max(1.0, np.abs(fd).max()), rtol=1e-5)


@given(rng=seeds(), factor=st.floats(1.01, 100.0))
def test_fisher_rejections_grow_with_the_learning_rate(rng, factor):
    """m_F ∝ η² exactly, so the set of tokens rejected by the Fisher test at η is contained in the set at a larger η
    (the policy-shift test is monotone in the step size)."""
    d = make_inputs(rng)
    _, headin = split(d)
    lr = 1e-5
    lo = capo_curvature_mask(**headin, adv=d["adv"], mask=d["mask"], config=CAPOCurvatureConfig(lr=lr, tau_H=None))
    hi = capo_curvature_mask(**headin, adv=d["adv"], mask=d["mask"],
                             config=CAPOCurvatureConfig(lr=lr * factor, tau_H=None))
    np.testing.assert_allclose(hi["m_F"], factor**2 * lo["m_F"], rtol=1e-12, atol=0)
    assert not (d["mask"] & ~lo["keep"] & hi["keep"]).any()


@given(rng=seeds(), agg=st.sampled_from(aggregation.MODES[:4]))
def test_without_head_or_with_loose_thresholds_it_is_ppo(rng, agg):
    """Without h, W, actions nothing is rejected, and with thresholds no token reaches (τ = 1e300) the loss is PPO's
    exactly; with thresholds every token exceeds, every token is rejected: loss 0, dlogp 0."""
    d = make_inputs(rng)
    base, headin = split(d)
    ppo = ppo_clip_loss(**{k: base[k] for k in ("logp", "old_logp", "adv", "mask")},
                        config=PPOConfig(agg=agg, seq_denominator="all"))
    for kw, cfg in (({}, CAPOCurvatureConfig(agg=agg)), (headin, CAPOCurvatureConfig(agg=agg, tau_F=1e300, tau_H=1e300))):
        loss, dlogp = capo_curvature_loss(**base, **kw, config=cfg)
        assert loss == pytest.approx(ppo[0], rel=1e-13, abs=1e-300)
        np.testing.assert_array_equal(dlogp, ppo[1])
    loss, dlogp = capo_curvature_loss(**base, **headin, config=CAPOCurvatureConfig(agg=agg, hessian_rule="lower",
                                                                                 tau_H=1e300))
    assert loss == 0.0 and (dlogp == 0).all()


@given(rng=seeds())
def test_padding_is_never_read(rng):
    """Garbage in h, actions, logp, old_logp, adv at masked positions (NaN, ±inf, out-of-range ids) gives the same
    loss, gradient and estimates as clean padding."""
    d = make_inputs(rng)
    m = d["mask"]
    clean = dict(d, h=np.where(m[..., None], d["h"], 0.0), actions=np.where(m, d["actions"], 0),
                 **{k: np.where(m, d[k], 0.0) for k in ("logp", "old_logp", "adv")})
    a, b = capo_curvature_loss(**d), capo_curvature_loss(**clean)
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1], b[1])
    _, h1 = split(d)
    _, h2 = split(clean)
    e1 = capo_curvature_mask(**h1, adv=d["adv"], mask=m)
    e2 = capo_curvature_mask(**h2, adv=clean["adv"], mask=m)
    for k in e1:
        np.testing.assert_array_equal(e1[k], e2[k])


def test_adam_without_state_uses_the_raw_gradient_and_zero_state_normalises():
    """Optimiser-model conventions: Adam with no state yet returns the raw gradient (the official code's behaviour),
    so it equals SGD; Adam from zero moments at step 0 gives g/(|g| + ε) (Adam's first step)."""
    rng = np.random.default_rng(3)
    W, h, a, A = head(rng, K=4, d=3)
    args = (h[None, None], W, np.array([[a]]), np.array([[A]]), np.ones((1, 1), bool))
    adam = capo_curvature_mask(*args, config=CAPOCurvatureConfig(lr=0.1))
    sgd = capo_curvature_mask(*args, config=CAPOCurvatureConfig(lr=0.1, optimizer="sgd"))
    assert adam["m_F"][0, 0] == sgd["m_F"][0, 0] and adam["m_H"][0, 0] == sgd["m_H"][0, 0]
    g = A * np.outer(np.eye(4)[a] - softmax(W @ h), h)
    np.testing.assert_allclose(adam_direction(g[None], np.zeros_like(W), np.zeros_like(W), 0, 0.9, 0.999, 1e-8)[0],
                               g / (np.abs(g) + 1e-8), rtol=1e-12)


def test_bad_input_names_the_argument():
    """Partial head inputs, ids out of range, wrong shapes, negative second moments, bad steps and bad config values
    raise RLSpecValueError naming the argument."""
    d = make_inputs(np.random.default_rng(11))
    while not d["mask"].any() or "adam_m" not in d:
        d = make_inputs(np.random.default_rng(int(d["mask"].size) + 17))
    base, headin = split(d)
    with pytest.raises(RLSpecValueError, match="h, W, actions"):
        capo_curvature_loss(**base, h=headin["h"], W=headin["W"])
    bad = headin["actions"].copy()
    bad[d["mask"]] = headin["W"].shape[0]
    with pytest.raises(RLSpecValueError, match="actions"):
        capo_curvature_loss(**base, **dict(headin, actions=bad))
    with pytest.raises(RLSpecValueError, match="h"):
        capo_curvature_loss(**base, **dict(headin, h=headin["h"][..., :-1] if headin["h"].shape[-1] > 1 else
                                           headin["h"][:, :-1]))
    with pytest.raises(RLSpecValueError, match="adam_v"):
        capo_curvature_loss(**base, **dict(headin, adam_v=-np.ones_like(headin["adam_v"])))
    with pytest.raises(RLSpecValueError, match="adam_step"):
        capo_curvature_loss(**base, **dict(headin, adam_step=-1))
    for field, value in (("lr", 0.0), ("tau_F", -1.0), ("hessian_rule", "band"), ("optimizer", "lion"),
                         ("adam_beta1", 1.0), ("mask_denominators", "none")):
        with pytest.raises(RLSpecValueError, match=field):
            CAPOCurvatureConfig(**{field: value})
