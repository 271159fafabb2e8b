"""Properties of KL-Cov (arXiv 2505.22617 §4; verl kl_cov)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties import strategies as S
from rlspec.reference import aggregation
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.kl_cov import KLCovConfig, kl_cov_loss, kl_cov_token_loss, top_covariance_mask

MODES = st.sampled_from([m for m in aggregation.MODES])
KS = st.sampled_from([0.002, 0.1, 0.3, 1.0])


@given(S.policy_batches(), MODES, KS, st.sampled_from([0.1, 1.0]))
def test_hand_gradient_with_selection_frozen(batch, mode, k, beta):
    """Claim: with the covariance selection S held fixed (it is computed from detached values), dlogp is the
    derivative of the loss: central FD of Σ c ℓ(logp; S) equals the hand gradient. Garbage padding changes nothing."""
    m, g = batch["mask"], batch["group"]
    cfg = KLCovConfig(agg=mode, k=k, beta=beta)
    loss, d = kl_cov_loss(batch["logp"], batch["old_logp"], batch["adv"], m, config=cfg, group=g)
    x0, old0, A = S.clean(batch["logp"], m), S.clean(batch["old_logp"], m), S.clean(batch["adv"], m)
    loss0, d0 = kl_cov_loss(x0, old0, A, m, config=cfg, group=g)
    assert loss == loss0 and np.array_equal(d, d0) and np.all(d[~m] == 0)
    Sel = top_covariance_mask(A, x0, m, k)
    c = aggregation.coefficients(m, mode, group=g)
    lr0 = x0 - old0
    if np.any(np.abs(lr0[Sel]) < 1e-4):
        return  # |log r| has a kink at 0 within the FD step
    f = lambda x: float((c * kl_cov_token_loss(x - old0, np.ones_like(x), A, Sel, beta)[0]).sum())  # noqa: E731
    fd = S.finite_difference(f, x0, m)
    np.testing.assert_allclose(d[m], fd[m], rtol=1e-5, atol=1e-8 * max(1.0, np.abs(fd).max()))


@given(S.policy_batches(garbage=False), KS)
def test_selection_is_the_top_covariance_tokens(batch, k):
    """Claim (KL-Cov's selection): S holds exactly max(1, ⌊kN⌋) valid tokens, and every selected token's
    covariance (Â − mean Â)(logp − mean logp), computed here over the valid tokens, is ≥ every unselected one's."""
    m = batch["mask"]
    Sel = top_covariance_mask(batch["adv"], batch["logp"], m, k)
    N = int(m.sum())
    assert Sel.sum() == (max(1, int(N * k)) if N else 0) and not (Sel & ~m).any()
    a, lp = batch["adv"][m], batch["logp"][m]
    cov = np.zeros_like(batch["adv"])
    cov[m] = (a - a.mean()) * (lp - lp.mean())
    if Sel.any() and (m & ~Sel).any():
        assert cov[Sel].min() >= cov[m & ~Sel].max()


@given(S.policy_batches(garbage=False, log_ratio_scale=1.0), KS)
def test_unselected_tokens_get_the_vanilla_ratio_gradient(batch, k):
    """Claim: KL-Cov does not clip; an unselected token's gradient is the unclipped IS weight −c·r·Â and a
    selected one's adds c·β·sign(log r)."""
    m, A = batch["mask"], batch["adv"]
    cfg = KLCovConfig(k=k, beta=0.5)
    _, d = kl_cov_loss(batch["logp"], batch["old_logp"], A, m, config=cfg)
    c = aggregation.coefficients(m, "token-mean")
    r = np.exp(batch["logp"] - batch["old_logp"])
    Sel = top_covariance_mask(A, batch["logp"], m, k)
    expect = c * (-r * A + 0.5 * np.sign(batch["logp"] - batch["old_logp"]) * Sel)
    np.testing.assert_allclose(d, np.where(m, expect, 0.0), rtol=1e-12, atol=1e-15)


@given(S.policy_batches(garbage=False, log_ratio_scale=1.0))
def test_penalty_pulls_selected_tokens_towards_the_old_policy(batch):
    """Claim (entropy control): on a selected token the penalty term's gradient β·sign(log r) points back towards
    r = 1, so a gradient step on the penalty alone shrinks |log r| on the selected tokens (and only there)."""
    m = batch["mask"]
    cfg0, cfg1 = KLCovConfig(k=0.5, beta=0.0), KLCovConfig(k=0.5, beta=2.0)
    _, d0 = kl_cov_loss(batch["logp"], batch["old_logp"], batch["adv"], m, config=cfg0)
    _, d1 = kl_cov_loss(batch["logp"], batch["old_logp"], batch["adv"], m, config=cfg1)
    pen = d1 - d0  # gradient of the penalty alone
    lr = batch["logp"] - batch["old_logp"]
    Sel = top_covariance_mask(batch["adv"], batch["logp"], m, 0.5)
    assert np.all(pen[m & ~Sel] == 0)
    step = lr - 1e-3 * pen / np.maximum(np.abs(pen).max(), 1e-300)
    assert np.all(np.abs(step[Sel & (lr != 0)]) < np.abs(lr[Sel & (lr != 0)]))


@given(S.policy_batches(garbage=False), MODES, KS)
def test_on_policy_equals_vanilla_pg(batch, mode, k):
    """Claim: at r ≡ 1 the penalty |log r| and its gradient vanish (sign(0) = 0): dlogp = −c·Â, loss = −Σ c Â."""
    m, A, g = batch["mask"], batch["adv"], batch["group"]
    loss, d = kl_cov_loss(batch["logp"], batch["logp"], A, m, config=KLCovConfig(agg=mode, k=k), group=g)
    c = aggregation.coefficients(m, mode, group=g)
    np.testing.assert_allclose(d, np.where(m, -c * A, 0.0), rtol=1e-12, atol=1e-15)
    assert loss == pytest.approx(float(-(c * np.where(m, A, 0)).sum()), rel=1e-12, abs=1e-15)


def test_ties_break_towards_the_lower_index_and_bad_input():
    """Claim (defined edge cases): equal covariances select the lowest row-major index; an all-false mask gives
    loss 0; k outside (0, 1] and NaN at a valid position raise RLSpecValueError."""
    m = np.ones((2, 2), bool)
    Sel = top_covariance_mask(np.ones((2, 2)), np.array([[-1.0, -2.0], [-3.0, -4.0]]), m, 0.25)
    assert Sel.tolist() == [[True, False], [False, False]]
    z = np.zeros((2, 2))
    assert kl_cov_loss(z, z + 0.3, z + 1, np.zeros((2, 2), bool))[0] == 0.0
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(RLSpecValueError):
            KLCovConfig(k=bad)
    with pytest.raises(RLSpecValueError):
        kl_cov_loss(np.array([[np.nan]]), z[:1, :1], z[:1, :1], np.ones((1, 1), bool))


@given(S.policy_batches(max_B=8, max_T=5), S.seeds(), st.sampled_from(aggregation.MODES))
def test_selection_couples_the_batch_and_a_global_selection_restores_sharding(batch, rng, mode):
    """Claim (design, batch coupling): KL-Cov's covariance is taken over the whole batch, so the loss is *not* a sum
    over shards in general; passing the full-batch selection S (and the global normalizer) to every shard restores
    the sum exactly — what a data-parallel implementation must all-gather."""
    m, g = batch["mask"], batch["group"]
    cfg = KLCovConfig(agg=mode, k=0.3)
    full, dfull = kl_cov_loss(batch["logp"], batch["old_logp"], batch["adv"], m, config=cfg, group=g)
    N = aggregation.global_normalizer(m, mode, group=g)
    if N == 0:
        return
    Sel = top_covariance_mask(S.clean(batch["adv"], m), S.clean(batch["logp"], m), m, 0.3)
    if mode == "group-token-mean":
        ids = np.unique(g)
        owner = dict(zip(ids, rng.integers(0, 3, size=len(ids))))
        label = np.array([owner[x] for x in g])
    else:
        label = rng.integers(0, 3, size=len(g))
    shard_cfg = KLCovConfig(agg=mode, k=0.3, normalizer=N)
    total, grad = 0.0, np.zeros_like(dfull)
    for k in np.unique(label):
        rows = label == k
        loss, d = kl_cov_loss(batch["logp"][rows], batch["old_logp"][rows], batch["adv"][rows], m[rows],
                              config=shard_cfg, group=g[rows], selection=Sel[rows])
        total += loss
        grad[rows] = d
    assert total == pytest.approx(full, rel=1e-10, abs=1e-12)
    np.testing.assert_allclose(grad, dfull, rtol=1e-10, atol=1e-14)


def test_sharding_without_the_global_selection_changes_the_loss():
    """Claim (batch coupling, a fixed example): two shards that each select their own top token penalise a token the
    full batch does not select, so the shard sum differs from the full-batch loss."""
    m = np.ones((2, 2), bool)
    logp = np.log(np.array([[0.9, 0.1], [0.5, 0.4]]))
    old = logp - 0.5
    adv = np.array([[2.0, 2.0], [-1.0, -1.0]])
    cfg = KLCovConfig(agg="token-mean", k=0.25, beta=1.0)
    full, _ = kl_cov_loss(logp, old, adv, m, config=cfg)
    parts = sum(kl_cov_loss(logp[[i]], old[[i]], adv[[i]], m[[i]],
                            config=KLCovConfig(agg="token-mean", k=0.5, beta=1.0, normalizer=4.0))[0] for i in (0, 1))
    assert abs(parts - full) > 1e-3
