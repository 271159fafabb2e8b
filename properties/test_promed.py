"""Properties of ProMed (arXiv 2508.13514): Shapley axioms, the Monte-Carlo estimator, SIG, token rewards.

Games are random characteristic-function tables over n ≤ 8 facts, or the synthetic answer-log-prob
model v(S) = mean_k log σ(θ_k·x_S + b_k) standing in for the LLM (a user-supplied callable).
Expected values are computed here independently (permutation brute force, loops, closed forms).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties.strategies import GARBAGE, seeds
from rlspec.reference import promed as P
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.registry import get


def random_table(rng: np.random.Generator, n: int) -> np.ndarray:
    """A random game: either arbitrary values or the synthetic log-sigmoid answer model."""
    if rng.random() < 0.5:
        return rng.normal(scale=2.0, size=1 << n)
    return P.synthetic_game(rng, n)


def bruteforce_shapley(table: np.ndarray, n: int) -> np.ndarray:
    """φ_i = (1/n!) Σ_orders [v(pred_i ∪ {i}) − v(pred_i)], over all n! orders (independent of the code)."""
    phi = np.zeros(n)
    for order in itertools.permutations(range(n)):
        prefix = 0
        for i in order:
            phi[i] += table[prefix | (1 << i)] - table[prefix]
            prefix |= 1 << i
    return phi / math.factorial(n)


def swap_bits(m: int, i: int, j: int) -> int:
    bi, bj = m >> i & 1, m >> j & 1
    return m if bi == bj else m ^ ((1 << i) | (1 << j))


# ---------------------------------------------------------------------------------- Shapley axioms

@given(seeds(), st.integers(1, 8))
def test_efficiency(rng, n):
    """Shapley efficiency: Σ_i φ_i = v(F) − v(∅)."""
    v = random_table(rng, n)
    phi = P.shapley_exact(v)
    assert phi.shape == (n,)
    assert abs(phi.sum() - (v[-1] - v[0])) <= 1e-9 * (1 + np.abs(v).max())


@given(seeds(), st.integers(2, 8))
def test_symmetry(rng, n):
    """Shapley symmetry: if v(S ∪ {i}) = v(S ∪ {j}) for all S ∌ i, j (i, j interchangeable), φ_i = φ_j."""
    i, j = rng.choice(n, size=2, replace=False)
    u = random_table(rng, n)
    v = np.array([0.5 * (u[m] + u[swap_bits(m, i, j)]) for m in range(1 << n)])  # symmetrised in i <-> j
    phi = P.shapley_exact(v)
    assert abs(phi[i] - phi[j]) <= 1e-10 * (1 + np.abs(v).max())


@given(seeds(), st.integers(1, 8))
def test_null_player(rng, n):
    """Null player: if v(S ∪ {i}) = v(S) for every S, then φ_i = 0 (and the others are the reduced game's φ)."""
    i = int(rng.integers(n))
    u = random_table(rng, n - 1)  # game on the other n − 1 facts

    def drop_i(m):  # bitmask over n facts -> bitmask over the n − 1 others
        low = m & ((1 << i) - 1)
        return low | ((m >> (i + 1)) << i)

    v = np.array([u[drop_i(m)] for m in range(1 << n)])
    phi = P.shapley_exact(v)
    assert phi[i] == 0.0
    others = np.delete(phi, i)
    assert np.allclose(others, bruteforce_shapley(u, n - 1) if n <= 6 else P.shapley_exact(u), atol=1e-10)


@given(seeds(), st.integers(1, 8), st.floats(-3, 3), st.floats(-3, 3))
def test_linearity(rng, n, a, b):
    """Shapley linearity: φ(a·v + b·u) = a·φ(v) + b·φ(u)."""
    v, u = random_table(rng, n), random_table(rng, n)
    lhs = P.shapley_exact(a * v + b * u)
    rhs = a * P.shapley_exact(v) + b * P.shapley_exact(u)
    assert np.allclose(lhs, rhs, rtol=1e-9, atol=1e-9)


@given(seeds(), st.integers(1, 5))
def test_exact_matches_permutation_bruteforce(rng, n):
    """The subset formula equals the average marginal contribution over all n! orders (n ≤ 5)."""
    v = random_table(rng, n)
    assert np.allclose(P.shapley_exact(v), bruteforce_shapley(v, n), rtol=1e-10, atol=1e-12)


@given(seeds(), st.integers(1, 5))
def test_callable_and_table_agree(rng, n):
    """v given as a callable of frozensets (the LLM path) gives the same φ as its bitmask table."""
    theta, b = rng.normal(size=(3, n)), rng.normal(size=3)

    def logprob_fn(S):  # stands in for the LLM: per-token log-probs of the gold answer given facts S
        x = np.array([1.0 if k in S else 0.0 for k in range(n)])
        return -np.logaddexp(0.0, -(theta @ x + b))

    v = P.characteristic_from_logprob(logprob_fn)
    table = np.array([np.mean(-np.logaddexp(0.0, -(theta @ ((m >> np.arange(n)) & 1) + b))) for m in range(1 << n)])
    assert np.allclose(P.characteristic_values(v, n)[0], table, atol=1e-12)
    assert np.allclose(P.shapley_exact(v, n), P.shapley_exact(table), atol=1e-12)


# ---------------------------------------------------------------------------------- Monte Carlo

def test_mc_without_early_stop_is_unbiased():
    """MC permutation estimator without early stop (fixed number of permutations) is unbiased: E[φ̂] = φ.

    Average over 300 seeds is within 5 standard errors of the exact φ; every draw is efficient.
    """
    rng = np.random.default_rng(12345)
    for n in (3, 5):
        v = random_table(rng, n)
        exact = P.shapley_exact(v)
        draws = np.array([P.shapley_mc(v, n, np.random.default_rng(s), max_perm=4, tol=0.0, early_stop=False)
                          for s in range(300)])
        assert np.allclose(draws.sum(axis=1), v[-1] - v[0], atol=1e-10)  # telescoping: Σφ̂ = v(F) − v(∅)
        se = draws.std(axis=0, ddof=1) / np.sqrt(len(draws))
        assert (np.abs(draws.mean(axis=0) - exact) <= 5 * se + 1e-12).all()


def test_mc_early_stop_is_biased():
    """The code's in-permutation early stop (|v(P) − v(F)| < 1e-2) biases the estimator on a non-monotone game.

    v(S) = 1[0∈S] + 1[1∈S] − 1[{1,2}⊆S] has v({0}) = v({1}) = v(F) = 1 and φ = (1, 1/2, −1/2).
    Fact 2's negative contribution only appears after v(F) is already reached, so the truncated walk
    never records it: φ̂_2 ≡ 0 for every seed, while the untruncated estimator centres on −1/2.
    """
    v = np.array([float((m & 1) + (m >> 1 & 1) - ((m >> 1 & 1) & (m >> 2 & 1))) for m in range(8)])
    exact = P.shapley_exact(v)
    assert np.allclose(exact, [1.0, 0.5, -0.5])
    trunc = np.array([P.shapley_mc(v, 3, np.random.default_rng(s), max_perm=10, tol=0.0) for s in range(200)])
    full = np.array([P.shapley_mc(v, 3, np.random.default_rng(s), max_perm=10, tol=0.0, early_stop=False)
                     for s in range(200)])
    se = full.std(axis=0, ddof=1) / np.sqrt(len(full)) + 1e-12
    assert (np.abs(full.mean(axis=0) - exact) <= 5 * se).all()
    assert np.all(trunc[:, 2] == 0.0)
    assert abs(trunc[:, 2].mean() - exact[2]) > 0.4


def test_mc_stopping_rules_and_determinism():
    """Stopping rules: tol = 0 runs max_perm permutations, a huge tol stops at min_perm; same seed, same φ̂."""
    rng = np.random.default_rng(7)
    n = 4
    table = random_table(rng, n)
    calls = []

    def v(S):
        calls.append(S)
        return table[sum(1 << i for i in S)]

    for tol, perms in ((0.0, 9), (1e9, 3)):
        calls.clear()
        P.shapley_mc(v, n, np.random.default_rng(0), max_perm=9, min_perm=3, tol=tol, early_stop=False)
        assert len(calls) == 2 + perms * n  # v(∅), v(F), then n evaluations per permutation
    a = P.shapley_mc(table, n, np.random.default_rng(3))
    b = P.shapley_mc(table, n, np.random.default_rng(3))
    assert np.array_equal(a, b)


# ---------------------------------------------------------------------------------- weights and SIG

@given(seeds(), st.integers(1, 10), st.sampled_from([0.1, 1.0, 2.0, 10.0]))
def test_weights_sum_to_one_and_preserve_order(rng, n, tau):
    """Σ w = 1, w > 0; softmax weights are order-preserving in φ and w_i/w_j = exp((φ_i − φ_j)/τ)."""
    phi = rng.normal(scale=rng.choice([1e-3, 1.0, 5.0]), size=n)
    w = P.sig_weights(phi, tau)
    assert abs(w.sum() - 1.0) < 1e-12 and (w > 0).all()
    if n == 1:
        assert w[0] == 1.0
        return
    i, j = np.argsort(phi)[[0, -1]]
    assert w[i] <= w[j]
    for a, b in itertools.combinations(range(n), 2):
        assert (phi[a] < phi[b]) <= (w[a] <= w[b])
    assert np.isclose(w[j] / w[i], np.exp((phi[j] - phi[i]) / tau), rtol=1e-9)


@given(seeds(), st.integers(2, 10))
def test_z_score_weights_order_by_distance_from_mean(rng, n):
    """z_score weights: Σ w = 1, w ∝ exp(|φ − mean φ|/std φ), order-preserving in |φ − mean φ|."""
    phi = rng.normal(size=n)
    w = P.sig_weights(phi, method="z_score")
    d = np.abs(phi - phi.mean())
    assert abs(w.sum() - 1.0) < 1e-12
    i, j = int(np.argmin(d)), int(np.argmax(d))
    assert np.isclose(w[j] / w[i], np.exp((d[j] - d[i]) / phi.std()), rtol=1e-9)


def test_weights_uniform_cases():
    """Uniform weights for a single fact or constant φ (std < 1e-8); empty φ gives empty w."""
    assert np.array_equal(P.sig_weights([3.0]), [1.0])
    assert np.allclose(P.sig_weights(np.full(4, 0.7) + 1e-10 * np.arange(4)), 0.25)
    assert np.allclose(P.sig_weights(np.full(3, -2.0), method="z_score"), 1 / 3)
    assert P.sig_weights(np.zeros(0)).shape == (0,)


@given(seeds(), st.integers(1, 8), st.integers(1, 6))
def test_newly_acquired_sig_total_at_most_one(rng, n, n_turns):
    """With "newly acquired" credit, Σ_t SIG_t = Σ_{i ever acquired, not known} w_i ≤ 1; re-crediting ≥ it."""
    w = P.sig_weights(rng.normal(size=n))
    A = rng.random((n_turns, n)) < 0.5
    known = rng.random(n) < 0.3
    sig = P.sig_per_turn(A, w)
    assert sig.sum() <= 1.0 + 1e-12
    assert np.isclose(sig.sum(), w[A.any(axis=0)].sum())
    sig_k = P.sig_per_turn(A, w, known=known)
    assert np.isclose(sig_k.sum(), w[A.any(axis=0) & ~known].sum())
    every = P.sig_per_turn(A, w, credit="every-mention")
    assert (every >= sig - 1e-15).all()
    for t in range(n_turns):  # independent loop: first-acquisition turns
        first = [i for i in range(n) if A[t, i] and not A[:t, i].any()]
        assert np.isclose(sig[t], sum(w[i] for i in first))
        assert np.isclose(every[t], w[A[t]].sum())


def test_acquired_facts_with_user_checker_and_fallback():
    """acquired_facts calls the user checker per (turn, fact); the fallback needs ≥ 50 % of the fact's words."""
    turns = ["question: any fever or chills?", "question: how long has the cough lasted, two weeks?"]
    facts = ["high fever since monday", "dry cough for two weeks", "no"]
    seen = []

    def checker(text, fact):  # a user checker (an LLM judge in the paper); here: the fact's 2nd word occurs
        seen.append((text, fact))
        words = fact.split()
        return len(words) > 1 and words[1] in text

    got = P.acquired_facts(turns, facts, checker=checker)
    assert got.tolist() == [[True, False, False], [False, True, False]]
    assert len(seen) == 6
    fb = P.acquired_facts(turns, facts)
    # fact 0: words > 2 chars = high, fever, since, monday -> 1/4 in turn 0 -> False
    # fact 1: dry, cough, for, two, weeks -> turn 1 holds cough, two, weeks -> 3/5 -> True
    # fact 2: no word longer than 2 characters -> never acquired
    assert fb.tolist() == [[False, False, False], [False, True, False]]
    assert P.keyword_checker("fever and chills since monday", "high fever since monday")  # 3/4
    with pytest.raises(RLSpecValueError):
        P.acquired_facts(turns, facts, checker=lambda t, f: 1)


# ---------------------------------------------------------------------------------- token rewards

@given(seeds())
def test_token_rewards_match_loop_and_ignore_padding(rng):
    """R matches a per-token loop of α·SIG + β·SIG·c (questions), γ·c (answers), + fmt; 0 where masked."""
    B, T = int(rng.integers(1, 5)), int(rng.integers(3, 10))
    cfg = P.PromedConfig(alpha=float(rng.uniform(0, 3)), beta=float(rng.uniform(0, 2)),
                         gamma=float(rng.uniform(0, 4)), fmt_weight=float(rng.uniform(0, 1)))
    spans_q, spans_a = [], []
    for _ in range(B):
        cuts = np.sort(rng.choice(np.arange(T + 1), size=4, replace=False))
        spans_q.append([(int(cuts[0]), int(cuts[1]))])
        spans_a.append([(int(cuts[2]), int(cuts[3]))])
    q = P.spans_to_index(spans_q, T)
    ans = P.spans_to_index(spans_a, T) >= 0
    sig = rng.uniform(0, 1, size=(B, 1))
    correct = rng.random(B) < 0.5
    fmt = rng.choice([0.0, 0.5, 1.0], size=(B, T))
    mask = np.arange(T)[None, :] < rng.integers(0, T + 1, size=B)[:, None]
    fmt_g = np.where(mask, fmt, rng.choice(GARBAGE, size=(B, T)))
    R = P.promed_token_rewards(q, sig, ans, correct, mask, fmt_g, cfg)
    for b in range(B):
        c = float(correct[b])
        for t in range(T):
            exp = 0.0
            if mask[b, t]:
                s0, e0 = spans_q[b][0]
                s1, e1 = spans_a[b][0]
                if s0 <= t < e0:
                    exp += cfg.alpha * sig[b, 0] + cfg.beta * sig[b, 0] * c
                if s1 <= t < e1:
                    exp += cfg.gamma * c
                exp += cfg.fmt_weight * fmt[b, t]
            assert np.isclose(R[b, t], exp, atol=1e-12)
    # with the paper's weights and SIG ≤ 1, question tokens earn at most α+β = 3 plus format ≤ 1
    R0 = P.promed_token_rewards(q, sig, ans, correct, mask, fmt)
    assert (R0 <= 4.0 + 1e-12).all() and (R0 >= 0).all()


# ---------------------------------------------------------------------------------- token baseline

def token_batch(rng):
    return get("promed_token_baseline").make_inputs(rng)


@given(seeds())
def test_token_baseline_sums_to_zero_per_group(rng):
    """Σ_{valid tokens of a group} A = 0 for every group (the baseline is the group's token mean)."""
    x = token_batch(rng)
    A = P.token_group_baseline_advantage(**x)
    M = x["mask"]
    assert np.isfinite(A).all() and (A[~M] == 0).all()
    for g in np.unique(x["group"]):
        rows = x["group"] == g
        assert abs(A[rows][M[rows]].sum()) <= 1e-9 * (1 + M[rows].sum())


@given(seeds(), st.floats(-5, 5))
def test_token_baseline_matches_loop_and_ignores_padding(rng, shift):
    """A equals an explicit per-group loop, is unchanged by padding garbage and by R → R + c."""
    x = token_batch(rng)
    R, g, M = x["rewards"], x["group"], x["mask"]
    A = P.token_group_baseline_advantage(R, g, M)
    expect = np.zeros(M.shape)
    for b in range(len(g)):
        vals = [R[j, u] for j in range(len(g)) if g[j] == g[b] for u in range(M.shape[1]) if M[j, u]]
        for t in range(M.shape[1]):
            if M[b, t]:
                expect[b, t] = R[b, t] - sum(vals) / len(vals)
    assert np.allclose(A, expect, atol=1e-12)
    R2 = np.where(M, R, rng.choice(GARBAGE, size=M.shape))
    assert np.array_equal(P.token_group_baseline_advantage(R2, g, M), A)
    assert np.allclose(P.token_group_baseline_advantage(np.where(M, R + shift, R), g, M), A, atol=1e-10)


def test_token_baseline_sequence_rewards_and_registry_path():
    """Sequence rewards (B,) are broadcast over valid tokens; the registry entries return named outputs."""
    mask = np.array([[True, True, False], [True, False, False]])
    A = P.token_group_baseline_advantage(np.array([1.0, 4.0]), np.array([0, 0]), mask)
    assert np.allclose(A, [[-1.0, -1.0, 0.0], [2.0, 0.0, 0.0]])  # baseline (1+1+4)/3 = 2
    spec = get("promed")
    x = spec.make_inputs(np.random.default_rng(0))
    phi, w, sig = spec(**x)
    assert phi.shape == w.shape == (x["acquired"].shape[1],) and sig.shape == (x["acquired"].shape[0],)


# ---------------------------------------------------------------------------------- bad input

def test_bad_input_raises():
    """Bad input raises RLSpecValueError naming the argument."""
    cases = [
        (lambda: P.shapley_exact(np.zeros(3)), "v"),                       # length not 2^n
        (lambda: P.shapley_exact(np.array([0.0, np.nan])), "v"),           # NaN
        (lambda: P.shapley_exact(np.zeros(4), n=3), "n"),                  # n mismatch
        (lambda: P.shapley_exact(lambda S: 0.0), "n"),                     # callable without n
        (lambda: P.shapley_exact(lambda S: float("inf"), 2), "v"),         # non-finite callable
        (lambda: P.sig_weights([1.0, 2.0], tau=0.0), "tau"),
        (lambda: P.sig_weights([1.0, 2.0], tau=-1.0), "tau"),
        (lambda: P.sig_weights([1.0, 2.0], method="l1"), "method"),
        (lambda: P.sig_weights([1.0, np.inf]), "phi"),
        (lambda: P.sig_per_turn(np.ones((2, 3)), np.ones(3) / 3), "acquired"),  # floats, not bool
        (lambda: P.sig_per_turn(np.ones((2, 3), bool), np.ones(2) / 2), "w"),
        (lambda: P.sig_per_turn(np.ones((2, 3), bool), np.ones(3) / 3, credit="all"), "credit"),
        (lambda: P.shapley_mc(np.zeros(4), 2, rng=0), "rng"),
        (lambda: P.shapley_mc(np.zeros(4), 2, np.random.default_rng(0), max_perm=0), "max_perm"),
        (lambda: P.shapley_mc(np.zeros(4), 2, np.random.default_rng(0), tol=-1.0), "tol"),
        (lambda: P.PromedConfig(alpha=-1.0), "alpha"),
        (lambda: P.promed_sig_reward(np.zeros(4), np.zeros((2, 3), bool)), "acquired"),
        (lambda: P.token_group_baseline_advantage(np.array([[np.nan, 0.0]]), np.array([0]),
                                                  np.array([[True, False]])), "rewards"),
        (lambda: P.token_group_baseline_advantage(np.zeros((2, 2)), np.array([0]), np.ones((2, 2), bool)), "group"),
        (lambda: P.spans_to_index([[(0, 3), (2, 4)]], 5), "spans"),
        (lambda: P.characteristic_from_logprob(lambda S: np.array([0.5]))(frozenset()), "logprob_fn"),
    ]
    for call, arg in cases:
        with pytest.raises(RLSpecValueError) as e:
            call()
        assert str(e.value).startswith(arg), (arg, str(e.value))
