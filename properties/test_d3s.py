"""Properties of D³S's dual-level down-sampling (arXiv 2509.22115) — reference/d3s.py.

The sample-level claim is checked against brute force over every subset (itertools.combinations); the
token level against a sort written here; the schedule against its two end points.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties.strategies import seeds
from rlspec.reference import registry
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.d3s import (
    D3SConfig,
    d3s_select,
    entropy_from_logits,
    linear_schedule,
    make_inputs,
    maxvar_subset,
    n_keep,
)
from rlspec.reference.grpo import GRPOConfig


def brute_max_var(a: np.ndarray, k: int) -> float:
    return max(np.var(a[list(c)]) for c in itertools.combinations(range(a.shape[0]), k))


def values(rng: np.random.Generator, n: int) -> np.ndarray:
    """Continuous, binary-like or tie-heavy advantages."""
    kind = rng.integers(3)
    if kind == 0:
        return rng.normal(size=n) * rng.uniform(0.1, 5)
    if kind == 1:
        return rng.choice([-1.0, 1.0], size=n) * rng.uniform(0.2, 2)
    return np.round(rng.normal(size=n), 1)


@given(seeds())
def test_selection_equals_bruteforce_argmax(rng):
    """Claim (sample level, D³S: select the subset maximising Var(A)): for every n ≤ 9 and k ≤ n the selected
    k-subset attains the maximum of Var over all C(n, k) subsets (brute force), so it IS the argmax (up to
    subsets of equal variance)."""
    for _ in range(30):  # many small cases per example: a wrong rule fails on only a fraction of them
        n = int(rng.integers(1, 10))
        k = int(rng.integers(1, n + 1))
        a = values(rng, n)
        idx = maxvar_subset(a, k)
        assert idx.shape == (k,) and len(set(idx.tolist())) == k
        assert np.var(a[idx]) == pytest.approx(brute_max_var(a, k), rel=1e-12, abs=1e-15)


@given(seeds())
def test_balanced_split_never_beats_search_and_is_optimal_for_binary(rng):
    """Claim (our notes: the 'N_pos most positive + N_neg most negative' implementation): the balanced split's
    variance is ≤ the exact maximum, strictly less on a skewed set; with two-valued (binary-reward) advantages
    and enough of each value it attains it."""
    n = int(rng.integers(2, 10))
    k = int(rng.integers(2, n + 1))
    a = rng.normal(size=n)
    assert np.var(a[maxvar_subset(a, k, "balanced")]) <= brute_max_var(a, k) + 1e-12
    skewed = np.array([-3.0, 0.1, 0.2, 0.3, 0.4, 0.5])  # one outlier: 1 smallest + 3 largest beats 2 + 2
    assert np.var(skewed[maxvar_subset(skewed, 4)]) > np.var(skewed[maxvar_subset(skewed, 4, "balanced")]) + 0.05
    n_pos = int(rng.integers(1, n))
    b = np.array([1.3] * n_pos + [-0.7] * (n - n_pos))
    k = 2 * int(rng.integers(1, min(n_pos, n - n_pos) + 1))
    assert np.var(b[maxvar_subset(b, k, "balanced")]) == pytest.approx(brute_max_var(b, k), rel=1e-12)


@given(seeds(), st.integers(2, 40))
def test_lemma_standardized_set_has_subset_with_var_at_least_one(rng, n):
    """Lemma (as reported): a standardised set (mean 0, population variance 1, n ≥ 2) contains a subset with
    Var ≥ 1 — its {min, max} pair, whose variance is ((max − min)/2)² ≥ 1 (Popoviciu); and the best
    2-subset found by maxvar_subset is that pair."""
    a = values(rng, n)
    if np.ptp(a) == 0:
        a[0] += 1.0
    z = (a - a.mean()) / a.std()
    pair = np.array([z.min(), z.max()])
    assert np.var(pair) >= 1.0 - 1e-12
    assert np.var(z[maxvar_subset(z, 2)]) == pytest.approx(np.var(pair), rel=1e-12)


def test_fixed_size_maxvar_can_fall_below_one():
    """Note on the lemma's quantifier: for a FIXED size k the maximal variance can be below 1 — k = 3 of the
    standardised set {−1, −1, 1, 1} gives 8/9 — so the lemma holds for the subset size chosen freely (k = 2)."""
    z = np.array([-1.0, -1.0, 1.0, 1.0])
    assert brute_max_var(z, 3) == pytest.approx(8 / 9)
    assert np.var(z[maxvar_subset(z, 3)]) == pytest.approx(8 / 9)
    assert np.var(z[maxvar_subset(z, 2)]) == pytest.approx(1.0)


@given(seeds())
def test_prop1_standardized_advantages_have_unit_variance(rng):
    """Prop. 1's premise: group-standardised advantages (GRPO, population std, ε = 0) have Var(A) = 1 in every
    non-constant group, whatever the scale or variance of the rewards — the quantity the paper's bound uses."""
    G = int(rng.integers(2, 12))
    R = rng.normal(size=G) * 10 ** rng.uniform(-3, 3) + rng.normal() * 100
    if np.ptp(R) == 0:
        R[0] += 1.0
    A = registry.get("grpo")(rewards=R, group=np.zeros(G, int), mask=np.ones((G, 1), bool),
                             config=GRPOConfig(ddof=0, eps=0.0))[:, 0]
    assert np.var(A) == pytest.approx(1.0, rel=1e-9)


@given(st.floats(0.0, 1.0), st.floats(0.01, 1.0), st.floats(0.01, 1.0))
def test_schedule_endpoints_and_monotone(p, init, final):
    """Claim (dynamic schedule, 'aggressive → relaxed'): the schedule equals its initial value at p = 0 and its
    final value at p = 1 exactly, is linear in between, and moves monotonically from one to the other; with
    the defaults fewer tokens are kept at p = 0 than at p = 1, where every valid token is kept."""
    assert linear_schedule(0.0, init, final) == init
    assert linear_schedule(1.0, init, final) == final
    v = linear_schedule(p, init, final)
    assert min(init, final) - 1e-15 <= v <= max(init, final) + 1e-15
    assert v == pytest.approx(init + p * (final - init), abs=1e-15)
    rng = np.random.default_rng(3)
    inp = make_inputs(rng)
    while inp["mask"].sum() < 6:
        inp = make_inputs(rng)
    kept = [d3s_select(**{**inp, "progress": q})[1].sum() for q in (0.0, 1.0)]
    assert kept[0] < kept[1] == inp["mask"].sum()


@given(seeds(), st.sampled_from([0.05, 0.2, 0.5, 0.9, 1.0]))
def test_token_level_keeps_top_scores(rng, K):
    """Claim (token level: keep the tokens with the largest |A_{i,t}|·H_{i,t}): among the n valid tokens of the
    kept rollouts exactly max(1, ⌈K·n⌉) are kept, every kept score is ≥ every dropped candidate score, and all
    kept tokens lie in kept rollouts."""
    inp = make_inputs(rng)
    cfg = D3SConfig(token_frac_init=K, sample_frac_init=float(rng.uniform(0.2, 1.0)))
    keep_seq, keep = d3s_select(**{**inp, "progress": 0.0}, config=cfg)
    M = inp["mask"]
    cand = M & keep_seq[:, None]
    n = int(cand.sum())
    assert keep.sum() == (0 if n == 0 else min(n, max(1, math.ceil(K * n - 1e-9))))
    assert not np.any(keep & ~cand)
    s = np.where(M, np.abs(np.where(M, inp["adv"], 0)) * np.where(M, inp["entropy"], 0), 0)
    if keep.any() and (cand & ~keep).any():
        assert s[keep].min() >= s[cand & ~keep].max()


@given(seeds())
def test_padding_and_dropped_rows_never_kept(rng):
    """Design ('Bad input', masks): padding is never read (NaN/inf/−1 there change nothing) and never kept; rows
    without a valid token are never kept; each group keeps n_keep(f, n) of its n valid rows."""
    inp = make_inputs(rng)
    M = inp["mask"]
    clean = {**inp, "adv": np.where(M, inp["adv"], 0.0), "entropy": np.where(M, inp["entropy"], 0.0)}
    a, b = d3s_select(**inp), d3s_select(**clean)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.any(a[1] & ~M) and not np.any(a[0] & ~M.any(axis=1))
    f = linear_schedule(inp["progress"], 0.5, 1.0)
    for k in np.unique(inp["group"]):
        rows = (inp["group"] == k) & M.any(axis=1)
        assert a[0][rows].sum() == n_keep(f, int(rows.sum()))


def test_composition_with_ppo():
    """Composition (the pipeline place: advantage → selection → loss): GRPO advantages on the full groups, D³S's
    keep mask as the ppo loss mask. The loss and gradient equal ppo on the kept tokens alone (same advantages,
    not renormalised), dropped tokens get no gradient, and the kept rollouts of a binary group are the balanced
    best/worst ones."""
    rng = np.random.default_rng(11)
    G, T = 8, 5
    group = np.repeat([0, 1], G)
    rewards = np.array([1, 1, 1, 0, 0, 0, 0, 0, 1, 0, 1, 1, 1, 1, 1, 0], float)
    mask = np.ones((2 * G, T), bool)
    adv = registry.get("grpo")(rewards=rewards, group=group, mask=mask)
    H = rng.gamma(1.0, 1.0, size=(2 * G, T))
    keep_seq, keep = d3s_select(adv, H, group, mask, progress=0.0)
    for k in (0, 1):  # 4 of 8 kept per group: two correct and two wrong (balanced split maximises Var)
        r = rewards[(group == k) & keep_seq]
        assert r.size == 4 and r.sum() == 2
    logp = np.log(rng.uniform(0.1, 0.9, size=(2 * G, T)))
    old = logp + rng.normal(scale=0.1, size=logp.shape)
    ppo = registry.get("ppo")
    loss, dlogp = ppo(logp=logp, old_logp=old, adv=adv, mask=keep)
    rows = keep_seq
    loss_sub, dsub = ppo(logp=logp[rows], old_logp=old[rows], adv=adv[rows], mask=keep[rows])
    assert loss == pytest.approx(loss_sub, rel=1e-12)
    np.testing.assert_allclose(dlogp[rows], dsub, rtol=1e-12)
    assert np.all(dlogp[~keep] == 0.0)


def test_entropy_from_logits_matches_definition():
    """Definition (H_{i,t} = −Σ_v π log π): the helper agrees with a direct softmax computation; masked rows of the
    logits (NaN here) are never read."""
    rng = np.random.default_rng(5)
    z = rng.normal(size=(2, 3, 4))
    mask = np.array([[1, 1, 0], [1, 0, 0]], bool)
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    expect = np.where(mask, -(p * np.log(p)).sum(-1), 0.0)
    z[~mask] = np.nan
    np.testing.assert_allclose(entropy_from_logits(z, mask), expect, rtol=1e-12)


def test_bad_input_raises():
    """Design, 'Bad input': negative entropy, NaN at a valid position, progress outside [0, 1], bad fractions,
    scope or split raise RLSpecValueError naming the argument."""
    A, H, g, M = np.ones((2, 2)), np.ones((2, 2)), np.array([0, 0]), np.ones((2, 2), bool)
    with pytest.raises(RLSpecValueError, match="entropy"):
        d3s_select(A, -H, g, M)
    with pytest.raises(RLSpecValueError, match="adv"):
        d3s_select(np.full((2, 2), np.nan), H, g, M)
    with pytest.raises(RLSpecValueError, match="progress"):
        d3s_select(A, H, g, M, progress=1.5)
    with pytest.raises(RLSpecValueError, match="sample_frac_init"):
        D3SConfig(sample_frac_init=0.0)
    with pytest.raises(RLSpecValueError, match="scope"):
        D3SConfig(scope="global")
    with pytest.raises(RLSpecValueError, match="split"):
        D3SConfig(split="random")
    with pytest.raises(RLSpecValueError, match="group"):
        d3s_select(A, H, np.array([0.5, 1.0]), M)
