"""Properties of XRPO's rollout allocator, in-context seeding and novelty sharpening (arXiv 2510.06672) —
reference/xrpo.py.

Expected values are computed here (scipy's t quantiles, brute force over allocations, exact enumeration of
sample groups), never read back from the code under test.
"""

from __future__ import annotations

import copy
import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from scipy import stats

from properties.strategies import seeds
from rlspec.reference import registry
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.xrpo import (
    XRPOAllocConfig,
    XRPOSharpenConfig,
    XRPOState,
    ci_halfwidth,
    expected_reduction,
    exploration_bonus,
    icl_seed,
    update,
    xrpo_allocate,
    xrpo_sharpen,
)


def h(s, n, a=0.05):
    """The Student-t half-width written out from scipy."""
    return stats.t.ppf(1 - a / 2, n - 1) * s / math.sqrt(n)


def first_rollouts(rng, Q, lo=2, hi=6):
    n = rng.integers(lo, hi, Q)
    p = rng.choice([0.0, 1.0, rng.random(), rng.random()], Q)
    group = np.repeat(np.arange(Q), n)
    rewards = (rng.random(group.size) < np.repeat(p, n)).astype(float)
    return rewards, group


# --------------------------------------------------------------------------------------- allocator

@given(seeds())
def test_allocation_spends_exactly_the_budget(rng):
    """Allocator: the extra rollouts are non-negative integers summing to exactly the phase budget."""
    rewards, group = first_rollouts(rng, int(rng.integers(1, 8)))
    budget = int(rng.integers(0, 40))
    extra, pri = xrpo_allocate(rewards, group, budget, int(rng.integers(0, 1000)))
    assert extra.sum() == budget and (extra >= 0).all() and extra.dtype.kind == "i"
    assert extra.shape == pri.shape == (np.unique(group).size,)


@given(seeds())
def test_marginal_gain_positive_and_decreasing(rng):
    """Uncertainty reduction (§3): Δ̂(n) = h(n) − h(n + 1) > 0 for s > 0 and n ≥ 2, and decreasing in n
    (the next rollout always helps, less and less), with h from scipy's t quantiles."""
    s = float(rng.uniform(0.01, 1.0))
    a = float(rng.choice([0.01, 0.05, 0.1, 0.3]))
    n = np.arange(2, 400)
    d = expected_reduction(np.full(n.size, s), n, a)
    hw = stats.t.ppf(1 - a / 2, np.arange(1, 400)) * s / np.sqrt(np.arange(2, 401))  # h(2), ..., h(400)
    hand = hw[:-1] - hw[1:]
    np.testing.assert_allclose(d, hand, rtol=1e-10)
    assert (d > 0).all() and (np.diff(d) < 0).all()
    np.testing.assert_allclose(ci_halfwidth(s, 7, a), h(s, 7, a), rtol=1e-12)


@given(seeds())
def test_zero_std_prompt_priority_is_bonus_only(rng):
    """Priority: a prompt whose first rollouts all agree (s_q = 0) has Δ̂ = 0, so Π_q = φ_q = λ√(log(1+T)/n_q)."""
    n = int(rng.integers(2, 9))
    T = int(rng.integers(0, 10**6))
    lam = float(rng.uniform(0, 2))
    r = np.full(n, float(rng.integers(0, 2)))
    _, pri = xrpo_allocate(r, np.zeros(n, int), 0, T, XRPOAllocConfig(lam=lam))
    assert math.isclose(pri[0], lam * math.sqrt(math.log(1 + T) / n), rel_tol=1e-12, abs_tol=1e-300)


def _sum_priorities(s, n, e, T, cfg):
    """Σ_q Σ_{k<e_q} [h_q(n_q + k) − h_q(n_q + k + 1) + λ√(log(1+T)/(n_q + k))], written out."""
    tot = 0.0
    for q in range(len(s)):
        for k in range(e[q]):
            m = n[q] + k
            tot += h(s[q], m, cfg.ci_alpha) - h(s[q], m + 1, cfg.ci_alpha) + cfg.lam * math.sqrt(math.log1p(T) / m)
    return tot


@given(seeds())
def test_greedy_is_optimal_by_enumeration(rng):
    """Greedy allocation is optimal: since Π_q(n) decreases in n, handing out units one by one to the largest
    priority maximises the summed marginal priorities Σ_q Σ_{k<e_q} Π_q(n_q + k) — checked against every
    allocation of the budget (small Q, budget)."""
    Q = int(rng.integers(1, 4))
    rewards, group = first_rollouts(rng, Q)
    budget = int(rng.integers(0, 7))
    T = int(rng.integers(0, 500))
    cfg = XRPOAllocConfig(lam=float(rng.choice([0.0, 0.1, 1.0])))
    extra, _ = xrpo_allocate(rewards, group, budget, T, cfg)
    n = np.bincount(group)
    s = [np.std(rewards[group == q], ddof=1) for q in range(Q)]
    best = max(_sum_priorities(s, n, e, T, cfg) for e in itertools.product(range(budget + 1), repeat=Q)
               if sum(e) == budget)
    assert _sum_priorities(s, n, extra, T, cfg) >= best - 1e-12


@given(seeds())
def test_no_bonus_minimises_total_ci_halfwidth(rng):
    """Uncertainty reduction without the bonus (λ = 0): the summed marginal gains telescope, so the allocation
    minimises Σ_q h_q(n_q + e_q), the total confidence-interval half-width — never above the uniform split."""
    Q = int(rng.integers(2, 6))
    rewards, group = first_rollouts(rng, Q)
    budget = Q * int(rng.integers(1, 5))
    extra, _ = xrpo_allocate(rewards, group, budget, 0, XRPOAllocConfig(lam=0.0))
    n = np.bincount(group)
    s = [np.std(rewards[group == q], ddof=1) for q in range(Q)]
    width = lambda e: sum(h(s[q], n[q] + e[q]) for q in range(Q))  # noqa: E731
    assert width(extra) <= width([budget // Q] * Q) + 1e-12
    if Q <= 3 and budget <= 8:
        best = min(width(e) for e in itertools.product(range(budget + 1), repeat=Q) if sum(e) == budget)
        assert width(extra) <= best + 1e-12


@given(seeds())
def test_bonus_grows_with_T_and_shrinks_with_n(rng):
    """Exploration bonus φ = λ√(log(1 + T)/n): 0 at T = 0, increasing in T, decreasing in n."""
    lam = float(rng.uniform(0.01, 3))
    assert exploration_bonus(np.array([3.0]), 0, lam)[0] == 0.0
    T = np.sort(rng.integers(1, 10**6, 5))
    b = [exploration_bonus(np.array([4.0]), int(t), lam)[0] for t in np.unique(T)]
    assert np.all(np.diff(b) > 0)
    assert np.all(np.diff(exploration_bonus(np.arange(2, 30), 100, lam)) < 0)
    assert math.isclose(exploration_bonus(np.array([5.0]), 99, lam)[0], lam * math.sqrt(math.log(100) / 5))


def test_allocation_reduces_estimation_error_on_toy_prompts():
    """CPU experiment of the notes, exactly: 4 Bernoulli prompts with 4 first rollouts each and a 12-rollout
    phase; the expected squared error of the final pass-rate estimates, Σ_q p_q(1 − p_q)/(n_q + e_q), averaged
    over all first-rollout outcomes (each prompt's 5 success counts enumerated with binomial weights), is lower
    with XRPO's allocation (λ = 0) than with the uniform split (the allocator moves rollouts to mixed prompts)."""
    p = np.array([0.02, 0.5, 0.98, 0.3])
    n0, budget = 4, 12
    outcomes = list(itertools.product(range(n0 + 1), repeat=p.size))  # success counts per prompt
    prob_k = [stats.binom.pmf(np.arange(n0 + 1), n0, pq) for pq in p]
    err_x = err_u = 0.0
    cache: dict[tuple, np.ndarray] = {}
    for ks in outcomes:
        w = np.prod([prob_k[q][k] for q, k in enumerate(ks)])
        if w < 1e-12:
            continue
        key = tuple(ks)
        if key not in cache:
            rewards = np.concatenate([[1.0] * k + [0.0] * (n0 - k) for k in ks])
            cache[key] = xrpo_allocate(rewards, np.repeat(np.arange(p.size), n0), budget, 0,
                                       XRPOAllocConfig(lam=0.0))[0]
        e = cache[key]
        err_x += w * np.sum(p * (1 - p) / (n0 + e))
        err_u += w * np.sum(p * (1 - p) / (n0 + budget // p.size))
    assert err_x < err_u


# ------------------------------------------------------------------------------------ ICL seeding

def test_icl_seeding_targets_zero_reward_prompts_with_callable():
    """ICL seeding (§3): exactly the prompts whose rollouts all scored 0 are seeded, through the user-supplied
    callable (here a deterministic stand-in picking the corpus exemplars of other prompts); nothing is seeded
    while the success corpus is empty."""
    rewards = np.array([0, 0, 1, 0, 0, 0, 1, 1], float)
    group = np.array([5, 5, 7, 7, 9, 9, 11, 11])
    state = update(XRPOState(), rewards, group, responses=[f"r{i}" for i in range(8)])
    calls = []

    def retrieve(q, corpus):
        calls.append(q)
        return [resp for pid, resp in corpus if pid != q][:2]

    assert icl_seed(rewards, group, XRPOState(), retrieve) == {}
    seeded = icl_seed(rewards, group, state, retrieve)
    assert sorted(seeded) == [5, 9] and calls == [5, 9]
    assert seeded[5] == ["r2", "r6"]


def test_replay_state_step_by_step():
    """Stateful contract: the state (rollout counter T, success corpus) follows T_k = Σ B_j and corpus = every
    correct rollout so far in order; replaying the recorded batches from the initial state with the pure update
    gives the same states, and no input is mutated."""
    rng = np.random.default_rng(0)
    state = XRPOState()
    log = []
    for step in range(8):
        B = int(rng.integers(2, 7))
        rewards = rng.integers(0, 2, B).astype(float)
        group = rng.integers(0, 3, B)
        resp = [f"s{step}r{i}" for i in range(B)]
        args = (rewards.copy(), group.copy(), list(resp))
        new = update(state, *args)
        np.testing.assert_array_equal(args[0], rewards)
        np.testing.assert_array_equal(args[1], group)
        assert args[2] == resp
        assert new.T == state.T + B
        assert new.corpus == state.corpus + tuple((int(group[i]), resp[i]) for i in range(B) if rewards[i] > 0)
        log.append((args, new))
        state = new
    replay = XRPOState()
    for args, expect in log:
        replay = update(replay, *copy.deepcopy(args))
        assert replay == expect


def test_allocation_drives_one_grpo_step():
    """Composition: the allocator's extra rollouts join their groups; the grown batch gets the registry's GRPO
    advantages, XRPO's sharpening, and the registry's PPO loss; prompts given more rollouts contribute more rows."""
    rng = np.random.default_rng(4)
    p = np.array([0.0, 0.5, 1.0, 0.4])
    n0, T = 3, 4
    group = np.repeat(np.arange(4), n0)
    rewards = (rng.random(group.size) < p[group]).astype(float)
    rewards[3:6] = [1.0, 0.0, 1.0]
    extra, _ = xrpo_allocate(rewards, group, 8, total_rollouts=group.size)
    assert extra.sum() == 8
    g2 = np.concatenate([group, np.repeat(np.arange(4), extra)])
    r2 = np.concatenate([rewards, (rng.random(extra.sum()) < p[np.repeat(np.arange(4), extra)]).astype(float)])
    mask = np.arange(T)[None, :] < rng.integers(1, T + 1, g2.size)[:, None]
    old = -rng.exponential(1.0, mask.shape)
    adv_grpo = registry.get("grpo")(rewards=r2, group=g2, mask=mask)
    adv = registry.get("xrpo_sharpen")(rewards=r2, old_logp=old, group=g2, mask=mask)
    assert np.all(adv >= adv_grpo - 1e-15)
    loss, dlogp = registry.get("ppo")(logp=old + rng.normal(0, 0.05, mask.shape), old_logp=old, adv=adv, mask=mask)
    assert np.isfinite(loss) and np.any(dlogp != 0)
    assert np.array_equal(np.bincount(g2, minlength=4), n0 + extra)


# ------------------------------------------------------------------------------------- sharpening

def _hand_sharpen(r, lp, g, m, lam, kappa, cap="positive", ddof=1, eps=1e-6):
    """A⁺ written out row by row from the equations."""
    B = r.size
    out = np.zeros(m.shape)
    for i in range(B):
        rows = np.flatnonzero(g == g[i])
        if rows.size == 1 or r[rows].min() == r[rows].max():
            A = 0.0
        else:
            A = (r[i] - r[rows].mean()) / (r[rows].std(ddof=ddof) + eps)
        s = {j: lp[j][m[j]].mean() for j in rows if m[j].any()}
        bonus = 0.0
        if m[i].any():
            eta = math.exp(s[i] - np.mean(list(s.values())))
            raw = max(lam * (1 - eta), 0.0)
            if cap == "abs":
                bonus = min(raw, kappa * abs(A))
            elif A > 0:
                bonus = min(raw, kappa * A)
        out[i, m[i]] = A + bonus
    return out


def sharpen_batch(rng):
    B, T = int(rng.integers(1, 12)), int(rng.integers(1, 6))
    g = rng.integers(0, max(1, B // 3), B)
    r = rng.integers(0, 2, B).astype(float) if rng.random() < 0.7 else rng.random(B)
    m = np.arange(T)[None, :] < rng.integers(0, T + 1, B)[:, None]
    lp = -rng.exponential(float(rng.choice([0.1, 1.0, 3.0])), (B, T))
    return r, np.where(m, lp, np.nan), g, m


@given(seeds())
def test_sharpen_matches_hand_formula(rng):
    """Sharpening (§4): A⁺_i = A_i + min(max(λ_nov(1 − η_i), 0), κA_i) with η_i = exp(s_i − s̄_g), written out
    per row (both caps)."""
    r, lp, g, m = sharpen_batch(rng)
    lam, kappa = float(rng.uniform(0, 3)), float(rng.uniform(0, 2))
    for cap in ("positive", "abs"):
        got = xrpo_sharpen(r, lp, g, m, XRPOSharpenConfig(lam_nov=lam, kappa=kappa, cap=cap))
        np.testing.assert_allclose(got, _hand_sharpen(r, lp, g, m, lam, kappa, cap), rtol=1e-12, atol=1e-14)


@given(seeds())
def test_bonus_bounded_and_sign_preserving(rng):
    """Sharpening is bounded: 0 ≤ A⁺ − A ≤ κA where A > 0, A⁺ = A where A ≤ 0; no bonus for rollouts at least as
    likely as their group's average (η ≥ 1); so the sign of an advantage never flips."""
    r, lp, g, m = sharpen_batch(rng)
    kappa = float(rng.uniform(0, 3))
    cfg = XRPOSharpenConfig(lam_nov=float(rng.uniform(0, 5)), kappa=kappa)
    A = registry.get("grpo")(rewards=r, group=g, mask=m)
    Ap = xrpo_sharpen(r, lp, g, m, cfg)
    d = Ap - A
    assert np.all(d >= 0) and np.all(d <= kappa * np.maximum(A, 0) + 1e-12)
    assert np.all(d[A <= 0] == 0)
    assert np.array_equal(np.sign(Ap), np.sign(A))
    s = np.array([lp[i][m[i]].mean() if m[i].any() else 0.0 for i in range(r.size)])
    for i in range(r.size):
        rows = [j for j in np.flatnonzero(g == g[i]) if m[j].any()]
        if m[i].any() and s[i] >= np.mean(s[rows]):
            assert np.all(d[i] == 0)


@given(seeds())
def test_zero_lambda_or_kappa_is_grpo(rng):
    """Sharpening off: λ_nov = 0 or κ = 0 gives exactly the registry's GRPO advantage."""
    r, lp, g, m = sharpen_batch(rng)
    A = registry.get("grpo")(rewards=r, group=g, mask=m)
    np.testing.assert_array_equal(xrpo_sharpen(r, lp, g, m, XRPOSharpenConfig(lam_nov=0.0)), A)
    np.testing.assert_array_equal(xrpo_sharpen(r, lp, g, m, XRPOSharpenConfig(kappa=0.0)), A)


@given(seeds())
def test_group_zero_sum_is_broken(rng):
    """Sharpening is not zero-sum: GRPO's per-group advantages sum to 0, the sharpened ones to Σ bonus ≥ 0,
    strictly more whenever a bonus fires (documented: XRPO adds signal rather than redistributing it)."""
    r, lp, g, m = sharpen_batch(rng)
    A = registry.get("grpo")(rewards=r, group=g, mask=m, config=registry.get("grpo").config(eps=0.0))
    Ap = xrpo_sharpen(r, lp, g, m, XRPOSharpenConfig(eps=0.0))
    seqA, seqP = A.max(axis=1) + A.min(axis=1), Ap.max(axis=1) + Ap.min(axis=1)  # row value (constant on the row)
    full = m.all(axis=1)
    for k in np.unique(g[full]):
        rows = full & (g == k)
        if rows.sum() == (g == k).sum():
            total_A, total_P = seqA[rows].sum() / 2, seqP[rows].sum() / 2
            assert abs(total_A) < 1e-9
            assert total_P >= total_A - 1e-12
            assert (total_P > total_A + 1e-15) == bool(np.any(Ap[rows] != A[rows]))


def test_abs_cap_variant_moves_negative_advantages_toward_zero():
    """cap="abs" (third-party module): the bonus min(max(λ(1 − η), 0), κ|A|) also reaches rollouts with A < 0 —
    moving them toward 0 — and flips their sign only when κ > 1."""
    r = np.array([1.0, 0.0, 0.0, 0.0])
    lp = np.array([[-0.1], [-0.1], [-0.1], [-6.0]])  # the last (wrong) rollout is the novel one
    g, m = np.zeros(4, int), np.ones((4, 1), bool)
    A = registry.get("grpo")(rewards=r, group=g, mask=m)
    pos = xrpo_sharpen(r, lp, g, m)
    np.testing.assert_array_equal(pos, A)
    ab = xrpo_sharpen(r, lp, g, m, XRPOSharpenConfig(cap="abs", lam_nov=10.0))
    assert A[3, 0] < ab[3, 0] <= 0.0
    ab2 = xrpo_sharpen(r, lp, g, m, XRPOSharpenConfig(cap="abs", lam_nov=10.0, kappa=1.5))
    assert ab2[3, 0] > 0


def test_sharpening_raises_rare_correct_action_in_bandit():
    """Claim (§4, amplify low-probability correct responses): a 3-action softmax bandit with two correct actions
    (a rare one, π_rare < π_common) and a wrong one; averaging over all 3^G sample groups (G = 4) exactly, the
    expected policy-gradient component on the rare correct action's logit is larger with sharpened advantages
    than with GRPO's, for every policy on a grid."""
    R = np.array([1.0, 1.0, 0.0])
    G = 4
    for pr, pw in itertools.product([0.02, 0.05, 0.1, 0.2], [0.1, 0.3, 0.5, 0.7]):
        pi = np.array([pr, 1 - pr - pw, pw])
        if pi[1] <= pr:
            continue
        diff = 0.0
        for out in itertools.product(range(3), repeat=G):
            out = list(out)
            prob = float(np.prod(pi[out]))
            lp = np.log(pi[out])[:, None]
            a_s = xrpo_sharpen(R[out], lp, np.zeros(G, int), np.ones((G, 1), bool))[:, 0]
            a_g = registry.get("grpo")(rewards=R[out], group=np.zeros(G, int), mask=np.ones((G, 1), bool))[:, 0]
            diff += prob * sum((a_s[i] - a_g[i]) * ((out[i] == 0) - pr) for i in range(G)) / G
        assert diff > 0, (pr, pw)


def test_padding_never_read():
    """Masked log-probs are never read (NaN/inf padding changes nothing); a row without tokens gets no bonus."""
    rng = np.random.default_rng(1)
    r, lp, g, m = sharpen_batch(rng)
    a = xrpo_sharpen(r, lp, g, m)
    b = xrpo_sharpen(r, np.where(m, lp, -np.inf), g, m)
    np.testing.assert_array_equal(a, b)


def test_bad_input_raises():
    """Boundary validation: the argument is named in the message."""
    r, g = np.array([1.0, 0.0, 1.0]), np.array([0, 0, 1])
    m = np.ones((3, 2), bool)
    cases = [
        (lambda: xrpo_allocate(r, g, 3), "group"),
        (lambda: xrpo_allocate(r, np.zeros(3, int), -1), "budget"),
        (lambda: xrpo_allocate(r, np.zeros(3, int), 2.5), "budget"),
        (lambda: xrpo_allocate(r, np.zeros(3, int), 2, -3), "total_rollouts"),
        (lambda: xrpo_allocate(np.array([np.nan, 0, 1]), np.zeros(3, int), 2), "rewards"),
        (lambda: xrpo_allocate([], [], 2), "rewards"),
        (lambda: XRPOAllocConfig(ci_alpha=1.0), "ci_alpha"),
        (lambda: XRPOAllocConfig(lam=-1.0), "lam"),
        (lambda: xrpo_sharpen(r, np.full((3, 2), np.nan), g, m), "old_logp"),
        (lambda: xrpo_sharpen(r, np.zeros((3, 3)), g, m), "old_logp"),
        (lambda: xrpo_sharpen(r[:2], np.zeros((3, 2)), g, m), "rewards"),
        (lambda: xrpo_sharpen(r, np.zeros((3, 2)), g, m.astype(float)), "mask"),
        (lambda: XRPOSharpenConfig(cap="neg"), "cap"),
        (lambda: XRPOSharpenConfig(kappa=-1.0), "kappa"),
        (lambda: icl_seed(r, g, XRPOState(corpus=((0, "x"),)), "not callable"), "retrieve"),
        (lambda: update(XRPOState(), r, g, responses=["a"]), "responses"),
    ]
    for fn, name in cases:
        with pytest.raises(RLSpecValueError, match=name):
            fn()
