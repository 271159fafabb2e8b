"""Properties of the |logp − ref_logp| KL surrogate (verl kl_penalty('abs'))."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties import strategies as S
from rlspec.reference import aggregation
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.kl_abs import KLAbsConfig, kl_abs_loss

MODES = st.sampled_from(aggregation.MODES)


@given(S.policy_batches())
def test_nonnegative_and_zero_only_at_equality(batch):
    """Claim: the per-token value |δ| ≥ 0 with equality iff logp = ref_logp, so the aggregated loss is ≥ 0 and is 0
    when the policy equals the reference on the valid tokens."""
    m = batch["mask"]
    loss, _ = kl_abs_loss(batch["logp"], batch["ref_logp"], m)
    assert loss >= 0
    assert (loss > 0) == bool(np.any(S.clean(batch["logp"], m) != S.clean(batch["ref_logp"], m)))
    assert kl_abs_loss(batch["logp"], batch["logp"], m)[0] == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_expectation_upper_bounds_the_kl_by_enumeration(seed):
    """Claim (Jensen): for y ~ π_θ, E|log π_θ(y) − log π_ref(y)| ≥ KL(π_θ‖π_ref); computed exactly over a small
    vocabulary (the estimator is biased upward, unlike k1/k3)."""
    rng = np.random.default_rng(seed)
    p, q = rng.dirichlet(np.ones(5)), rng.dirichlet(np.ones(5))
    lp, lq = np.log(p), np.log(q)
    kl = float(np.sum(p * (lp - lq)))
    vals = [kl_abs_loss(np.array([[lp[y]]]), np.array([[lq[y]]]), np.ones((1, 1), bool))[0] for y in range(5)]
    e_abs = float(np.dot(p, vals))
    assert e_abs >= kl - 1e-12
    # and strictly above whenever some sampled token has log π_θ < log π_ref (the signs cancel inside the KL)
    assert e_abs > kl + 1e-12 or np.all(lp >= lq)


@given(S.policy_batches(), MODES)
def test_gradient_bounded_by_the_coefficient(batch, mode):
    """Claim: |dlogp| ≤ c per token whatever the distance (k2's gradient grows with |δ|), with sign(logp − ref)."""
    m, g = batch["mask"], batch["group"]
    _, d = kl_abs_loss(batch["logp"], batch["ref_logp"], m, config=KLAbsConfig(agg=mode), group=g)
    c = aggregation.coefficients(m, mode, group=g)
    delta = S.clean(batch["logp"], m) - S.clean(batch["ref_logp"], m)
    np.testing.assert_allclose(d, c * np.sign(delta), rtol=1e-15, atol=0)
    assert np.all(np.abs(d) <= c + 1e-15)


@given(S.policy_batches(garbage=False))
def test_straight_through_gives_the_k2_gradient(batch):
    """Claim (verl 'abs+'): straight_through_k2 keeps the value |δ| and replaces the gradient with ∂(½δ²)/∂logp = δ."""
    m = batch["mask"]
    l0, _ = kl_abs_loss(batch["logp"], batch["ref_logp"], m)
    l1, d1 = kl_abs_loss(batch["logp"], batch["ref_logp"], m, config=KLAbsConfig(straight_through_k2=True))
    c = aggregation.coefficients(m, "token-mean")
    assert l0 == l1
    np.testing.assert_allclose(d1, np.where(m, c * (batch["logp"] - batch["ref_logp"]), 0.0), rtol=1e-12, atol=1e-15)


def test_bad_input_raises():
    """Claim: a negative value_clamp, a non-bool straight_through_k2 and mismatched shapes raise RLSpecValueError."""
    with pytest.raises(RLSpecValueError):
        KLAbsConfig(value_clamp=-1.0)
    with pytest.raises(RLSpecValueError):
        KLAbsConfig(straight_through_k2=1)
    with pytest.raises(RLSpecValueError):
        kl_abs_loss(np.zeros((2, 2)), np.zeros((2, 3)), np.ones((2, 2), bool))
