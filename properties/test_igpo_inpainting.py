"""Properties of IGPO (arXiv 2509.10396): inpainting replacement, entropy filter, loss, and the exact toy of
:mod:`rlspec.reference.envs.masked_diffusion` (L = 4 tokens, V = 3, exact-match reward).

Expected values come from outside the code under test: closed forms for binary groups, an independent
sort for the entropy filter (Python ``sorted`` and ``fractions.Fraction`` for ⌊n/5⌋), registry ``grpo`` /
``dr_grpo`` / ``ppo``, central finite differences, and exact toy probabilities against seeded simulation.

Run ``python properties/test_igpo_inpainting.py`` to redraw docs/algorithms/img/igpo_inpainting.png.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlspec import optimized
from rlspec.reference import registry
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.envs import masked_diffusion as md
from rlspec.reference.igpo_inpainting import (
    IGPOConfig,
    IGPOLossConfig,
    chunk_spans,
    entropy_filter,
    hint_positions,
    igpo_inpainting,
    igpo_inpainting_loss,
    igpo_rollouts,
    inpaint_ratios,
    make_inputs,
    make_loss_inputs,
)


@st.composite
def binary_groups(draw):
    """P groups of sizes 1..8 with binary rewards; some groups all wrong; inpainted rewards binary."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    sizes = rng.integers(1, 9, size=int(rng.integers(1, 5)))
    group = np.repeat(rng.permutation(50)[:sizes.size] - 10, sizes)
    if rng.random() < 0.5:
        group = group[rng.permutation(group.size)]
    B = group.size
    p = rng.choice([0.0, 0.2, 0.6])
    r = (rng.random(B) < p).astype(float)
    r_inp = (rng.random(B) < rng.choice([0.2, 0.5, 1.0])).astype(float)
    mask = np.arange(5)[None, :] < rng.integers(0, 6, size=B)[:, None]
    return r, group, mask, r_inp, int(rng.integers(0, 6))


# ---------------------------------------------------------------------------- replacement and advantage


@given(data=binary_groups())
def test_replacement_restores_nonzero_advantage(data):
    """Abstract / Fig. 2: an all-wrong group has A ≡ 0; after replacing k' = min(#correct inpainted,
    max_replacements) responses with correct inpainted ones its advantages are A = 1 − k'/G on the k' correct rows
    and −k'/G on the others (Σ A = 0), non-zero as soon as 0 < k' < G."""
    r, g, mask, r_inp, mr = data
    cfg = IGPOConfig(max_replacements=mr)
    r2, src, adv = igpo_inpainting(r, g, mask, r_inp, config=cfg)
    for k in np.unique(g):
        rows = g == k
        G = rows.sum()
        if r[rows].any():
            continue
        kp = min(int(r_inp[rows].sum()), mr)
        assert r2[rows].sum() == kp
        A = np.where(r2[rows] == 1, 1 - Fraction(kp, G), -Fraction(kp, G)).astype(float)
        expect = np.where(mask[rows], A[:, None], 0.0)
        np.testing.assert_allclose(adv[rows], expect, atol=1e-12)
        if 0 < kp < G:
            assert np.abs(adv[rows][mask[rows]]).min(initial=1.0) > 0 or not mask[rows].any()


@given(data=binary_groups())
def test_only_all_wrong_groups_change_and_first_rows_are_replaced(data):
    """Code convention: groups with a correct response are untouched; in an all-wrong group exactly the first
    k' rows in batch order are replaced, each by a distinct correct inpainted response of the same group (the
    first ones in batch order with select="first")."""
    r, g, mask, r_inp, mr = data
    r2, src, _ = igpo_inpainting(r, g, mask, r_inp, config=IGPOConfig(max_replacements=mr))
    for k in np.unique(g):
        rows = np.flatnonzero(g == k)
        good = rows[r_inp[rows] == 1]
        kp = 0 if r[rows].any() else min(good.size, mr)
        np.testing.assert_array_equal(src[rows[:kp]], good[:kp])
        assert (src[rows[kp:]] == -1).all()
        np.testing.assert_array_equal(r2[rows[kp:]], r[rows[kp:]])


@given(data=binary_groups(), seed=st.integers(0, 2**32 - 1))
def test_random_selection_gives_the_same_rewards_and_advantages(data, seed):
    """The code picks the correct inpainted responses at random (randperm): with verifier rewards every choice
    yields the same rewards and advantages; the sources are correct inpainted rows of the same group."""
    r, g, mask, r_inp, mr = data
    a = igpo_inpainting(r, g, mask, r_inp, config=IGPOConfig(max_replacements=mr))
    b = igpo_inpainting(r, g, mask, r_inp, config=IGPOConfig(max_replacements=mr, select="random"),
                        rng=np.random.default_rng(seed))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[2], b[2])
    used = b[1][b[1] >= 0]
    assert len(set(used.tolist())) == used.size and (r_inp[used] == 1).all()
    assert (g[b[1] >= 0] == g[used]).all()


@given(seed=st.integers(0, 2**32 - 1), L=st.integers(0, 80), lo=st.integers(1, 6), extra=st.integers(0, 5),
       rho=st.floats(0.0, 1.0))
def test_inpaint_ratios_chunks_and_revealed_counts(seed, L, lo, extra, rho):
    """Code (create_spacing_scaled_inpainting_sequence): chunks tile [0, L) from the start with sizes in
    [min, max], the uncovered tail is shorter than min; the hint set is a union of n − int(n(1 − ρ)) whole
    chunks; ratios are sorted draws in [low, high]."""
    rng = np.random.default_rng(seed)
    spans = chunk_spans(L, lo, lo + extra, np.random.default_rng(seed))
    ends = [0] + [e for _, e in spans]
    assert all(s == ends[i] for i, (s, _) in enumerate(spans))
    assert all(lo <= e - s <= lo + extra for s, e in spans)
    assert L - ends[-1] < lo or (L - ends[-1] == 0)
    hint = hint_positions(L, rho, lo, lo + extra, np.random.default_rng(seed))
    n = len(spans)
    want = 0 if rho <= 0 else (n if rho >= 1 else n - math.floor(n * (1.0 - rho)))
    assert sum(hint[s:e].all() for s, e in spans) == want
    assert hint.sum() == sum(e - s for s, e in spans if hint[s:e].all())
    rh = inpaint_ratios(8, 0.2, 0.6, rng)
    assert (np.diff(rh) >= 0).all() and (rh >= 0.2).all() and (rh <= 0.6).all()


def test_revealed_count_law_matches_the_exact_distribution():
    """With one-token chunks, the number of hints under ρ ~ U[0.2, 0.6] follows P(j) = |((j−1)/L, j/L] ∩ [low,
    high]| / (high − low) = (0, 0.125, 0.625, 0.25, 0) for L = 4: 20 000 draws within 5 standard errors."""
    rng = np.random.default_rng(1)
    counts = np.array([hint_positions(4, rho, 1, 1, rng).sum() for rho in rng.uniform(0.2, 0.6, size=20000)])
    law = md.hint_count_law(4, 0.2, 0.6)
    np.testing.assert_allclose(law, [0, 0.125, 0.625, 0.25, 0], atol=1e-12)
    for j in range(5):
        assert abs((counts == j).mean() - law[j]) <= 5 * np.sqrt(law[j] * (1 - law[j]) / counts.size) + 1e-12


def _toy_group(theta, y_star, G, rng, cfg, method):
    """One group of the toy: responses, rewards, optional inpainting, replacement; returns (y, hints, adv)."""
    L = y_star.size
    y = md.sample(theta, G, rng)
    r = md.reward(y, y_star)
    hi = np.zeros((G, L), dtype=bool)
    y_inp, r_inp = y, np.zeros(G)
    if method == "igpo" and not r.any():
        hi = np.array([hint_positions(L, rho, cfg.min_chunk, cfg.max_chunk, rng)
                       for rho in inpaint_ratios(G, cfg.ratio_low, cfg.ratio_high, rng)])
        y_inp = md.sample(theta, G, rng, y_star, hi)
        r_inp = md.reward(y_inp, y_star)
    _, src, adv = igpo_inpainting(r, np.zeros(G, dtype=np.int64), np.ones((G, L), bool), r_inp, config=cfg)
    rows = src >= 0
    y = np.where(rows[:, None], y_inp[np.maximum(src, 0)], y)
    hints = rows[:, None] & hi[np.maximum(src, 0)]
    return y, hints, adv


def test_igpo_restores_gradients_on_the_toy():
    """Abstract ("restores meaningful gradients"), made exact on the toy (p = Π π_l(y*_l), q = P(inpainted correct)):
    P(some A ≠ 0 in a group of 8) = 1 − (1−p)^8 − p^8 for GRPO and + (1−p)^8 (1 − (1−q)^8) for IGPO. From a
    policy with p = 0.008: 0.063 vs 0.60; 4 000 seeded groups each within 5 standard errors."""
    theta = np.log(np.tile([0.3, 0.35, 0.35], (4, 1)))
    y_star = np.zeros(4, dtype=np.int64)
    p, q = md.success(theta, y_star), md.inpaint_success(theta, y_star, 0.2, 0.6)
    exact = md.nonzero_advantage_probability(p, q, 8, 4)
    cfg = IGPOConfig(min_chunk=1, max_chunk=1)
    rng = np.random.default_rng(2)
    n = 4000
    for method, e in zip(("grpo", "igpo"), exact):
        hits = np.mean([np.abs(_toy_group(theta, y_star, 8, rng, cfg, method)[2]).max() > 0 for _ in range(n)])
        assert abs(hits - e) <= 5 * np.sqrt(e * (1 - e) / n)
    assert exact[1] > 9 * exact[0]


def test_ratio_zero_is_grpo_with_resampling():
    """The code's matched baseline (ratio 0, run_igpo.sh): with ρ_high = 0 no token is ever a hint, so the
    "inpainted" responses are plain resamples, and the loss on any batch equals registry ppo's."""
    rng = np.random.default_rng(3)
    assert not any(hint_positions(40, rho, 5, 10, rng).any() for rho in inpaint_ratios(8, 0.0, 0.0, rng))
    inp = make_loss_inputs(rng)
    cfg = IGPOLossConfig()
    loss, d = igpo_inpainting_loss(**dict(inp, hint_mask=np.zeros_like(inp["mask"])), config=cfg)
    ref_loss, ref_d = registry.get("ppo")(inp["logp"], inp["old_logp"], inp["adv"], inp["mask"])
    assert loss == pytest.approx(ref_loss, abs=1e-14)
    np.testing.assert_allclose(d, ref_d, atol=1e-15)


def test_composition_grpo_ppo():
    """IGPO feeds the baselines: registry dr_grpo on the mixed rewards is IGPO's advantage (code: r − mean) and
    registry grpo its z-scored variant; through registry ppo the all-wrong group's gradient is 0 before the
    replacement and non-zero after, on every row of the group."""
    G, T = 8, 5
    rng = np.random.default_rng(4)
    r = np.r_[np.zeros(G), (rng.random(G) < 0.5).astype(float)]
    g = np.repeat([0, 1], G)
    mask = np.ones((2 * G, T), bool)
    r_inp = np.r_[np.array([0, 1, 0, 1, 1, 0, 0, 0.0]), np.ones(G)]
    r2, src, adv = igpo_inpainting(r, g, mask, r_inp)
    np.testing.assert_allclose(adv, registry.get("dr_grpo")(rewards=r2, group=g, mask=mask), atol=1e-15)
    _, _, adv_z = igpo_inpainting(r, g, mask, r_inp, config=IGPOConfig(std_normalize=True))
    np.testing.assert_allclose(adv_z, registry.get("grpo")(rewards=r2, group=g, mask=mask), atol=1e-12)
    logp = -rng.exponential(size=(2 * G, T))
    before = registry.get("ppo")(logp, logp, registry.get("dr_grpo")(rewards=r, group=g, mask=mask), mask)[1]
    after = registry.get("ppo")(logp, logp, adv, mask)[1]
    assert not before[:G].any() and (after[:G] != 0).all()


# ---------------------------------------------------------------------------- entropy filter and loss


@st.composite
def filter_cases(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    B, T = int(rng.integers(1, 6)), int(rng.integers(1, 40))
    mask = np.arange(T)[None, :] < rng.integers(0, T + 1, size=B)[:, None]
    hint = rng.random((B, T)) < rng.uniform(0, 1, size=(B, 1))
    H = rng.integers(0, 4, size=(B, T)) * 0.5          # many ties
    q = draw(st.sampled_from([0.2, 0.5, 0.05, 1.0, 0.0]) | st.floats(0.0, 1.0))
    return mask, hint, H, q


@given(case=filter_cases())
def test_entropy_filter_keeps_the_stated_fraction(case):
    """Code (entropy_clipping_ratio_inpaint): in every row with n hint tokens in the loss, exactly
    max(1, ⌊n·q⌋) are kept — ⌊n/5⌋ exactly for q = 0.2 — namely the first ones in the order (entropy
    descending, position ascending); every self-generated token in the mask is kept; nothing outside it."""
    mask, hint, H, q = case
    keep = entropy_filter(mask, hint, H, q)
    assert not (keep & ~mask).any()
    assert (keep | ~(mask & ~hint)).all()
    for b in range(mask.shape[0]):
        cand = [t for t in range(mask.shape[1]) if mask[b, t] and hint[b, t]]
        n = len(cand)
        k = 0 if n == 0 else max(1, math.floor(n * q))
        if q == 0.2:
            assert k == (0 if n == 0 else max(1, int(Fraction(n, 5))))
        want = sorted(cand, key=lambda t: (-H[b, t], t))[:k]
        assert sorted(np.flatnonzero(keep[b] & hint[b]).tolist()) == sorted(want)


@given(seed=st.integers(0, 2**32 - 1))
@settings(max_examples=25)
def test_filtered_hint_tokens_get_no_gradient(seed):
    """Hint tokens that the filter drops get dlogp = 0 (token ratio), kept ones and self-generated ones do not
    (where the clip does not bind)."""
    inp = make_loss_inputs(np.random.default_rng(seed))
    keep = entropy_filter(inp["mask"], inp["hint_mask"], np.nan_to_num(inp["entropy"]), 0.2)
    _, d = igpo_inpainting_loss(**inp)
    assert not d[~keep].any()
    loss0, d0 = igpo_inpainting_loss(**dict(inp, old_logp=inp["logp"]))   # on-policy: nothing clipped
    assert ((d0 != 0) == (keep & (inp["adv"] != 0))).all()


@given(seed=st.integers(0, 2**32 - 1))
@settings(max_examples=25)
def test_without_hints_the_loss_is_ppo(seed):
    """No hint_mask (a batch without inpainted responses): the loss and its gradient are registry ppo's."""
    inp = make_loss_inputs(np.random.default_rng(seed))
    base = {k: inp[k] for k in ("logp", "old_logp", "adv", "mask")}
    a = igpo_inpainting_loss(**base)
    b = registry.get("ppo")(**base)
    assert a[0] == pytest.approx(b[0], abs=1e-14)
    np.testing.assert_allclose(a[1], b[1], atol=1e-15)


@given(seed=st.integers(0, 2**32 - 1), ratio=st.sampled_from(["token", "sequence"]), beta=st.sampled_from([0.0, 0.05]))
@settings(max_examples=30)
def test_loss_gradient_matches_finite_differences(seed, ratio, beta):
    """dlogp (hand-derived: token clip gradient on kept positions; sequence ratio s_b/n_b spread over the row;
    β(1 − e^{ref − logp})) equals central differences; garbage padding is never read."""
    rng = np.random.default_rng(seed)
    inp = make_loss_inputs(rng)
    inp["ref_logp"] = inp["logp"] + rng.normal(scale=0.3, size=inp["logp"].shape)
    cfg = IGPOLossConfig(ratio=ratio, beta=beta)
    _, d = igpo_inpainting_loss(**inp, config=cfg)
    m = inp["mask"]
    x = np.where(m, inp["logp"], 0.0)
    fd = np.zeros_like(x)
    h = 1e-6
    for b, t in np.argwhere(m):
        xp, xm = x.copy(), x.copy()
        xp[b, t] += h
        xm[b, t] -= h
        fd[b, t] = (igpo_inpainting_loss(**dict(inp, logp=xp), config=cfg)[0]
                    - igpo_inpainting_loss(**dict(inp, logp=xm), config=cfg)[0]) / (2 * h)
    np.testing.assert_allclose(d, fd, atol=1e-7)
    garbage = dict(inp, logp=np.where(m, inp["logp"], np.inf), entropy=np.where(m & inp["hint_mask"], inp["entropy"],
                                                                                   -5.0))
    out = igpo_inpainting_loss(**garbage, config=cfg)
    assert out[0] == igpo_inpainting_loss(**inp, config=cfg)[0]


# ---------------------------------------------------------------------------- learning on the toy


def toy_train(method: str, steps: int, lr: float, seed: int, G: int = 8, p0: float = 0.1) -> np.ndarray:
    """One prompt, L = 4, V = 3, y* = 0000, π_l(y*_l) = p0 at start (p = p0⁴): per step one group of G through
    IGPO (or plain GRPO), the loss registry igpo_inpainting_loss (on-policy), SGD on θ. Returns p after each step."""
    rng = np.random.default_rng(seed)
    y_star = np.zeros(4, dtype=np.int64)
    theta = np.log(np.tile([p0, (1 - p0) / 2, (1 - p0) / 2], (4, 1)))
    cfg = IGPOConfig(min_chunk=1, max_chunk=1)
    hist = [md.success(theta, y_star)]
    for _ in range(steps):
        y, hints, adv = _toy_group(theta, y_star, G, rng, cfg, method)
        logp = md.token_logp(theta, y)
        H = np.broadcast_to(md.entropy(theta), y.shape).copy()
        _, dlogp = igpo_inpainting_loss(logp, logp, adv, np.ones(y.shape, bool), hint_mask=hints, entropy=H)
        theta = theta - lr * md.grad_theta(theta, y, dlogp)
        hist.append(md.success(theta, y_star))
    return np.asarray(hist)


def test_igpo_learns_where_grpo_is_stuck():
    """The paper's motivation on the toy (p₀ = 1e-4, so (1 − p₀)^8 ≈ 0.999 of GRPO groups carry no gradient):
    in 150 steps (lr 5, seeds 0-2) IGPO reaches P(correct) ≥ 0.9 while GRPO stays ≤ 0.01."""
    for seed in range(3):
        assert toy_train("igpo", 150, 5.0, seed)[-1] >= 0.9
        assert toy_train("grpo", 150, 5.0, seed)[-1] <= 0.01


def test_igpo_rollouts_with_callables():
    """igpo_rollouts calls the sampler with hints only when the whole group failed, with G hint masks whose
    sizes follow the sorted ratios (one-token chunks: non-decreasing hint counts)."""
    rng = np.random.default_rng(6)
    y_star = np.array([0, 1, 2, 0, 1, 2])
    theta = np.log(np.full((6, 3), 1 / 3))
    calls = []

    def sample(hint):
        calls.append(hint)
        return md.sample(theta, 1, rng, y_star, hint)[0]

    out = igpo_rollouts(0, 8, sample, lambda y: float((y == y_star).all()), 6,
                        IGPOConfig(min_chunk=1, max_chunk=1, ratio_low=0.2, ratio_high=0.9), rng)
    assert all(c is None for c in calls[:8]) and len(calls) == 16
    sizes = [h.sum() for h in out["hints"]]
    assert sizes == sorted(sizes) and out["inpaint_rewards"].shape == (8,)


# ---------------------------------------------------------------------------- optimized and bad input


@given(seed=st.integers(0, 2**32 - 1))
@settings(max_examples=25)
def test_optimized_matches_reference(seed):
    """Torch replacement/advantage, entropy filter and loss (autograd) = the reference in float64."""
    rng = np.random.default_rng(seed)
    inp = make_inputs(rng)
    ref = igpo_inpainting(**inp)
    got = optimized.get("igpo_inpainting")(**{k: torch.as_tensor(v) for k, v in inp.items()})
    np.testing.assert_array_equal(got[0].numpy(), ref[0])
    np.testing.assert_array_equal(got[1].numpy(), ref[1])
    np.testing.assert_allclose(got[2].numpy(), ref[2], atol=1e-14)
    li = make_loss_inputs(rng)
    for cfg in (IGPOLossConfig(), IGPOLossConfig(ratio="sequence", keep_ratio=0.5)):
        loss, d = igpo_inpainting_loss(**li, config=cfg)
        t = {k: torch.as_tensor(v) for k, v in li.items()}
        t["logp"] = t["logp"].clone().requires_grad_(True)
        out = optimized.get("igpo_inpainting_loss")(**t, config=cfg)
        out.backward()
        assert float(out.detach()) == pytest.approx(loss, abs=1e-12)
        np.testing.assert_allclose(np.nan_to_num(t["logp"].grad.numpy()), d, atol=1e-12)


def test_bad_input_raises():
    inp = make_inputs(np.random.default_rng(0))
    with pytest.raises(RLSpecValueError, match="inpaint_rewards"):
        igpo_inpainting(**dict(inp, inpaint_rewards=np.ones(inp["rewards"].size + 1)))
    with pytest.raises(RLSpecValueError, match="rng"):
        igpo_inpainting(**inp, config=IGPOConfig(select="random"))
    with pytest.raises(RLSpecValueError, match="ratio_high"):
        IGPOConfig(ratio_low=0.5, ratio_high=0.2)
    with pytest.raises(RLSpecValueError, match="max_chunk"):
        IGPOConfig(min_chunk=5, max_chunk=4)
    with pytest.raises(RLSpecValueError, match="correct"):
        igpo_inpainting(**inp, correct=np.ones(inp["rewards"].size))
    li = make_loss_inputs(np.random.default_rng(1))
    li["hint_mask"] = li["mask"].copy()
    li["mask"][:] = True
    li["logp"], li["old_logp"], li["adv"] = (np.nan_to_num(li[k]) for k in ("logp", "old_logp", "adv"))
    with pytest.raises(RLSpecValueError, match="entropy"):
        igpo_inpainting_loss(**dict(li, entropy=None))
    with pytest.raises(RLSpecValueError, match="entropy"):
        igpo_inpainting_loss(**dict(li, entropy=-np.ones(li["mask"].shape)))
    with pytest.raises(RLSpecValueError, match="ref_logp"):
        igpo_inpainting_loss(**dict(li, entropy=np.ones(li["mask"].shape)), config=IGPOLossConfig(beta=0.1))
    with pytest.raises(RLSpecValueError, match="keep_ratio"):
        IGPOLossConfig(keep_ratio=1.5)
    with pytest.raises(RLSpecValueError, match="hint_mask"):
        igpo_inpainting_loss(**dict(li, hint_mask=np.ones((1, 1), bool), entropy=np.ones(li["mask"].shape)))


def make_figure(path: str = "docs/algorithms/img/igpo_inpainting.png") -> None:  # pragma: no cover - docs only
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for seed in range(3):
        ax.plot(toy_train("igpo", 150, 5.0, seed), color="tab:blue", alpha=0.8, label="IGPO" if seed == 0 else None)
        ax.plot(toy_train("grpo", 150, 5.0, seed), color="tab:gray", alpha=0.8, label="GRPO" if seed == 0 else None)
    ax.set_yscale("log")
    ax.set_xlabel("step (one group of 8)")
    ax.set_ylabel("exact P(correct response)")
    ax.set_title("Toy masked diffusion (L = 4, V = 3), start p = 1e-4, 3 seeds")
    ax.legend(loc="center right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":  # pragma: no cover
    make_figure()
