"""Properties of PIRL / PIPO (arXiv 2604.00860) — reference/pipo.py (and optimized/pipo.py for purity).

Expected values are written here from the equations (explicit window means and stds, explicit group
sums), or follow from exact computations on a small softmax bandit; never read back from the code.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from properties.strategies import seeds
from rlspec.reference import registry
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.pipo import (
    PIPOConfig,
    PIPOState,
    code_config,
    cumulative_improvement,
    feedback,
    group_attribution,
    init_state,
    make_inputs,
    pipo_step,
    rectify,
    update,
)

LAMS = st.sampled_from([0.0, 0.1, 0.5, 1.0])


def window(rng: np.random.Generator, K: int = 8) -> np.ndarray:
    return np.clip(rng.uniform(0.2, 0.7) + np.cumsum(rng.normal(0, 0.03, K)), 0, 1)


def prev_batch(rng: np.random.Generator, B: int | None = None, T: int = 4):
    B = int(rng.integers(1, 13)) if B is None else B
    group = rng.integers(0, max(1, B // 3), size=B)
    seq = rng.normal(size=B) if rng.random() < 0.5 else rng.choice([-1.0, 0.0, 1.0], size=B)
    mask = np.arange(T)[None, :] < rng.integers(1, T + 1, size=B)[:, None]
    return np.where(mask, seq[:, None], np.nan), group, mask, seq


@given(seeds())
def test_telescoping_objective(rng):
    """Prop. (PIRL objective aligned with final performance): Σ_{t=1}^{T} (J_t − J_{t−1}) = J_T − J_0, so from a
    common start J_0 the trajectory with the larger cumulative improvement is the one with the larger final J_T."""
    T = int(rng.integers(0, 30))
    J = rng.normal(size=T + 1).cumsum()
    assert cumulative_improvement(J) == pytest.approx(J[-1] - J[0], abs=1e-12)
    J2 = J.copy()
    J2[1:] += rng.normal(size=T).cumsum() if T else 0.0
    lhs = cumulative_improvement(J) > cumulative_improvement(J2)
    assert lhs == (J[-1] > J2[-1]) or abs(J[-1] - J2[-1]) < 1e-12


@given(seeds(), LAMS)
def test_sign_rule(rng, lam):
    """Claim (PI reward r̂_i = a_i·φ_λ(ξ_t)): with a full window, sign(r̂_i) = sign(A_i)·sign(ξ_t) on every valid
    token when λ > 0 (reinforce when the reward rose, reverse when it fell); with λ = 0 a negative ξ_t gives no
    PI step (r̂ ≡ 0). ξ_t's sign is computed here from the window mean."""
    h = window(rng)
    mu_t = float(rng.uniform(0, 1))
    adv, group, mask, seq = prev_batch(rng)
    r_hat, _ = pipo_step(PIPOState(history=h), np.array([mu_t]), adv, group, mask, PIPOConfig(lam=lam))
    s_xi = np.sign(mu_t - h.mean())
    expect = np.sign(seq)[:, None] * s_xi * (1.0 if s_xi > 0 or lam > 0 else 0.0)
    np.testing.assert_array_equal(np.sign(r_hat), np.where(mask, expect, 0.0))


@given(seeds())
def test_group_attribution_identity(rng):
    """Claim (GRPO attribution a_i = G·A_i/Σ_{j∈g}|A_j|): Σ_{i∈g}|a_i| = G for every group with a non-zero
    advantage, a is unchanged when a group's advantages are scaled by c > 0, and a = 0 in an all-zero group.
    Through the step: Σ_{i∈g}|r̂_i| = G·|φ_λ(ξ_t)| (per-group normalisation of the PI reward, on sequence values)."""
    B = int(rng.integers(1, 16))
    g = rng.integers(0, 4, size=B)
    A = rng.normal(size=B) * (rng.random(B) < 0.8)
    a = group_attribution(A, g)
    c = np.exp(rng.normal(size=4))[g]
    np.testing.assert_allclose(group_attribution(A * c, g), a, rtol=1e-12, atol=1e-15)
    for k in np.unique(g):
        rows = g == k
        if np.abs(A[rows]).sum() > 0:
            assert np.abs(a[rows]).sum() == pytest.approx(rows.sum(), rel=1e-12)
        else:
            assert np.all(a[rows] == 0)
    h, lam = window(rng), 0.3
    adv, group, mask, seq = prev_batch(rng)
    mu_t = float(rng.uniform(0, 1))
    r_hat, _ = pipo_step(PIPOState(history=h), np.array([mu_t]), adv, group, mask, PIPOConfig(lam=lam))
    xi = (mu_t - h.mean()) / h.std()
    phi = xi if xi >= 0 else lam * xi
    for k in np.unique(group):
        rows = group == k
        if np.abs(seq[rows]).sum() > 0:
            assert np.abs(r_hat[rows, 0]).sum() == pytest.approx(rows.sum() * abs(phi), rel=1e-9, abs=1e-12)


@given(st.floats(-10, 10), st.floats(-10, 10), st.floats(0, 1))
def test_rectifier_properties(x, y, lam):
    """Claim (rectifier φ_λ): monotone non-decreasing, continuous at 0 (φ(0) = 0), identity on x ≥ 0, λx on x < 0,
    and φ_λ(x)·x ≥ 0 (never reverses the sign of the verdict)."""
    lo, hi = min(x, y), max(x, y)
    assert rectify(lo, lam) <= rectify(hi, lam)
    assert rectify(0.0, lam) == 0.0 and abs(rectify(-1e-12, lam)) <= 1e-12
    assert rectify(x, lam) == (x if x >= 0 else lam * x)
    assert rectify(x, lam) * x >= 0


@given(seeds(), st.integers(1, 12), st.sampled_from([0, 1]))
def test_feedback_against_explicit_window(rng, K, ddof):
    """Definition (sliding-window anchor): with window K, ξ_t = (μ_t − mean(last K means))/std(last K means)
    (σ = 1 with fewer than 2 entries), and a PI step only once min_history means are stored; μ_t is the mean
    reward of the fresh batch and is not part of its own anchor (paper)."""
    n = int(rng.integers(0, K + 3))
    h = window(rng, n)
    rewards = rng.integers(0, 2, size=int(rng.integers(1, 20))).astype(float)
    cfg = PIPOConfig(window=K, min_history=min(K, 3), ddof=ddof)
    xi, active = feedback(PIPOState(history=h), rewards.mean(), cfg)
    w = h[-K:]
    assert active == (w.size >= min(K, 3))
    if active:
        sd = w.std(ddof=ddof) if (w.size >= 2 and K > 1) else 1.0
        sd = 1.0 if sd < 1e-8 else sd
        assert xi == pytest.approx((rewards.mean() - w.mean()) / sd, rel=1e-12, abs=1e-12)


def test_update_is_pure_and_replayable():
    """Claim (design: the window is an explicit frozen state with a pure update): replaying the same sequence of
    batches from the same start gives identical states and PI rewards; no input (state arrays, rewards, previous
    batch with NaN padding) is modified, in the reference and in optimized; the state is frozen."""
    from rlspec.optimized import pipo as opt

    rng = np.random.default_rng(2604)
    batches = [make_inputs(rng) for _ in range(12)]
    for cfg in (PIPOConfig(min_history=3), code_config(min_history=3)):
        runs = []
        for _ in range(2):
            state, outs = init_state(), []
            for b in batches:
                frozen = copy.deepcopy(b)
                h_before = state.history.copy()
                r_hat, new = pipo_step(state, b["rewards"], b["prev_adv"], b["prev_group"], b["prev_mask"], cfg)
                np.testing.assert_array_equal(state.history, h_before)
                for k in ("rewards", "prev_adv", "prev_group", "prev_mask"):
                    np.testing.assert_array_equal(b[k], frozen[k])
                t_state = PIPOState(history=torch.tensor(state.history))
                t_before = t_state.history.clone()
                opt.pipo_step(t_state, torch.tensor(b["rewards"]), torch.tensor(b["prev_adv"]),
                              torch.tensor(b["prev_group"]), torch.tensor(b["prev_mask"]), cfg)
                assert torch.equal(t_state.history, t_before)
                outs.append((r_hat, new.history))
                state = new
            runs.append(outs)
        for (r1, h1), (r2, h2) in zip(*runs):
            np.testing.assert_array_equal(r1, r2)
            np.testing.assert_array_equal(h1, h2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        init_state().history = np.zeros(1)


def test_code_anchor_appends_twice_and_includes_mu_t():
    """Official code's window (anchor="code"): the fit loop stores μ_t before the anchor is read and again after the
    step, so the window holds each mean twice and μ_t is inside its own anchor; the paper's window holds each
    once and excludes μ_t."""
    mus = [0.1, 0.2, 0.3, 0.4, 0.5]
    s_code, s_paper = init_state(), init_state()
    for m in mus:
        s_code, s_paper = update(s_code, m, code_config()), update(s_paper, m)
    np.testing.assert_allclose(s_code.history, [0.2, 0.2, 0.3, 0.3, 0.4, 0.4, 0.5, 0.5])
    np.testing.assert_allclose(s_paper.history, mus)
    mu_t = 0.9
    xi, _ = feedback(s_code, mu_t, code_config())
    w = np.array([0.2, 0.3, 0.3, 0.4, 0.4, 0.5, 0.5, 0.9])
    assert xi == pytest.approx((mu_t - w.mean()) / w.std(), rel=1e-12)


@given(seeds())
def test_code_config_matches_official_formula(rng):
    """Official code (layback_utils.compute_layback_coefficients with LaybackConfig defaults), restated here:
    progress = clip(μ_t − mean(w), ±5); σ = np.std(w) (1 if < 1e-6); Ā = masked token-mean; a = n·Ā/(Σ|Ā| + 1e-6);
    coefficient = clamp(a·progress/σ, ±10) on valid tokens; negative progress → no PI step (loss_scale_neg = 0)."""
    h = rng.uniform(0, 10, size=7)
    cfg = code_config()
    rewards = rng.uniform(0, 10, size=int(rng.integers(1, 9)))
    adv, group, mask, seq = prev_batch(rng)
    adv = adv * 30.0
    r_hat, _ = pipo_step(PIPOState(history=h), rewards, adv, group, mask, cfg)
    mu = rewards.mean()
    w = np.append(h, mu)[-8:]
    progress = np.clip(mu - w.mean(), -5, 5)
    sigma = w.std() if w.std() >= 1e-6 else 1.0
    expect = np.zeros_like(r_hat)
    if mu - w.mean() >= 0:
        for i in range(len(seq)):
            rows = group == group[i]
            a = rows.sum() * 30.0 * seq[i] / (np.abs(30.0 * seq[rows]).sum() + 1e-6)
            expect[i] = np.where(mask[i], np.clip(a * progress / sigma, -10, 10), 0.0)
    np.testing.assert_allclose(r_hat, expect, rtol=1e-12, atol=1e-12)


def _pi(theta):
    p = np.exp(theta - theta.max())
    return p / p.sum()


@given(seeds(), st.sampled_from([0.1, 1.0]))
def test_pi_step_is_local_ascent_under_sign_consistency(rng, lam):
    """Theorem (PIPO performs ascent on the PIRL objective, under the sign-consistency Assumption C.2
    φ_λ(ξ_t)·ΔJ_t ≥ 0), its deterministic one-group core, exactly on a softmax bandit: a GRPO step (registry grpo
    advantages, ppo gradient at ratio 1) moves θ_{t−1} → θ_t; with a verdict ξ_t of the sign of the true ΔJ_t the
    PI direction d (ppo gradient of r̂ on the same batch) satisfies ⟨∇J(θ_{t−1}), d⟩ ≥ 0, and d is the base
    direction scaled by φ_λ(ξ_t)·G/Σ|A|. Control: a verdict of the wrong sign gives ⟨∇J, d⟩ ≤ 0."""
    K, G, alpha = int(rng.integers(3, 7)), int(rng.integers(3, 9)), 1e-4
    rbar = rng.random(K)
    theta = rng.normal(size=K)
    pi0 = _pi(theta)
    y = rng.choice(K, size=G, p=pi0)
    R = (rng.random(G) < rbar[y]).astype(float)
    assume(np.ptp(R) > 0)
    mask, group = np.ones((G, 1), bool), np.zeros(G, int)
    adv = registry.get("grpo")(rewards=R, group=group, mask=mask)
    ppo = registry.get("ppo")
    lp = np.log(pi0[y])[:, None]

    def direction(a):  # −∂loss/∂θ at ratio 1: Σ_i w_i (e_{y_i} − π), w = −dloss/dlogp
        _, dlogp = ppo(logp=lp, old_logp=lp.copy(), adv=a, mask=mask)
        return (-dlogp[:, 0, None] * (np.eye(K)[y] - pi0)).sum(axis=0)

    g = direction(adv)
    grad_J = pi0 * (rbar - pi0 @ rbar)  # ∇θ J for J = π·r̄
    assume(abs(grad_J @ g) > 1e-8)
    dJ = _pi(theta + alpha * g) @ rbar - pi0 @ rbar
    h = np.full(8, pi0 @ rbar) + rng.normal(0, 0.01, 8)
    for sign in (1.0, -1.0):
        mu_t = h.mean() + sign * np.sign(dJ) * 0.2  # verdict of the sign of ΔJ (sign = 1) or the opposite (−1)
        r_hat, _ = pipo_step(PIPOState(history=h), np.array([mu_t]), adv, group, mask, PIPOConfig(lam=lam))
        d = direction(r_hat)
        xi = (mu_t - h.mean()) / h.std()
        phi = xi if xi >= 0 else lam * xi
        expect = phi * G / np.abs(adv[:, 0]).sum() * g
        np.testing.assert_allclose(d, expect, rtol=1e-9, atol=1e-12 * np.abs(expect).max())
        assert sign * (grad_J @ d) >= -1e-15


def test_composition_with_ppo():
    """Composition (the pipeline place: a second loss on the previous batch): r̂ fed to the registry's ppo loss as
    the advantage; at ratio 1, dlogp = −r̂/n_valid (token-mean); without history (first iterations) the PI loss is
    exactly 0 with zero gradient."""
    rng = np.random.default_rng(0)
    adv, group, mask, _ = prev_batch(rng, B=6)
    r_hat, _ = pipo_step(PIPOState(history=window(rng)), np.array([0.9]), adv, group, mask)
    lp = np.where(mask, np.log(0.5), np.nan)
    _, dlogp = registry.get("ppo")(logp=lp, old_logp=lp.copy(), adv=r_hat, mask=mask)
    np.testing.assert_allclose(dlogp, np.where(mask, -r_hat / mask.sum(), 0.0), rtol=1e-12, atol=1e-15)
    r0, _ = pipo_step(init_state(), np.array([0.9]), adv, group, mask)
    loss, d0 = registry.get("ppo")(logp=lp, old_logp=lp.copy(), adv=r0, mask=mask)
    assert loss == 0.0 and np.all(d0 == 0.0)


@given(seeds())
def test_inactive_without_history_and_padding_ignored(rng):
    """Defined cases: an empty window or fewer than min_history means gives r̂ = 0 but still stores μ_t; padding of
    prev_adv (NaN here) is never read (the same result as zero padding); an all-zero group gets r̂ = 0."""
    adv, group, mask, _ = prev_batch(rng)
    r, s = pipo_step(init_state(), np.array([1.0, 0.0]), adv, group, mask)
    assert np.all(r == 0) and s.history.tolist() == [0.5]
    r, _ = pipo_step(PIPOState(history=window(rng, 7)), np.array([1.0]), adv, group, mask)
    assert np.all(r == 0)
    h = window(rng)
    a1, _ = pipo_step(PIPOState(history=h), np.array([0.8]), adv, group, mask)
    a2, _ = pipo_step(PIPOState(history=h), np.array([0.8]), np.where(mask, adv, 0.0), group, mask)
    np.testing.assert_array_equal(a1, a2)
    z, _ = pipo_step(PIPOState(history=h), np.array([0.8]), np.zeros_like(adv), group, mask)
    assert np.all(z == 0)


def test_bad_input_raises():
    """Design, 'Bad input': bad config values, a non-state, an empty fresh batch, NaN at a valid position and a
    mis-shaped group raise RLSpecValueError naming the argument."""
    adv, mask, g = np.ones((2, 2)), np.ones((2, 2), bool), np.array([0, 0])
    with pytest.raises(RLSpecValueError, match="window"):
        PIPOConfig(window=0)
    with pytest.raises(RLSpecValueError, match="min_history"):
        PIPOConfig(window=4, min_history=5)
    with pytest.raises(RLSpecValueError, match="anchor"):
        PIPOConfig(anchor="ema")
    with pytest.raises(RLSpecValueError, match="state"):
        pipo_step([0.1, 0.2], np.ones(2), adv, g, mask)
    with pytest.raises(RLSpecValueError, match="rewards"):
        pipo_step(init_state(), np.zeros(0), adv, g, mask)
    with pytest.raises(RLSpecValueError, match="prev_adv"):
        pipo_step(init_state(), np.ones(2), np.full((2, 2), np.nan), g, mask)
    with pytest.raises(RLSpecValueError, match="prev_group"):
        pipo_step(init_state(), np.ones(2), adv, np.array([0]), mask)
    with pytest.raises(RLSpecValueError, match="state.history"):
        pipo_step(PIPOState(history=np.array([np.nan])), np.ones(2), adv, g, mask)
