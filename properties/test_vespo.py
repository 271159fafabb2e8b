"""Properties of VESPO (arXiv 2602.10693; kernel as in the official code FloyedShen/VESPO)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties import strategies as S
from rlspec.reference import aggregation
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.vespo import VESPOConfig, gamma_kernel, vespo_loss

MODES = st.sampled_from(aggregation.MODES)


@given(S.policy_batches(), MODES)
def test_hand_gradient_with_kernel_frozen(batch, mode):
    """Claim: the VESPO gradient is −c·sg(φ(W_i))·Â: central FD in logp while old_logp moves with logp (so every
    ratio, hence W and φ, stays fixed) equals the hand dlogp; garbage padding changes nothing."""
    cfg = VESPOConfig(agg=mode)
    m = batch["mask"]
    kw = dict(adv=batch["adv"], mask=m, config=cfg, group=batch["group"])
    loss, d = vespo_loss(batch["logp"], batch["old_logp"], **kw)
    x0, old0 = S.clean(batch["logp"], m), S.clean(batch["old_logp"], m)
    ckw = dict(kw, adv=S.clean(batch["adv"], m))
    loss0, d0 = vespo_loss(x0, old0, **ckw)
    assert loss == loss0 and np.array_equal(d, d0) and np.all(d[~m] == 0)
    fd = S.finite_difference(lambda x: vespo_loss(x, old0 + (x - x0), **ckw)[0], x0, m)
    np.testing.assert_allclose(d[m], fd[m], rtol=1e-6, atol=1e-9)


@given(S.policy_batches(garbage=True), MODES)
def test_on_policy_is_vanilla_pg(batch, mode):
    """Claim (φ(1) = 1): on-policy (π_θ = π_old, W = 1) VESPO's gradient is the REINFORCE weight −c·Â."""
    m = batch["mask"]
    _, d = vespo_loss(batch["logp"], batch["logp"], batch["adv"], m, config=VESPOConfig(agg=mode),
                      group=batch["group"])
    c = aggregation.coefficients(m, mode, group=batch["group"])
    np.testing.assert_allclose(d, -c * S.clean(batch["adv"], m), rtol=1e-13, atol=1e-15)


@given(st.floats(1.0, 6.0), st.floats(0.5, 6.0))
def test_kernel_peaks_at_k_over_lambda(k, lam):
    """Claim (gamma kernel e^λ W^k e^{−λW}): φ(1) = 1, φ is maximal at W* = k/λ, and tends to 0 as W → 0 and W → ∞
    (stale sequences with huge or tiny weights are softly down-weighted, never clipped to a hard zero)."""
    W = np.exp(np.linspace(-30, 4, 8001))
    phi = gamma_kernel(np.log(W), np.full_like(W, k), np.full_like(W, lam))
    assert gamma_kernel(np.zeros(1), np.array([k]), np.array([lam]))[0] == pytest.approx(1.0, rel=1e-15)
    assert W[np.argmax(phi)] == pytest.approx(k / lam, rel=1e-2)
    assert phi[0] < 1e-3 * phi.max() and phi[-1] < 1e-3 * phi.max()
    assert np.all(phi > 0)


def test_weight_is_product_not_mean():
    """Claim (abstract: no length normalisation): W is the product of the token ratios. Two sequences with the same
    per-token log-ratio 0.1 but lengths 1 and 5 get different weights e^{0.1} and e^{0.5}; GSPO's geometric mean
    would give both e^{0.1}."""
    mask = np.array([[True, False, False, False, False], [True] * 5])
    logp = np.full((2, 5), -1.0)
    adv = np.ones((2, 5))
    _, d = vespo_loss(logp, logp - 0.1, adv, mask, config=VESPOConfig(agg="seq-mean-token-sum"))
    k, lam = 2.0, 3.0
    phi = np.exp(lam + k * np.array([0.1, 0.5]) - lam * np.exp([0.1, 0.5]))
    np.testing.assert_allclose(-d[:, 0] * 2, phi, rtol=1e-13)  # seq-mean over 2 rows of Σ_t: c = 1/2


def test_kernel_parameters_validated():
    """Bad input: λ must be > 0 and log_w_min < log_w_max."""
    with pytest.raises(RLSpecValueError, match="lambda_pos"):
        VESPOConfig(lambda_pos=0.0)
    with pytest.raises(RLSpecValueError, match="log_w_min"):
        VESPOConfig(log_w_min=5.0, log_w_max=1.0)
