"""Hypothesis strategies for rlspec's canonical batches, shared by properties/ and conformance/.

Batches are ragged (per-row masks with random lengths, some rows fully masked), groups are
arbitrary integer ids (negative, sparse, singletons), and masked positions are filled with
garbage (NaN, ±inf, huge numbers) so that any read of padding shows up as a failure.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

GARBAGE = (np.nan, np.inf, -np.inf, 1e30, -1e30)


def fill_garbage(x: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Copy of ``x`` with masked positions overwritten by NaN / ±inf / huge values."""
    out = np.array(x, dtype=np.float64, copy=True)
    pad = ~mask
    out[pad] = rng.choice(GARBAGE, size=int(pad.sum()))
    return out


def ragged_mask(rng: np.random.Generator, B: int, T: int, p_empty: float = 0.1) -> np.ndarray:
    """Right-padded response masks with random lengths; some rows fully masked (p_empty)."""
    lengths = rng.integers(1, T + 1, size=B)
    lengths[rng.random(B) < p_empty] = 0
    return np.arange(T)[None, :] < lengths[:, None]


def groups(rng: np.random.Generator, B: int) -> np.ndarray:
    """Arbitrary prompt ids: negative, sparse, with singleton groups; not necessarily contiguous."""
    n = int(rng.integers(1, B + 1))
    pool = rng.choice(np.arange(-50, 50), size=n, replace=False)
    return rng.choice(pool, size=B)


def policy_batch(rng: np.random.Generator, B: int, T: int, *, log_ratio_scale: float = 0.3,
                 garbage: bool = True) -> dict[str, np.ndarray]:
    """A canonical policy-loss batch (logp, old_logp, ref_logp, adv, mask, group)."""
    mask = ragged_mask(rng, B, T)
    logp = -rng.gamma(2.0, 1.0, size=(B, T))
    old_logp = logp + rng.normal(scale=log_ratio_scale, size=(B, T))
    ref_logp = logp + rng.normal(scale=log_ratio_scale, size=(B, T))
    g = groups(rng, B)
    adv = np.repeat(rng.normal(size=(B, 1)), T, axis=1)  # sequence advantage broadcast over tokens
    if rng.random() < 0.3:  # token-level advantages too
        adv = adv + rng.normal(scale=0.5, size=(B, T))
    batch = {"logp": logp, "old_logp": old_logp, "ref_logp": ref_logp, "adv": adv, "mask": mask, "group": g}
    if garbage:
        for k in ("logp", "old_logp", "ref_logp", "adv"):
            batch[k] = fill_garbage(batch[k], mask, rng)
    return batch


def outcome_batch(rng: np.random.Generator, B: int, T: int, *, binary: bool | None = None) -> dict[str, np.ndarray]:
    """An advantage-estimator batch: rewards (B,), group (B,), mask (B, T)."""
    binary = bool(rng.random() < 0.5) if binary is None else binary
    rewards = rng.integers(0, 2, size=B).astype(np.float64) if binary else rng.normal(size=B)
    return {"rewards": rewards, "group": groups(rng, B), "mask": ragged_mask(rng, B, T)}


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
