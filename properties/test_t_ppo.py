"""Properties of T-PPO (Truncated Proximal Policy Optimization, arXiv 2506.15050): EGAE, value targets, filters.

Expected values come from independent computations: rlspec's GAE reference (reference/gae.py) on the
complete or continued response, explicit sums written here, and the PPO clipped value loss
(reference/value_clip.py) — never from the T-PPO code under test.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties.strategies import GARBAGE, finite_difference, seeds
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.gae import GAEConfig, gae_advantage
from rlspec.reference.t_ppo import (
    TPPOConfig,
    TPPOValueConfig,
    make_tppo_inputs,
    make_value_inputs,
    tppo_advantage,
    tppo_value_loss,
)
from rlspec.reference.value_clip import ValueClipConfig, value_clip_loss

gammas = st.sampled_from([1.0, 0.99, 0.9, 0.5, 0.0])
lams = st.sampled_from([1.0, 0.95, 0.7, 0.0])


def garbage(x, keep, rng):
    out = np.array(x, dtype=np.float64, copy=True)
    out[~keep] = rng.choice(GARBAGE, size=int((~keep).sum()))
    return out


@st.composite
def responses(draw, max_B=5, max_L=9):
    """Complete responses (B, L) right-padded: lengths ≥ 2, token rewards (outcome at the end + small
    penalties), values; plus truncation points 1 ≤ l < length per row."""
    rng = draw(seeds())
    B, L = draw(st.integers(1, max_B)), draw(st.integers(2, max_L))
    lengths = rng.integers(2, L + 1, size=B)
    mask = np.arange(L)[None, :] < lengths[:, None]
    r = np.where(rng.random((B, L)) < 0.4, 0.1 * rng.normal(size=(B, L)), 0.0)
    r[np.arange(B), lengths - 1] += rng.normal(size=B)
    V = rng.normal(size=(B, L))
    cut = np.array([rng.integers(1, n) for n in lengths])  # window ends at l = cut (tokens 0..l−1 known)
    return {"r": r, "V": V, "mask": mask, "lengths": lengths, "cut": cut, "rng": rng}


@given(x=responses(), gamma=gammas, lam=lams)
def test_egae_equals_gae_on_complete_windows(x, gamma, lam):
    """Checkable statement (notes §5): when the window covers the whole response (finished), EGAE ≡ GAE —
    advantages equal reference/gae.py's, and with critic_lam = λ the value targets equal GAE's returns."""
    rng, m = x["rng"], x["mask"]
    r, V = garbage(x["r"], m, rng), garbage(x["V"], m, rng)
    finished = np.ones(m.shape[0], bool)
    A, R, _, vm = tppo_advantage(r, V, m, finished, config=TPPOConfig(gamma=gamma, lam=lam, critic_lam=lam))
    A_ref, R_ref = gae_advantage(r, V, m, config=GAEConfig(gamma=gamma, lam=lam))
    np.testing.assert_allclose(A, A_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(R, R_ref, rtol=1e-12, atol=1e-12)
    assert (vm == m).all()


@given(x=responses(), gamma=gammas, lam=lams)
def test_truncation_identity(x, gamma, lam):
    """Exact decomposition (derived from the EGAE and GAE definitions): for a response truncated after
    l tokens, Â_t^GAE(full) = Â_t^EGAE + (γλ)^{l−1−t}·γ·(V(s_l) − V(s_{l−1})) + (γλ)^{l−t}·Â_l^GAE(full)
    for every t < l, where the full-response GAE is reference/gae.py on the complete response."""
    r, V, m, cut = x["r"], x["V"], x["mask"], x["cut"]
    A_full, _ = gae_advantage(r, V, m, config=GAEConfig(gamma=gamma, lam=lam))
    m_trunc = np.arange(m.shape[1])[None, :] < cut[:, None]
    finished = np.zeros(m.shape[0], bool)
    A, R, _, vm = tppo_advantage(garbage(r, m_trunc, x["rng"]), garbage(V, m_trunc, x["rng"]), m_trunc, finished,
                                 config=TPPOConfig(gamma=gamma, lam=lam))
    gl = gamma * lam
    for b, l in enumerate(cut):
        t = np.arange(l)
        expected = A[b, t] + gl ** (l - 1 - t) * gamma * (V[b, l] - V[b, l - 1]) + gl ** (l - t) * A_full[b, l]
        np.testing.assert_allclose(A_full[b, t], expected, rtol=1e-10, atol=1e-10)
    assert not vm.any() and (R == 0).all()  # truncated rows give the critic nothing


@given(x=responses())
def test_gamma_lambda_one_telescopes(x):
    """Checkable statement (notes §5): with γ = λ = 1 and no intermediate reward, EGAE on a truncated window
    telescopes to Â_t = V(s_{l−1}) − V(s_t) (the last TD residual is 0 under V(s_l) := V(s_{l−1}))."""
    V, cut = x["V"], x["cut"]
    m_trunc = np.arange(V.shape[1])[None, :] < cut[:, None]
    A, *_ = tppo_advantage(np.zeros_like(V), garbage(V, m_trunc, x["rng"]), m_trunc, np.zeros(V.shape[0], bool),
                           config=TPPOConfig(gamma=1.0, lam=1.0))
    for b, l in enumerate(cut):
        np.testing.assert_allclose(A[b, :l], V[b, l - 1] - V[b, :l], rtol=1e-12, atol=1e-12)


@given(x=responses(), gamma=gammas, lam=lams)
def test_last_truncated_token_has_only_its_reward(x, gamma, lam):
    """Under V(s_l) := V(s_{l−1}) the last token of a truncated window gets Â_{l−1} = r_{l−1} + (γ − 1)V(s_{l−1}):
    no value signal at all when γ = 1 (the critic cannot tell whether that token helped)."""
    r, V, cut = x["r"], x["V"], x["cut"]
    m_trunc = np.arange(V.shape[1])[None, :] < cut[:, None]
    A, *_ = tppo_advantage(r, V, m_trunc, np.zeros(V.shape[0], bool), config=TPPOConfig(gamma=gamma, lam=lam))
    last = cut - 1
    rows = np.arange(V.shape[0])
    np.testing.assert_allclose(A[rows, last], r[rows, last] + (gamma - 1.0) * V[rows, last], rtol=1e-12, atol=1e-12)


@given(rng=seeds(), gamma=gammas, lam=lams)
def test_value_targets_are_monte_carlo_returns(rng, gamma, lam):
    """Value update (notes §5: completed responses only, Monte-Carlo returns): on finished rows the targets
    are R̂_t = Σ_k γ^k r_{t+k} (written here as a direct sum over the valid steps), whatever the policy's λ;
    truncated rows have target 0 and no value token."""
    x = make_tppo_inputs(rng)
    A, R, _, vm = tppo_advantage(**x, config=TPPOConfig(gamma=gamma, lam=lam))
    m, done = x["mask"], x["finished"]
    for b in range(m.shape[0]):
        pos = np.flatnonzero(m[b])
        if done[b]:
            r = x["token_rewards"][b, pos]
            G = np.array([sum(gamma**k * r[i + k] for k in range(pos.size - i)) for i in range(pos.size)])
            np.testing.assert_allclose(R[b, pos], G, rtol=1e-10, atol=1e-10)
        else:
            assert (R[b] == 0).all()
    assert (vm == (m & done[:, None])).all()


@given(rng=seeds())
def test_token_filters(rng):
    """Token filtering (abstract: prompt and truncated tokens are filtered): the policy update uses this step's
    window tokens of every row (finished or truncated), the value update every token of finished rows only;
    window_start=None keeps every known token for the policy."""
    x = make_tppo_inputs(rng)
    _, _, pm, vm = tppo_advantage(**x)
    m, T = x["mask"], x["mask"].shape[1]
    for b in range(m.shape[0]):
        for t in range(T):
            assert pm[b, t] == (m[b, t] and t >= x["window_start"][b])
            assert vm[b, t] == (m[b, t] and x["finished"][b])
    _, _, pm_all, _ = tppo_advantage(**dict(x, window_start=None))
    assert (pm_all == m).all()


@given(rng=seeds(), gamma=gammas, lam=lams)
def test_padding_is_never_read(rng, gamma, lam):
    """Masked positions are never read: replacing the padding by other garbage changes no output; outputs are
    0 there."""
    x = make_tppo_inputs(rng)
    cfg = TPPOConfig(gamma=gamma, lam=lam)
    out1 = tppo_advantage(**x, config=cfg)
    y = dict(x, token_rewards=garbage(x["token_rewards"], x["mask"], rng),
             values=garbage(x["values"], x["mask"], rng))
    out2 = tppo_advantage(**y, config=cfg)
    for a, b in zip(out1, out2):
        assert np.array_equal(a, b)
    assert (out1[0][~x["mask"]] == 0).all() and (out1[1][~x["mask"]] == 0).all()


def test_rejects_bad_input():
    """Bad input names the argument: non-finite values at a valid token, wrong-length flags, negative windows."""
    x = make_tppo_inputs(np.random.default_rng(3))
    while not x["mask"].any():
        x = make_tppo_inputs(np.random.default_rng(int(x["mask"].size) + 7))
    b, t = np.argwhere(x["mask"])[0]
    v = x["values"].copy()
    v[b, t] = np.nan
    with pytest.raises(RLSpecValueError, match="values"):
        tppo_advantage(**dict(x, values=v))
    with pytest.raises(RLSpecValueError, match="finished"):
        tppo_advantage(**dict(x, finished=np.ones(x["mask"].shape[0] + 1, bool)))
    with pytest.raises(RLSpecValueError, match="window_start"):
        tppo_advantage(**dict(x, window_start=-np.ones(x["mask"].shape[0], int)))
    with pytest.raises(RLSpecValueError, match="lam"):
        TPPOConfig(lam=1.5)


# --------------------------------------------------------------------------- the critic loss
@given(rng=seeds(), eps=st.sampled_from([None, 0.2, 1.0]),
       agg=st.sampled_from(["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"]))
def test_value_loss_hand_gradient_matches_finite_differences(rng, eps, agg):
    """dvalues = ∂L/∂V equals the central finite difference (float64) at every value token, and is 0 on
    truncated rows and padding (away from the clip kinks)."""
    x = make_value_inputs(rng)
    cfg = TPPOValueConfig(eps=eps, agg=agg)
    _, dV = tppo_value_loss(**x, config=cfg)
    read = x["mask"] & x["finished"][:, None]
    if eps is not None:
        d = np.where(read, x["values"], 0.0) - np.where(read, x["old_values"], 0.0)
        if (np.abs(np.abs(d[read]) - eps) < 1e-4).any():
            return
    fd = finite_difference(lambda v: tppo_value_loss(**dict(x, values=v), config=cfg)[0],
                           np.where(read, x["values"], 0.0), read)
    np.testing.assert_allclose(dV, fd, rtol=1e-5, atol=1e-7)
    assert (dV[~read] == 0).all()


@given(rng=seeds(), eps=st.sampled_from([None, 0.2]))
def test_value_loss_ignores_truncated_rows(rng, eps):
    """The critic is trained on finished responses only: the loss and gradient equal PPO's value loss
    (reference/value_clip.py) with mask = mask ∧ finished, and the truncated rows' values are never read
    (they hold garbage in these inputs)."""
    x = make_value_inputs(rng)
    loss, dV = tppo_value_loss(**x, config=TPPOValueConfig(eps=eps))
    vm = x["mask"] & x["finished"][:, None]
    ref_loss, ref_dV = value_clip_loss(x["values"], x["old_values"], x["returns"], vm, config=ValueClipConfig(eps=eps))
    assert loss == pytest.approx(ref_loss, rel=1e-12, abs=1e-15)
    np.testing.assert_allclose(dV, ref_dV, rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------- optimized
@given(rng=seeds(), gamma=gammas, lam=lams, critic_lam=lams)
def test_optimized_matches_reference(rng, gamma, lam, critic_lam):
    """The torch EGAE (optimized/t_ppo.py) and critic loss match the reference in float64."""
    torch = pytest.importorskip("torch")
    from rlspec.optimized import t_ppo as opt

    x = make_tppo_inputs(rng)
    cfg = TPPOConfig(gamma=gamma, lam=lam, critic_lam=critic_lam)
    ref = tppo_advantage(**x, config=cfg)
    got = opt.tppo_advantage(torch.tensor(x["token_rewards"]), torch.tensor(x["values"]), torch.tensor(x["mask"]),
                             torch.tensor(x["finished"]), torch.tensor(x["window_start"]), config=cfg)
    for a, g in zip(ref, got):
        np.testing.assert_allclose(g.numpy(), a, rtol=1e-12, atol=1e-12)
    y = make_value_inputs(rng)
    V = torch.tensor(np.where(y["mask"] & y["finished"][:, None], y["values"], 0.0), requires_grad=True)
    loss = opt.tppo_value_loss(V, torch.tensor(y["old_values"]), torch.tensor(y["returns"]), torch.tensor(y["mask"]),
                               config=TPPOValueConfig(), finished=torch.tensor(y["finished"]))
    loss.backward()
    ref_loss, ref_dV = tppo_value_loss(**y)
    assert float(loss.detach()) == pytest.approx(ref_loss, rel=1e-12, abs=1e-15)
    np.testing.assert_allclose(V.grad.numpy(), ref_dV, rtol=1e-12, atol=1e-15)
