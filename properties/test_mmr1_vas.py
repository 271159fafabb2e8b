"""Properties of MMR1's Variance-Aware Sampling (arXiv 2509.21268) — reference/mmr1_vas.py.

Expected values are computed here from the equations (closed forms, brute force, exact enumeration on small
softmax bandits), never read back from the code under test.
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
from rlspec.reference.mmr1_vas import (
    VASConfig,
    VASState,
    distinct_n,
    init_state,
    levenshtein,
    mmr1_vas,
    n_weighted,
    outcome_variance,
    refresh_due,
    score_prompts,
    tds_edit,
    update,
    vas_sample,
)


def pool(rng, Q, N, T=5, vocab=3):
    """Q prompts × N rollouts: correctness from per-prompt rates, token rows with ragged masks."""
    p = rng.choice([0.0, 1.0, rng.random()], size=Q)
    rewards = (rng.random(Q * N) < np.repeat(p, N)).astype(float)
    mask = np.arange(T)[None, :] < rng.integers(0, T + 1, Q * N)[:, None]
    tokens = np.where(mask, rng.integers(0, vocab, (Q * N, T)), 99)
    return rewards, tokens, np.repeat(np.arange(Q), N), mask


# ----------------------------------------------------------------------------------------------- OVS

@given(seeds())
def test_ovs_is_bernoulli_variance_and_zero_iff_grpo_signal_vanishes(rng):
    """OVS (§3): OVS = P(1 − P) is the (population) variance of a group's 0/1 rewards, maximal (1/4) at P = 1/2;
    it is 0 exactly for the all-correct / all-wrong groups, whose GRPO advantages are all zero (the gradient
    vanishing VAS avoids)."""
    Q, N = int(rng.integers(1, 7)), int(rng.integers(1, 9))
    rewards, tokens, group, mask = pool(rng, Q, N)
    ids, ovs, _, _ = score_prompts(rewards, tokens, group, mask)
    adv = registry.get("grpo")(rewards=rewards, group=group, mask=np.ones((Q * N, 1), bool))
    for k, q in enumerate(ids):
        r = rewards[group == q]
        assert math.isclose(ovs[k], r.var(), rel_tol=1e-12, abs_tol=1e-15)
        assert (ovs[k] == 0) == bool(np.all(adv[group == q] == 0))
    ps = np.linspace(0, 1, 101)
    assert np.argmax(outcome_variance(ps)) == 50 and outcome_variance(0.5) == 0.25


@given(seeds())
def test_law_of_total_variance(rng):
    """Law of total variance (§3, motivation of VPS): over latent reasoning modes Z,
    Var[R] = E_Z[p_Z(1 − p_Z)] + Var_Z[p_Z]. Checked (a) exactly on a discrete mode distribution π_Z with
    Bernoulli(p_Z) rewards by enumerating the joint law, (b) exactly on empirical groups split by mode, with
    OVS as the variance of each part."""
    K = int(rng.integers(1, 6))
    pi = rng.dirichlet(np.ones(K))
    pz = rng.random(K)
    joint = [(pi[z] * (pz[z] if r else 1 - pz[z]), r) for z in range(K) for r in (0, 1)]
    m = sum(w * r for w, r in joint)
    var_r = sum(w * (r - m) ** 2 for w, r in joint)
    within = float(pi @ outcome_variance(pz))
    between = float(pi @ (pz - pi @ pz) ** 2)
    assert math.isclose(var_r, within + between, rel_tol=1e-12, abs_tol=1e-15)
    # (b) one prompt's N rollouts, each labelled with a mode
    N = int(rng.integers(2, 30))
    z = rng.integers(0, K, N)
    r = (rng.random(N) < pz[z]).astype(float)
    mask = np.ones((N, 1), bool)
    _, ovs_all, _, _ = score_prompts(r, np.zeros((N, 1), int), np.zeros(N, int), mask)
    _, ovs_z, _, _ = score_prompts(r, np.zeros((N, 1), int), z, mask)
    modes, counts = np.unique(z, return_counts=True)
    share = counts / N
    p_mode = np.array([r[z == k].mean() for k in modes])
    assert math.isclose(ovs_all[0], share @ ovs_z + share @ (p_mode - r.mean()) ** 2, rel_tol=1e-12, abs_tol=1e-15)


def softmax(th):
    e = np.exp(th - th.max())
    return e / e.sum()


def bandit(th, R):
    """Exact quantities of a softmax bandit with deterministic 0/1 rewards R (K,)."""
    p = softmax(th)
    K = th.size
    J = float(p @ R)
    score = np.eye(K) - p  # ∇_θ log π(y) for each arm y (rows)
    grad = (p * (R - J)) @ score
    Gamma = float(p @ (score**2).sum(axis=1))
    return p, J, score, grad, Gamma


def test_variance_factorisation_with_constant_score_norm():
    """Variance factorisation (§3): with the baseline b = E[R], E‖(R − b)∇log π‖² = Var_y[R]·Γ_θ(x),
    Γ = E‖∇log π‖², holds exactly when ‖∇log π(y)‖² is the same for every response (a uniform softmax: (K−1)/K);
    in general it is an assumption: a skewed 3-arm policy violates it (shown here)."""
    for K in (2, 3, 5):
        R = np.array([1.0] + [0.0] * (K - 1))
        p, J, score, _, Gamma = bandit(np.zeros(K), R)
        EG2 = float(p @ ((R - J) ** 2 * (score**2).sum(axis=1)))
        assert math.isclose(EG2, J * (1 - J) * Gamma, rel_tol=1e-12)
        assert math.isclose(Gamma, (K - 1) / K, rel_tol=1e-12)
    p, J, score, _, Gamma = bandit(np.array([2.0, 0.0, -1.0]), np.array([0.0, 1.0, 0.0]))
    EG2 = float(p @ ((np.array([0.0, 1.0, 0.0]) - J) ** 2 * (score**2).sum(axis=1)))
    assert not math.isclose(EG2, J * (1 - J) * Gamma, rel_tol=1e-3)


@given(seeds())
def test_theorem1_variance_progress_bound(rng):
    """Theorem 1 (Variance–Progress): if J_x is L-smooth and ‖∇J_x‖² ≥ c_min·Var_y[R], then one REINFORCE step
    θ+ = θ + η(R(y) − b)∇log π(y), y ~ π_θ, with 0 < η ≤ c_min/(4LΓ_θ(x)) improves J_x in expectation by at least
    (η c_min/4)·Var_y[R]. On softmax bandits with 0/1 rewards (L = 5/2, Mei et al. 2020 Lemma 2; b = J; c_min the
    tightest constant ‖∇J‖²/Var) the exact expectation over the K arms meets the bound."""
    K = int(rng.integers(2, 6))
    R = rng.permutation(np.array([1.0, 0.0] + list(rng.integers(0, 2, K - 2).astype(float))))
    th = rng.normal(0, float(rng.choice([0.3, 1.0, 2.0])), K)
    p, J, score, grad, Gamma = bandit(th, R)
    var = float(outcome_variance(J))
    if var < 1e-4:
        return  # a nearly deterministic policy: the bound is below rounding
    c_min = float(grad @ grad) / var
    for eta in (c_min / (4 * 2.5 * Gamma), c_min / (4 * 2.5 * Gamma) * float(rng.random())):
        gain = sum(p[y] * float(softmax(th + eta * (R[y] - J) * score[y]) @ R) for y in range(K)) - J
        assert gain >= eta * c_min / 4 * var * (1 - 1e-9) - 1e-15


# ----------------------------------------------------------------------------------------------- TDS

def _edit_bruteforce(a, b):
    """Edit distance by breadth-first search over edit scripts (tiny alphabets and lengths only)."""
    a, b = tuple(a), tuple(b)
    alphabet = set(a) | set(b) | {0}
    frontier, seen, d = {a}, {a}, 0
    while b not in frontier:
        nxt = set()
        for s in frontier:
            for i in range(len(s) + 1):
                for c in alphabet:
                    nxt.add(s[:i] + (c,) + s[i:])
                if i < len(s):
                    nxt.add(s[:i] + s[i + 1:])
                    for c in alphabet:
                        nxt.add(s[:i] + (c,) + s[i + 1:])
        frontier = {s for s in nxt if s not in seen and len(s) <= max(len(a), len(b)) + 1}
        seen |= frontier
        d += 1
    return d


@given(seeds())
def test_levenshtein_matches_bruteforce_and_is_a_metric(rng):
    """TDS distance: the Levenshtein distance equals the shortest edit script (found by search), is symmetric,
    0 only for equal sequences, and satisfies the triangle inequality."""
    seqs = [rng.integers(0, 2, int(rng.integers(0, 4))) for _ in range(3)]
    a, b, c = seqs
    assert levenshtein(a, b) == _edit_bruteforce(a, b)
    assert levenshtein(a, b) == levenshtein(b, a)
    assert (levenshtein(a, b) == 0) == (a.size == b.size and np.array_equal(a, b))
    assert levenshtein(a, c) <= levenshtein(a, b) + levenshtein(b, c)


@given(seeds())
def test_tds_zero_for_identical_rollouts_and_bounded(rng):
    """TDS: identical rollouts have diversity 0; the normalised edit TDS lies in [0, 1] and equals the hand
    mean of d/max-length over the N(N − 1)/2 pairs; a lone rollout has TDS 0; distinct-3 counts unique 3-grams."""
    s = rng.integers(0, 3, int(rng.integers(0, 6)))
    assert tds_edit([s, s.copy(), s.copy()]) == 0.0
    seqs = [rng.integers(0, 3, int(rng.integers(0, 6))) for _ in range(int(rng.integers(2, 5)))]
    pairs = list(itertools.combinations(range(len(seqs)), 2))
    hand = np.mean([levenshtein(seqs[i], seqs[j]) / max(seqs[i].size, seqs[j].size, 1) for i, j in pairs])
    assert math.isclose(tds_edit(seqs), hand, rel_tol=1e-12) and 0 <= hand <= 1
    assert tds_edit(seqs[:1]) == 0.0
    assert distinct_n([np.array([1, 2, 3, 1, 2, 3])]) == 3 / 4
    assert distinct_n([np.array([1, 2])]) == 0.0


@given(seeds())
def test_vps_is_monotone_in_ovs_and_tds(rng):
    """VPS = α·OVS + β·TDS (α, β ≥ 0): making one prompt's rewards more mixed or its rollouts more diverse never
    lowers its score; with α = 0.8, β = 0.2 the score equals the weighted sum written out here."""
    N = 4
    r = np.array([1.0, 0.0, 0.0, 0.0])
    mixed = np.array([1.0, 1.0, 0.0, 0.0])
    tok_same = np.tile(rng.integers(0, 3, 4), (N, 1))
    tok_div = rng.integers(0, 3, (N, 4))
    mask = np.ones((N, 4), bool)
    g = np.zeros(N, int)
    s = lambda rr, tt: score_prompts(rr, tt, g, mask)[3][0]  # noqa: E731
    assert s(mixed, tok_same) >= s(r, tok_same)
    assert s(r, tok_div) >= s(r, tok_same)
    _, o, t, v = score_prompts(r, tok_div, g, mask)
    assert math.isclose(v[0], 0.8 * 0.1875 + 0.2 * t[0], rel_tol=1e-12)


# ------------------------------------------------------------------------------------------- sampler

@given(seeds())
def test_mixture_ratio_exact_counts(rng):
    """Mixed sampler (§3): every batch holds exactly ⌊λB⌋ draws from the weighted branch and B − ⌊λB⌋ uniform
    ones; with stratified uniforms inside each branch, prompt q is drawn within 2 of its expected count
    B_w·w_q/Σw + B_r/Q."""
    Q = int(rng.integers(1, 9))
    w = rng.random(Q) * (rng.random(Q) < 0.8)
    B = int(rng.integers(1, 300))
    lam = float(rng.choice([0.0, 0.5, 1.0, rng.random()]))
    Bw = int(math.floor(lam * B + 1e-9))
    assert n_weighted(B, lam) == Bw
    u = np.concatenate([(np.arange(Bw) + 0.5) / max(Bw, 1), (np.arange(B - Bw) + 0.5) / max(B - Bw, 1)])
    pos, from_w = vas_sample(w, u, lam)
    assert from_w.sum() == Bw and not from_w[Bw:].any()
    share = w / w.sum() if w.sum() > 0 else np.full(Q, 1 / Q)
    expected = Bw * share + (B - Bw) / Q
    assert np.all(np.abs(np.bincount(pos, minlength=Q) - expected) <= 2.0 + 1e-9)


def test_mixture_ratio_seeded_chi_square():
    """Mixed sampler, random draws: with seeded uniforms (seeds 0..4, B = 4000, λ = 0.5), the prompt counts of
    each branch pass a χ² goodness-of-fit test against w/Σw (weighted) and 1/Q (uniform) at significance 1e-3
    (false-alarm rate 1e-3 per test under the null; the seeds are fixed, so the outcome is reproducible)."""
    w = np.array([0.0, 0.1, 0.3, 0.6, 1.0, 2.0])
    Q = w.size
    for seed in range(5):
        rng = np.random.default_rng(seed)
        pos, from_w = vas_sample(w, rng.random(4000), 0.5)
        cw = np.bincount(pos[from_w], minlength=Q)
        assert cw[0] == 0
        _, pw = stats.chisquare(cw[1:], from_w.sum() * w[1:] / w.sum())
        _, pu = stats.chisquare(np.bincount(pos[~from_w], minlength=Q))
        assert pw > 1e-3 and pu > 1e-3


@given(seeds())
def test_minmax_lowest_prompt_never_drawn_by_weighted_branch(rng):
    """Code's min–max normalisation: the lowest-VPS prompt gets weight exactly 0, so only the uniform branch can
    draw it; the highest gets weight 1/(1 + 1e-8/(max − min))."""
    Q, N = int(rng.integers(2, 6)), 4
    rewards, tokens, group, mask = pool(rng, Q, N)
    rewards[:N] = [1, 0, 1, 0]  # at least one mixed prompt, so the scores are not all equal
    cfg = VASConfig(normalize="minmax", mix=1.0)
    o, t, v, w, idx = mmr1_vas(rewards, tokens, group, mask, rng.random(200), cfg)
    lo = np.flatnonzero(v == v.min())
    assert np.all(w[lo] == 0) and not np.isin(idx, lo).any()
    assert math.isclose(w.max(), (v.max() - v.min()) / (v.max() - v.min() + 1e-8), rel_tol=1e-12)


def test_vas_raises_expected_informative_share():
    """VAS's purpose: drawing ∝ OVS (β = 0, the code's config) raises the expected OVS of a drawn prompt above
    its uniform value: λ·ΣOVS²/ΣOVS + (1 − λ)·mean(OVS) ≥ mean(OVS) (Cauchy–Schwarz); checked by computing the
    exact expectation of the sampler over stratified uniforms on a pool of 40 prompts."""
    rng = np.random.default_rng(1)
    Q, N = 40, 8
    rewards, tokens, group, mask = pool(rng, Q, N)
    cfg = VASConfig(alpha=1.0, beta=0.0)
    half = 20000
    strat = (np.arange(half) + 0.5) / half
    o, _, _, _, idx = mmr1_vas(rewards, tokens, group, mask, np.concatenate([strat, strat]), cfg)
    exact = 0.5 * (o @ o) / o.sum() + 0.5 * o.mean()
    assert exact >= o.mean()
    assert abs(o[idx].mean() - exact) < 1e-3


def test_replay_refresh_schedule_and_momentum():
    """Stateful contract: a seeded 20-step run (T_update = 4, momentum 0.3) is replayed step by step: refreshes
    happen after steps 4, 8, 12, 16, 20 only, each state is m·w_old + (1 − m)·VPS_new written out here, and no
    input is mutated."""
    rng = np.random.default_rng(5)
    Q, N, B = 10, 4, 6
    cfg = VASConfig(update_every=4, momentum=0.3)
    true_p = rng.random(Q)

    def rollouts(r):
        rewards = (r.random(Q * N) < np.repeat(true_p, N)).astype(float)
        tokens = r.integers(0, 4, (Q * N, 5))
        return rewards, tokens, np.repeat(np.arange(Q), N), np.ones((Q * N, 5), bool)

    v0 = score_prompts(*rollouts(rng), cfg)[3]
    state = init_state(v0, cfg)
    log = []
    for step in range(1, 21):
        pos, _ = vas_sample(state.weights, rng.random(B), cfg.mix)
        assert pos.shape == (B,)
        new = state
        if refresh_due(step, cfg):
            data = rollouts(rng)
            snapshot = copy.deepcopy(data)
            v = score_prompts(*data, cfg)[3]
            for a, b in zip(data, snapshot):
                np.testing.assert_array_equal(a, b)
            w_old = state.weights.copy()
            new = update(state, v, cfg)
            np.testing.assert_array_equal(state.weights, w_old)
            np.testing.assert_allclose(new.weights, 0.3 * w_old + 0.7 * v, rtol=1e-14)
            log.append((step, v))
        state = new
    assert [s for s, _ in log] == [4, 8, 12, 16, 20]
    replay = init_state(v0, cfg)  # replay the recorded refreshes from the recorded start
    for _, v in log:
        replay = update(replay, v, cfg)
    np.testing.assert_array_equal(replay.weights, state.weights)


def test_drives_one_grpo_step():
    """Composition: the VAS batch of prompt ids is rolled out (G = 4 each), scored with the registry's GRPO
    advantages and trained with the registry's PPO loss; rows of zero-variance prompts get zero gradient."""
    rng = np.random.default_rng(2)
    Q, N, G, T = 8, 6, 4, 3
    true_p = np.array([0.0, 1.0, 0.5, 0.3, 0.7, 0.0, 1.0, 0.5])
    rewards, tokens, group, mask = pool(rng, Q, N)
    rewards = (rng.random(Q * N) < np.repeat(true_p, N)).astype(float)
    _, _, _, _, idx = mmr1_vas(rewards, tokens, group, mask, rng.random(4))
    bg = np.repeat(np.arange(idx.size), G)
    r = (rng.random(idx.size * G) < np.repeat(true_p[idx], G)).astype(float)
    m = np.ones((idx.size * G, T), bool)
    adv = registry.get("grpo")(rewards=r, group=bg, mask=m)
    old = -rng.exponential(1.0, m.shape)
    loss, dlogp = registry.get("ppo")(logp=old + rng.normal(0, 0.05, m.shape), old_logp=old, adv=adv, mask=m)
    assert np.isfinite(loss)
    for k in range(idx.size):
        rows = bg == k
        assert np.all(dlogp[rows] == 0) == (r[rows].min() == r[rows].max())


def test_bad_input_raises():
    """Boundary validation: the argument is named in the message."""
    R, tok, g, M = np.array([1.0, 0.0]), np.zeros((2, 2), int), np.array([0, 0]), np.ones((2, 2), bool)
    cases = [
        (lambda: mmr1_vas(np.array([1.5, 0.0]), tok, g, M, [0.1]), "rewards"),
        (lambda: mmr1_vas(R, tok.astype(float), g, M, [0.1]), "tokens"),
        (lambda: mmr1_vas(R, np.zeros((2, 3), int), g, M, [0.1]), "tokens"),
        (lambda: mmr1_vas(R, tok, g, M, [1.0]), "u"),
        (lambda: mmr1_vas(R, tok, g, M.astype(float), [0.1]), "mask"),
        (lambda: mmr1_vas(R, tok, np.array([0]), M, [0.1]), "group"),
        (lambda: vas_sample([-1.0, 1.0], [0.1]), "weights"),
        (lambda: update(VASState(np.ones(2)), [1.0, 2.0, 3.0]), "vps_scores"),
        (lambda: update(np.ones(2), [1.0, 2.0]), "state"),
        (lambda: VASConfig(mix=1.5), "mix"),
        (lambda: VASConfig(tds="bleu"), "tds"),
        (lambda: VASConfig(update_every=0), "update_every"),
    ]
    for fn, name in cases:
        with pytest.raises(RLSpecValueError, match=name):
            fn()


def test_padding_never_read_and_all_zero_weights_fall_back_to_uniform():
    """Masked token ids are never read (changing them changes nothing); when every weight is 0 (all prompts
    solved or unsolved, β = 0) the weighted branch draws uniformly instead of failing."""
    rng = np.random.default_rng(0)
    rewards, tokens, group, mask = pool(rng, 4, 3)
    u = rng.random(20)
    a = mmr1_vas(rewards, tokens, group, mask, u)
    b = mmr1_vas(rewards, np.where(mask, tokens, -7), group, mask, u)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    pos, _ = vas_sample(np.zeros(4), (np.arange(8) + 0.5) / 8, 1.0)
    np.testing.assert_array_equal(np.bincount(pos, minlength=4), [2, 2, 2, 2])
