"""Properties of the OPO length-weighted optimal baseline (arXiv 2505.23585 §2)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties.strategies import outcome_batches, seeds
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.grpo import dr_grpo_advantage
from rlspec.reference.opo import OPOConfig, opo_advantage


def per_row(adv, mask):
    """The sequence advantage of each row, read from its tokens (rows without tokens: NaN)."""
    out = np.full(adv.shape[0], np.nan)
    for b in range(adv.shape[0]):
        if mask[b].any():
            vals = adv[b, mask[b]]
            assert np.all(vals == vals[0]), "a sequence advantage must be broadcast unchanged over its tokens"
            out[b] = vals[0]
    return out


@given(batch=outcome_batches())
def test_equal_lengths_equal_dr_grpo(batch):
    """With every response of the same length the length-weighted baseline is the group mean: OPO = Dr. GRPO
    (R_i − mean R), singleton groups 0 in both."""
    R, g = batch["rewards"], batch["group"]
    M = np.ones_like(batch["mask"])
    np.testing.assert_allclose(opo_advantage(R, g, M), dr_grpo_advantage(R, g, M), rtol=1e-12, atol=1e-12)


@given(batch=outcome_batches())
def test_length_weighted_sum_is_zero_per_group(batch):
    """Σ_{i∈group} |o_i| Â_i = Σ|o_i| R_i − b Σ|o_i| = 0: b is the |o|-weighted mean, i.e. the minimiser of
    the weighted second moment Σ_i |o_i| (R_i − b)² (its derivative is −2 Σ|o_i|(R_i − b))."""
    R, g, M = batch["rewards"], batch["group"], batch["mask"]
    A = per_row(opo_advantage(R, g, M), M)
    L = M.sum(axis=1)
    for k in np.unique(g):
        rows = (g == k) & (L > 0)
        if rows.any():
            s = (L[rows] * A[rows]).sum()
            assert abs(s) <= 1e-12 * max(1.0, np.abs(R[g == k]).max()) * L[rows].sum()
            b = R[rows][0] - A[rows][0]
            for b2 in b + np.array([-1.0, -1e-3, 1e-3, 1.0]):  # any other baseline does worse
                assert (L[rows] * (R[rows] - b2) ** 2).sum() > (L[rows] * (R[rows] - b) ** 2).sum()


def responses(V, Lmax):
    """Every response of a policy that samples one of V symbols per step (0 = EOS) and stops after EOS or
    after Lmax steps; returns a list of token tuples."""
    out = []
    for n in range(1, Lmax + 1):
        for prefix in itertools.product(range(1, V), repeat=n - 1):
            lasts = [0] if n < Lmax else range(V)
            out.extend(prefix + (a,) for a in lasts)
    return out


@given(rng=seeds(), V=st.integers(2, 3), Lmax=st.integers(2, 3))
def test_optimal_baseline_minimises_exact_variance(rng, V, Lmax):
    """Paper's claim (arXiv 2505.23585 §2): the baseline minimising Var[(R − b) ∇log π(o)] is
    b* = E[‖∇log π‖² R]/E[‖∇log π‖²], and when ‖∇log π(o)‖² ∝ |o| it is the length-weighted mean E[|o|R]/E[|o|].

    Setting where the proportionality holds exactly: an autoregressive policy with its own logits per
    position, evaluated at the uniform point, so each token's score e_{o_t} − 1/V lives in its own block
    with ‖·‖² = 1 − 1/V. All responses are enumerated; each is repeated V^{Lmax−|o|} times so that the
    replicated list is the exact distribution, and OPO's baseline on it is the population b*. The exact
    variance (computed from the score vectors, not from lengths) is minimal there."""
    resp = responses(V, Lmax)
    n = np.array([len(o) for o in resp])
    p = float(V) ** -n.astype(float)
    assert p.sum() == pytest.approx(1.0)
    R = rng.normal(size=len(resp)) + 0.5 * n  # rewards correlated with length, so the weighting matters
    score = np.zeros((len(resp), Lmax * V))
    for j, o in enumerate(resp):
        for t, a in enumerate(o):
            score[j, t * V:(t + 1) * V] = np.eye(V)[a] - 1.0 / V

    def variance(b):
        g = (R - b)[:, None] * score
        mean = p @ g
        return float(p @ (g * g).sum(axis=1) - mean @ mean)

    reps = V ** (Lmax - n)
    Rr = np.repeat(R, reps)
    mask = np.arange(Lmax)[None, :] < np.repeat(n, reps)[:, None]
    A = opo_advantage(Rr, np.zeros(len(Rr), dtype=int), mask)[:, 0]
    b_opo = Rr[0] - A[0]
    sq = (score ** 2).sum(axis=1)
    assert b_opo == pytest.approx((p @ (sq * R)) / (p @ sq), rel=1e-12, abs=1e-12)
    v0 = variance(b_opo)
    for db in (-1.0, -1e-2, 1e-2, 1.0):
        assert variance(b_opo + db) > v0
    assert variance(p @ R) >= v0  # the plain mean baseline (GRPO/Dr. GRPO's) is never better


@given(rng=seeds(), c=st.floats(-10, 10), G=st.integers(2, 6))
def test_singleton_and_constant_groups_defined(rng, c, G):
    """A singleton group gets 0 (the formula: b = R) or its raw reward (verl's baseline 0, singleton="raw");
    an all-equal group gets exactly 0; a group whose rows have no valid token is 0; no NaN."""
    R = np.concatenate([[rng.normal()], np.full(G, c), [rng.normal(), rng.normal()]])
    g = np.array([7] + [3] * G + [5, 5])
    M = np.ones((G + 3, 4), dtype=bool)
    M[0, 2:] = False
    M[1, 1:] = False
    M[-2:] = False
    A0 = opo_advantage(R, g, M)
    assert np.isfinite(A0).all() and (A0 == 0).all()
    Araw = opo_advantage(R, g, M, OPOConfig(singleton="raw"))
    assert (Araw[0, :2] == R[0]).all() and (Araw[0, 2:] == 0).all() and (Araw[1:] == 0).all()


@pytest.mark.parametrize("kwargs, arg", [
    (dict(rewards=np.ones(3), group=np.zeros(3, int), mask=np.ones((3, 2))), "mask"),
    (dict(rewards=np.ones(2), group=np.zeros(3, int), mask=np.ones((3, 2), bool)), "rewards"),
    (dict(rewards=np.array([1.0, np.inf, 0.0]), group=np.zeros(3, int), mask=np.ones((3, 2), bool)), "rewards"),
    (dict(rewards=np.ones(3), group=np.array([0.5, 0, 1]), mask=np.ones((3, 2), bool)), "group"),
])
def test_bad_input_raises(kwargs, arg):
    """Bad input raises RLSpecValueError naming the argument; an unknown singleton policy is rejected."""
    with pytest.raises(RLSpecValueError, match=arg):
        opo_advantage(**kwargs)
    with pytest.raises(RLSpecValueError, match="singleton"):
        OPOConfig(singleton="nan")
