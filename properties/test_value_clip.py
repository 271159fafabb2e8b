"""Properties of PPO's clipped value loss (arXiv 1707.06347 eq. (9); clipping as in openai/baselines ppo2).

The generic policy-loss suites call losses with (logp, old_logp, adv); this entry's inputs are
(values, old_values, returns) and its gradient output is ``dvalues``, so its generic claims (finite
differences, padding, sharding) are checked here.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties import strategies as S
from rlspec.reference import aggregation
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.value_clip import ValueClipConfig, value_clip_loss

MODES = st.sampled_from([m for m in aggregation.MODES if m != "group-token-mean"])
EPS = st.sampled_from([None, 0.0, 0.2, 0.5, 2.0])


def batch(rng, scale=None):
    B, T = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    mask = S.ragged_mask(rng, B, T)
    V_old = rng.normal(size=(B, T))
    V = V_old + rng.normal(scale=scale or float(rng.choice([0.05, 0.3, 1.0])), size=(B, T))
    R = V_old + rng.normal(size=(B, T))
    return dict(values=S.fill_garbage(V, mask, rng), old_values=S.fill_garbage(V_old, mask, rng),
                returns=S.fill_garbage(R, mask, rng), mask=mask)


def clean(x):
    return {k: (S.clean(v, x["mask"]) if k != "mask" else v) for k, v in x.items()}


def away_from_kinks(x, eps, h=1e-6):
    """No |V − V_old| near ε and no tie between the two branches within the FD step."""
    m = x["mask"]
    if eps is None or not m.any():
        return True
    c = clean(x)
    d = (c["values"] - c["old_values"])[m]
    Vc = (c["old_values"] + np.clip(c["values"] - c["old_values"], -eps, eps))[m]
    gap = np.abs((c["values"][m] - c["returns"][m]) ** 2 - (Vc - c["returns"][m]) ** 2)
    outside = np.abs(d) > eps
    return np.all(np.abs(np.abs(d) - eps) > 1e3 * h) and np.all(gap[outside] > 1e3 * h)


@given(S.seeds(), MODES, EPS)
def test_hand_gradient_matches_finite_differences(rng, mode, eps):
    """Claim (design: every loss returns its gradient): dvalues = ∂loss/∂values, checked by central FD."""
    x = batch(rng)
    if not away_from_kinks(x, eps):
        return
    cfg = ValueClipConfig(eps=eps, agg=mode)
    c = clean(x)
    _, d = value_clip_loss(**x, config=cfg)
    fd = S.finite_difference(lambda v: value_clip_loss(**dict(c, values=v), config=cfg)[0], c["values"], x["mask"])
    np.testing.assert_allclose(d, fd, rtol=1e-6, atol=1e-8)


@given(S.seeds(), st.sampled_from([0.1, 0.2, 0.5]))
def test_clip_stops_gradient_exactly_where_clipped_branch_wins(rng, eps):
    """Claim (the clip's purpose): where (V_clip − R)² > (V − R)² the token's gradient is exactly 0; elsewhere it
    is c·(V − R) (the unclipped squared-error gradient)."""
    x = clean(batch(rng, scale=1.0))
    m = x["mask"]
    _, d = value_clip_loss(**x, config=ValueClipConfig(eps=eps))
    V, Vo, R = x["values"], x["old_values"], x["returns"]
    Vc = Vo + np.clip(V - Vo, -eps, eps)
    clipped_wins = ((Vc - R) ** 2 > (V - R) ** 2) & m
    c = aggregation.coefficients(m, "token-mean")
    assert np.all(d[clipped_wins] == 0)
    np.testing.assert_allclose(d[m & ~clipped_wins], (c * (V - R))[m & ~clipped_wins], rtol=1e-12, atol=1e-15)


@given(S.seeds(), EPS)
def test_loss_bounds_the_unclipped_loss_from_above(rng, eps):
    """max(·,·) makes the clipped objective a pessimistic bound: loss ≥ ½·token-mean (V − R)² (the paper's L^VF / 2)."""
    x = batch(rng)
    loss, _ = value_clip_loss(**x, config=ValueClipConfig(eps=eps))
    base, _ = value_clip_loss(**x, config=ValueClipConfig(eps=None))
    assert loss >= base - 1e-12


@given(S.seeds())
def test_no_clip_inside_the_range(rng):
    """When every |V − V_old| < ε the clipped loss equals the unclipped ½(V − R)², value and gradient."""
    x = batch(rng, scale=0.01)
    a = value_clip_loss(**x, config=ValueClipConfig(eps=0.5))
    b = value_clip_loss(**x, config=ValueClipConfig(eps=None))
    assert a[0] == pytest.approx(b[0], rel=1e-14, abs=1e-15)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-14, atol=1e-16)


@given(S.seeds(), EPS)
def test_padding_is_never_read(rng, eps):
    """Design, "Bad input": garbage padding gives the same loss and gradient as zeros; dvalues is 0 there."""
    x = batch(rng)
    cfg = ValueClipConfig(eps=eps)
    loss, d = value_clip_loss(**x, config=cfg)
    loss0, d0 = value_clip_loss(**clean(x), config=cfg)
    assert loss == loss0 and np.array_equal(d, d0) and np.all(d[~x["mask"]] == 0) and np.isfinite(loss)


@given(S.seeds(), MODES)
def test_shards_with_global_normalizer_sum_to_full_batch(rng, mode):
    """Aggregation is linear: shard losses and gradients with the global normalizer sum to the full-batch ones."""
    x = batch(rng)
    cfg = ValueClipConfig(agg=mode)
    full, g_full = value_clip_loss(**x, config=cfg)
    N = aggregation.global_normalizer(x["mask"], mode)
    if N == 0:
        assert full == 0 and np.all(g_full == 0)
        return
    B = x["mask"].shape[0]
    label = rng.integers(0, 3, size=B)
    sharded = dataclasses.replace(cfg, normalizer=N, const=float(x["mask"].shape[1]))
    total, g = 0.0, np.zeros_like(g_full)
    for k in range(3):
        rows = label == k
        if rows.any():
            l, gk = value_clip_loss(**{n: v[rows] for n, v in x.items()}, config=sharded)
            total += l
            g[rows] = gk
    assert total == pytest.approx(full, rel=1e-10, abs=1e-12)
    np.testing.assert_allclose(g, g_full, rtol=1e-10, atol=1e-14)


@given(S.seeds(), EPS, st.sampled_from(["float64", "float32"]))
def test_optimized_matches_reference(rng, eps, dtype):
    """rlspec.optimized.value_clip (autograd) gives the reference's loss and dvalues (the conformance check of this entry
    until the optimized adapter reports gradients w.r.t. ``values``)."""
    torch = pytest.importorskip("torch")
    from rlspec import optimized

    x = batch(rng)
    if dtype == "float32":
        x = {k: (v.astype(np.float32).astype(np.float64) if v.dtype.kind == "f" else v) for k, v in x.items()}
    cfg = ValueClipConfig(eps=eps)
    loss, d = value_clip_loss(**x, config=cfg)
    tdt = getattr(torch, dtype)
    V = torch.tensor(x["values"], dtype=tdt, requires_grad=True)
    out = optimized.get("value_clip")(V, torch.tensor(x["old_values"], dtype=tdt), torch.tensor(x["returns"], dtype=tdt),
                                      torch.tensor(x["mask"]), config=cfg)
    out.backward()
    tol = 1e-12 if dtype == "float64" else 1e-5
    assert float(out.detach()) == pytest.approx(loss, rel=tol, abs=tol)
    np.testing.assert_allclose(V.grad.double().numpy(), d, rtol=tol, atol=tol)


def test_bad_input_and_defined_cases():
    """Bad input names the argument; an all-false mask gives loss 0 and zero gradient."""
    m = np.ones((2, 3), bool)
    z = np.zeros((2, 3))
    with pytest.raises(RLSpecValueError, match="old_values"):
        value_clip_loss(z, z[:, :2], z, m)
    with pytest.raises(RLSpecValueError, match="returns"):
        value_clip_loss(z, z, np.full((2, 3), np.inf), m)
    with pytest.raises(RLSpecValueError, match="mask"):
        value_clip_loss(z, z, z, m.astype(float) * 0.5)
    with pytest.raises(RLSpecValueError, match="agg"):
        ValueClipConfig(agg="group-token-mean")
    loss, d = value_clip_loss(np.full((2, 3), np.nan), z, z, np.zeros((2, 3), bool))
    assert loss == 0.0 and np.all(d == 0)
