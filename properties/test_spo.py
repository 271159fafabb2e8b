"""Properties of SPO's per-prompt Beta value tracker (arXiv 2509.13232) — reference/spo.py.

Expected values are computed here from the equations (closed forms, exact enumeration, explicit
loops over single observations), never read back from the code under test.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from properties.strategies import seeds
from rlspec.reference import registry
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.spo import (
    SPOConfig,
    SPOState,
    init_state,
    n_eff,
    sampling_weights,
    spo_advantage,
    spo_divergence,
    spo_rho,
    spo_step,
    update,
    value,
)


def random_state(rng: np.random.Generator, P: int, lo: float = 0.05, hi: float = 50.0) -> SPOState:
    return SPOState(alpha=rng.uniform(lo, hi, P), beta=rng.uniform(lo, hi, P))


def random_rewards(rng: np.random.Generator, B: int) -> np.ndarray:
    """Binary rewards, fractional rewards, or a mix with the endpoints 0 and 1."""
    kind = rng.integers(3)
    if kind == 0:
        return rng.integers(0, 2, B).astype(float)
    if kind == 1:
        return rng.random(B)
    return rng.choice([0.0, 1.0, 0.5, rng.random()], B)


# ---------------------------------------------------------------------------------------- tracker


@given(seeds())
def test_ema_identity(rng):
    """Claim (EMA form of the Beta tracker): after α ← ρα + r, β ← ρβ + (1−r),
    v̂ = v̂₋₁ + η (r − v̂₋₁) with η = 1/(ρ N_eff,₋₁ + 1), and N_eff = ρ N_eff,₋₁ + 1."""
    P = int(rng.integers(1, 8))
    state = random_state(rng, P)
    B = int(rng.integers(1, P + 1))
    ids = rng.permutation(P)[:B]  # distinct prompts: one observation each
    r = random_rewards(rng, B)
    rho = rng.uniform(0.01, 1.0, B)
    new = update(state, ids, r, rho)
    v_prev = state.alpha[ids] / (state.alpha[ids] + state.beta[ids])
    N_prev = state.alpha[ids] + state.beta[ids]
    eta = 1.0 / (rho * N_prev + 1.0)
    np.testing.assert_allclose(value(new)[ids], v_prev + eta * (r - v_prev), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(n_eff(new)[ids], rho * N_prev + 1.0, rtol=1e-13)
    untouched = np.setdiff1d(np.arange(P), ids)
    np.testing.assert_array_equal(new.alpha[untouched], state.alpha[untouched])


@given(seeds())
def test_repeated_prompt_is_sequential_in_batch_order(rng):
    """Claim (our documented convention): a prompt appearing several times in one batch is updated
    as if the batch were observed one sequence at a time, in batch order, each with its own ρ."""
    P = int(rng.integers(1, 4))
    B = int(rng.integers(1, 9))
    state = random_state(rng, P)
    ids = rng.integers(0, P, B)
    r, rho = random_rewards(rng, B), rng.uniform(0.5, 1.0, B)
    alpha, beta = state.alpha.copy(), state.beta.copy()
    for i in range(B):  # the definition, one observation at a time
        alpha[ids[i]] = rho[i] * alpha[ids[i]] + r[i]
        beta[ids[i]] = rho[i] * beta[ids[i]] + (1.0 - r[i])
    new = update(state, ids, r, rho)
    np.testing.assert_allclose(new.alpha, alpha, rtol=1e-14)
    np.testing.assert_allclose(new.beta, beta, rtol=1e-14)


@given(seeds())
def test_repeated_prompt_last_write_matches_code(rng):
    """Claim (official code's behaviour, option duplicates='last'): every occurrence is computed from
    the pre-batch (α, β) and the last occurrence in batch order is the one stored."""
    P = int(rng.integers(1, 4))
    B = int(rng.integers(1, 9))
    state = random_state(rng, P)
    ids = rng.integers(0, P, B)
    r, rho = random_rewards(rng, B), rng.uniform(0.5, 1.0, B)
    stored = {}
    for i in range(B):  # like the code's per-prompt dictionary writes
        stored[int(ids[i])] = (rho[i] * state.alpha[ids[i]] + r[i], rho[i] * state.beta[ids[i]] + 1.0 - r[i])
    new = update(state, ids, r, rho, duplicates="last")
    for p in range(P):
        expect = stored.get(p, (state.alpha[p], state.beta[p]))
        np.testing.assert_allclose((new.alpha[p], new.beta[p]), expect, rtol=1e-14)


def test_n_eff_fixed_point():
    """Claim: with a constant ρ, N_eff follows N ← ρN + 1 whatever the rewards, so
    N_k − 1/(1−ρ) = ρ^k (N_0 − 1/(1−ρ)) and N_eff → 1/(1−ρ) from any start."""
    rng = np.random.default_rng(20250913)
    P = 60
    rho = rng.uniform(0.3, 0.98, P)  # one constant discount per prompt
    state = random_state(rng, P, 1e-3, 200.0)
    N0, N_star = state.alpha + state.beta, 1.0 / (1.0 - rho)
    ids = np.arange(P)
    for k in range(1, 2001):
        state = update(state, ids, random_rewards(rng, P), rho)
        if k == 10:
            np.testing.assert_allclose(n_eff(state) - N_star, rho**10 * (N0 - N_star), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(n_eff(state), N_star, rtol=1e-10)


@given(seeds(), st.integers(1, 40))
def test_value_in_open_unit_interval(rng, steps):
    """Claim: for α₀, β₀ > 0 and rewards in [0, 1] (even all-0 or all-1 runs), v̂ stays in (0, 1)."""
    P = 3
    state = random_state(rng, P, 0.05, 100.0)
    for _ in range(steps):
        r = np.full(P, float(rng.integers(0, 2))) if rng.random() < 0.5 else random_rewards(rng, P)
        state = update(state, np.arange(P), r, rng.uniform(0.8, 1.0, P))
        v = value(state)
        assert np.all(v > 0.0) and np.all(v < 1.0), v


def test_update_is_pure():
    """Claim (design: state is an explicit frozen value): update and spo_step never modify their
    arguments — neither the state's arrays nor the batch arrays (reference and optimized)."""
    rng = np.random.default_rng(7)
    from rlspec.optimized import spo as opt

    for _ in range(20):
        inputs = registry.get("spo").make_inputs(rng)
        frozen = copy.deepcopy(inputs)
        update(inputs["state"], inputs["prompt_ids"], inputs["rewards"], inputs["rho"])
        spo_step(**inputs)
        for k in ("prompt_ids", "rewards", "rho", "mask"):
            np.testing.assert_array_equal(inputs[k], frozen[k])
        np.testing.assert_array_equal(inputs["state"].alpha, frozen["state"].alpha)
        np.testing.assert_array_equal(inputs["state"].beta, frozen["state"].beta)
        t_state = SPOState(alpha=torch.tensor(frozen["state"].alpha), beta=torch.tensor(frozen["state"].beta))
        opt.spo_step(t_state, torch.tensor(inputs["prompt_ids"]), torch.tensor(inputs["rewards"]),
                     torch.tensor(inputs["rho"]), torch.tensor(inputs["mask"]))
        np.testing.assert_array_equal(t_state.alpha.numpy(), frozen["state"].alpha)
        np.testing.assert_array_equal(t_state.beta.numpy(), frozen["state"].beta)


# ------------------------------------------------------------------------------------ initialisation


@given(seeds(), st.sampled_from([0.5, 0.875, 0.9, 0.96]))
def test_init_state_prior_strength(rng, rho_min):
    """Claim (initialisation): N₀ = 1/(1 − ρ_min), α₀ = N₀ v̂₀, β₀ = N₀(1 − v̂₀); the code's Jeffreys
    variant uses v̂₀ = (s + ½)/(n + 1) for s successes in n offline samples, Beta(½, ½) when n = 0."""
    n = 8
    s = rng.integers(0, n + 1, 5)
    st0 = init_state(s / n, rho_min=rho_min)
    N0 = 1.0 / (1.0 - rho_min)
    np.testing.assert_allclose(st0.alpha + st0.beta, N0, rtol=1e-13)
    np.testing.assert_allclose(st0.alpha, N0 * s / n, rtol=1e-13, atol=1e-13)
    stj = init_state(s / n, rho_min=rho_min, offline_n=n, jeffreys=True)
    np.testing.assert_allclose(stj.alpha / (stj.alpha + stj.beta), (s + 0.5) / (n + 1), rtol=1e-13)
    np.testing.assert_allclose(stj.alpha + stj.beta, N0, rtol=1e-13)
    st_empty = init_state(s / n, offline_n=0, jeffreys=True)
    np.testing.assert_array_equal(st_empty.alpha, 0.5)
    np.testing.assert_array_equal(st_empty.beta, 0.5)


# ------------------------------------------------------------------------------------------- discount


@given(seeds())
def test_rho_range_monotone_and_rho0(rng):
    """Claim (KL-adaptive discount ρ = clip(2^(−D/D_half), ρ_min, ρ_max)): ρ ∈ [ρ_min, ρ_max], ρ is
    non-increasing in D, ρ(0) = ρ_max (a fresh prompt forgets least), ρ(D_half) = clip(½), and a
    large D gives ρ_min."""
    D_half = float(rng.uniform(0.01, 1.0))
    rho_max = float(rng.uniform(0.3, 1.0))
    rho_min = float(rng.uniform(0.01, rho_max))
    D = np.sort(np.concatenate([[0.0, D_half, 100 * D_half], rng.exponential(D_half, 30)]))
    rho = spo_rho(D, D_half, rho_min, rho_max)
    assert np.all(rho >= rho_min) and np.all(rho <= rho_max)
    assert np.all(np.diff(rho) <= 0.0)
    assert spo_rho(np.array([0.0]), D_half, rho_min, rho_max)[0] == rho_max
    assert spo_rho(np.array([D_half]), D_half, rho_min, rho_max)[0] == pytest.approx(min(max(0.5, rho_min), rho_max))
    assert spo_rho(np.array([100 * D_half]), D_half, rho_min, rho_max)[0] == rho_min
    unclipped = (rho > rho_min) & (rho < rho_max)
    np.testing.assert_allclose(rho[unclipped], 0.5 ** (D[unclipped] / D_half), rtol=1e-13)


def test_rho_code_defaults():
    """Claim (official code defaults): D_half = 0.06, ρ clamped to [0.875, 0.96]."""
    assert spo_rho(np.array([0.0]))[0] == 0.96
    assert spo_rho(np.array([0.06]))[0] == 0.875  # 2^-1 = 0.5 is clamped up
    assert spo_rho(np.array([0.01]))[0] == pytest.approx(2 ** (-1 / 6))


@given(seeds())
def test_divergence_is_masked_mean_abs_log_ratio(rng):
    """Claim (code's D): D = mean over valid tokens of |log π_prev − log π_cur|; 0 for an empty row;
    padding (NaN/inf) is never read."""
    B, T = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    mask = np.arange(T)[None, :] < rng.integers(0, T + 1, B)[:, None]
    prev, cur = -rng.gamma(2.0, 1.0, (B, T)), -rng.gamma(2.0, 1.0, (B, T))
    expect = [np.mean(np.abs(prev[b, mask[b]] - cur[b, mask[b]])) if mask[b].any() else 0.0 for b in range(B)]
    prev[~mask], cur[~mask] = np.nan, -np.inf
    np.testing.assert_allclose(spo_divergence(prev, cur, mask), expect, rtol=1e-13)


# ------------------------------------------------------------------------------------------ advantage


@given(seeds())
def test_baseline_keeps_gradient_unbiased(rng):
    """Claim (unbiased baseline): on a categorical bandit with softmax policy π_θ, by exact
    enumeration, E_a[(r(a) − v̂₋₁) ∇θ log π(a)] = E_a[r(a) ∇θ log π(a)], because v̂₋₁ is read before
    the current sample. Control: a baseline read AFTER the update (v̂ including r(a)) shrinks the
    gradient to (1 − η)·∇J, η = 1/(ρN + 1), so it is biased — the test can tell the two apart."""
    K = int(rng.integers(2, 7))
    theta = rng.normal(scale=1.5, size=K)
    pi = np.exp(theta - theta.max())
    pi /= pi.sum()
    r = rng.random(K)
    r[rng.integers(K)] = 1.0
    state = random_state(rng, 3)
    p, rho = int(rng.integers(3)), float(rng.uniform(0.875, 0.96))
    score = np.eye(K) - pi  # row a: ∇θ log π(a) = e_a − π
    grad_J = (pi * r) @ score  # E[r ∇ log π]
    no_norm = SPOConfig(normalize=False)
    A = np.array([spo_step(state, [p], [r[a]], [rho], np.ones((1, 1), bool), no_norm)[0][0, 0] for a in range(K)])
    np.testing.assert_allclose((pi * A) @ score, grad_J, rtol=1e-10, atol=1e-13)
    # control: the baseline that has already seen the current reward
    v_after = np.array([value(update(state, [p], [r[a]], [rho]))[p] for a in range(K)])
    eta = 1.0 / (rho * (state.alpha[p] + state.beta[p]) + 1.0)
    np.testing.assert_allclose((pi * (r - v_after)) @ score, (1.0 - eta) * grad_J, rtol=1e-10, atol=1e-13)
    assert np.linalg.norm(grad_J) < 1e-12 or not np.allclose((pi * (r - v_after)) @ score, grad_J, rtol=1e-6)


@given(seeds(), st.sampled_from([0, 1]))
def test_normalized_advantage_zero_mean_unit_std(rng, ddof):
    """Claim (global batch normalisation): with ε = 0, Ã = (A − μ_B)/σ_B has mean 0 and std 1 (same
    ddof) over the batch, is broadcast over each response's valid tokens and is 0 elsewhere."""
    B, T = int(rng.integers(2, 16)), int(rng.integers(1, 6))
    P = int(rng.integers(1, 6))
    state = random_state(rng, P)
    ids = rng.integers(0, P, B)
    r = random_rewards(rng, B)
    A = r - value(state)[ids]
    if np.ptp(A) < 1e-6:  # all-equal batches have Ã = 0 by definition (tested below)
        r[0] = 1.0 - r[0] if abs(r[0] - 0.5) > 0.01 else 1.0
    mask = np.arange(T)[None, :] < rng.integers(0, T + 1, B)[:, None]
    cfg = SPOConfig(eps=0.0, ddof=ddof)
    adv, _ = spo_step(state, ids, r, 0.9, mask, cfg)
    full, _ = spo_step(state, ids, r, 0.9, np.ones((B, 1), bool), cfg)
    At = full[:, 0]
    assert abs(At.mean()) < 1e-12
    assert At.std(ddof=ddof) == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_array_equal(adv, np.where(mask, At[:, None], 0.0))
    # unnormalised: exactly r − v̂₋₁ with the PRE-batch value
    raw, _ = spo_step(state, ids, r, 0.9, np.ones((B, 1), bool), SPOConfig(normalize=False))
    np.testing.assert_allclose(raw[:, 0], r - state.alpha[ids] / (state.alpha[ids] + state.beta[ids]), rtol=1e-13)


def test_defined_cases():
    """Claim (defined edge cases): B = 0 gives a (0, T) advantage and the unchanged state; B = 1 and
    all-equal A give Ã = 0 (no NaN); fully masked rows get 0 advantage."""
    state = SPOState(alpha=np.array([2.0, 3.0]), beta=np.array([6.0, 1.0]))
    adv, new = spo_step(state, np.zeros(0, np.int64), np.zeros(0), np.zeros(0) + 0.9, np.zeros((0, 4), bool))
    assert adv.shape == (0, 4)
    np.testing.assert_array_equal(new.alpha, state.alpha)
    adv1, _ = spo_step(state, [1], [1.0], [0.9], np.ones((1, 3), bool))
    np.testing.assert_array_equal(adv1, 0.0)
    adv_eq, _ = spo_step(state, [0, 0, 0], [1.0, 1.0, 1.0], 0.9, np.ones((3, 2), bool), SPOConfig(eps=0.0))
    np.testing.assert_array_equal(adv_eq, 0.0)
    adv_m, _ = spo_step(state, [0, 1], [1.0, 0.0], 0.9, np.array([[True, True], [False, False]]))
    assert adv_m[0, 0] > 0 and np.all(adv_m[1] == 0.0)


# ------------------------------------------------------------------------------------------- sampling


@given(seeds(), st.floats(0.0, 0.5), st.floats(0.0, 0.2))
def test_sampling_weight_peaks_at_half_and_is_symmetric(rng, x, eps_w):
    """Claim (prioritized sampling, γ = 0): w ∝ sqrt(v̂(1 − v̂)) + ε is maximal at v̂ = ½ and symmetric
    under v̂ ↦ 1 − v̂; the weights sum to 1; with γ > 0, a larger N_eff at equal v̂ lowers the weight."""
    N = float(rng.uniform(1.0, 30.0))
    grid = np.linspace(0.0, 1.0, 101)
    v = np.concatenate([[0.5, x, 1.0 - x], grid])
    state = SPOState(alpha=N * v, beta=N * (1.0 - v))
    w = sampling_weights(state, gamma=0.0, explore_eps=eps_w)
    assert w.sum() == pytest.approx(1.0, rel=1e-12)
    assert w[1] == pytest.approx(w[2], rel=1e-12)
    assert w[0] >= w.max() - 1e-15
    wg = w[3:]
    assert int(np.argmax(wg)) == 50 and np.allclose(wg, wg[::-1], rtol=1e-12)
    # γ > 0: same v̂ = 0.3, counts N and 4N
    s2 = SPOState(alpha=np.array([0.3 * N, 1.2 * N]), beta=np.array([0.7 * N, 2.8 * N]))
    w2 = sampling_weights(s2, gamma=float(rng.uniform(0.1, 2.0)), explore_eps=eps_w)
    assert w2[0] > w2[1]
    np.testing.assert_allclose(sampling_weights(s2, gamma=0.0, explore_eps=eps_w), [0.5, 0.5], rtol=1e-12)


def test_sampling_weights_code_form():
    """Claim (official code): the sampler's probabilities are (sqrt(p̂(1 − p̂)) + 0.05) normalised over
    the candidate prompts."""
    state = init_state(np.array([0.0, 0.25, 0.5, 1.0]), offline_n=8, jeffreys=True)
    p = (np.array([0, 2, 4, 8]) + 0.5) / 9
    raw = np.sqrt(p * (1 - p)) + 0.05
    np.testing.assert_allclose(sampling_weights(state), raw / raw.sum(), rtol=1e-13)
    np.testing.assert_allclose(sampling_weights(state, candidates=[3, 1]), raw[[3, 1]] / raw[[3, 1]].sum(), rtol=1e-13)


# ---------------------------------------------------------------------------------------- simulation


@pytest.mark.parametrize("seed", [0, 1])
def test_tracks_bernoulli_bandit(seed):
    """Claim (tracking, seeded simulation): on a many-prompt Bernoulli bandit, with ρ = 1 the tracker is
    the Beta posterior mean, whose mean squared error after k updates is
    [N₀²(v̂₀ − p)² + k p(1 − p)] / (N₀ + k)² — it decreases with k; the empirical MSE over 600 prompts
    stays within ±25% of that formula (over 4 standard deviations of the ratio; checked over 40 seeds)."""
    rng = np.random.default_rng(seed)
    P, n_off = 600, 8
    p = rng.uniform(0.05, 0.95, P)
    v0 = rng.binomial(n_off, p) / n_off
    state = init_state(v0)  # N₀ = 8
    N0, ids = 8.0, np.arange(P)
    mse = {}
    for k in range(1, 201):
        state = update(state, ids, (rng.random(P) < p).astype(float), 1.0)
        if k in (5, 50, 200):
            expected = np.mean((N0**2 * (v0 - p) ** 2 + k * p * (1 - p)) / (N0 + k) ** 2)
            mse[k] = np.mean((value(state) - p) ** 2)
            assert 0.75 * expected <= mse[k] <= 1.25 * expected, (k, mse[k], expected)
    assert mse[5] > mse[50] > mse[200]


@pytest.mark.parametrize("seed", [0, 1])
def test_discount_follows_a_moving_target(seed):
    """Claim (why ρ < 1): after every prompt's success rate jumps from p_old to p_new, a discounted
    tracker (ρ = 0.875, N_eff → 8) forgets p_old and reaches the stationary EMA error
    p(1 − p)(1 − ρ)/(1 + ρ), while the undiscounted one (ρ = 1) is the all-history average, with MSE
    (bias² + variance of that average) — both within ±25% of their formulas (checked over 40 seeds),
    and the undiscounted error is several times larger."""
    rng = np.random.default_rng(seed)
    P, rho, k_old, k_new = 600, 0.875, 150, 60
    p_old, p_new = rng.uniform(0.05, 0.95, P), rng.uniform(0.05, 0.95, P)
    trackers = {rho: init_state(np.full(P, 0.5)), 1.0: init_state(np.full(P, 0.5))}  # N₀ = 8, v̂₀ = ½
    ids = np.arange(P)
    for k in range(k_old + k_new):
        p = p_old if k < k_old else p_new
        r = (rng.random(P) < p).astype(float)
        trackers = {c: update(s, ids, r, c) for c, s in trackers.items()}
    err_disc = np.mean((value(trackers[rho]) - p_new) ** 2)
    err_flat = np.mean((value(trackers[1.0]) - p_new) ** 2)
    stationary = np.mean(p_new * (1 - p_new)) * (1 - rho) / (1 + rho)  # old rate weighted by ρ^60 ≈ 3e-4
    n = 8.0 + k_old + k_new
    bias = (8.0 * 0.5 + k_old * p_old + k_new * p_new) / n - p_new
    var = (k_old * p_old * (1 - p_old) + k_new * p_new * (1 - p_new)) / n**2
    flat = np.mean(bias**2 + var)
    assert 0.75 * stationary <= err_disc <= 1.25 * stationary, (err_disc, stationary)
    assert 0.75 * flat <= err_flat <= 1.25 * flat, (err_flat, flat)
    assert err_flat > 3 * err_disc


# ------------------------------------------------------------------------------------------ bad input


def _state():
    return SPOState(alpha=np.array([2.0, 3.0, 1.0]), beta=np.array([6.0, 1.0, 1.0]))


BAD_CASES = {
    "rewards above 1": (lambda: update(_state(), [0], [1.5], [0.9]), "rewards"),
    "rewards below 0": (lambda: update(_state(), [0], [-0.1], [0.9]), "rewards"),
    "rewards NaN": (lambda: update(_state(), [0], [np.nan], [0.9]), "rewards"),
    "prompt id = P": (lambda: update(_state(), [3], [1.0], [0.9]), "prompt_ids"),
    "prompt id negative": (lambda: update(_state(), [-1], [1.0], [0.9]), "prompt_ids"),
    "prompt id float": (lambda: update(_state(), [0.5], [1.0], [0.9]), "prompt_ids"),
    "rho zero": (lambda: update(_state(), [0], [1.0], [0.0]), "rho"),
    "rho above 1": (lambda: update(_state(), [0], [1.0], [1.1]), "rho"),
    "rho NaN": (lambda: update(_state(), [0], [1.0], [np.nan]), "rho"),
    "rho wrong length": (lambda: update(_state(), [0, 1], [1.0, 0.0], [0.9, 0.9, 0.9]), "rho"),
    "state NaN": (lambda: update(SPOState(np.array([np.nan]), np.array([1.0])), [0], [1.0], [0.9]), "state"),
    "state negative": (lambda: value(SPOState(np.array([-1.0]), np.array([2.0]))), "state"),
    "state zero count": (lambda: value(SPOState(np.array([0.0]), np.array([0.0]))), "state"),
    "state not SPOState": (lambda: value({"alpha": [1.0], "beta": [1.0]}), "state"),
    "state length mismatch": (lambda: value(SPOState(np.ones(2), np.ones(3))), "state.beta"),
    "mask float": (lambda: spo_step(_state(), [0], [1.0], [0.9], np.ones((1, 2))), "mask"),
    "mask rows != B": (lambda: spo_step(_state(), [0], [1.0], [0.9], np.ones((2, 2), bool)), "prompt_ids"),
    "advantage reward NaN": (lambda: spo_advantage([np.nan], [0.5], np.ones((1, 1), bool)), "rewards"),
    "D negative": (lambda: spo_rho(np.array([-0.1])), "D"),
    "D NaN": (lambda: spo_rho(np.array([np.nan])), "D"),
    "rho_min > rho_max": (lambda: spo_rho(np.array([0.1]), rho_min=0.9, rho_max=0.8), "rho_min"),
    "v0 above 1": (lambda: init_state(np.array([1.2])), "v0"),
    "jeffreys without offline_n": (lambda: init_state(np.array([0.5]), jeffreys=True), "offline_n"),
    "gamma negative": (lambda: sampling_weights(_state(), gamma=-1.0), "gamma"),
    "candidate out of range": (lambda: sampling_weights(_state(), candidates=[5]), "candidates"),
    "config duplicates": (lambda: SPOConfig(duplicates="first"), "duplicates"),
    "config ddof": (lambda: SPOConfig(ddof=2), "ddof"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_raises(case):
    """Claim (bad input policy): invalid rewards, prompt ids, discounts, states, masks and options
    raise RLSpecValueError naming the argument — never a silent NaN or a corrupted tracker."""
    call, argument = BAD_CASES[case]
    with pytest.raises(RLSpecValueError, match=argument):
        call()


def test_optimized_bad_input_raises():
    """Claim (bad input policy, optimized path): the torch version rejects the same bad values."""
    from rlspec.optimized import spo as opt

    f64 = torch.float64
    st0 = SPOState(alpha=torch.tensor([2.0, 3.0], dtype=f64), beta=torch.tensor([1.0, 1.0], dtype=f64))
    m = torch.ones(1, 2, dtype=torch.bool)
    for ids, r, rho, arg in (([2], [1.0], [0.9], "prompt_ids"), ([0], [1.5], [0.9], "rewards"),
                             ([0], [float("nan")], [0.9], "rewards"), ([0], [1.0], [0.0], "rho")):
        with pytest.raises(RLSpecValueError, match=arg):
            opt.spo_step(st0, torch.tensor(ids), torch.tensor(r, dtype=torch.float64), torch.tensor(rho), m)
