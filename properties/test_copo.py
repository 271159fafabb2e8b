"""Properties of COPO (arXiv 2508.04138): a batch-normalised global advantage per prompt blended with GRPO's
local advantage by the answer-entropy gate w = σ(k(H − b)) (equations from our notes, papers_B.md §18).

Expected values are computed here from the raw rewards and answers (np.unique counts, np.mean / np.std),
never taken from the module under test; the loss gradient is checked by central finite differences.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties.strategies import finite_difference, ragged_mask, seeds
from rlspec.reference import registry
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.copo import (
    COPOConfig,
    COPOLossConfig,
    answer_entropy,
    copo_advantage,
    copo_components,
    copo_loss,
    entropy_coefficient,
)
from rlspec.reference.grpo import GRPOConfig, grpo_advantage


@st.composite
def copo_batches(draw, max_P: int = 5, max_G: int = 7, max_T: int = 4):
    rng = draw(seeds())
    P = draw(st.integers(1, max_P))
    sizes = rng.integers(1, max_G + 1, size=P)
    group = np.repeat(rng.choice(np.arange(-20, 20), size=P, replace=False), sizes)
    B = len(group)
    answers = rng.integers(0, int(rng.integers(1, 6)), size=B)
    kind = rng.integers(3)
    R = (answers == 0).astype(float) if kind == 0 else (rng.choice([0.0, 0.5, 1.0], size=B) if kind == 1
                                                         else rng.normal(size=B))
    order = rng.permutation(B)
    return {"rewards": R[order], "group": group[order], "mask": ragged_mask(rng, B, int(rng.integers(1, max_T + 1))),
            "answers": answers[order]}


configs = st.builds(COPOConfig, k=st.sampled_from([0.0, 5.0, 20.0]), b=st.sampled_from([0.0, 0.5, 1.5]),
                    blend=st.sampled_from(["soft", "soft-with-forced"]), entropy_coef=st.booleans(),
                    ddof=st.sampled_from([0, 1]), eps=st.sampled_from([0.0, 1e-6]))


def entropy_bits(a) -> float:
    _, n = np.unique(a, return_counts=True)
    p = n / n.sum()
    return float(-(p * np.log2(p)).sum()) + 0.0


def direct(b, cfg: COPOConfig):
    """Ã per row straight from the definitions (eq. 1-4 of the module docstring)."""
    R, g, a = b["rewards"], b["group"], b["answers"]
    prompts = np.unique(g)
    H = {q: entropy_bits(a[g == q]) for q in prompts}
    Rg = {}
    for q in prompts:
        G = (g == q).sum()
        c = 1.0 - ((1 - 1 / G) / np.log2(G)) * H[q] if (cfg.entropy_coef and G > 1) else 1.0
        Rg[q] = R[g == q].mean() * c if R[g == q].min() < R[g == q].max() else R[g == q][0] * c
    vals = np.array([Rg[q] for q in prompts])
    out = np.zeros(len(R))
    for i in range(len(R)):
        q = g[i]
        Rq = R[g == q]
        if len(vals) > 1 and vals.min() < vals.max():
            Ag = (Rg[q] - vals.mean()) / (vals.std(ddof=cfg.ddof) + cfg.eps)
        else:
            Ag = 0.0
        zero = len(Rq) < 2 or Rq.min() == Rq.max() or abs(R[i] - Rq.mean()) <= 1e-12 * np.abs(Rq).max()
        Al = 0.0 if zero else (R[i] - Rq.mean()) / (Rq.std(ddof=cfg.ddof) + cfg.eps)
        w = 1.0 / (1.0 + np.exp(-cfg.k * (H[q] - cfg.b)))
        if cfg.blend == "soft-with-forced" and zero:
            w = 0.0
        out[i] = (1 - w) * Ag + w * Al
    return out


def full(b):
    return dict(b, mask=np.ones((len(b["rewards"]), 1), bool))


def outcome(b):
    return {k: v for k, v in full(b).items() if k != "answers"}


# --------------------------------------------------------------------------- advantage side
@given(b=copo_batches(), cfg=configs)
def test_global_advantages_zero_sum_across_prompts(b, cfg):
    """Eq. (3): the global advantage is a z-score over the batch's prompts, so Σ over prompts of A_glob(q) = 0
    (one term per prompt, not per rollout); it is constant within a prompt; P = 1 gives 0."""
    c = copo_components(**b, config=cfg)
    prompts, first = np.unique(b["group"], return_index=True)
    per = c["A_glob"][first]
    for q, v in zip(prompts, per):
        assert (c["A_glob"][b["group"] == q] == v).all()
    assert abs(per.sum()) <= 1e-9 * max(1.0, np.abs(per).max()) * len(per)
    if len(prompts) == 1:
        assert (c["A_glob"] == 0).all()


@given(b=copo_batches(), cfg=configs)
def test_local_advantages_zero_sum_per_group(b, cfg):
    """Eq. (1): A_loc is GRPO's advantage (same ddof, ε), so it sums to zero within every prompt group."""
    c = copo_components(**b, config=cfg)
    ref = grpo_advantage(**outcome(b), config=GRPOConfig(ddof=cfg.ddof, eps=cfg.eps))[:, 0]
    np.testing.assert_allclose(c["A_loc"], ref, rtol=1e-12, atol=1e-12)
    for q in np.unique(b["group"]):
        s = c["A_loc"][b["group"] == q]
        assert abs(s.sum()) <= 1e-9 * max(1.0, np.abs(s).max()) * len(s)


@given(rng=seeds(), G=st.integers(1, 12))
def test_entropy_range(rng, G):
    """H(q) ∈ [0, log2 G] bits: 0 iff every rollout gives the same answer, log2 G iff all answers differ."""
    g = np.zeros(G, int)
    a = rng.integers(0, int(rng.integers(1, G + 2)), size=G)
    H = answer_entropy(a, g)
    assert (H == H[0]).all() and 0.0 <= H[0] <= np.log2(G) + 1e-12
    assert H[0] == pytest.approx(entropy_bits(a), abs=1e-12)
    assert answer_entropy(np.full(G, 3), g)[0] == 0.0
    assert answer_entropy(np.arange(G), g)[0] == pytest.approx(np.log2(G), abs=1e-12)


@given(rng=seeds(), G=st.integers(2, 12))
def test_entropy_coefficient_range(rng, G):
    """Eq. (2): c = 1 − λ_H H with λ_H = (1 − 1/G)/log2 G lies in [1/G, 1]: 1 for a consistent group, 1/G when
    all G answers differ; c = 1 for a singleton group."""
    a = rng.integers(0, G, size=G)
    H = answer_entropy(a, np.zeros(G, int))
    c = entropy_coefficient(H, np.full(G, float(G)))
    assert (1 / G - 1e-12 <= c).all() and (c <= 1 + 1e-12).all()
    assert entropy_coefficient(np.array([np.log2(G)]), np.array([float(G)]))[0] == pytest.approx(1 / G, abs=1e-12)
    assert entropy_coefficient(np.array([0.0]), np.array([float(G)]))[0] == 1.0
    assert entropy_coefficient(np.array([0.0]), np.array([1.0]))[0] == 1.0


@given(b=copo_batches(), cfg=configs)
def test_blend_weight_formula_and_range(b, cfg):
    """Eq. (4): w = σ(k(H − b)) from the answer entropy, in [0, 1] (open interval for finite k·H), non-decreasing in
    H; with the paper's k = 20, b = 0.5 a consistent group has w = σ(−10) ≈ 4.54e−5; the forced mode sets w = 0
    exactly where A_loc = 0."""
    c = copo_components(**b, config=cfg)
    H = np.array([entropy_bits(b["answers"][b["group"] == q]) for q in b["group"]])
    w = 1.0 / (1.0 + np.exp(-cfg.k * (H - cfg.b)))
    if cfg.blend == "soft":
        np.testing.assert_allclose(c["w"], w, rtol=1e-12, atol=1e-300)
    else:
        np.testing.assert_allclose(c["w"], np.where(c["A_loc"] == 0, 0.0, w), rtol=1e-12, atol=1e-300)
    assert ((c["w"] >= 0) & (c["w"] <= 1)).all()
    order = np.argsort(H)
    assert (np.diff(w[order]) >= 0).all()
    d = copo_components(**dict(b, answers=np.zeros_like(b["answers"])))  # every group consistent
    np.testing.assert_allclose(d["w"], 1 / (1 + np.exp(10.0)), rtol=1e-12)
    assert d["w"][0] == pytest.approx(4.5398e-5, rel=1e-4)


@given(rng=seeds(), P=st.integers(2, 5), G=st.integers(2, 6), blend=st.sampled_from(["soft", "soft-with-forced"]))
def test_consistent_groups_still_get_a_signal(rng, P, G, blend):
    """The paper's motivation: a group whose rollouts all agree (all correct, or all wrong with one answer) has
    zero local advantage, yet its blended advantage is non-zero, positive for an all-correct group whose mean
    reward beats the batch mean and negative for an all-wrong one below it."""
    R = np.concatenate([np.ones(G), np.zeros(G)] + [rng.integers(0, 2, size=G).astype(float) for _ in range(P - 2)])
    answers = np.where(R > 0, 0, 1)
    g = np.repeat(np.arange(P), G)
    b = {"rewards": R, "group": g, "mask": np.ones((len(R), 1), bool), "answers": answers}
    c = copo_components(**b, config=COPOConfig(blend=blend))
    A = copo_advantage(**b, config=COPOConfig(blend=blend))[:, 0]
    assert (c["A_loc"][: 2 * G] == 0).all()
    assert (A[:G] > 0).all() and (A[G: 2 * G] < 0).all()


@given(b=copo_batches())
def test_gate_limits(b):
    """k = 0 gives the even mix ½(A_glob + A_loc); b → −∞ (w → 1) gives GRPO's advantage; b → +∞ (w → 0) the
    global advantage alone."""
    c = copo_components(**full(b))
    half = copo_advantage(**full(b), config=COPOConfig(k=0.0))[:, 0]
    np.testing.assert_allclose(half, 0.5 * (c["A_glob"] + c["A_loc"]), rtol=1e-12, atol=1e-12)
    local = copo_advantage(**full(b), config=COPOConfig(b=-1e3))[:, 0]
    np.testing.assert_allclose(local, grpo_advantage(**outcome(b))[:, 0], rtol=1e-10, atol=1e-10)
    glob = copo_advantage(**full(b), config=COPOConfig(b=1e3))[:, 0]
    np.testing.assert_allclose(glob, c["A_glob"], rtol=1e-12, atol=1e-12)


@given(b=copo_batches(), cfg=configs)
def test_matches_direct_computation(b, cfg):
    """Eq. (1)-(4) together against a direct, per-row reading of the definitions; masked positions are 0 and
    the mask only shapes the broadcast."""
    A = copo_advantage(**b, config=cfg)
    exp = direct(b, cfg)
    np.testing.assert_allclose(A, np.where(b["mask"], exp[:, None], 0.0), rtol=1e-9, atol=1e-9)


# --------------------------------------------------------------------------- loss side
@st.composite
def loss_batches(draw):
    b = draw(copo_batches())
    rng = draw(seeds())
    M = b["mask"]
    c = copo_components(**b, config=COPOConfig(blend=draw(st.sampled_from(["soft", "soft-with-forced"]))))
    old = -rng.random(M.shape)
    logp = old + draw(st.sampled_from([0.05, 0.3, 1.0])) * rng.normal(size=M.shape)
    T = M.shape[1]
    return {"logp": np.where(M, logp, np.nan), "old_logp": np.where(M, old, np.nan), "mask": M,
            "adv": np.where(M, np.repeat(c["A_loc"][:, None], T, 1), np.nan),
            "adv_global": np.where(M, np.repeat(c["A_glob"][:, None], T, 1), np.inf), "blend_weight": c["w"],
            "group": b["group"]}


loss_configs = st.builds(COPOLossConfig, agg=st.sampled_from(["token-mean", "seq-mean-token-mean",
                                                              "seq-mean-token-sum", "group-token-mean"]),
                         eps_low=st.sampled_from([0.1, 0.2]), eps_high=st.sampled_from([0.2, 0.28]),
                         dual_clip_c=st.sampled_from([None, 3.0]))


@given(x=loss_batches(), cfg=loss_configs)
def test_loss_gradient_matches_finite_differences(x, cfg):
    """The hand gradient dlogp = c ⊙ r ⊙ [(1 − w) g(A_glob) + w g(A_loc)] equals central differences of the loss
    (points within 1e-5 of a clip boundary, where the loss has a kink, are skipped)."""
    loss, dlogp = copo_loss(**x, config=cfg)
    M = x["mask"]
    r = np.exp(np.where(M, x["logp"] - x["old_logp"], 0.0))
    kink = (np.abs(r - (1 - cfg.eps_low)) < 1e-5) | (np.abs(r - (1 + cfg.eps_high)) < 1e-5)
    if cfg.dual_clip_c is not None:
        kink |= np.abs(r - cfg.dual_clip_c) < 1e-5
    fd = finite_difference(lambda lp: copo_loss(**dict(x, logp=lp), config=cfg)[0], np.where(M, x["logp"], 0.0),
                           M & ~kink)
    np.testing.assert_allclose(np.where(kink, 0.0, dlogp), fd, rtol=1e-5, atol=1e-8)
    assert (dlogp[~M] == 0).all() and np.isfinite(loss)


@given(x=loss_batches())
def test_loss_limits(x):
    """w ≡ 1: PPO with A_loc; w ≡ 0: PPO with A_glob; no global inputs: PPO with A_loc (same clip range and
    aggregation), values and gradients."""
    ppo = registry.get("ppo")
    cfg = COPOLossConfig()
    pcfg = registry.get("ppo").config(agg=cfg.agg)
    B = len(x["blend_weight"])
    one = copo_loss(**dict(x, blend_weight=np.ones(B)), config=cfg)
    zero = copo_loss(**dict(x, blend_weight=np.zeros(B)), config=cfg)
    none = copo_loss(**{k: v for k, v in x.items() if k not in ("adv_global", "blend_weight")}, config=cfg)
    base = {k: x[k] for k in ("logp", "old_logp", "mask")}
    for got, adv in ((one, x["adv"]), (zero, x["adv_global"]), (none, x["adv"])):
        exp = ppo(**base, adv=adv, config=pcfg)
        assert got[0] == pytest.approx(exp[0], rel=1e-12, abs=1e-15)
        np.testing.assert_allclose(got[1], exp[1], rtol=1e-12, atol=1e-15)


@given(b=copo_batches(), scale=st.sampled_from([0.0, 0.1, 0.5]))
def test_feeds_ppo(b, scale):
    """Composition with the registry's PPO loss: PPO fed COPO's blended advantage Ã gives the same loss and
    gradient as copo_loss (the blend of two clipped losses) exactly when both are linear in the advantage —
    on-policy (scale 0) always, off-policy on every token where A_loc and A_glob share a sign or the ratio is
    inside the clip range; on-policy the gradient weight is −Ã·c."""
    rng = np.random.default_rng(b["rewards"].size)
    M = b["mask"]
    old = np.where(M, -rng.random(M.shape), np.nan)
    logp = np.where(M, old + scale * rng.normal(size=M.shape), np.nan)
    c = copo_components(**b)
    T = M.shape[1]
    A_loc, A_glob = np.repeat(c["A_loc"][:, None], T, 1), np.repeat(c["A_glob"][:, None], T, 1)
    lcfg = COPOLossConfig()
    _, d_blend = copo_loss(logp, old, A_loc, M, config=lcfg, adv_global=A_glob, blend_weight=c["w"])
    adv = registry.get("copo")(**b)
    _, d_ppo = registry.get("ppo")(logp=logp, old_logp=old, adv=adv, mask=M, config=registry.get("ppo").config(
        agg=lcfg.agg))
    r = np.exp(np.where(M, logp - old, 0.0))
    linear = (np.sign(A_loc) * np.sign(A_glob) >= 0) | ((r >= 1 - lcfg.eps_low) & (r <= 1 + lcfg.eps_high))
    np.testing.assert_allclose(np.where(linear, d_ppo, 0.0), np.where(linear, d_blend, 0.0), rtol=1e-10, atol=1e-14)
    if scale == 0.0:
        n = M.sum(axis=1, keepdims=True)
        nonempty = (n[:, 0] > 0).sum()
        exp = np.where(M, -adv / np.maximum(n, 1) / max(nonempty, 1), 0.0)
        np.testing.assert_allclose(d_ppo, exp, rtol=1e-12, atol=1e-15)


def test_bad_input_raises():
    R, g, M = np.array([1.0, 0.0, 1.0]), np.zeros(3, int), np.ones((3, 2), bool)
    with pytest.raises(RLSpecValueError, match="answers"):
        copo_advantage(R, g, M, answers=np.array([0.5, 1, 2]))
    with pytest.raises(RLSpecValueError, match="answers"):
        copo_advantage(R, g, M, answers=np.array([0, 1]))
    with pytest.raises(RLSpecValueError, match="rewards"):
        copo_advantage(np.array([1.0, np.nan, 0.0]), g, M)
    for bad in ({"k": -1.0}, {"b": np.inf}, {"blend": "hard"}, {"ddof": 3}, {"eps": -1e-6}):
        with pytest.raises(RLSpecValueError):
            COPOConfig(**bad)
    lp = np.zeros((3, 2))
    with pytest.raises(RLSpecValueError, match="blend_weight"):
        copo_loss(lp, lp, lp, M, adv_global=lp)
    with pytest.raises(RLSpecValueError, match="blend_weight"):
        copo_loss(lp, lp, lp, M, adv_global=lp, blend_weight=np.array([0.5, 1.5, 0.0]))
    with pytest.raises(RLSpecValueError, match="adv_global"):
        copo_loss(lp, lp, lp, M, adv_global=np.full((3, 2), np.nan), blend_weight=np.ones(3))
