"""Properties of ASPO's advantage shaping (arXiv 2508.19201, §ASPO Eq. 1–2) — reference/aspo.py.

The base advantage A_c is taken from the registry's ``grpo`` entry (an independent implementation of the
z-score); expected shaped values are written out here with explicit loops over groups.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties.strategies import seeds
from rlspec.reference import registry
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.aspo import ASPOConfig, aspo_advantage, reward_shaping_rewards
from rlspec.reference.grpo import GRPOConfig

KS = st.sampled_from([0.0, 0.3, 0.7, 0.9, 0.999])
DELTAS = st.sampled_from([-2.0, -2.5, -0.5, 1.0, -50.0])


def tool_batch(rng: np.random.Generator, B: int | None = None, continuous: bool = False):
    B = int(rng.integers(1, 16)) if B is None else B
    T = int(rng.integers(1, 5))
    group = rng.integers(0, max(1, B // 3), size=B)
    rewards = rng.normal(size=B) if continuous else rng.integers(0, 2, size=B).astype(float)
    length = rng.integers(5, 300, size=B)
    first = np.where(rng.random(B) < 0.75, (rng.random(B) * length).astype(int), -1)
    mask = np.ones((B, T), bool)
    return rewards, group, mask, first, length


def base(rewards, group, mask, cfg=None):
    cfg = cfg or ASPOConfig()
    return registry.get("grpo")(rewards=rewards, group=group, mask=mask,
                                config=GRPOConfig(ddof=cfg.ddof, eps=cfg.eps))[:, 0]


@given(seeds(), KS, DELTAS, st.booleans())
def test_sign_of_base_advantage_preserved(rng, k, delta, continuous):
    """Claim (ASPO's design goal, Eq. 2 with 0 ≤ k < 1): shaping never flips the correctness signal:
    sign(A_i) = sign(A_c,i) for every response (strictly: A_c > 0 ⇒ A > 0, A_c < 0 ⇒ A < 0)."""
    R, g, M, p, L = tool_batch(rng, continuous=continuous)
    cfg = ASPOConfig(delta=delta, k=k)
    A = aspo_advantage(R, g, M, first_call=p, length=L, config=cfg)[:, 0]
    A_c = base(R, g, M, cfg)
    assert np.all(np.sign(A) == np.sign(A_c))


@given(seeds(), KS, DELTAS, st.booleans())
def test_change_bounded_by_k_times_base(rng, k, delta, continuous):
    """Claim (the clip in Eq. 2): |A_i − A_c,i| ≤ k·|A_c,i|, and responses that are wrong or call no tool are
    unchanged (A = A_c exactly)."""
    R, g, M, p, L = tool_batch(rng, continuous=continuous)
    cfg = ASPOConfig(delta=delta, k=k)
    A = aspo_advantage(R, g, M, first_call=p, length=L, config=cfg)[:, 0]
    A_c = base(R, g, M, cfg)
    assert np.all(np.abs(A - A_c) <= k * np.abs(A_c) * (1 + 1e-12) + 1e-15)
    untouched = ~((R > 0) & (p >= 0))
    np.testing.assert_array_equal(A[untouched], A_c[untouched])


@given(seeds(), DELTAS)
def test_inert_when_base_advantage_is_zero(rng, delta):
    """Claim (ASPO is inert where A_c = 0): an all-correct group (std-normalised A_c = 0) keeps A = 0 for every
    response whatever the call positions; so do singleton groups."""
    G = int(rng.integers(1, 9))
    L = rng.integers(10, 100, size=G)
    p = (rng.random(G) * L).astype(int)
    A = aspo_advantage(np.ones(G), np.zeros(G, int), np.ones((G, 2), bool), first_call=p, length=L,
                       config=ASPOConfig(delta=delta, k=0.9))
    np.testing.assert_array_equal(A, 0.0)


@given(seeds())
def test_earlier_call_larger_advantage(rng):
    """Claim (δ < 0 encourages early tool use): in a group with correct responses of equal A_c, when no clip binds
    (small |δ|), the response whose first call comes earlier gets the strictly larger advantage, and the shaping
    terms sum to zero over the eligible responses (mean-centred p)."""
    G = int(rng.integers(3, 9))
    R = np.array([1.0] * (G - 1) + [0.0])  # one wrong answer so that A_c > 0 for the correct ones
    L = np.full(G, 400)
    p = rng.permutation(np.arange(10, 10 + 7 * G, 7))[:G]
    cfg = ASPOConfig(delta=-0.01, k=0.9)
    A = aspo_advantage(R, np.zeros(G, int), np.ones((G, 1), bool), first_call=p, length=L, config=cfg)[:, 0]
    A_c = base(R, np.zeros(G, int), np.ones((G, 1), bool), cfg)
    elig = R > 0
    order = np.argsort(p[elig])
    assert np.all(np.diff(A[elig][order]) < 0)
    assert abs((A - A_c)[elig].sum()) < 1e-12


@given(seeds(), KS, DELTAS)
def test_matches_explicit_loop_and_ignores_padding(rng, k, delta):
    """Definition (Eq. 2, written as a loop over groups): E = correct ∧ calls the tool; b_i = δ(p_i − mean_E p)/
    mean_E L; A_i = A_c,i + clip(b_i, ±k|A_c,i|) on E. The output is broadcast over valid tokens, 0 on padding,
    and NaN/inf padding in the mask's masked cells does not matter (the mask only shapes the output)."""
    R, g, _, p, L = tool_batch(rng)
    B, T = R.shape[0], 4
    mask = np.arange(T)[None, :] < rng.integers(0, T + 1, size=B)[:, None]
    cfg = ASPOConfig(delta=delta, k=k)
    A_c = base(R, g, np.ones((B, 1), bool), cfg)
    expect = A_c.copy()
    for grp in np.unique(g):
        E = [i for i in range(B) if g[i] == grp and R[i] > 0 and p[i] >= 0]
        if not E:
            continue
        pbar, Lbar = np.mean([p[i] for i in E]), np.mean([L[i] for i in E])
        for i in E:
            b = delta * (p[i] - pbar) / Lbar
            expect[i] = A_c[i] + min(max(b, -k * abs(A_c[i])), k * abs(A_c[i]))
    got = aspo_advantage(R, g, mask, first_call=p, length=L, config=cfg)
    np.testing.assert_allclose(got, np.where(mask, expect[:, None], 0.0), rtol=1e-12, atol=1e-14)


@given(seeds())
def test_no_tool_calls_is_base_advantage(rng):
    """Claim (ASPO only adds a tool-use term): with no tool call in the batch (first_call None or all −1), the
    ASPO advantage equals the registry's grpo advantage exactly."""
    R, g, M, _, L = tool_batch(rng, continuous=True)
    expect = registry.get("grpo")(rewards=R, group=g, mask=M)
    np.testing.assert_array_equal(aspo_advantage(R, g, M), expect)
    np.testing.assert_array_equal(aspo_advantage(R, g, M, first_call=np.full(R.shape[0], -1), length=L), expect)


def test_rejected_reward_shaping_flips_correct_answers():
    """Claim (the paper's motivation, Eq. 1 vs Eq. 2): with the rejected reward shaping, an all-correct group has
    A_i = z-score of the shaping term alone, so correct answers with later calls get NEGATIVE advantages (here
    half of them); ASPO gives every one of them 0 (inert) and, in a group with one wrong answer, keeps every
    correct answer positive."""
    G = 8
    p = np.array([5, 10, 20, 40, 60, 80, 120, 160])
    L = np.full(G, 300)
    g = np.zeros(G, int)
    R_shaped = reward_shaping_rewards(np.ones(G, bool), p, g)
    A_rs = registry.get("grpo")(rewards=R_shaped, group=g, mask=np.ones((G, 1), bool))[:, 0]
    assert (A_rs < 0).sum() == G // 2 and np.all(A_rs[p >= 60] < 0)
    A = aspo_advantage(np.ones(G), g, np.ones((G, 1), bool), first_call=p, length=L)
    np.testing.assert_array_equal(A, 0.0)
    R = np.ones(G)
    R[-1] = 0.0
    A = aspo_advantage(R, g, np.ones((G, 1), bool), first_call=p, length=L)[:, 0]
    assert np.all(A[:-1] > 0) and A[-1] < 0


def test_composition_with_ppo():
    """Composition (the pipeline place: advantage → loss): ASPO advantages fed to the registry's ppo loss. At ratio
    1, dlogp = −c·A, so among correct answers the earliest first call gets the most negative dlogp (its
    probability is raised most) and the wrong answer a positive one; masked tokens get no gradient."""
    R = np.array([1.0, 1.0, 1.0, 0.0])
    p = np.array([10, 80, 40, -1])
    L = np.array([200, 200, 200, 200])
    mask = np.array([[1, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 1]], bool)
    adv = aspo_advantage(R, np.zeros(4, int), mask, first_call=p, length=L)
    logp = np.where(mask, np.log(0.4), np.nan)
    _, dlogp = registry.get("ppo")(logp=logp, old_logp=logp.copy(), adv=adv, mask=mask)
    first = dlogp[:, 0]
    assert first[0] < first[2] < first[1] < 0 < first[3]
    assert np.all(dlogp[~mask] == 0.0)


def test_bad_input_raises():
    """Design, 'Bad input': bad k/δ, mis-shaped or fractional first_call, negative lengths, a zero length for an
    eligible response and a non-boolean correct raise RLSpecValueError naming the argument."""
    R, g, M = np.array([1.0, 0.0]), np.array([0, 0]), np.ones((2, 2), bool)
    with pytest.raises(RLSpecValueError, match="k"):
        ASPOConfig(k=1.0)
    with pytest.raises(RLSpecValueError, match="delta"):
        ASPOConfig(delta=float("nan"))
    with pytest.raises(RLSpecValueError, match="first_call"):
        aspo_advantage(R, g, M, first_call=[1])
    with pytest.raises(RLSpecValueError, match="first_call"):
        aspo_advantage(R, g, M, first_call=[1.5, 2.0])
    with pytest.raises(RLSpecValueError, match="length"):
        aspo_advantage(R, g, M, first_call=[1, 2], length=[-1, 5])
    with pytest.raises(RLSpecValueError, match="length"):
        aspo_advantage(R, g, M, first_call=[0, 2], length=[0, 5])
    with pytest.raises(RLSpecValueError, match="correct"):
        aspo_advantage(R, g, M, first_call=[0, 2], correct=[0.5, 1.0])
    with pytest.raises(RLSpecValueError, match="rewards"):
        aspo_advantage([1.0, np.nan], g, M)
