"""Properties of REINFORCE++ and REINFORCE++-baseline (arXiv 2501.03262; official code: OpenRLHF)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties.strategies import GARBAGE, outcome_batch, seeds
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.reinforce_pp import (
    ReinforcePPBaselineConfig,
    ReinforcePPConfig,
    group_centred_reward,
    reinforce_pp_advantage,
    reinforce_pp_baseline_advantage,
)


@st.composite
def rfpp_batches(draw, max_B=10, max_T=6):
    """Outcome batch, sometimes with interior holes in the mask and a per-token KL with NaN padding."""
    rng = draw(seeds())
    B, T = draw(st.integers(1, max_B)), draw(st.integers(1, max_T))
    batch = outcome_batch(rng, B, T)
    if draw(st.booleans()):
        batch["mask"] = batch["mask"] & (rng.random((B, T)) > 0.25)
    if draw(st.booleans()):
        kl = rng.normal(scale=0.3, size=(B, T))
        kl[~batch["mask"]] = rng.choice(GARBAGE, size=int((~batch["mask"]).sum()))
        batch["kl"] = kl
    return batch


def naive_returns(R, M, kl, beta, gamma, discount_masked):
    """G_t = Σ_{s ≥ t, s valid} γ^{n(t,s)} r_s, written as an explicit double sum (independent of the code)."""
    B, T = M.shape
    r = np.zeros((B, T))
    for b in range(B):
        valid = np.flatnonzero(M[b])
        if valid.size:
            r[b, valid[-1]] += R[b]
        if kl is not None:
            r[b, valid] -= beta * kl[b, valid]
    G = np.zeros((B, T))
    for b in range(B):
        for t in np.flatnonzero(M[b]):
            for s in np.flatnonzero(M[b]):
                if s >= t:
                    n = (s - t) if discount_masked else int(M[b, t:s].sum())
                    G[b, t] += gamma**n * r[b, s]
    return G


def zscore(G, M, ddof):
    v = G[M]
    if v.size == 0 or np.ptp(v) == 0:
        return np.zeros_like(G)
    return np.where(M, (G - v.mean()) / v.std(ddof=ddof), 0.0)


@given(batch=rfpp_batches(), ddof=st.sampled_from([0, 1]), gamma=st.sampled_from([1.0, 0.9, 0.5]),
       discount_masked=st.booleans())
def test_normalised_mean0_std1(batch, ddof, gamma, discount_masked):
    """Paper eq. (10): with ε = 0 the advantages over the valid tokens of the batch have mean 0 and
    standard deviation 1 (with the configured ddof), unless all valid returns are equal (then all 0)."""
    M = batch["mask"]
    cfg = ReinforcePPConfig(eps=0.0, ddof=ddof, gamma=gamma, discount_masked=discount_masked)
    A = reinforce_pp_advantage(**batch, config=cfg)
    assert np.isfinite(A).all() and (A[~M] == 0).all()
    G = naive_returns(batch["rewards"], M, batch.get("kl"), cfg.kl_coef, gamma, discount_masked)
    if M.sum() == 0 or np.ptp(G[M]) == 0:
        assert (A == 0).all()
        return
    assert abs(A[M].mean()) < 1e-10
    assert A[M].std(ddof=ddof) == pytest.approx(1.0, abs=1e-9)


@given(batch=rfpp_batches(), ddof=st.sampled_from([0, 1]), gamma=st.sampled_from([1.0, 0.95, 0.3]),
       discount_masked=st.booleans(), beta=st.sampled_from([0.0, 0.01, 0.5]))
def test_returns_match_naive_sum(batch, ddof, gamma, discount_masked, beta):
    """The token rewards (R on the last valid token, −β·KL on each) and the discounted return-to-go agree
    with an independent double sum G_t = Σ_{s≥t} γ^{n(t,s)} r_s, and the output is its batch z-score."""
    M = batch["mask"]
    cfg = ReinforcePPConfig(eps=0.0, ddof=ddof, gamma=gamma, discount_masked=discount_masked, kl_coef=beta)
    A = reinforce_pp_advantage(**batch, config=cfg)
    G = naive_returns(batch["rewards"], M, batch.get("kl"), beta, gamma, discount_masked)
    np.testing.assert_allclose(A, zscore(G, M, ddof), atol=1e-9)


@given(rng=seeds(), B=st.integers(2, 10), T=st.integers(1, 6), ddof=st.sampled_from([0, 1]))
def test_closed_form_outcome_gamma1(rng, B, T, ddof):
    """With γ = 1 and no KL every valid token of row i carries R_i, so Â_i = (R_i − m)/s with the
    length-weighted m = Σ L_i R_i / Σ L_i and s² = Σ L_i (R_i − m)² / (Σ L_i − ddof)."""
    batch = outcome_batch(rng, B, T, binary=False)
    R, M = batch["rewards"], batch["mask"]
    L = M.sum(axis=1)
    N = L.sum()
    A = reinforce_pp_advantage(R, batch["group"], M, ReinforcePPConfig(eps=0.0, ddof=ddof))
    if N <= 1 or np.ptp(R[L > 0]) == 0:
        assert (A == 0).all()
        return
    m = (L * R).sum() / N
    s = np.sqrt((L * (R - m) ** 2).sum() / (N - ddof))
    np.testing.assert_allclose(A, np.where(M, ((R - m) / s)[:, None], 0.0), atol=1e-10)


@given(batch=rfpp_batches(), a=st.floats(0.1, 10), b=st.floats(-5, 5), ddof=st.sampled_from([0, 1]))
def test_affine_reward_invariance(batch, a, b, ddof):
    """With γ = 1 and no KL the advantage is invariant to R → a·R + b (a > 0): the returns move by the
    same affine map and the z-score removes it (ε = 0)."""
    batch = {k: v for k, v in batch.items() if k != "kl"}
    cfg = ReinforcePPConfig(eps=0.0, ddof=ddof)
    A = reinforce_pp_advantage(**batch, config=cfg)
    A2 = reinforce_pp_advantage(**dict(batch, rewards=a * batch["rewards"] + b), config=cfg)
    np.testing.assert_allclose(A2, A, atol=1e-9)


@given(batch=rfpp_batches(), a=st.floats(0.1, 10), gamma=st.sampled_from([0.5, 0.9, 1.0]))
def test_scale_invariance_any_gamma(batch, a, gamma):
    """For any γ (and with the KL penalty) scaling every token reward by a > 0 — R → aR, KL → a·KL —
    scales the returns by a, which the z-score removes. (A shift b is not removed when γ < 1: the
    discounted returns then move by different amounts b·γ^k, so only scale invariance holds.)"""
    cfg = ReinforcePPConfig(eps=0.0, gamma=gamma)
    A = reinforce_pp_advantage(**batch, config=cfg)
    scaled = dict(batch, rewards=a * batch["rewards"])
    if "kl" in batch:
        scaled["kl"] = a * batch["kl"]
    np.testing.assert_allclose(reinforce_pp_advantage(**scaled, config=cfg), A, atol=1e-9)


@given(batch=rfpp_batches(), singleton=st.sampled_from(["zero", "raw"]))
def test_baseline_zero_sum_per_group(batch, singleton):
    """REINFORCE++-baseline: before normalisation the group-centred rewards R̃ sum to 0 over each group
    (every group for "zero"; groups of size ≥ 2 for "raw"), and the estimator is exactly REINFORCE++
    applied to R̃."""
    R, g = batch["rewards"], batch["group"]
    Rt = group_centred_reward(R, g, singleton)
    for k in np.unique(g):
        rows = g == k
        if rows.sum() >= 2 or singleton == "zero":
            assert abs(Rt[rows].sum()) <= 1e-12 * rows.sum()
        else:
            assert Rt[rows][0] == R[rows][0]
    cfg = ReinforcePPBaselineConfig(singleton=singleton)
    base = reinforce_pp_baseline_advantage(**batch, config=cfg)
    plain = reinforce_pp_advantage(**dict(batch, rewards=Rt), config=ReinforcePPConfig())
    np.testing.assert_allclose(base, plain, atol=1e-12)


@given(batch=rfpp_batches(), rng=seeds(), gamma=st.sampled_from([1.0, 0.8]))
def test_baseline_invariant_to_per_group_shift(batch, rng, gamma):
    """REINFORCE++-baseline: adding a constant c_g to every reward of group g changes nothing (any γ)."""
    g = batch["group"]
    shift = {k: rng.normal(scale=3.0) for k in np.unique(g)}
    R2 = batch["rewards"] + np.array([shift[k] for k in g])
    cfg = ReinforcePPBaselineConfig(gamma=gamma, eps=0.0)
    A = reinforce_pp_baseline_advantage(**batch, config=cfg)
    np.testing.assert_allclose(reinforce_pp_baseline_advantage(**dict(batch, rewards=R2), config=cfg), A, atol=1e-8)


@given(batch=rfpp_batches(), rng=seeds())
def test_padding_garbage_ignored(batch, rng):
    """Values of ``kl`` at masked positions are never read: replacing them changes nothing."""
    if "kl" not in batch:
        return
    M = batch["mask"]
    kl2 = batch["kl"].copy()
    kl2[~M] = rng.normal(size=int((~M).sum())) * 1e6
    for fn in (reinforce_pp_advantage, reinforce_pp_baseline_advantage):
        np.testing.assert_array_equal(fn(**batch), fn(**dict(batch, kl=kl2)))


def test_matches_peer_outputs():
    """Conventions reproduce the frameworks' numbers recorded in notes/peers.md (rows [1,0,1,1 | 0,0,0,1],
    rows 1 and 5 padded to 4 and 2 tokens): OpenRLHF (ddof 0, clamp 1e-8) and verl (ddof 1, √(var+1e-8))."""
    R = np.array([1.0, 0, 1, 1, 0, 0, 0, 1])
    g = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    M = np.ones((8, 6), dtype=bool)
    M[1, 4:] = False
    M[5, 2:] = False
    openrlhf_rf = [0.866025, -1.154701, 0.866025, 0.866025, -1.154701, -1.154701, -1.154701, 0.866025]
    openrlhf_base = [0.451466, -1.918731, 0.451466, 0.451466, -0.733632, -0.733632, -0.733632, 1.636565]
    np.testing.assert_allclose(reinforce_pp_advantage(R, g, M)[:, 0], openrlhf_rf, atol=1e-6)
    np.testing.assert_allclose(reinforce_pp_baseline_advantage(R, g, M)[:, 0], openrlhf_base, atol=1e-6)
    verl = dict(ddof=1, eps_placement="inside")
    assert reinforce_pp_advantage(R, g, M, ReinforcePPConfig(**verl))[0, 0] == pytest.approx(0.8557, abs=1e-4)
    assert reinforce_pp_baseline_advantage(R, g, M, ReinforcePPBaselineConfig(**verl))[0, 0] == pytest.approx(
        0.4461, abs=1e-4)


@given(rng=seeds(), c=st.floats(-5, 5), B=st.integers(1, 6))
def test_degenerate_batches_defined(rng, c, B):
    """An all-false mask, and a batch whose rewards are all equal (γ = 1, no KL), give advantage 0, never NaN;
    so does the baseline variant on all-equal groups."""
    g = rng.integers(0, 3, size=B)
    R = np.full(B, c)
    M = np.ones((B, 4), dtype=bool)
    for eps in (0.0, 1e-8):
        cfg = ReinforcePPConfig(eps=eps)
        assert (reinforce_pp_advantage(R, g, np.zeros((B, 4), bool), cfg) == 0).all()
        assert (reinforce_pp_advantage(R, g, M, cfg) == 0).all()
        assert (reinforce_pp_baseline_advantage(R, g, M, ReinforcePPBaselineConfig(eps=eps)) == 0).all()


_ok = dict(rewards=np.ones(3), group=np.zeros(3, int), mask=np.ones((3, 2), bool))


@pytest.mark.parametrize("fn", [reinforce_pp_advantage, reinforce_pp_baseline_advantage])
@pytest.mark.parametrize("override, arg", [
    (dict(mask=np.ones((3, 2))), "mask"),
    (dict(rewards=np.ones(4)), "rewards"),
    (dict(rewards=np.array([0.0, np.inf, 1.0])), "rewards"),
    (dict(group=np.array([0.5, 1.0, 2.0])), "group"),
    (dict(kl=np.ones((3, 3))), "kl"),
    (dict(kl=np.array([[0.0, np.nan], [0, 0], [0, 0]])), "kl"),
])
def test_bad_input_raises(fn, override, arg):
    """Bad input raises RLSpecValueError naming the argument."""
    with pytest.raises(RLSpecValueError, match=arg):
        fn(**dict(_ok, **override))


@pytest.mark.parametrize("field, value", [("gamma", 1.5), ("gamma", -0.1), ("ddof", 2), ("eps", -1.0),
                                          ("eps_placement", "below"), ("kl_coef", -0.1), ("std_normalize", "yes")])
def test_bad_config_raises(field, value):
    """Out-of-range hyperparameters are rejected when the config is built."""
    with pytest.raises(RLSpecValueError, match=field):
        ReinforcePPConfig(**{field: value})
    with pytest.raises(RLSpecValueError, match="singleton"):
        ReinforcePPBaselineConfig(singleton="nan")
