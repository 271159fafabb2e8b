"""Properties of the GRPO group-relative advantage (arXiv 2402.03300 §4.1.2) and Dr. GRPO (arXiv 2503.20783 §3.1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from properties.strategies import outcome_batches, seeds
from rlspec import optimized
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.grpo import DrGRPOConfig, GRPOConfig, dr_grpo_advantage, grpo_advantage

ddofs = st.sampled_from([0, 1])
epses = st.sampled_from([0.0, 1e-6, 1e-4, 0.1])


def seq_adv(rewards, group, config=None, fn=grpo_advantage):
    """Per-sequence advantage (B,): the function on a full mask, read from the first token."""
    M = np.ones((len(rewards), 2), dtype=bool)
    A = fn(rewards, group, M, config)
    assert (A[:, 0] == A[:, 1]).all()
    return A[:, 0]


def groups_of(g, min_size=1):
    for k in np.unique(g):
        rows = g == k
        if rows.sum() >= min_size:
            yield rows


@given(batch=outcome_batches(), ddof=ddofs, eps=epses)
def test_advantages_sum_to_zero_per_group(batch, ddof, eps):
    """Σ_{i∈group} Â_i = Σ_i (R_i − mean R)/(std + ε) = 0: the denominator is shared by the group, so the
    sum vanishes for every ε and ddof (exactly in arithmetic; to rounding in float64)."""
    R, g = batch["rewards"], batch["group"]
    A = seq_adv(R, g, GRPOConfig(ddof=ddof, eps=eps))
    for rows in groups_of(g, 2):
        assert abs(A[rows].sum()) <= 1e-12 * rows.sum() * max(1.0, np.abs(A[rows]).max())


@given(batch=outcome_batches(), ddof=ddofs)
def test_group_std_is_one(batch, ddof):
    """With ε = 0 the advantages of every non-constant group of size ≥ 2 have std 1 under the same ddof
    that normalised them (and mean 0)."""
    R, g = batch["rewards"], batch["group"]
    A = seq_adv(R, g, GRPOConfig(ddof=ddof, eps=0.0))
    for rows in groups_of(g, 2):
        if np.ptp(R[rows]) > 0:
            assert A[rows].std(ddof=ddof) == pytest.approx(1.0, abs=1e-12)
            assert abs(A[rows].mean()) < 1e-12


@given(batch=outcome_batches(), a=st.floats(0.01, 100), b=st.floats(-10, 10), ddof=ddofs, eps=epses)
def test_affine_invariance(batch, a, b, ddof, eps):
    """r → a·r + b (a > 0): with ε = 0 the advantage is unchanged; with ε > 0 ('outside') it changes by
    exactly Â·ε(1 − 1/a)/(s + ε/a), s the group std — a bounded error that vanishes as ε → 0.
    (Constant groups are excluded here; see test_all_equal_group_is_zero.)"""
    R, g = batch["rewards"], batch["group"]
    cfg = GRPOConfig(ddof=ddof, eps=eps)
    A = seq_adv(R, g, cfg)
    A2 = seq_adv(a * R + b, g, cfg)
    for rows in groups_of(g, 2):
        if np.ptp(R[rows]) == 0:
            continue
        s = R[rows].std(ddof=ddof)
        expected_gap = A[rows] * eps * (1 - 1 / a) / (s + eps / a)
        np.testing.assert_allclose(A2[rows] - A[rows], expected_gap, atol=1e-9)
        if eps == 0.0:
            np.testing.assert_allclose(A2[rows], A[rows], atol=1e-9)


@given(rng=seeds(), c=st.integers(-3, 3), G=st.integers(2, 8), ddof=ddofs, eps=epses)
def test_all_equal_group_is_zero(rng, c, G, ddof, eps):
    """An all-equal group has advantage exactly 0 — no NaN, no division by zero — for ε = 0 and ε > 0.
    (Integer rewards, e.g. binary verifiers; general floats in the next test.)"""
    R = np.concatenate([np.full(G, float(c)), rng.normal(size=3)])
    g = np.array([1] * G + [2] * 3)
    A = grpo_advantage(R, g, np.ones((G + 3, 3), bool), GRPOConfig(ddof=ddof, eps=eps))
    assert np.isfinite(A).all()
    assert (A[:G] == 0).all()


@pytest.mark.parametrize("c", [0.1, 0.7, -2.2])
@pytest.mark.parametrize("eps", [0.0, 1e-6])
def test_all_equal_float_group_is_zero(c, eps):
    """The module docstring's claim for any float: an all-equal group has advantage exactly 0
    (the mean of seven 0.1's is not exactly 0.1; a naive z-score divides that residue by a ~1e-17 std)."""
    G = 7
    A = grpo_advantage(np.full(G, c), np.zeros(G, int), np.ones((G, 2), bool), GRPOConfig(ddof=1, eps=eps))
    assert (A == 0).all()
    At = optimized.get("grpo")(rewards=torch.full((G,), c, dtype=torch.float64), group=torch.zeros(G, dtype=torch.long),
                               mask=torch.ones((G, 2), dtype=torch.bool), config=GRPOConfig(ddof=1, eps=eps))
    assert (At == 0).all()


@given(rng=seeds(), ddof=ddofs, eps=epses)
def test_singleton_group_defined(rng, ddof, eps):
    """A group of one rollout is defined under both policies, for either ddof: "zero" gives 0, "mean0std1"
    (verl) scores it against mean 0 and std 1, Â = R/(1 + ε) ('outside'); never NaN."""
    R = rng.normal(size=4)
    g = np.array([5, 9, 9, 9])
    M = np.ones((4, 3), bool)
    A0 = grpo_advantage(R, g, M, GRPOConfig(ddof=ddof, eps=eps, singleton="zero"))
    A1 = grpo_advantage(R, g, M, GRPOConfig(ddof=ddof, eps=eps, singleton="mean0std1"))
    assert np.isfinite(A0).all() and np.isfinite(A1).all()
    assert (A0[0] == 0).all()
    np.testing.assert_allclose(A1[0], R[0] / (1 + eps), rtol=1e-15)
    np.testing.assert_array_equal(A0[1:], A1[1:])  # the policy touches singleton groups only


@given(batch=outcome_batches(), a=st.floats(-10, 10), b=st.floats(-10, 10))
def test_dr_grpo_shift_invariant_and_scale_equivariant(batch, a, b):
    """Dr. GRPO Â = R − mean R: adding b to every reward leaves Â unchanged; multiplying by a multiplies Â by a."""
    R, g = batch["rewards"], batch["group"]
    A = seq_adv(R, g, None, dr_grpo_advantage)
    np.testing.assert_allclose(seq_adv(R + b, g, None, dr_grpo_advantage), A, atol=1e-12 * (1 + abs(b)))
    np.testing.assert_allclose(seq_adv(a * R, g, None, dr_grpo_advantage), a * A, atol=1e-12 * (1 + abs(a)))
    for rows in groups_of(g, 2):  # and it is the plain centred reward, computed independently
        np.testing.assert_allclose(A[rows], R[rows] - R[rows].mean(), atol=1e-12)


@given(batch=outcome_batches(), ddof=ddofs, eps=epses)
def test_matches_independent_zscore(batch, ddof, eps):
    """GRPO Â_i = (R_i − mean_g R)/(std_g R + ε) for groups of size > ddof, checked against a direct NumPy
    computation; 'inside' places ε under the square root, √(var + ε)."""
    R, g = batch["rewards"], batch["group"]
    out = seq_adv(R, g, GRPOConfig(ddof=ddof, eps=eps))
    ins = seq_adv(R, g, GRPOConfig(ddof=ddof, eps=eps, eps_placement="inside"))
    for rows in groups_of(g, 2):
        c = R[rows] - R[rows].mean()
        s = R[rows].std(ddof=ddof)
        if s > 0:
            np.testing.assert_allclose(out[rows], c / (s + eps), atol=1e-12)
            np.testing.assert_allclose(ins[rows], c / np.sqrt(s**2 + eps), atol=1e-12)


@given(batch=outcome_batches(), rng=seeds())
def test_masked_positions_zero_and_padding_ignored(batch, rng):
    """Â is 0 wherever mask is False; the sequence value does not depend on the mask layout (a row's padding,
    including a fully masked row, never changes another row's advantage)."""
    R, g, M = batch["rewards"], batch["group"], batch["mask"]
    for fn in (grpo_advantage, dr_grpo_advantage):
        A = fn(R, g, M)
        assert (A[~M] == 0).all() and np.isfinite(A).all()
        other = rng.random(M.shape) < 0.5
        A2 = fn(R, g, other)
        full = seq_adv(R, g, None, fn)
        np.testing.assert_array_equal(A, np.where(M, full[:, None], 0.0))
        np.testing.assert_array_equal(A2, np.where(other, full[:, None], 0.0))


_ok = dict(rewards=np.ones(3), group=np.zeros(3, int), mask=np.ones((3, 2), bool))


@pytest.mark.parametrize("fn", [grpo_advantage, dr_grpo_advantage])
@pytest.mark.parametrize("override, arg", [
    (dict(mask=np.ones((3, 2))), "mask"),
    (dict(mask=np.ones(3, bool)), "mask"),
    (dict(rewards=np.ones(4)), "rewards"),
    (dict(rewards=np.ones((3, 1))), "rewards"),
    (dict(rewards=np.array([0.0, np.nan, 1.0])), "rewards"),
    (dict(group=np.array([0.5, 1.0, 2.0])), "group"),
    (dict(group=np.zeros(2, int)), "group"),
])
def test_bad_input_raises(fn, override, arg):
    """Bad input raises RLSpecValueError naming the argument."""
    with pytest.raises(RLSpecValueError, match=arg):
        fn(**dict(_ok, **override))


@pytest.mark.parametrize("field, value", [("ddof", 2), ("eps", -1e-6), ("eps_placement", "under"),
                                          ("singleton", "nan")])
def test_bad_config_raises(field, value):
    """Out-of-range hyperparameters are rejected when the config is built."""
    with pytest.raises(RLSpecValueError, match=field):
        GRPOConfig(**{field: value})
    with pytest.raises(RLSpecValueError, match=field):
        DrGRPOConfig(**{field: value})
