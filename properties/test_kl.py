"""Properties of Schulman's KL estimators k1, k2, k3 (penalty and loss forms), by exact enumeration."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties import strategies as S
from rlspec.reference import aggregation
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.kl import KLConfig, kl_k1_loss, kl_k2_loss, kl_k3_loss, kl_penalty

LOSSES = {"k1": kl_k1_loss, "k2": kl_k2_loss, "k3": kl_k3_loss}
KINDS = st.sampled_from(sorted(LOSSES))
MODES = st.sampled_from(aggregation.MODES)


@given(S.policy_batches(), KINDS, MODES, st.sampled_from([None, "ratio"]))
def test_hand_gradient_matches_finite_differences(batch, kind, mode, is_weight):
    """Claim: the hand dlogp of each estimator used as a loss (also multiplied by the importance ratio
    π_θ/π_old with its gradient, TRL's bias correction) equals central FD; padding garbage changes nothing."""
    m = batch["mask"]
    cfg = KLConfig(agg=mode, is_weight=is_weight)
    kw = dict(mask=m, config=cfg, group=batch["group"], old_logp=batch["old_logp"])
    loss, d = LOSSES[kind](batch["logp"], batch["ref_logp"], **kw)
    x = S.clean(batch["logp"], m)
    ckw = dict(kw, old_logp=S.clean(batch["old_logp"], m))
    ref = S.clean(batch["ref_logp"], m)
    loss0, d0 = LOSSES[kind](x, ref, **ckw)
    assert loss == loss0 and np.array_equal(d, d0) and np.all(d[~m] == 0)
    fd = S.finite_difference(lambda lp: LOSSES[kind](lp, ref, **ckw)[0], x, m)
    # central FD's rounding error is about ε_mach·|loss|/h: scale the absolute tolerance with the loss
    np.testing.assert_allclose(d[m], fd[m], rtol=1e-5, atol=1e-8 * max(1.0, abs(loss0)))


# ------------------------------------------------------------- exact enumeration on a 6-way softmax
def _softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def _kl(p, q):
    return float((p * (np.log(p) - np.log(q))).sum())


def _num_grad(f, theta, h=1e-6):
    g = np.zeros_like(theta)
    for i in range(theta.size):
        tp, tm = theta.copy(), theta.copy()
        tp[i] += h
        tm[i] -= h
        g[i] = (f(tp) - f(tm)) / (2 * h)
    return g


def _expected_theta_grad(kind, theta, theta_ref, sample_logits=None, config=None):
    """Σ_y q(y) · dlogp(y) · (onehot(y) − π_θ), q = π_θ (or softmax(sample_logits)): the expected
    θ-gradient of the estimator used as a loss, by the chain rule dlogp/dθ = onehot(y) − π."""
    pi, pref = _softmax(theta), _softmax(theta_ref)
    q = pi if sample_logits is None else _softmax(sample_logits)
    V = theta.size
    one = np.ones((1, 1), bool)
    g = np.zeros(V)
    for y in range(V):
        kw = {} if sample_logits is None else {"old_logp": np.log(q[[y]])[None, :]}
        _, d = LOSSES[kind](np.log(pi[[y]])[None, :], np.log(pref[[y]])[None, :], one, config=config, **kw)
        g += q[y] * d[0, 0] * (np.eye(V)[y] - pi)
    return g


LOGITS = st.builds(lambda seed, scale: np.random.default_rng(seed).normal(scale=scale, size=(3, 6)),
                   st.integers(0, 2**32 - 1), st.sampled_from([0.3, 1.0, 2.0]))


@given(LOGITS)
def test_expected_gradient_by_enumeration(z):
    """Claim (Schulman's note; verl/GRPO practice): with y ~ π_θ held fixed and the estimator used as a loss,
    E[∇θ k1] = 0, E[∇θ k2] = ∇θ KL(π_θ‖π_ref) (reverse KL), E[∇θ k3] = ∇θ KL(π_ref‖π_θ) (forward KL).
    Exact enumeration over a 6-way softmax; the KL gradients are finite differences of the exact KLs."""
    theta, theta_ref = z[0], z[1]
    pref = _softmax(theta_ref)
    reverse = _num_grad(lambda t: _kl(_softmax(t), pref), theta)
    forward = _num_grad(lambda t: _kl(pref, _softmax(t)), theta)
    np.testing.assert_allclose(_expected_theta_grad("k1", theta, theta_ref), 0.0, atol=1e-12)
    np.testing.assert_allclose(_expected_theta_grad("k2", theta, theta_ref), reverse, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(_expected_theta_grad("k3", theta, theta_ref), forward, rtol=1e-6, atol=1e-8)


@given(LOGITS)
def test_importance_weighted_k3_gradient_by_enumeration(z):
    """Claim (derived): with y ~ π_old and the per-token k3 multiplied by w = π_θ/π_old,
    keeping w's gradient (TRL use_bias_correction_kl) gives E[∇θ(w·k3)] = ∇θ KL(π_θ‖π_ref) (reverse KL),
    while a stop-gradient weight sg(w) gives E[∇θ sg(w)·k3] = ∇θ KL(π_ref‖π_θ) (forward KL)."""
    theta, theta_ref, theta_old = z
    pref = _softmax(theta_ref)
    reverse = _num_grad(lambda t: _kl(_softmax(t), pref), theta)
    forward = _num_grad(lambda t: _kl(pref, _softmax(t)), theta)
    g_ratio = _expected_theta_grad("k3", theta, theta_ref, theta_old, KLConfig(is_weight="ratio"))
    g_sg = _expected_theta_grad("k3", theta, theta_ref, theta_old, KLConfig(is_weight="ratio-detached"))
    np.testing.assert_allclose(g_ratio, reverse, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(g_sg, forward, rtol=1e-6, atol=1e-8)


@given(LOGITS)
def test_k1_k3_unbiased_penalties(z):
    """Claim (Schulman's note): as penalties, E_{y~π_θ}[k1] = E[k3] = KL(π_θ‖π_ref) (unbiased);
    k2 is biased in general (its expectation differs from the KL)."""
    pi, pref = _softmax(z[0]), _softmax(z[1])
    lp, rp = np.log(pi)[None, :], np.log(pref)[None, :]
    m = np.ones_like(lp, bool)
    kl = _kl(pi, pref)
    for kind in ("k1", "k3"):
        assert float((pi * kl_penalty(lp, rp, m, kind)[0]).sum()) == pytest.approx(kl, rel=1e-10, abs=1e-14)
    ek2 = float((pi * kl_penalty(lp, rp, m, "k2")[0]).sum())
    assert ek2 == pytest.approx(0.5 * float((pi * (np.log(pi) - np.log(pref)) ** 2).sum()), rel=1e-12)


@given(S.policy_batches(log_ratio_scale=3.0))
def test_k3_nonnegative(batch):
    """Claim: k3 = ρ − 1 − log ρ ≥ 0 for every token, with equality iff logp = ref_logp; k1 can be negative."""
    m = batch["mask"]
    k = kl_penalty(batch["logp"], batch["ref_logp"], m, "k3")
    assert np.all(k >= 0) and np.all(k[~m] == 0)
    same = kl_penalty(batch["logp"], batch["logp"], m, "k3")
    assert np.all(same == 0)


@given(S.policy_batches(garbage=False, log_ratio_scale=3.0), KINDS)
def test_straight_through_and_clamps(batch, kind):
    """Claim (verl conventions): the '+' mode keeps the estimator's value and takes k2's gradient
    c·(logp − ref_logp); a value clamp bounds |k| and zeroes the gradient where it binds."""
    m, lp, rp = batch["mask"], batch["logp"], batch["ref_logp"]
    c = aggregation.coefficients(m, "token-mean")
    l_plain, _ = LOSSES[kind](lp, rp, m)
    l_st, d_st = LOSSES[kind](lp, rp, m, config=KLConfig(straight_through_k2=True))
    assert l_st == pytest.approx(l_plain, rel=1e-12, abs=1e-15)
    np.testing.assert_allclose(d_st, np.where(m, c * (lp - rp), 0.0), rtol=1e-12, atol=1e-15)
    bound = 0.5
    k = kl_penalty(lp, rp, m, kind, value_clamp=bound)
    assert np.all(np.abs(k) <= bound)
    _, d = LOSSES[kind](lp, rp, m, config=KLConfig(value_clamp=bound))
    raw = kl_penalty(lp, rp, m, kind)
    assert np.all(d[m & (np.abs(raw) > bound)] == 0)


@pytest.mark.parametrize("fn", [kl_k1_loss, kl_k2_loss, kl_k3_loss])
@pytest.mark.parametrize("change", ["shape", "mask_float", "nan", "clamp", "missing_old"])
def test_bad_input_raises(fn, change):
    """Claim: shape mismatch, non-bool mask, NaN at an unmasked position, a negative clamp and a missing
    old_logp with is_weight set raise RLSpecValueError."""
    b = S.policy_batch(np.random.default_rng(0), 3, 4, garbage=False)
    args = [b["logp"], b["ref_logp"], b["mask"].copy()]
    kw = {}
    with pytest.raises(RLSpecValueError):
        if change == "shape":
            args[1] = args[1][:, :1]
        elif change == "mask_float":
            args[2] = args[2].astype(float) * 0.5
        elif change == "nan":
            args[1] = args[1].copy()
            args[1][0, 0] = np.nan
            args[2][0, 0] = True
        elif change == "clamp":
            kw["config"] = KLConfig(value_clamp=-10.0)
        else:
            kw["config"] = KLConfig(is_weight="ratio")
        fn(*args, **kw)


def test_penalty_bad_kind_raises():
    """Claim: an unknown estimator name raises RLSpecValueError."""
    with pytest.raises(RLSpecValueError):
        kl_penalty(np.zeros((1, 1)), np.zeros((1, 1)), np.ones((1, 1), bool), "k4")
