"""The factorised masked-diffusion toy (:mod:`rlspec.reference.envs.masked_diffusion`) checked before IGPO uses it.

Expected values come from outside the module: a sequential random-order unmasking sampler written here,
seeded Monte-Carlo frequencies with standard errors, brute-force enumeration of all V^L responses, the
uniform ρ law integrated numerically, and central finite differences.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlspec.reference.envs import masked_diffusion as md
from rlspec.reference.igpo_inpainting import n_revealed


def _theta(rng, L=4, V=3):
    return rng.normal(size=(L, V))


def test_random_order_unmasking_samples_the_product_law():
    """Unmasking one position at a time in a random order from the factorised denoiser (written out here) gives
    the same law as ``sample``: both match Π_l π_l(y_l) on all 81 responses (chi-square-free check: every
    frequency within 5 standard errors; 40 000 draws each, false-alarm rate ≈ 1e-4 over 2 × 81 cells)."""
    rng = np.random.default_rng(0)
    theta = _theta(rng)
    pi = md.probs(theta)
    n = 40000
    seq = np.empty((n, 4), dtype=np.int64)
    for i in range(n):                      # the masked-diffusion loop: pick a masked position, fill it
        for l in rng.permutation(4):
            seq[i, l] = rng.choice(3, p=pi[l])
    fast = md.sample(theta, n, np.random.default_rng(1))
    for y in itertools.product(range(3), repeat=4):
        p = float(np.prod(pi[np.arange(4), y]))
        se = np.sqrt(p * (1 - p) / n)
        for draws in (seq, fast):
            assert abs((draws == np.array(y)).all(axis=1).mean() - p) <= 5 * se + 1e-12


@given(seed=st.integers(0, 2**32 - 1))
@settings(max_examples=20)
def test_success_and_token_quantities(seed):
    """p = Π π_l(y*_l) equals the enumerated probability of the exact-match response; token_logp, entropy and
    grad_theta agree with log π, −Σ π log π and central differences of Σ dlogp ⊙ logp."""
    rng = np.random.default_rng(seed)
    theta, y_star = _theta(rng), rng.integers(0, 3, size=4)
    pi = md.probs(theta)
    total = sum(np.prod(pi[np.arange(4), y]) * md.reward(np.array([y]), y_star)[0]
                for y in itertools.product(range(3), repeat=4))
    assert md.success(theta, y_star) == pytest.approx(total, rel=1e-12)
    y = md.sample(theta, 5, rng)
    np.testing.assert_allclose(md.token_logp(theta, y), np.log(pi[np.arange(4)[None], y]), rtol=1e-12)
    np.testing.assert_allclose(md.entropy(theta), -(pi * np.log(pi)).sum(axis=1), rtol=1e-12)
    w = rng.normal(size=y.shape)
    g = md.grad_theta(theta, y, w)
    h = 1e-6
    for l, v in itertools.product(range(4), range(3)):
        tp, tm = theta.copy(), theta.copy()
        tp[l, v] += h
        tm[l, v] -= h
        fd = ((w * md.token_logp(tp, y)).sum() - (w * md.token_logp(tm, y)).sum()) / (2 * h)
        assert g[l, v] == pytest.approx(fd, abs=1e-7)


@pytest.mark.parametrize("L,low,high", [(4, 0.2, 0.6), (5, 0.1, 0.5), (3, 0.0, 1.0)])
def test_hint_count_law_is_the_integrated_ratio_law(L, low, high):
    """P(j hints) equals the fraction of a fine ρ grid on [low, high] where L − int(L(1 − ρ)) = j (the code's rule)."""
    grid = np.linspace(low, high, 200001)[1:-1]
    counts = np.array([n_revealed(L, rho) for rho in grid])
    law = md.hint_count_law(L, low, high)
    assert law.sum() == pytest.approx(1.0)
    for j in range(L + 1):
        assert (counts == j).mean() == pytest.approx(law[j], abs=1e-4)


def test_inpaint_success_matches_monte_carlo():
    """q (exact) = frequency of correct inpainted responses drawn with ρ ~ U[0.2, 0.6], one-token chunks
    chosen uniformly, within 5 standard errors (30 000 draws)."""
    rng = np.random.default_rng(7)
    theta, y_star = _theta(rng), np.array([0, 1, 2, 0])
    q = md.inpaint_success(theta, y_star, 0.2, 0.6)
    n = 30000
    hits = 0
    for _ in range(n):
        rho = rng.uniform(0.2, 0.6)
        hint = np.zeros(4, dtype=bool)
        hint[rng.choice(4, size=n_revealed(4, rho), replace=False)] = True
        hits += md.reward(md.sample(theta, 1, rng, y_star, hint), y_star)[0]
    assert abs(hits / n - q) <= 5 * np.sqrt(q * (1 - q) / n)
