"""Properties of DPPO Binary-TV / Binary-KL (arXiv 2602.04879 §4.3-4.4; verl dppo_tv / dppo_kl)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties import strategies as S
from rlspec.reference import aggregation
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.dppo import DPPOConfig, binary_kl, binary_tv, dppo_loss, trust_region_mask
from rlspec.reference.ppo import PPOConfig, ppo_clip_loss

MODES = st.sampled_from(aggregation.MODES)
REGIONS = st.sampled_from(["tv", "kl"])
DELTAS = st.sampled_from([(0.2, 0.2), (0.05, 0.01), (0.001, 0.002)])


def _probabilities(batch):
    """The batch with log-probs ≤ 0 (probabilities), as the binary KL needs."""
    m = batch["mask"]
    lp = S.clean(batch["logp"], m)
    old = np.minimum(S.clean(batch["old_logp"], m), 0.0)
    return lp, old, S.clean(batch["adv"], m), m


@given(S.policy_batches(), MODES, REGIONS, DELTAS, st.sampled_from(["ratio", "tis"]))
def test_hand_gradient_with_mask_frozen(batch, mode, region, deltas, surrogate):
    """Claim: with the trust-region mask M (and, for verl's 'tis' form, the IS weight) held fixed, dlogp is the
    derivative of the loss: central FD of the loss with M frozen equals the hand gradient. Padding is never read."""
    lp, old, A, m = _probabilities(batch)
    g = batch["group"]
    cfg = DPPOConfig(agg=mode, trust_region=region, delta_low=deltas[0], delta_high=deltas[1], surrogate=surrogate,
                     is_cap=3.0 if surrogate == "tis" else None)
    loss, d = dppo_loss(lp, old, A, m, config=cfg, group=g)
    raw = dict(batch, logp=np.where(m, lp, batch["logp"]), old_logp=np.where(m, old, batch["old_logp"]))
    assert (loss, d.tolist()) == (lambda o: (o[0], o[1].tolist()))(dppo_loss(raw["logp"], raw["old_logp"], raw["adv"],
                                                                              m, config=cfg, group=g))
    M = trust_region_mask(A, lp, old, cfg)
    c = aggregation.coefficients(m, mode, group=g)
    w = M * np.minimum(np.exp(lp - old), 3.0)
    if surrogate == "ratio":
        f = lambda x: float((c * -M * np.exp(x - old) * A).sum())  # noqa: E731
    else:
        f = lambda x: float((c * -w * A * x).sum())  # noqa: E731
    fd = S.finite_difference(f, lp, m)
    np.testing.assert_allclose(d[m], fd[m], rtol=1e-5, atol=1e-8 * max(1.0, np.abs(fd).max()))


@given(S.seeds(), st.integers(2, 8))
def test_binary_divergences_lower_bound_the_full_ones(rng, V):
    """Claim (§4.4, 'principled lower bounds'; data-processing inequality): for any categorical µ, π and token a,
    |µ(a) − π(a)| ≤ TV(µ, π) = ½Σ|µ − π| and D_KL(Bern(µ(a)) ‖ Bern(π(a))) ≤ KL(µ‖π)."""
    mu, pi = rng.dirichlet(np.ones(V)), rng.dirichlet(np.ones(V))
    tv, kl = 0.5 * np.abs(mu - pi).sum(), float(np.sum(mu * np.log(mu / pi)))
    lmu, lpi = np.log(mu)[None, :], np.log(pi)[None, :]
    assert np.all(binary_tv(lmu, lpi) <= tv + 1e-12)
    assert np.all(binary_kl(lmu, lpi) <= kl + 1e-12)
    assert np.all(binary_kl(lmu, lpi) >= -1e-15)


@given(S.policy_batches(garbage=False, log_ratio_scale=1.0), REGIONS, DELTAS)
def test_mask_never_blocks_moves_towards_the_old_policy(batch, region, deltas):
    """Claim (eq. 12): a token is blocked only if its update moves away from the trust region in the advantage's
    direction (Â > 0 with r > 1, or Â < 0 with r < 1) and its divergence exceeds δ; all other tokens keep the
    gradient −c·r·Â."""
    lp, old, A, m = _probabilities(batch)
    cfg = DPPOConfig(trust_region=region, delta_low=deltas[0], delta_high=deltas[1])
    _, d = dppo_loss(lp, old, A, m, config=cfg)
    c = aggregation.coefficients(m, "token-mean")
    D = binary_tv(old, lp) if region == "tv" else binary_kl(old, lp)
    away = ((A > 0) & (lp > old) & (D > deltas[1])) | ((A < 0) & (lp < old) & (D > deltas[0]))
    np.testing.assert_allclose(d, np.where(m & ~away, -c * np.exp(lp - old) * A, 0.0), rtol=1e-12, atol=1e-15)


def test_low_probability_token_kept_where_ppo_clips():
    """Claim (§4.2 example): µ = 1e-4 → π = 1e-2 (r = 100) with Â > 0 is clipped by PPO (ε = 0.2) but inside the
    binary TV region (|Δ| ≈ 0.01 ≤ 0.2); µ = 0.99 → π = 0.80 (r ≈ 0.81, inside PPO's range) with Â < 0 moves 0.19
    of mass and is blocked by DPPO with δ = 0.15."""
    m, A = np.ones((1, 2), bool), np.array([[1.0, -1.0]])
    old, lp = np.log([[1e-4, 0.99]]), np.log([[1e-2, 0.80]])
    _, dp = ppo_clip_loss(lp, old, A, m, config=PPOConfig())
    _, dd = dppo_loss(lp, old, A, m, config=DPPOConfig(delta_low=0.15, delta_high=0.15))
    assert dp[0, 0] == 0 and dd[0, 0] != 0  # PPO over-constrains the rare token
    assert dp[0, 1] != 0 and dd[0, 1] == 0  # and under-constrains the frequent one


@given(S.policy_batches(garbage=False), REGIONS)
def test_tis_variant_has_the_paper_gradient_below_the_cap(batch, region):
    """Claim (verl's form vs eq. 12): −sg(M·min(r, c))·Â·logp has the gradient of −M·r·Â wherever r ≤ c; above the
    cap the weight is c. The loss values differ (verl's depends on logp itself)."""
    lp, old, A, m = _probabilities(batch)
    paper = DPPOConfig(trust_region=region)
    verl = DPPOConfig(trust_region=region, surrogate="tis", is_cap=1.5)
    _, dp = dppo_loss(lp, old, A, m, config=paper)
    _, dv = dppo_loss(lp, old, A, m, config=verl)
    r = np.exp(lp - old)
    below = m & (r <= 1.5)
    np.testing.assert_allclose(dv[below], dp[below], rtol=1e-12, atol=1e-15)
    above = m & (r > 1.5) & (dp != 0)
    np.testing.assert_allclose(dv[above], dp[above] * 1.5 / r[above], rtol=1e-12, atol=1e-15)


def test_bad_input_raises():
    """Claim: unknown trust regions, is_cap without the 'tis' surrogate, negative δ and positive log-probs under
    trust_region='kl' raise RLSpecValueError."""
    with pytest.raises(RLSpecValueError):
        DPPOConfig(trust_region="js")
    with pytest.raises(RLSpecValueError):
        DPPOConfig(is_cap=3.0)
    with pytest.raises(RLSpecValueError):
        DPPOConfig(delta_low=-0.1)
    one = np.ones((1, 1))
    with pytest.raises(RLSpecValueError, match="old_logp"):
        dppo_loss(-one, 0.5 * one, one, one.astype(bool), config=DPPOConfig(trust_region="kl"))
