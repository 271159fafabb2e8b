"""Properties of the KL penalty in the reward (Ziegler et al., arXiv 1909.08593 §2)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties import strategies as S
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.kl_in_reward import KLInRewardConfig, kl_in_reward

BETA = st.floats(0.0, 2.0)


def batch(rng, scale=0.5):
    b = S.policy_batch(rng, int(rng.integers(1, 7)), int(rng.integers(1, 7)), log_ratio_scale=scale)
    return dict(rewards=rng.normal(size=b["mask"].shape[0]), logp=b["logp"], ref_logp=b["ref_logp"], mask=b["mask"])


@given(S.seeds(), BETA)
def test_token_rewards_sum_to_the_paper_sequence_reward(rng, beta):
    """arXiv 1909.08593 §2: R(x, y) = r(x, y) − β log(π(y|x)/ρ(y|x)); log π(y) = Σ_t log π(y_t), so the token
    rewards (k1) of a non-empty response sum to r − β Σ_t (log π − log ρ) over its valid tokens."""
    x = batch(rng)
    m = x["mask"]
    out = kl_in_reward(**x, config=KLInRewardConfig(beta=beta))
    log_ratio = np.where(m, x["logp"], 0.0) - np.where(m, x["ref_logp"], 0.0)
    want = np.where(m.any(1), x["rewards"] - beta * log_ratio.sum(1), 0.0)
    np.testing.assert_allclose(out.sum(1), want, atol=1e-12 * (1 + np.abs(want).max()))


@given(S.seeds())
def test_outcome_only_on_the_last_valid_token(rng):
    """The outcome reward sits on the last valid token only (interior holes included): with β = 0 the token rewards
    are R at that position and 0 everywhere else."""
    x = batch(rng)
    x["mask"][:, ::3] = False  # holes
    out = kl_in_reward(**x, config=KLInRewardConfig(beta=0.0))
    for b in range(out.shape[0]):
        valid = np.flatnonzero(x["mask"][b])
        if valid.size == 0:
            assert np.all(out[b] == 0)
            continue
        expect = np.zeros(out.shape[1])
        expect[valid[-1]] = x["rewards"][b]
        np.testing.assert_array_equal(out[b], expect)


@given(S.seeds(), st.sampled_from(["k1", "k2", "k3"]), BETA)
def test_on_reference_policy_reward_is_outcome_only(rng, est, beta):
    """Every estimator vanishes at π = ρ: the KL term adds nothing when the policy equals the reference model."""
    x = batch(rng)
    x["ref_logp"] = x["logp"].copy()
    out = kl_in_reward(**x, config=KLInRewardConfig(beta=beta, estimator=est))
    base = kl_in_reward(**x, config=KLInRewardConfig(beta=0.0))
    np.testing.assert_allclose(out, base, atol=1e-15)


@given(S.seeds(), st.sampled_from(["k2", "k3"]), BETA)
def test_k2_k3_penalties_never_raise_the_reward(rng, est, beta):
    """k2 and k3 are ≥ 0 per token (Schulman's KL note), so −β k never raises a token's reward; k1 can."""
    x = batch(rng, scale=2.0)
    out = kl_in_reward(**x, config=KLInRewardConfig(beta=beta, estimator=est))
    base = kl_in_reward(**x, config=KLInRewardConfig(beta=0.0))
    assert np.all(out <= base + 1e-15)


@given(S.seeds(), st.sampled_from(["k1", "k2", "k3"]))
def test_padding_is_never_read(rng, est):
    """Design, "Bad input": garbage at masked positions changes nothing; masked outputs are 0."""
    x = batch(rng)
    cfg = KLInRewardConfig(estimator=est, value_clamp=10.0, reward_clip=(-1.0, 1.0))
    out = kl_in_reward(**x, config=cfg)
    clean = dict(x, logp=S.clean(x["logp"], x["mask"]), ref_logp=S.clean(x["ref_logp"], x["mask"]))
    np.testing.assert_array_equal(out, kl_in_reward(**clean, config=cfg))
    assert np.all(out[~x["mask"]] == 0) and np.isfinite(out).all()


def test_bad_input():
    """Bad input names the argument."""
    m = np.ones((2, 3), bool)
    lp = np.zeros((2, 3))
    with pytest.raises(RLSpecValueError, match="ref_logp"):
        kl_in_reward(np.zeros(2), lp, np.full((2, 3), np.nan), m)
    with pytest.raises(RLSpecValueError, match="rewards"):
        kl_in_reward(np.zeros(3), lp, lp, m)
    with pytest.raises(RLSpecValueError, match="estimator"):
        KLInRewardConfig(estimator="k4")
    with pytest.raises(RLSpecValueError, match="reward_clip"):
        KLInRewardConfig(reward_clip=(1.0, -1.0))
