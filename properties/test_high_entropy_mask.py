"""Properties of the high-entropy ("forking") token mask (arXiv 2506.01939)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties import strategies as S
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.high_entropy_mask import HighEntropyMaskConfig, _inputs, high_entropy_mask

RHOS = st.sampled_from([0.0, 0.1, 0.2, 0.5, 0.8, 1.0])


@given(S.seeds(), RHOS)
def test_keeps_about_rho_of_the_tokens(rng, rho):
    """Claim (paper: train on the top 20 % of tokens by entropy): with distinct entropies and the linear quantile,
    the number kept is ⌈ρ(n−1)⌉ or ⌈ρ(n−1)⌉+1 of n valid tokens (the order statistics at or above position
    (1−ρ)(n−1)), i.e. ρ·n up to one token."""
    B, T = int(rng.integers(1, 6)), int(rng.integers(1, 9))
    m = np.arange(T)[None, :] < rng.integers(1, T + 1, size=B)[:, None]
    H = rng.gamma(1.0, 1.0, size=(B, T))
    keep = high_entropy_mask(H, m, HighEntropyMaskConfig(rho=rho))
    n = int(m.sum())
    k = int(keep.sum())
    lo = n - int(np.floor((1 - rho) * (n - 1) + 1e-12)) - 1  # order statistics strictly above the lower bracket
    assert lo <= k <= lo + 1
    assert abs(k - rho * n) <= 1 + 1e-9


@given(S.seeds(), RHOS)
def test_every_kept_token_has_higher_entropy_than_every_dropped_one(rng, rho):
    """Claim (a threshold rule): min entropy kept ≥ max entropy dropped among valid tokens; padding never kept."""
    b = _inputs(rng)
    keep = high_entropy_mask(b["entropy"], b["mask"], HighEntropyMaskConfig(rho=rho))
    m = b["mask"]
    assert not np.any(keep & ~m)
    H = np.where(m, b["entropy"], 0.0)
    if keep.any() and (m & ~keep).any():
        assert H[keep].min() > H[m & ~keep].max()


@given(S.seeds(), RHOS, st.booleans())
def test_ties_are_kept_or_dropped_together(rng, rho, inclusive):
    """Definition (ties): tokens of equal entropy get the same decision, whatever their position."""
    b = _inputs(rng)
    m = b["mask"]
    keep = high_entropy_mask(b["entropy"], m, HighEntropyMaskConfig(rho=rho, inclusive=inclusive))
    H = b["entropy"]
    for v in np.unique(H[m]):
        assert len(set(keep[m & (H == v)].tolist())) == 1


@given(S.seeds(), RHOS)
def test_padding_is_never_read(rng, rho):
    """Design, 'Bad input': values at masked positions (NaN, inf, negative) never change the mask."""
    b = _inputs(rng)
    m = b["mask"]
    cfg = HighEntropyMaskConfig(rho=rho)
    a = high_entropy_mask(b["entropy"], m, cfg)
    z = high_entropy_mask(np.where(m, b["entropy"], 0.0), m, cfg)
    assert np.array_equal(a, z)


def test_rho_extremes():
    """Definition: ρ = 1 keeps every valid token; ρ = 0 keeps exactly the maximal-entropy tokens (all tied maxima);
    an all-false mask keeps nothing; negative entropies and bad ρ are rejected."""
    H = np.array([[0.5, 2.0, 2.0, np.nan], [1.0, 0.0, 3.0, 0.1]])
    m = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool)
    assert np.array_equal(high_entropy_mask(H, m, HighEntropyMaskConfig(rho=1.0)), m)
    assert np.array_equal(high_entropy_mask(H, m, HighEntropyMaskConfig(rho=0.0)),
                          np.array([[0, 1, 1, 0], [0, 0, 0, 0]], bool))
    assert not high_entropy_mask(H, np.zeros_like(m)).any()
    with pytest.raises(RLSpecValueError, match="entropy"):
        high_entropy_mask(-np.ones((1, 2)), np.ones((1, 2), bool))
    with pytest.raises(RLSpecValueError, match="rho"):
        HighEntropyMaskConfig(rho=1.5)
