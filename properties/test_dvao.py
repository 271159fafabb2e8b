"""Properties of DVAO (arXiv 2605.25604): variance-adaptive combination of K per-objective advantages.

A_i = Σ_k w̃_k (r_ik − μ_k)/(σ_k + ε),  w̃_k = w_k σ_k / Σ_l w_l σ_l  (equations from our notes, papers_A.md §17 [N]).
Expected values are computed here group by group with plain numpy (np.mean / np.std), never taken from
the DVAO module under test.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties.strategies import groups, ragged_mask, seeds
from rlspec.reference import registry
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.dvao import DVAOConfig, ac_advantage, dvao_advantage, rc_advantage, variance_adaptive_weights
from rlspec.reference.grpo import GRPOConfig, grpo_advantage


def reward_matrix(rng: np.random.Generator, B: int, K: int) -> np.ndarray:
    """(B, K) rewards; each column binary, three exact levels {0, 0.5, 1}, or continuous."""
    cols = []
    for _ in range(K):
        kind = rng.integers(3)
        if kind == 0:
            cols.append(rng.integers(0, 2, size=B).astype(np.float64))
        elif kind == 1:
            cols.append(rng.integers(0, 3, size=B) / 2.0)
        else:
            cols.append(rng.normal(scale=float(rng.choice([0.1, 1.0, 5.0])), size=B))
    return np.stack(cols, axis=1)


@st.composite
def multi_batches(draw, max_B: int = 12, max_K: int = 4, min_K: int = 1):
    rng = draw(seeds())
    B, K = draw(st.integers(1, max_B)), draw(st.integers(min_K, max_K))
    w = rng.choice([0.0, 0.3, 1.0, 2.5], size=K)
    if not (w > 0).any():
        w[rng.integers(K)] = 1.0
    return {"rewards": reward_matrix(rng, B, K), "group": groups(rng, B),
            "mask": ragged_mask(rng, B, int(rng.integers(1, 5))), "w": tuple(w)}


def inputs(b):
    return {k: b[k] for k in ("rewards", "group", "mask")}


def per_group(b, ddof):
    """Per row, from numpy directly: Σ_k w_k σ_k (S), centred combined reward R − R̄ and σ_RC."""
    R, g, w = b["rewards"], b["group"], np.asarray(b["w"])
    S, centred, sd_rc = (np.zeros(len(g)) for _ in range(3))
    for k in np.unique(g):
        rows = g == k
        n = rows.sum()
        comb = R[rows] @ w
        centred[rows] = comb - comb.mean()
        if n > ddof and n > 1:
            S[rows] = (w * R[rows].std(axis=0, ddof=ddof)).sum()
            sd_rc[rows] = comb.std(ddof=ddof)
    return S, centred, sd_rc


ddofs = st.sampled_from([0, 1])


@given(b=multi_batches(), ddof=ddofs)
def test_identity_with_reward_combination(b, ddof):
    """Derived identity (ε = 0): A_i^DVAO · Σ_k w_k σ_k = R_i − R̄ with R = Σ_k w_k r_k, i.e.
    A^DVAO = (σ_RC / Σ_k w_k σ_k) · A^RC; groups with Σ_k w_k σ_k = 0 get 0."""
    cfg = DVAOConfig(weights=b["w"], eps=0.0, ddof=ddof)
    A = dvao_advantage(**dict(inputs(b), mask=np.ones((len(b["group"]), 1), bool)), config=cfg)[:, 0]
    S, centred, sd_rc = per_group(b, ddof)
    scale = max(1.0, np.abs(centred).max())
    np.testing.assert_allclose(A * S, np.where(S > 0, centred, 0.0), atol=1e-10 * scale, rtol=1e-10)
    assert (A[S == 0] == 0).all()
    A_rc = rc_advantage(**dict(inputs(b), mask=np.ones((len(b["group"]), 1), bool)), config=cfg)[:, 0]
    ok = (S > 0) & (sd_rc > 1e-8 * S)
    np.testing.assert_allclose(A[ok], (sd_rc / np.where(S > 0, S, 1.0) * A_rc)[ok], rtol=1e-9, atol=1e-12)


@given(b=multi_batches(), ddof=ddofs)
def test_bounded_by_reward_combination(b, ddof):
    """Prop. 2 as we read it (source: reviewer note in papers_A.md §17 [N], 'bounded advantage magnitudes' in
    the abstract): with ε = 0 and w_k ≥ 0, |A_i^DVAO| ≤ |A_i^RC| for every rollout i, where A^RC is the group
    z-score of R = Σ_k w_k r_k (computed here with numpy; same ddof). Reason: std(Σ w_k r_k) ≤ Σ w_k std(r_k)."""
    cfg = DVAOConfig(weights=b["w"], eps=0.0, ddof=ddof)
    ones = np.ones((len(b["group"]), 1), bool)
    A = dvao_advantage(**dict(inputs(b), mask=ones), config=cfg)[:, 0]
    _, centred, sd_rc = per_group(b, ddof)
    A_rc = np.divide(centred, sd_rc, out=np.zeros_like(centred), where=sd_rc > 1e-12 * (1 + np.abs(centred)))
    assert (np.abs(A) <= np.abs(A_rc) * (1 + 1e-9) + 1e-12).all()


@given(rng=seeds(), G=st.integers(2, 16), K=st.integers(1, 4), ddof=ddofs)
def test_equality_for_perfectly_correlated_objectives(rng, G, K, ddof):
    """Equality case of the bound: if every objective is a positive affine map of one score z within the group
    (r_k = a_k + b_k z, b_k > 0), then σ_RC = Σ_k w_k σ_k and A^DVAO = A^RC (ε = 0)."""
    z = rng.normal(size=G)
    rewards = rng.normal(size=K)[None, :] + rng.uniform(0.1, 5.0, size=K)[None, :] * z[:, None]
    cfg = DVAOConfig(weights=tuple(rng.uniform(0.1, 2.0, size=K)), eps=0.0, ddof=ddof)
    kw = {"rewards": rewards, "group": np.zeros(G, int), "mask": np.ones((G, 2), bool)}
    expected = (z - z.mean()) / z.std(ddof=ddof)
    np.testing.assert_allclose(dvao_advantage(**kw, config=cfg)[:, 0], expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(rc_advantage(**kw, config=cfg)[:, 0], expected, rtol=1e-9, atol=1e-12)


@given(b=multi_batches(), ddof=ddofs, eps=st.sampled_from([0.0, 1e-6, 0.1]))
def test_advantages_sum_to_zero_per_group(b, ddof, eps):
    """Σ_{i∈group} A_i^DVAO = 0 for every group (each A_{·,k} is centred and w̃ is constant in the group);
    masked positions of the (B, T) output are 0."""
    adv = dvao_advantage(**inputs(b), config=DVAOConfig(weights=b["w"], eps=eps, ddof=ddof))
    assert (adv[~b["mask"]] == 0).all()
    A = dvao_advantage(**dict(inputs(b), mask=np.ones((len(b["group"]), 1), bool)),
                       config=DVAOConfig(weights=b["w"], eps=eps, ddof=ddof))[:, 0]
    for k in np.unique(b["group"]):
        rows = b["group"] == k
        assert abs(A[rows].sum()) <= 1e-9 * max(1.0, np.abs(A[rows]).sum())


@given(b=multi_batches(), ddof=ddofs, c=st.sampled_from([1e-3, 0.5, 7.0, 1e3]), rng=seeds())
def test_invariant_to_common_scale_and_objective_shifts(b, ddof, c, rng):
    """A^DVAO is unchanged by r → c·r (one c > 0 for all objectives; ε = 0) and by r_k → r_k + b_k
    (any per-objective shifts; any ε)."""
    ones = np.ones((len(b["group"]), 1), bool)
    cfg0 = DVAOConfig(weights=b["w"], eps=0.0, ddof=ddof)
    base = dvao_advantage(**dict(inputs(b), mask=ones), config=cfg0)
    scaled = dvao_advantage(**dict(inputs(b), rewards=c * b["rewards"], mask=ones), config=cfg0)
    np.testing.assert_allclose(scaled, base, rtol=1e-9, atol=1e-9)
    shift = rng.uniform(-10, 10, size=b["rewards"].shape[1])[None, :]
    for cfg in (cfg0, DVAOConfig(weights=b["w"], eps=1e-6, ddof=ddof)):
        ref = dvao_advantage(**dict(inputs(b), mask=ones), config=cfg)
        got = dvao_advantage(**dict(inputs(b), rewards=b["rewards"] + shift, mask=ones), config=cfg)
        np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-8)


@given(b=multi_batches(), ddof=ddofs, rng=seeds())
def test_objective_rescaling_equals_weight_rescaling(b, ddof, rng):
    """Rescaling objective k by c_k > 0 is the same as replacing w_k by c_k·w_k (ε = 0): the per-objective
    z-scores are scale-free and σ_k carries the scale into w̃_k."""
    K = b["rewards"].shape[1]
    c = rng.choice([0.01, 0.5, 3.0, 100.0], size=K)
    ones = np.ones((len(b["group"]), 1), bool)
    left = dvao_advantage(**dict(inputs(b), rewards=b["rewards"] * c[None, :], mask=ones),
                          config=DVAOConfig(weights=b["w"], eps=0.0, ddof=ddof))
    right = dvao_advantage(**dict(inputs(b), mask=ones),
                           config=DVAOConfig(weights=tuple(c * np.asarray(b["w"])), eps=0.0, ddof=ddof))
    np.testing.assert_allclose(left, right, rtol=1e-9, atol=1e-9)


@given(b=multi_batches(max_K=1), ddof=ddofs, eps=st.sampled_from([0.0, 1e-6, 1e-4]))
def test_single_objective_is_grpo(b, ddof, eps):
    """K = 1: w̃ = 1 (or the group has zero spread) and A^DVAO equals GRPO's group z-score
    (rlspec.reference.grpo with the same ddof and ε, singleton groups 0)."""
    got = dvao_advantage(**inputs(b), config=DVAOConfig(eps=eps, ddof=ddof))
    want = grpo_advantage(b["rewards"][:, 0], b["group"], b["mask"], GRPOConfig(ddof=ddof, eps=eps))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@given(b=multi_batches(min_K=2), ddof=ddofs, eps=st.sampled_from([0.0, 1e-6]))
def test_rc_and_ac_match_their_definitions(b, ddof, eps):
    """The comparison estimators: RC = group z-score of Σ_k w_k r_k; AC = Σ_k w_k (r_k − μ_k)/(σ_k + ε)."""
    cfg = DVAOConfig(weights=b["w"], eps=eps, ddof=ddof)
    ones = np.ones((len(b["group"]), 1), bool)
    R, g, w = b["rewards"], b["group"], np.asarray(b["w"])
    rc, ac = np.zeros(len(g)), np.zeros(len(g))
    for k in np.unique(g):
        rows = g == k
        if rows.sum() < 2:
            continue
        comb = R[rows] @ w
        sd = comb.std(ddof=ddof)
        rc[rows] = (comb - comb.mean()) / (sd + eps) if sd > 1e-12 * (1 + np.abs(comb).max()) else 0.0
        sdk = R[rows].std(axis=0, ddof=ddof)
        z = np.divide(R[rows] - R[rows].mean(axis=0), sdk + eps, out=np.zeros_like(R[rows]), where=sdk > 0)
        ac[rows] = z @ w
    np.testing.assert_allclose(rc_advantage(**dict(inputs(b), mask=ones), config=cfg)[:, 0], rc, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ac_advantage(**dict(inputs(b), mask=ones), config=cfg)[:, 0], ac, rtol=1e-9, atol=1e-9)


@given(sd=st.lists(st.floats(0.0, 10.0), min_size=1, max_size=5), rng=seeds())
def test_weights_follow_variance(sd, rng):
    """Abstract: objectives with a stronger signal (larger in-group spread) are up-weighted. w̃_k ∝ w_k σ_k,
    Σ_k w̃_k = 1 when some w_k σ_k > 0, all 0 otherwise; with equal w, σ_k > σ_l ⇒ w̃_k > w̃_l."""
    sd = np.asarray(sd)[None, :]
    w = rng.uniform(0.1, 2.0, size=sd.shape[1])
    wt = variance_adaptive_weights(w, sd)[0]
    total = (w * sd[0]).sum()
    if total > 0:
        np.testing.assert_allclose(wt, w * sd[0] / total, rtol=1e-12)
        assert wt.sum() == pytest.approx(1.0, rel=1e-12)
    else:
        assert (wt == 0).all()
    eq = variance_adaptive_weights(np.ones(sd.shape[1]), sd)[0]
    i, j = np.argmax(sd[0]), np.argmin(sd[0])
    if sd[0, i] > sd[0, j]:
        assert eq[i] > eq[j]


def test_singleton_and_all_equal_groups_are_zero():
    """Defined cases: a singleton group and a group where every objective is constant get advantage 0
    (also with ε = 0, ddof = 0 or 1); a group where one objective is constant is driven by the others."""
    rewards = np.array([[0.1, 3.0], [0.1, 3.0], [0.1, 3.0], [0.7, -2.0], [1.0, 0.1], [0.0, 0.1]])
    group = np.array([4, 4, 4, 9, -1, -1])
    mask = np.ones((6, 3), bool)
    mask[1, 1:] = False
    for ddof in (0, 1):
        for eps in (0.0, 1e-6):
            adv = dvao_advantage(rewards, group, mask, DVAOConfig(eps=eps, ddof=ddof))
            assert np.isfinite(adv).all() and (adv[:4] == 0).all()
            # group -1: objective 2 is constant, so A = (r_1 − μ_1)/(σ_1 + ε) from objective 1 alone
            sd1 = np.std([1.0, 0.0], ddof=ddof)
            np.testing.assert_allclose(adv[4:, 0], np.array([0.5, -0.5]) / (sd1 + eps), rtol=1e-12)


def test_registry_entry_and_make_inputs():
    """The registry exposes DVAO as an advantage entry whose example inputs have (B, K) rewards."""
    spec = registry.get("dvao")
    assert spec.kind == "advantage" and spec.status == "implemented"
    for seed in range(5):
        inp = spec.make_inputs(np.random.default_rng(seed))
        assert inp["rewards"].ndim == 2 and inp["rewards"].shape[0] == inp["mask"].shape[0] == inp["group"].shape[0]
        adv = spec(**inp)
        assert adv.shape == inp["mask"].shape and np.isfinite(adv).all()


def test_bad_input_raises():
    """Bad input raises RLSpecValueError naming the argument: rewards not (B, K), NaN/inf rewards,
    negative / all-zero / wrongly many weights, bad ddof or ε, group of the wrong length, non-boolean mask."""
    R = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    g = np.array([0, 0, 1])
    m = np.ones((3, 2), bool)
    cases = [
        (dict(rewards=R[:, 0]), "rewards"), (dict(rewards=R[:2]), "rewards"), (dict(rewards=R[..., None]), "rewards"),
        (dict(rewards=np.where(R == 1, np.nan, R)), "rewards"), (dict(rewards=np.where(R == 1, np.inf, R)), "rewards"),
        (dict(group=g[:2]), "group"), (dict(mask=m.astype(float) * 0.5), "mask"),
        (dict(config=DVAOConfig(weights=(1.0, 2.0, 3.0))), "weights"),
    ]
    for override, name in cases:
        kw = {**dict(rewards=R, group=g, mask=m), **{k: v for k, v in override.items() if k != "config"}}
        with pytest.raises(RLSpecValueError, match=name):
            dvao_advantage(**kw, config=override.get("config"))
    for bad in [(-1.0, 2.0), (0.0, 0.0), (1.0, float("nan")), ()]:
        with pytest.raises(RLSpecValueError, match="weights"):
            DVAOConfig(weights=bad)
    with pytest.raises(RLSpecValueError, match="ddof"):
        DVAOConfig(ddof=2)
    with pytest.raises(RLSpecValueError, match="eps"):
        DVAOConfig(eps=-1e-6)
