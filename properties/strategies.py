"""Hypothesis strategies for rlspec's canonical batches, used by properties/.

The NumPy generators are defined in :mod:`rlspec.conformance.inputs` (shared with the conformance suite).

Batches are ragged (per-row masks with random lengths, some rows fully masked), groups are
arbitrary integer ids (negative, sparse, singletons), and masked positions are filled with
garbage (NaN, ±inf, huge numbers) so that any read of padding shows up as a failure.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

# The NumPy generators live in the installed package (conformance must not import properties/);
# they are re-exported here under their historical names.
from rlspec.conformance.inputs import GARBAGE, fill_garbage, groups, outcome_batch, policy_batch, ragged_mask  # noqa: F401


@st.composite
def seeds(draw) -> np.random.Generator:
    """A NumPy generator seeded by hypothesis (so examples shrink and replay)."""
    return np.random.default_rng(draw(st.integers(0, 2**32 - 1)))


@st.composite
def policy_batches(draw, max_B: int = 8, max_T: int = 7, log_ratio_scale: float | None = None, garbage: bool = True):
    rng = draw(seeds())
    B = draw(st.integers(1, max_B))
    T = draw(st.integers(1, max_T))
    scale = draw(st.sampled_from([0.05, 0.3, 1.0, 3.0])) if log_ratio_scale is None else log_ratio_scale
    return policy_batch(rng, B, T, log_ratio_scale=scale, garbage=garbage)


@st.composite
def outcome_batches(draw, max_B: int = 12, max_T: int = 5):
    rng = draw(seeds())
    return outcome_batch(rng, draw(st.integers(1, max_B)), draw(st.integers(1, max_T)))


def clean(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``x`` with masked positions set to 0 (for writing expected values in tests)."""
    return np.where(mask, x, 0.0)


def finite_difference(f, x: np.ndarray, mask: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar ``f(x)`` w.r.t. each unmasked entry of ``x`` (B, T); 0 elsewhere."""
    g = np.zeros_like(x)
    for b, t in np.argwhere(mask):
        xp, xm = x.copy(), x.copy()
        xp[b, t] += h
        xm[b, t] -= h
        g[b, t] = (f(xp) - f(xm)) / (2 * h)
    return g
