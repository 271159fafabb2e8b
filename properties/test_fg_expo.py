"""Properties of FG-ExPO's adaptive KL (AKL) and Gaussian curriculum sampling (GCS), arXiv 2605.11403 —
reference/fg_expo.py.

Expected values are written here from the equations (closed forms, loops, exact enumeration), never read back
from the code under test.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties.strategies import finite_difference, seeds
from rlspec.reference import registry
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.fg_expo import (
    FGExPOConfig,
    FGExPOState,
    akl_beta,
    akl_rho,
    batch_accuracy,
    fg_expo_step,
    gcs_probs,
    gcs_sample,
    gcs_weights,
    init_state,
    update,
)
from rlspec.reference.grpo import GRPOConfig

# ----------------------------------------------------------------------------------------------- AKL

def test_rho_range_and_monotone():
    """AKL (§4): ρ(x) = (tanh x + 1)/2 is increasing and stays in [0.5, 0.881] for accuracies in [0, 1], so
    β_eff = β·ρ(acc̄) ∈ [β/2, 0.881β]; ρ(1) = (tanh 1 + 1)/2 = 1/(1 + e^{−2})."""
    x = np.linspace(0.0, 1.0, 2001)
    r = akl_rho(x)
    assert r[0] == 0.5
    assert math.isclose(r[-1], 1.0 / (1.0 + math.exp(-2.0)), rel_tol=1e-14)
    assert np.all(np.diff(r) > 0)
    assert r.min() >= 0.5 and r.max() <= 0.8808
    for beta in (0.02, 0.3, 1.0):
        cfg = FGExPOConfig(beta=beta)
        b = np.array([akl_beta(a, cfg) for a in x[::50]])
        assert np.all(np.diff(b) > 0)
        assert b.min() >= beta / 2 - 1e-15 and b.max() <= 0.8808 * beta


def _loss_with_kl(batch, kl_coef):
    """The paper's Eq. 2 + Eq. 3 objective through the registry: ppo + kl_coef · kl_k3 (loss, dlogp)."""
    ppo, kl = registry.get("ppo"), registry.get("kl_k3")
    lp, dp = ppo(logp=batch["logp"], old_logp=batch["old_logp"], adv=batch["adv"], mask=batch["mask"])
    lk, dk = kl(logp=batch["logp"], ref_logp=batch["ref_logp"], mask=batch["mask"])
    return lp + kl_coef * lk, dp + kl_coef * dk


def _random_policy_batch(rng, B=5, T=4):
    mask = np.arange(T)[None, :] < rng.integers(1, T + 1, size=B)[:, None]
    old = -rng.exponential(1.0, (B, T))
    return {"logp": old + rng.normal(0, 0.1, (B, T)), "old_logp": old, "ref_logp": old + rng.normal(0, 0.2, (B, T)),
            "adv": np.repeat(rng.normal(size=B)[:, None], T, axis=1), "mask": mask}


@given(seeds())
def test_rho_one_recovers_grpo_and_constant_rho_scales_beta(rng):
    """AKL reduces to GRPO: with ρ ≡ 1 the coefficient is β whatever the accuracy; with a constant ρ = c the
    loss (ppo + β_eff·k3) equals GRPO's with coefficient c·β (values and gradients)."""
    beta = float(rng.uniform(0.0, 0.5))
    acc = float(rng.random())
    assert akl_beta(acc, FGExPOConfig(beta=beta, rho="one")) == beta
    batch = _random_policy_batch(rng)
    c = float((np.tanh(acc) + 1) / 2)  # the tanh ρ at this accuracy, a constant for this step
    l1, d1 = _loss_with_kl(batch, akl_beta(acc, FGExPOConfig(beta=beta)))
    l2, d2 = _loss_with_kl(batch, c * beta)
    assert math.isclose(l1, l2, rel_tol=1e-12, abs_tol=1e-15)
    np.testing.assert_allclose(d1, d2, rtol=1e-12, atol=1e-15)


@given(seeds())
def test_kl_term_nonnegative_and_scaled(rng):
    """Eq. 3: k3 = π_ref/π − log(π_ref/π) − 1 ≥ 0, so β_eff only rescales a non-negative penalty; a failing
    batch (low acc̄) gets a smaller penalty than a succeeding one (the constraint is loosened)."""
    batch = _random_policy_batch(rng)
    lk, _ = registry.get("kl_k3")(logp=batch["logp"], ref_logp=batch["ref_logp"], mask=batch["mask"])
    assert lk >= 0.0
    lo, hi = sorted(rng.random(2))
    if hi - lo > 1e-9:
        assert akl_beta(lo) * lk <= akl_beta(hi) * lk


# ----------------------------------------------------------------------------------------------- GCS

@given(seeds())
def test_weight_peaks_at_centre_and_is_symmetric(rng):
    """GCS (§4): w(p̃) = exp(−(p̃ − 0.5)²/(2σ²)) is 1 at p̃ = 0.5, symmetric about 0.5, and strictly decreasing
    in |p̃ − 0.5|; the sampling probability is largest for the question nearest the frontier."""
    sigma = float(rng.uniform(0.05, 2.0))
    cfg = FGExPOConfig(sigma=sigma)
    d = np.sort(rng.uniform(0, 0.5, 6))
    w_lo = gcs_weights(0.5 - d, cfg)
    w_hi = gcs_weights(0.5 + d, cfg)
    np.testing.assert_allclose(w_lo, w_hi, rtol=1e-12)
    np.testing.assert_allclose(w_lo, np.exp(-d**2 / (2 * sigma**2)), rtol=1e-12)
    assert gcs_weights(np.array([0.5]), cfg)[0] == 1.0
    assert np.all(np.diff(w_lo) <= 0)
    p = rng.random(int(rng.integers(2, 12)))
    probs = gcs_probs(p, cfg)
    assert math.isclose(probs.sum(), 1.0, rel_tol=1e-12)
    assert np.argmax(probs) == np.argmin(np.abs(p - 0.5))


@given(seeds())
def test_wide_sigma_is_uniform_and_narrow_sigma_is_point_mass(rng):
    """GCS limits: σ → ∞ ⇒ uniform sampling; σ → 0 ⇒ all probability on the question(s) closest to 0.5."""
    Q = int(rng.integers(2, 15))
    p = rng.random(Q)
    np.testing.assert_allclose(gcs_probs(p, FGExPOConfig(sigma=1e6)), np.full(Q, 1.0 / Q), rtol=1e-9)
    p = np.where(rng.random(Q) < 0.5, rng.uniform(0.0, 0.45, Q), rng.uniform(0.55, 1.0, Q))
    p[int(rng.integers(Q))] = 0.5 + 0.001  # one question strictly closest to the frontier
    probs = gcs_probs(p, FGExPOConfig(sigma=1e-3))
    best = np.argmin(np.abs(p - 0.5))
    assert probs[best] > 1 - 1e-12 and np.isfinite(probs).all()
    tie = np.array([0.4, 0.6, 0.1, 0.95])  # two questions equally close: split evenly, no 0/0 at tiny σ
    np.testing.assert_allclose(gcs_probs(tie, FGExPOConfig(sigma=1e-6)), [0.5, 0.5, 0.0, 0.0], atol=1e-300)


def test_initial_state_is_uniform():
    """GCS initialisation: p̃ = 0.5 for every question, so every weight is 1 and sampling starts uniform."""
    s = init_state(7)
    np.testing.assert_array_equal(s.p_tilde, np.full(7, 0.5))
    np.testing.assert_array_equal(gcs_weights(s.p_tilde), np.ones(7))
    np.testing.assert_allclose(gcs_probs(s.p_tilde), np.full(7, 1 / 7), rtol=1e-15)


@pytest.mark.parametrize("G", [2, 5, 8])
def test_frontier_maximises_grpo_signal(G):
    """Justification of μ = 0.5: a group of G Bernoulli(p) rewards has variance p(1 − p) and gives a non-zero
    GRPO advantage unless all rewards agree, which happens with probability p^G + (1 − p)^G (counted here by
    enumerating all 2^G outcomes through the registry's grpo). Both signals peak at p = 0.5 and are symmetric."""
    grpo = registry.get("grpo")
    mask = np.ones((G, 1), dtype=bool)
    outcomes = [np.array([(k >> j) & 1 for j in range(G)], dtype=float) for k in range(2**G)]
    nonzero = [bool(np.any(grpo(rewards=r, group=np.zeros(G, int), mask=mask) != 0)) for r in outcomes]
    ps = np.linspace(0.0, 1.0, 41)
    frac = np.array([sum(p ** r.sum() * (1 - p) ** (G - r.sum()) for r, nz in zip(outcomes, nonzero) if nz)
                     for p in ps])
    np.testing.assert_allclose(frac, 1 - ps**G - (1 - ps) ** G, atol=1e-12)
    assert np.argmax(frac) == 20 and np.argmax(ps * (1 - ps)) == 20
    np.testing.assert_allclose(frac, frac[::-1], atol=1e-12)


@given(seeds())
def test_gcs_raises_signal_fraction_on_toy_pool(rng):
    """Claim (uniform sampling wastes rollouts on solved/unsolvable questions): with p̃ equal to the questions'
    true pass rates, the expected fraction of groups with a non-zero GRPO signal, Σ Pr[q]·(1 − p_q^G − (1 − p_q)^G),
    is at least its value under uniform sampling — both factors decrease in |p − 0.5| (Chebyshev's sum
    inequality), so this holds for every pool and σ."""
    Q, G = int(rng.integers(2, 30)), 8
    p = rng.choice([0.0, 1.0, rng.random()], size=Q) if rng.random() < 0.3 else rng.random(Q)
    f = 1 - p**G - (1 - p) ** G
    probs = gcs_probs(p, FGExPOConfig(sigma=float(rng.uniform(0.05, 3.0))))
    assert probs @ f >= f.mean() - 1e-12


@given(seeds())
def test_ema_update_only_sampled_and_sequential(rng):
    """EMA (§4): p̃_q ← α p̃_q + (1 − α) p_q for the sampled questions only; a question sampled k times in one
    batch is updated k times in batch order (our convention); the others keep their value."""
    Q = int(rng.integers(1, 8))
    state = FGExPOState(p_tilde=rng.random(Q))
    N = int(rng.integers(1, 10))
    idx = rng.integers(0, Q, N)
    p = rng.integers(0, 9, N) / 8.0
    alpha = float(rng.random())
    new = update(state, idx, p, FGExPOConfig(alpha=alpha))
    expect = list(state.p_tilde)
    for q, pq in zip(idx, p):
        expect[q] = alpha * expect[q] + (1 - alpha) * pq
    np.testing.assert_allclose(new.p_tilde, expect, rtol=1e-14, atol=1e-15)
    untouched = np.setdiff1d(np.arange(Q), idx)
    np.testing.assert_array_equal(new.p_tilde[untouched], state.p_tilde[untouched])


def test_ema_converges_geometrically():
    """EMA: a question whose pass rate stays p is tracked with error α^k (p̃_0 − p) after k observations."""
    state, alpha, p = init_state(1), 0.9, 0.125
    for k in range(1, 40):
        state = update(state, [0], [p], FGExPOConfig(alpha=alpha))
        assert math.isclose(state.p_tilde[0] - p, alpha**k * (0.5 - p), rel_tol=1e-10, abs_tol=1e-15)


@given(seeds())
def test_inverse_cdf_draws_follow_probs(rng):
    """Sampling honours Pr[q] exactly: with n stratified uniforms u_k = (k + ½)/n, question q is drawn
    ⌊n·F_q + ½⌋ − ⌊n·F_{q−1} + ½⌋ times, i.e. within 1 of its expected count n·Pr[q]."""
    Q = int(rng.integers(1, 10))
    probs = gcs_probs(rng.random(Q), FGExPOConfig(sigma=float(rng.uniform(0.05, 1.0))))
    n = int(rng.integers(1, 400))
    u = (np.arange(n) + 0.5) / n
    counts = np.bincount(gcs_sample(probs, u), minlength=Q)
    assert counts.sum() == n
    assert np.all(np.abs(counts - n * probs) <= 1.0 + 1e-9)
    # one draw by hand: the first q whose cumulative probability exceeds u
    x = float(rng.random())
    F = 0.0
    for q in range(Q):
        F += probs[q]
        if F > x:
            break
    assert gcs_sample(probs, [x])[0] == q


def test_replay_run_step_by_step():
    """Stateful contract: a seeded 30-step run over a pool of Bernoulli questions, replayed from the initial
    state with the pure update, gives the same β_eff, probabilities and batches at every step; no input is
    mutated, and each state is the EMA written out here by hand."""
    rng = np.random.default_rng(0)
    Q, N, G = 20, 6, 8
    true_p = rng.random(Q)
    cfg = FGExPOConfig()
    state = init_state(Q)
    idx = rng.integers(0, Q, N)
    log = []
    for _ in range(30):
        p = rng.binomial(G, true_p[idx]) / G
        u = rng.random(N)
        args = (state, idx.copy(), p.copy(), u.copy())
        snapshot = copy.deepcopy(args)
        beta_eff, probs, nxt, new = fg_expo_step(*args, config=cfg)
        for a, b in zip(args[1:], snapshot[1:]):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(args[0].p_tilde, snapshot[0].p_tilde)
        hand = state.p_tilde.copy()
        for q, pq in zip(idx, p):
            hand[q] = 0.9 * hand[q] + 0.1 * pq
        np.testing.assert_allclose(new.p_tilde, hand, rtol=1e-14)
        assert math.isclose(beta_eff, 0.02 * (np.tanh(p.mean()) + 1) / 2, rel_tol=1e-14)
        log.append((state, idx, p, u, beta_eff, probs, nxt))
        state, idx = new, nxt
    replay = init_state(Q)
    for state0, idx0, p0, u0, beta0, probs0, nxt0 in log:
        np.testing.assert_array_equal(replay.p_tilde, state0.p_tilde)
        b, pr, nx, replay = fg_expo_step(replay, idx0, p0, u0, config=cfg)
        assert b == beta0
        np.testing.assert_array_equal(pr, probs0)
        np.testing.assert_array_equal(nx, nxt0)


def test_drives_one_grpo_step():
    """Composition: GCS picks the batch's questions, their rollouts get the registry's GRPO advantages (the
    paper's population std, ddof=0), and the step's loss is ppo + β_eff·kl_k3 with β_eff from the batch
    accuracy; the gradient of the composed loss matches central finite differences."""
    rng = np.random.default_rng(3)
    Q, N, G, T = 12, 4, 4, 3
    true_p = rng.random(Q)
    state = FGExPOState(p_tilde=true_p.copy())
    probs = gcs_probs(state.p_tilde)
    idx = gcs_sample(probs, rng.random(N))
    group = np.repeat(np.arange(N), G)
    rewards = (rng.random(N * G) < np.repeat(true_p[idx], G)).astype(float)
    rewards[:G] = [1.0, 0.0, 1.0, 0.0]  # at least one informative group
    mask = np.arange(T)[None, :] < rng.integers(1, T + 1, N * G)[:, None]
    adv = registry.get("grpo")(rewards=rewards, group=group, mask=mask, config=GRPOConfig(ddof=0))
    pass_rate = rewards.reshape(N, G).mean(axis=1)
    beta_eff, _, _, new_state = fg_expo_step(state, idx, pass_rate, rng.random(N))
    old = -rng.exponential(1.0, mask.shape)
    batch = {"logp": old + rng.normal(0, 0.05, mask.shape), "old_logp": old,
             "ref_logp": old + rng.normal(0, 0.2, mask.shape), "adv": adv, "mask": mask}
    loss, dlogp = _loss_with_kl(batch, beta_eff)
    assert np.isfinite(loss) and np.any(dlogp != 0)

    def f(lp):
        return _loss_with_kl({**batch, "logp": lp}, beta_eff)[0]

    np.testing.assert_allclose(dlogp, finite_difference(f, batch["logp"], mask), rtol=1e-6, atol=1e-9)
    assert not np.array_equal(new_state.p_tilde, state.p_tilde)


def test_bad_input_raises():
    """Boundary validation: the argument is named in the message."""
    s = init_state(3)
    cases = [
        (lambda: fg_expo_step(s, [3], [0.5], [0.1]), "idx"),
        (lambda: fg_expo_step(s, [0], [1.5], [0.1]), "pass_rate"),
        (lambda: fg_expo_step(s, [0, 1], [0.5], [0.1]), "pass_rate"),
        (lambda: fg_expo_step(s, [], [], [0.1]), "pass_rate"),
        (lambda: fg_expo_step(s, [0], [0.5], [1.0]), "u"),
        (lambda: fg_expo_step(s, [0.5], [0.5], [0.1]), "idx"),
        (lambda: fg_expo_step(FGExPOState(np.array([0.5, np.nan])), [0], [0.5], [0.1]), "state.p_tilde"),
        (lambda: fg_expo_step(s.p_tilde, [0], [0.5], [0.1]), "state"),
        (lambda: FGExPOConfig(sigma=0.0), "sigma"),
        (lambda: FGExPOConfig(alpha=1.5), "alpha"),
        (lambda: FGExPOConfig(rho="linear"), "rho"),
        (lambda: akl_beta(1.2), "acc_bar"),
        (lambda: batch_accuracy([]), "pass_rate"),
        (lambda: init_state(0), "num_questions"),
    ]
    for fn, name in cases:
        with pytest.raises(RLSpecValueError, match=name):
            fn()


@given(st.floats(0.0, 1.0))
def test_registry_entry_calls_step(acc):
    """The registry entry is the one-step function with the paper's defaults."""
    spec = registry.get("fg_expo")
    beta_eff, probs, nxt, new = spec(state=init_state(2), idx=[0], pass_rate=[acc], u=[0.3])
    assert math.isclose(beta_eff, 0.02 * (math.tanh(acc) + 1) / 2, rel_tol=1e-14)
    assert nxt.shape == (1,) and probs.shape == (2,)
