"""Properties of GCPO's group contrastive masking and length reward (arXiv 2506.07160) — reference/gcpo.py.

Expected values come from explicit loops over groups, closed forms, or exact enumeration of a small
contextual bandit; never from the code under test. The masking rule is our reconstruction of the
paper's wording (see the module docstring); the tests pin down that reconstruction.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties.strategies import seeds
from rlspec.reference import registry
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.gcpo import GCPOConfig, gcpo_reward, group_contrastive_mask, length_reward


def draw_batch(rng, B=None):
    B = int(rng.integers(1, 20)) if B is None else B
    group = rng.integers(0, max(1, B // 4), size=B) - 3
    return (rng.random(B) < rng.uniform(0.1, 0.9), rng.random(B) < rng.uniform(0.1, 0.9), group,
            rng.integers(0, 3000, size=B).astype(float))


def loop_mask(correct, aux, group, eps):
    """M per row by an explicit loop: accuracies of the two sides of each group."""
    M = np.zeros(len(correct))
    for k in set(group.tolist()):
        idx = [i for i in range(len(group)) if group[i] == k]
        plus = [correct[i] for i in idx if aux[i]]
        minus = [correct[i] for i in idx if not aux[i]]
        if not plus or not minus:
            continue
        d = sum(plus) / len(plus) - sum(minus) / len(minus)
        for i in idx:
            M[i] = (1.0 if d > 0 else -1.0) if abs(d) > eps else 0.0
    return M


@given(seeds(), st.sampled_from([0.0, 0.1, 0.25, 0.5]))
def test_mask_sign_follows_accuracy_contrast(rng, eps):
    """Group Contrastive Masking (abstract: 'positive or negative reward signals for auxiliary construction based
    on contextual utility'): within a group, M = +1 when the constructing rollouts are more accurate than the
    others by more than ε, −1 when less accurate, 0 otherwise; one value per group."""
    c, a, g, _ = draw_batch(rng)
    M = group_contrastive_mask(c, a, g, eps)
    np.testing.assert_array_equal(M, loop_mask(c, a, g, eps))
    for k in np.unique(g):
        assert len(set(M[g == k].tolist())) == 1


@given(seeds())
def test_no_signal_without_contrast(rng):
    """No contrast ⇒ no auxiliary signal: a group whose rollouts all construct (or none does), a singleton
    group, or a group whose two sides are equally accurate gets M = 0, and its rewards are exactly
    accuracy + format + w_len·min(ℓ/ℓ*, 1), whatever w_aux."""
    G = int(rng.integers(1, 7))
    cfg = GCPOConfig(w_aux=float(rng.uniform(0.1, 5.0)), w_len=0.7, len_target=500.0)
    c = rng.random(G) < 0.5
    L = rng.integers(0, 1200, size=G).astype(float)
    fmt = rng.choice([0.0, 1.0], size=G)
    expected = c + fmt + 0.7 * np.minimum(L / 500.0, 1.0)
    for a in (np.ones(G, bool), np.zeros(G, bool)):
        r = gcpo_reward(c, a, np.zeros(G, int), L, fmt, cfg)
        np.testing.assert_allclose(r, expected, rtol=0, atol=1e-12)
    # equal accuracy on both sides: [aux ✓, aux ✗, no ✓, no ✗]
    c2, a2 = np.array([1, 0, 1, 0], bool), np.array([1, 1, 0, 0], bool)
    assert np.all(group_contrastive_mask(c2, a2, np.zeros(4, int)) == 0.0)
    r2 = gcpo_reward(c2, a2, np.zeros(4, int), np.zeros(4), None, cfg)
    np.testing.assert_allclose(r2, c2.astype(float), atol=1e-12)


@given(seeds(), st.sampled_from([1, -1, 0]))
def test_aux_term_moves_grpo_advantage_by_the_contrast(rng, sign):
    """Consequence for GRPO (the reason the mask exists): two rollouts of one group with the same correctness,
    length and format, one constructing and one not, get GRPO advantages ordered by M — the constructing one
    higher when construction helps the group (M = +1), lower when it hurts (M = −1), equal with no contrast."""
    G = 6
    # sides: three constructing rollouts, three not; accuracies set to make acc⁺ − acc⁻ have the drawn sign
    aux = np.array([1, 1, 1, 0, 0, 0], bool)
    hi, lo = np.array([1, 1, 0]), np.array([1, 0, 0])
    correct = np.concatenate([hi, lo] if sign > 0 else ([lo, hi] if sign < 0 else [hi, hi])).astype(bool)
    L = np.full(G, float(rng.integers(0, 2000)))
    r = gcpo_reward(correct, aux, np.zeros(G, int), L, None, GCPOConfig(w_aux=float(rng.uniform(0.1, 2.0))))
    A = registry.get("grpo")(rewards=r, group=np.zeros(G, int), mask=np.ones((G, 1), bool))[:, 0]
    i, j = 0, 3  # rollout 0 constructs, rollout 3 does not; both are correct in every case
    assert correct[i] and correct[j]
    assert np.sign(round(A[i] - A[j], 12)) == sign


@given(seeds())
def test_unconditional_aux_reward_is_invisible_in_one_sided_groups(rng):
    """Notes §10 (why masking matters only through within-group variation): with the unconditional R_aux
    (masking=False), a group in which every rollout constructs receives the same constant bonus on every
    rollout, and GRPO's advantages equal those of the reward without it."""
    G = int(rng.integers(2, 9))
    c = rng.random(G) < 0.5
    L = rng.integers(0, 2000, size=G).astype(float)
    g = np.zeros(G, int)
    mask = np.ones((G, 2), bool)
    with_aux = gcpo_reward(c, np.ones(G, bool), g, L, None, GCPOConfig(masking=False, w_aux=1.7))
    without = gcpo_reward(c, np.zeros(G, bool), g, L, None, GCPOConfig(masking=False, w_aux=1.7))
    np.testing.assert_allclose(with_aux - without, 1.7, atol=1e-12)
    grpo = registry.get("grpo")
    np.testing.assert_allclose(grpo(rewards=with_aux, group=g, mask=mask), grpo(rewards=without, group=g, mask=mask),
                               atol=1e-9)


@given(st.lists(st.floats(0, 1e5), min_size=1, max_size=30), st.floats(1.0, 5000.0))
def test_length_reward_monotone_and_bounded(lengths, target):
    """Length reward ('promotes longer reasoning chains'): R_len ∈ [0, 1], non-decreasing in ℓ, 0 at ℓ = 0 and
    1 from ℓ* on; in the reward it never lowers a longer rollout below a shorter one with the same other terms."""
    L = np.sort(np.array(lengths))
    R = length_reward(L, target)
    assert np.all((R >= 0) & (R <= 1)) and np.all(np.diff(R) >= 0)
    np.testing.assert_allclose(R, np.where(L >= target, 1.0, L / target), rtol=1e-12, atol=0)
    assert length_reward(np.array([0.0]), target)[0] == 0.0


def bandit_policy_gradient(p, s_aux, s_no, cfg, G=4):
    """Exact E[Σ_i Â_i ∂log π(a_i)/∂θ] for P(construct) = σ(θ) = p, by enumerating the 4^G outcomes of a group
    (construct?, correct?) per rollout; Â = registry grpo on the gcpo rewards (computed once per outcome)."""
    outcomes = list(itertools.product(range(4), repeat=G))
    aux = np.array([[o >> 1 for o in out] for out in outcomes], bool)       # (4^G, G)
    cor = np.array([[o & 1 for o in out] for out in outcomes], bool)
    n = len(outcomes)
    group = np.repeat(np.arange(n), G)
    r = gcpo_reward(cor.ravel(), aux.ravel(), group, np.zeros(n * G), None, cfg)
    A = registry.get("grpo")(rewards=r, group=group, mask=np.ones((n * G, 1), bool))[:, 0].reshape(n, G)
    s = np.where(aux, s_aux, s_no)
    return lambda p: float(np.sum(np.prod(np.where(aux, p, 1 - p) * np.where(cor, s, 1 - s), axis=1)
                                  * np.sum(A * (aux - p), axis=1)))


def test_contextual_bandit_learns_when_to_construct():
    """Paper's thesis (abstract: unconditional rewards lead to 'indiscriminate and counterproductive auxiliary
    constructions'; GCPO models 'judiciously determine when to employ auxiliary construction'): in a two-context
    bandit where constructing raises accuracy in context A (0.8 vs 0.3) and lowers it in B (0.2 vs 0.6),
    exact-gradient ascent on GRPO advantages of GCPO rewards learns P(construct) → 1 in A and → 0 in B, while the
    unconditional aux reward (masking=False, same weight) learns to construct in B as well."""
    contexts = {"A": (0.8, 0.3), "B": (0.2, 0.6)}
    final = {}
    for masking in (True, False):
        cfg = GCPOConfig(masking=masking, w_aux=1.0, w_len=0.0)
        for name, (s_aux, s_no) in contexts.items():
            grad = bandit_policy_gradient(None, s_aux, s_no, cfg)
            theta = 0.0
            for _ in range(300):
                p = 1 / (1 + np.exp(-theta))
                theta += 2.0 * grad(p)
            final[(masking, name)] = 1 / (1 + np.exp(-theta))
    assert final[(True, "A")] > 0.95 and final[(True, "B")] < 0.05
    assert final[(False, "A")] > 0.95 and final[(False, "B")] > 0.95


def test_composition_grpo_ppo():
    """Composition: GCPO rewards feed registry.get('grpo') and registry.get('ppo'); on-policy (ratio 1) the PPO
    token gradient is −Â/n_tokens, so the constructing rollout of a group where construction helps is pushed up
    more than an equally correct non-constructing one, and the reverse where it hurts."""
    correct = np.array([1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 0, 0], bool)
    aux = np.array([1, 1, 1, 0, 0, 0, 1, 0, 0, 1, 1, 0], bool)
    group = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    T = 3
    mask = np.ones((12, T), bool)
    r = gcpo_reward(correct, aux, group, np.full(12, 100.0), None, GCPOConfig())
    adv = registry.get("grpo")(rewards=r, group=group, mask=mask)
    logp = np.full((12, T), -1.0)
    _, dlogp = registry.get("ppo")(logp=logp, old_logp=logp.copy(), adv=adv, mask=mask)
    # group 0: acc⁺ = 2/3 > acc⁻ = 1/3 (M = +1): rollout 0 (aux ✓) gets a larger push than rollout 3 (no aux ✓)
    assert dlogp[0, 0] < dlogp[3, 0]
    # group 1: acc⁺ = 1/3 < acc⁻ = 2/3 (M = −1): rollout 6 (aux ✓) gets a smaller push than rollout 7 (no aux ✓)
    assert dlogp[7, 0] < dlogp[6, 0]
    np.testing.assert_allclose(dlogp, -adv / mask.sum(), atol=1e-12)


def test_bad_input_raises():
    """Bad input names the argument: non-boolean verdicts, mismatched lengths, negative lengths, bad config."""
    ok = dict(correct=np.array([True, False]), uses_aux=np.array([True, True]), group=np.array([0, 0]),
              length=np.array([1.0, 2.0]))
    for key, bad in (("correct", np.array([0.5, 1.0])), ("uses_aux", np.array([True])), ("group", np.array([0.5, 0])),
                     ("length", np.array([-1.0, 2.0])), ("length", np.array([1.0]))):
        with pytest.raises(RLSpecValueError, match=key):
            gcpo_reward(**{**ok, key: bad})
    with pytest.raises(RLSpecValueError, match="fmt"):
        gcpo_reward(**ok, fmt=np.array([np.nan, 0.0]))
    for field, value in (("eps", -0.1), ("aux_on", "wrong"), ("len_target", 0.0), ("w_len", -1.0)):
        with pytest.raises(RLSpecValueError, match=field):
            GCPOConfig(**{field: value})
