"""Properties of generalized advantage estimation (Schulman et al., arXiv 1506.02438 §3, eqs. 11, 16-18)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties.strategies import GARBAGE, seeds
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.gae import GAEConfig, gae_advantage

gammas = st.sampled_from([1.0, 0.99, 0.9, 0.5, 0.0])
lams = st.sampled_from([1.0, 0.95, 0.7, 0.0])


@st.composite
def gae_batches(draw, max_B=6, max_T=7, holes=None):
    """token_rewards, values, mask: ragged right-padded masks (optionally with interior holes), garbage padding."""
    rng = draw(seeds())
    B, T = draw(st.integers(1, max_B)), draw(st.integers(1, max_T))
    lengths = rng.integers(0, T + 1, size=B)
    mask = np.arange(T)[None, :] < lengths[:, None]
    if holes if holes is not None else draw(st.booleans()):
        mask &= rng.random((B, T)) > 0.25
    r = np.where(rng.random((B, T)) < 0.4, rng.normal(size=(B, T)), 0.0)
    V = rng.normal(size=(B, T))
    for x in (r, V):
        x[~mask] = rng.choice(GARBAGE, size=int((~mask).sum()))
    return {"token_rewards": r, "values": V, "mask": mask}


def episodes(batch):
    """Per row: (valid positions, rewards at them, values at them) — the episode the skip convention sees."""
    for b in range(batch["mask"].shape[0]):
        pos = np.flatnonzero(batch["mask"][b])
        yield b, pos, batch["token_rewards"][b, pos], batch["values"][b, pos]


@given(batch=gae_batches(), gamma=gammas)
def test_lambda1_is_monte_carlo_advantage(batch, gamma):
    """Eq. (18): GAE(γ, 1) = Σ_l γ^l r_{t+l} − V(s_t), the discounted Monte-Carlo return minus the value."""
    A, _ = gae_advantage(**batch, config=GAEConfig(gamma=gamma, lam=1.0))
    for b, pos, r, V in episodes(batch):
        n = len(pos)
        mc = np.array([sum(gamma**l * r[k + l] for l in range(n - k)) for k in range(n)])
        np.testing.assert_allclose(A[b, pos], mc - V, atol=1e-10)


@given(batch=gae_batches(), gamma=gammas)
def test_lambda0_is_td_error(batch, gamma):
    """Eq. (17): GAE(γ, 0) = δ_t = r_t + γ V(s_{t+1}) − V(s_t), with V = 0 after the last valid token."""
    A, _ = gae_advantage(**batch, config=GAEConfig(gamma=gamma, lam=0.0))
    for b, pos, r, V in episodes(batch):
        V_next = np.append(V[1:], 0.0)
        np.testing.assert_allclose(A[b, pos], r + gamma * V_next - V, atol=1e-12)


@given(batch=gae_batches(), gamma=gammas, lam=lams, steps=st.sampled_from(["skip", "zero"]))
def test_returns_are_adv_plus_values(batch, gamma, lam, steps):
    """The value target is R̂_t = Â_t + V(s_t) at valid tokens (whitening does not touch it); both are 0 when masked."""
    M = batch["mask"]
    A, ret = gae_advantage(**batch, config=GAEConfig(gamma=gamma, lam=lam, masked_steps=steps))
    _, ret_w = gae_advantage(**batch, config=GAEConfig(gamma=gamma, lam=lam, masked_steps=steps, whiten=True))
    np.testing.assert_allclose(ret[M], A[M] + batch["values"][M], atol=1e-12)
    np.testing.assert_array_equal(ret_w, ret)
    assert (A[~M] == 0).all() and (ret[~M] == 0).all()


def naive_gae(batch, gamma, lam, steps):
    """Â_t = Σ_k (γλ)^k δ_{t+k} as an O(T²) sum over each episode's steps, δ from eq. (11)."""
    M = batch["mask"]
    out = np.zeros(M.shape)
    for b in range(M.shape[0]):
        if steps == "skip":
            pos = np.flatnonzero(M[b])
            r, V = batch["token_rewards"][b, pos], batch["values"][b, pos]
        else:  # every position is a step, padding contributes r = V = 0
            pos = np.arange(M.shape[1])
            r = np.where(M[b], batch["token_rewards"][b], 0.0)
            V = np.where(M[b], batch["values"][b], 0.0)
        n = len(pos)
        delta = [r[k] + gamma * (V[k + 1] if k + 1 < n else 0.0) - V[k] for k in range(n)]
        for k in range(n):
            out[b, pos[k]] = sum((gamma * lam) ** j * delta[k + j] for j in range(n - k))
    return np.where(M, out, 0.0)


@given(batch=gae_batches(), gamma=gammas, lam=lams, steps=st.sampled_from(["skip", "zero"]))
def test_matches_naive_quadratic_sum(batch, gamma, lam, steps):
    """Eq. (16): the backward recursion equals the explicit sum Σ_k (γλ)^k δ_{t+k}, for both conventions
    on interior masked tokens."""
    A, _ = gae_advantage(**batch, config=GAEConfig(gamma=gamma, lam=lam, masked_steps=steps))
    np.testing.assert_allclose(A, naive_gae(batch, gamma, lam, steps), atol=1e-10)


@given(batch=gae_batches(holes=False), gamma=gammas, lam=lams)
def test_conventions_agree_on_right_padding(batch, gamma, lam):
    """On right-padded masks (no interior holes) the verl ("skip") and OpenRLHF ("zero") conventions agree."""
    a = gae_advantage(**batch, config=GAEConfig(gamma=gamma, lam=lam, masked_steps="skip"))
    b = gae_advantage(**batch, config=GAEConfig(gamma=gamma, lam=lam, masked_steps="zero"))
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, atol=1e-12)


@given(batch=gae_batches(), rng=seeds(), steps=st.sampled_from(["skip", "zero"]))
def test_padding_garbage_ignored(batch, rng, steps):
    """Values at masked positions are never read: NaN/inf there gives finite output, and replacing the
    padding with other numbers changes nothing."""
    M = batch["mask"]
    cfg = GAEConfig(masked_steps=steps)
    A, ret = gae_advantage(**batch, config=cfg)
    assert np.isfinite(A).all() and np.isfinite(ret).all()
    other = {k: v.copy() for k, v in batch.items()}
    for k in ("token_rewards", "values"):
        other[k][~M] = rng.normal(size=int((~M).sum())) * 1e3
    A2, ret2 = gae_advantage(**other, config=cfg)
    np.testing.assert_array_equal(A2, A)
    np.testing.assert_array_equal(ret2, ret)


@given(batch=gae_batches(), ddof=st.sampled_from([0, 1]))
def test_whiten_mean0_std1(batch, ddof):
    """whiten=True (verl masked_whiten) with ε = 0: valid advantages have mean 0 and std 1 (with ddof), or are
    all 0 when the raw advantages are all equal; it is an affine map of the raw advantages."""
    M = batch["mask"]
    raw, _ = gae_advantage(**batch)
    A, _ = gae_advantage(**batch, config=GAEConfig(whiten=True, whiten_ddof=ddof, whiten_eps=0.0))
    assert (A[~M] == 0).all()
    if M.sum() == 0 or np.ptp(raw[M]) == 0:
        assert (A == 0).all()
        return
    assert abs(A[M].mean()) < 1e-10
    assert A[M].std(ddof=ddof) == pytest.approx(1.0, abs=1e-9)
    expected = (raw[M] - raw[M].mean()) / raw[M].std(ddof=ddof)
    np.testing.assert_allclose(A[M], expected, atol=1e-9)


def test_outcome_reward_single_episode():
    """Hand example: one 3-token response, reward 1 at the end, V = (0.5, 0.5, 0.5), γ = 1, λ = 0.5:
    δ = (0, 0, 0.5), Â = (0.125, 0.25, 0.5), R̂ = (0.625, 0.75, 1.0)."""
    r = np.array([[0.0, 0.0, 1.0, np.nan]])
    V = np.array([[0.5, 0.5, 0.5, np.nan]])
    M = np.array([[True, True, True, False]])
    A, ret = gae_advantage(r, V, M, GAEConfig(gamma=1.0, lam=0.5))
    np.testing.assert_allclose(A, [[0.125, 0.25, 0.5, 0.0]], atol=1e-15)
    np.testing.assert_allclose(ret, [[0.625, 0.75, 1.0, 0.0]], atol=1e-15)


_ok = dict(token_rewards=np.zeros((2, 3)), values=np.zeros((2, 3)), mask=np.ones((2, 3), bool))


@pytest.mark.parametrize("override, arg", [
    (dict(mask=np.ones((2, 3))), "mask"),
    (dict(mask=np.ones(3, bool)), "mask"),
    (dict(values=np.zeros((2, 4))), "values"),
    (dict(token_rewards=np.zeros(3)), "token_rewards"),
    (dict(values=np.array([[0.0, np.nan, 0.0], [0, 0, 0]])), "values"),
    (dict(token_rewards=np.array([[0.0, 0.0, np.inf], [0, 0, 0]])), "token_rewards"),
])
def test_bad_input_raises(override, arg):
    """Bad input raises RLSpecValueError naming the argument."""
    with pytest.raises(RLSpecValueError, match=arg):
        gae_advantage(**dict(_ok, **override))


@pytest.mark.parametrize("field, value", [("gamma", 1.01), ("lam", -0.5), ("masked_steps", "carry"),
                                          ("whiten", 1), ("whiten_ddof", 3), ("whiten_eps", -1e-8)])
def test_bad_config_raises(field, value):
    """Out-of-range hyperparameters are rejected when the config is built."""
    with pytest.raises(RLSpecValueError, match=field):
        GAEConfig(**{field: value})
