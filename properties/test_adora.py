"""Properties of ADORA (arXiv 2602.10019): a group-constant multiplier on GRPO advantages, λ for groups whose
longest correct answer is not longer than the mean non-truncated wrong answer (official code, ShadeCloak/ADORA).

Expected values are built here from the raw rewards, lengths and GRPO's reference advantage, never from the
ADORA module's own classification.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties.strategies import groups, seeds
from rlspec.reference import registry
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.adora import ADORAConfig, adora_advantage, adora_weights
from rlspec.reference.grpo import GRPOConfig, grpo_advantage


@st.composite
def adora_batches(draw, max_B: int = 14, max_T: int = 8):
    rng = draw(seeds())
    B, T = draw(st.integers(1, max_B)), draw(st.integers(1, max_T))
    R = rng.choice([0.0, 0.5, 1.0], size=B) if rng.random() < 0.7 else rng.normal(0.5, 0.6, size=B)
    lengths = rng.integers(0, T + 1, size=B)
    return {"rewards": R, "group": groups(rng, B), "mask": np.arange(T)[None, :] < lengths[:, None]}


configs = st.builds(ADORAConfig, lam=st.sampled_from([0.1, 0.5, 1.0, 2.0]), tas_weight=st.sampled_from([1.0, 3.0]),
                    correct_threshold=st.sampled_from([0.5, 0.0, 1.01]), max_length=st.sampled_from([None, 3, 4054]),
                    variant=st.sampled_from(["llm", "vl"]), std_normalize=st.booleans(), ddof=st.sampled_from([0, 1]),
                    singleton=st.sampled_from(["zero", "mean0std1"]))


def grpo_of(b, cfg: ADORAConfig):
    return grpo_advantage(**b, config=GRPOConfig(std_normalize=cfg.std_normalize, ddof=cfg.ddof, eps=cfg.eps,
                                                 singleton=cfg.singleton))


def expected_weight(R, ell, cfg: ADORAConfig) -> float:
    """ω of one group, read off the definitions (sets C and W, then the variant's rule)."""
    C = [i for i in range(len(R)) if R[i] > cfg.correct_threshold]
    W = [i for i in range(len(R)) if R[i] <= cfg.correct_threshold and (cfg.max_length is None or ell[i] < cfg.max_length)]
    if not C:
        return 1.0 if cfg.variant == "vl" else cfg.lam
    if not W:
        return cfg.tas_weight if cfg.variant == "llm" else cfg.lam
    return cfg.tas_weight if max(ell[i] for i in C) > sum(ell[i] for i in W) / len(W) else cfg.lam


@given(b=adora_batches(), cfg=configs)
def test_group_constant_factor_keeps_zero_sum_and_signs(b, cfg):
    """The stated mechanism: A = ω_g · Â with ω_g > 0 the same for every rollout of a group, so each group's
    advantages still sum to zero (the baseline is unchanged, only the per-prompt step size moves) and every
    advantage keeps the sign of GRPO's."""
    A = adora_advantage(**b, config=cfg)
    base = grpo_of(b, cfg)
    w = adora_weights(**b, config=cfg)
    for k in np.unique(b["group"]):
        rows = b["group"] == k
        assert np.unique(w[rows]).size == 1 and w[rows][0] > 0
        if rows.sum() > 1 or cfg.singleton == "zero":
            Af = adora_advantage(**dict(b, mask=np.ones((len(w), 1), bool)), config=cfg)[rows, 0]
            assert abs(Af.sum()) <= 1e-9 * max(1.0, np.abs(Af).max()) * rows.sum()
    assert (np.sign(A) == np.sign(base)).all()
    np.testing.assert_allclose(A, w[:, None] * base, rtol=1e-13, atol=0)


@given(b=adora_batches(), cfg=configs)
def test_neutral_setting_is_grpo(b, cfg):
    """λ = 1 and tas_weight = 1: ADORA is GRPO (same ddof, ε, singleton rule), whatever the lengths."""
    neutral = ADORAConfig(**{**cfg.__dict__, "lam": 1.0, "tas_weight": 1.0})
    np.testing.assert_array_equal(adora_advantage(**b, config=neutral), grpo_of(b, neutral))


@given(b=adora_batches(), cfg=configs)
def test_classification_matches_definition(b, cfg):
    """Length Advantage (code): per group, ω = tas_weight iff the longest correct response (r > τ) is longer
    than the mean length of the wrong (r ≤ τ) responses shorter than ℓ_max; otherwise λ; edge cases per variant."""
    w = adora_weights(**b, config=cfg)
    ell = b["mask"].sum(axis=1)
    for k in np.unique(b["group"]):
        rows = np.flatnonzero(b["group"] == k)
        assert w[rows[0]] == expected_weight(b["rewards"][rows], ell[rows], cfg)


@given(b=adora_batches(), lam=st.sampled_from([0.01, 0.1, 0.7, 1.0]))
def test_attenuation_bounds_magnitude(b, lam):
    """Attenuation (the code's setting, tas_weight = 1, λ ≤ 1): |A_i| ≤ |Â_i| for every rollout, with equality
    in TAS groups and |A_i| = λ|Â_i| in TDS groups."""
    cfg = ADORAConfig(lam=lam)
    A, base = adora_advantage(**b, config=cfg), grpo_of(b, cfg)
    assert (np.abs(A) <= np.abs(base)).all()
    w = adora_weights(**b, config=cfg)
    assert set(np.unique(w)) <= {lam, 1.0}


@given(rng=seeds(), G=st.integers(2, 8), variant=st.sampled_from(["llm", "vl"]))
def test_longer_correct_answers_switch_to_tas(rng, G, variant):
    """The claim behind the length criterion (long correct reasoning is favoured): with rewards fixed, making a
    correct response longer never lowers its group's weight, and once it is longer than the mean wrong length
    the group is TAS (weight 1) — so ADORA up-weights groups whose correct answers are long."""
    R = np.zeros(G)
    R[: int(rng.integers(1, G))] = 1.0  # at least one correct and one wrong
    lens = rng.integers(1, 20, size=G)
    cfg = ADORAConfig(variant=variant, max_length=None)
    g = np.zeros(G, int)
    prev = 0.0
    for extra in range(0, 40, 3):
        ell = lens.copy()
        ell[0] += extra  # row 0 is correct
        w = adora_weights(R, g, np.ones((G, 1), bool), config=cfg, lengths=ell)[0]
        assert w >= prev
        prev = w
        wrong_mean = ell[R <= 0.5].mean()
        assert w == (1.0 if ell[R > 0.5].max() > wrong_mean else cfg.lam)
    assert prev == 1.0


def test_truncated_wrong_answers_are_ignored():
    """A wrong response of length ≥ ℓ_max (cut off at the length limit) does not count in mean_W ℓ: the same group
    is TDS when the truncated answer is short enough to count and TAS once it is filtered out."""
    R = np.array([1.0, 0.0, 0.0])
    mask = np.ones((3, 1), bool)
    ell = np.array([10, 4, 100])
    g = np.zeros(3, int)
    assert adora_weights(R, g, mask, config=ADORAConfig(max_length=None), lengths=ell)[0] == 0.1  # 10 < 52
    assert adora_weights(R, g, mask, config=ADORAConfig(max_length=100), lengths=ell)[0] == 1.0  # 10 > 4
    # default lengths are the mask row sums (the code's eos_mask.sum)
    M = np.arange(6)[None, :] < np.array([3, 2, 6])[:, None]
    assert adora_weights(R, g, M, config=ADORAConfig(max_length=6))[0] == 1.0  # 3 > 2 (6 is truncated)
    assert adora_weights(R, g, M, config=ADORAConfig(max_length=None))[0] == 0.1  # 3 ≤ (2 + 6)/2


def test_variants_edge_cases():
    """LLM code: no correct answer ⇒ TDS (λ); correct answers and every wrong one truncated ⇒ TAS. VL code: no
    correct answer ⇒ weight 1; correct answers and no countable wrong one ⇒ TDS (mean over ∅ taken as +∞)."""
    g, M = np.zeros(3, int), np.ones((3, 1), bool)
    none_correct, all_correct = np.array([0.0, 0.2, 0.4]), np.array([1.0, 1.0, 0.9])
    assert adora_weights(none_correct, g, M, config=ADORAConfig(variant="llm"))[0] == 0.1
    assert adora_weights(none_correct, g, M, config=ADORAConfig(variant="vl"))[0] == 1.0
    assert adora_weights(all_correct, g, M, config=ADORAConfig(variant="llm"))[0] == 1.0
    assert adora_weights(all_correct, g, M, config=ADORAConfig(variant="vl"))[0] == 0.1


@given(b=adora_batches())
def test_feeds_ppo(b):
    """Composition with the registry's PPO loss (token-mean): ADORA's per-token gradient weights are GRPO's,
    multiplied by each group's ω; on-policy they are −ω_g Â_i / Σ mask."""
    ppo = registry.get("ppo")
    rng = np.random.default_rng(len(b["rewards"]))
    old = np.where(b["mask"], -rng.random(b["mask"].shape), np.nan)
    logp = np.where(b["mask"], old + 0.1 * rng.normal(size=old.shape), np.nan)
    cfg = ADORAConfig(lam=0.25)
    w = adora_weights(**b, config=cfg)
    _, d_adora = ppo(logp=logp, old_logp=old, adv=registry.get("adora")(**b, config=cfg), mask=b["mask"])
    _, d_grpo = ppo(logp=logp, old_logp=old, adv=grpo_of(b, cfg), mask=b["mask"])
    np.testing.assert_allclose(d_adora, w[:, None] * d_grpo, rtol=1e-12, atol=1e-15)


@given(b=adora_batches(), extra=st.integers(1, 4))
def test_masked_positions_never_read(b, extra):
    """Rewards are per sequence; the mask gives the lengths and the broadcast: appending fully masked columns
    changes nothing but the output's width, and padding of the output is 0."""
    A = adora_advantage(**b)
    assert (A[~b["mask"]] == 0).all() and np.isfinite(A).all()
    wide = np.concatenate([b["mask"], np.zeros((len(b["rewards"]), extra), bool)], axis=1)
    np.testing.assert_array_equal(adora_advantage(**dict(b, mask=wide))[:, : b["mask"].shape[1]], A)


def test_bad_input_raises():
    R, g, M = np.array([1.0, 0.0]), np.zeros(2, int), np.ones((2, 3), bool)
    with pytest.raises(RLSpecValueError, match="lengths"):
        adora_advantage(R, g, M, lengths=np.array([1, -2]))
    with pytest.raises(RLSpecValueError, match="lengths"):
        adora_advantage(R, g, M, lengths=np.array([1, 2, 3]))
    with pytest.raises(RLSpecValueError, match="rewards"):
        adora_advantage(np.array([1.0, np.inf]), g, M)
    for bad in ({"lam": 0.0}, {"lam": -0.1}, {"tas_weight": 0.0}, {"max_length": 0}, {"max_length": 2.5},
                {"variant": "both"}, {"ddof": 2}, {"eps": -1.0}, {"singleton": "drop"},
                {"correct_threshold": np.nan}):
        with pytest.raises(RLSpecValueError):
            ADORAConfig(**bad)
