"""Properties of the masked, aggregated token entropy and its hand gradient w.r.t. the logits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties import strategies as S
from rlspec.reference import aggregation
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.entropy import EntropyConfig, entropy

MODES = st.sampled_from(aggregation.MODES)


@st.composite
def logit_batches(draw, max_B=5, max_T=4, max_V=7):
    rng = draw(S.seeds())
    B, T, V = draw(st.integers(1, max_B)), draw(st.integers(1, max_T)), draw(st.integers(1, max_V))
    scale = draw(st.sampled_from([0.1, 1.0, 5.0]))
    mask = S.ragged_mask(rng, B, T)
    z = rng.normal(scale=scale, size=(B, T, V))
    zg = z.copy()
    zg[~mask] = rng.choice(S.GARBAGE, size=(int((~mask).sum()), V))
    return {"clean": z, "logits": zg, "mask": mask, "group": S.groups(rng, B)}


@given(logit_batches(), MODES)
def test_hand_gradient_matches_finite_differences(b, mode):
    """Claim: dH/dz = −p ⊙ (log p + H) (times the aggregation coefficient) equals central finite
    differences of the aggregated entropy in float64; garbage logits on masked rows change nothing."""
    cfg = EntropyConfig(agg=mode)
    m = b["mask"]
    v, d = entropy(b["logits"], m, cfg, group=b["group"])
    z = np.where(m[..., None], b["clean"], 0.0)
    v0, d0 = entropy(z, m, cfg, group=b["group"])
    assert v == v0 and np.array_equal(d, d0) and np.all(d[~m] == 0)
    h = 1e-6
    fd = np.zeros_like(z)
    for idx in np.argwhere(np.broadcast_to(m[..., None], z.shape)):
        zp, zm = z.copy(), z.copy()
        zp[tuple(idx)] += h
        zm[tuple(idx)] -= h
        fd[tuple(idx)] = (entropy(zp, m, cfg, group=b["group"])[0] - entropy(zm, m, cfg, group=b["group"])[0]) / (2 * h)
    np.testing.assert_allclose(d, fd, rtol=1e-5, atol=1e-8)


@given(logit_batches())
def test_entropy_bounds(b):
    """Claim: 0 ≤ H ≤ log V per token, so the token-mean lies in [0, log V]; uniform logits reach log V,
    a one-hot-like distribution approaches 0."""
    m = b["mask"]
    V = b["clean"].shape[2]
    v, _ = entropy(b["logits"], m)
    assert -1e-12 <= v <= np.log(V) + 1e-12
    if m.any():
        u, _ = entropy(np.zeros_like(b["clean"]), m)
        assert u == pytest.approx(np.log(V), rel=1e-12, abs=1e-15)
        peaked = np.where(np.arange(V) == 0, 50.0, 0.0) * np.ones_like(b["clean"])
        assert entropy(peaked, m)[0] <= V * 51 * np.exp(-50.0)


@given(logit_batches(), MODES, st.floats(-30, 30))
def test_shift_invariance(b, mode, shift):
    """Claim: softmax, hence H, is invariant to adding a constant to a token's logits; consequently the
    gradient sums to zero over the vocabulary."""
    m = b["mask"]
    cfg = EntropyConfig(agg=mode)
    v, d = entropy(b["clean"], m, cfg, group=b["group"])
    v2, _ = entropy(b["clean"] + shift, m, cfg, group=b["group"])
    assert v2 == pytest.approx(v, rel=1e-9, abs=1e-12)
    np.testing.assert_allclose(d.sum(axis=-1), 0.0, atol=1e-12)


@pytest.mark.parametrize("change", ["ndim", "mask_shape", "mask_float", "nan", "agg"])
def test_bad_input_raises(change):
    """Claim: 2-D logits, a mask of the wrong shape or dtype, NaN on an unmasked row and an unknown
    aggregation mode raise RLSpecValueError."""
    z = np.random.default_rng(0).normal(size=(2, 3, 4))
    m = np.ones((2, 3), bool)
    with pytest.raises(RLSpecValueError):
        if change == "ndim":
            entropy(z[0], m)
        elif change == "mask_shape":
            entropy(z, m[:, :2])
        elif change == "mask_float":
            entropy(z, m * 0.5)
        elif change == "nan":
            z[1, 2, 3] = np.nan
            entropy(z, m)
        else:
            entropy(z, m, EntropyConfig(agg="mean"))
