"""Properties of the DRO-style policy loss (verl compute_policy_loss_dro)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties import strategies as S
from rlspec.reference import aggregation
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.dro import DROConfig, dro_loss

MODES = st.sampled_from(aggregation.MODES)
BETAS = st.sampled_from([0.01, 0.1, 1.0, 5.0])


@given(S.policy_batches(), MODES, BETAS)
def test_gradient_is_advantage_minus_beta_log_ratio(batch, mode, beta):
    """Claim (the quadratic penalty replaces the clip): dlogp = c·(−Â + β(logp − old_logp)) at every valid token,
    never zeroed, and 0 at masked positions whatever the padding holds."""
    m, g = batch["mask"], batch["group"]
    _, d = dro_loss(batch["logp"], batch["old_logp"], batch["adv"], m, config=DROConfig(agg=mode, beta=beta), group=g)
    c = aggregation.coefficients(m, mode, group=g)
    lp, old, A = (S.clean(batch[k], m) for k in ("logp", "old_logp", "adv"))
    np.testing.assert_allclose(d, c * (-A + beta * (lp - old)), rtol=1e-12, atol=1e-15)


@given(S.seeds(), BETAS)
def test_token_optimum_is_log_ratio_adv_over_beta(rng, beta):
    """Claim: for one token the loss is a convex parabola in logp minimised at log r* = Â/β (a finite trust target
    instead of a clip); the loss there is below the loss at nearby log-ratios."""
    A, old = float(rng.normal()), float(-rng.gamma(2.0))
    m = np.ones((1, 1), bool)

    def L(lr):
        return dro_loss(np.array([[old + lr]]), np.array([[old]]), np.array([[A]]), m, config=DROConfig(beta=beta))

    star = A / beta
    loss_star, d_star = L(star)
    assert abs(d_star[0, 0]) < 1e-9 * max(1.0, abs(A))
    for delta in (-0.5, -1e-2, 1e-2, 0.5):
        assert L(star + delta)[0] > loss_star


@given(S.policy_batches(garbage=False), MODES, BETAS)
def test_on_policy_equals_vanilla_pg(batch, mode, beta):
    """Claim: at logp = old_logp the penalty's gradient vanishes and dlogp is the REINFORCE weight −c·Â."""
    m, A, g = batch["mask"], batch["adv"], batch["group"]
    _, d = dro_loss(batch["logp"], batch["logp"], A, m, config=DROConfig(agg=mode, beta=beta), group=g)
    c = aggregation.coefficients(m, mode, group=g)
    np.testing.assert_allclose(d, np.where(m, -c * A, 0.0), rtol=1e-12, atol=1e-15)


def test_bad_input_raises():
    """Claim: β must be > 0 (verl rejects dro_beta ≤ 0 too); non-boolean masks raise RLSpecValueError."""
    for beta in (0.0, -1.0, float("nan")):
        with pytest.raises(RLSpecValueError):
            DROConfig(beta=beta)
    z = np.zeros((1, 2))
    with pytest.raises(RLSpecValueError):
        dro_loss(z, z, z, np.array([[0.5, 1.0]]))
