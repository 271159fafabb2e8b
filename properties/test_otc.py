"""Properties of OTC's tool-integrated reward (arXiv 2504.14870) — reference/otc.py.

Expected values come from the closed forms (sin/cos of the stated arguments), from explicit loops,
or from exact enumeration of a small bandit; never from the code under test.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties.strategies import seeds
from rlspec.reference import registry
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.otc import OTCConfig, otc_mapping, otc_optimal_calls, otc_reward, otc_tool_reward

M_MAX = 60


@given(st.integers(1, 20), st.sampled_from([0.5, 1.0, 2.0, 7.0]))
def test_tool_reward_maximal_at_optimal_calls(n, c):
    """Claim (OTC-GRPO reward design): for an optimal count n > 0 the tool reward is maximal, equal to 1,
    exactly at m = n, and every other m ∈ [0, 60] scores strictly less."""
    m = np.arange(M_MAX + 1, dtype=float)
    r = otc_tool_reward(m, np.full_like(m, n), c)
    assert r[n] == pytest.approx(1.0, abs=1e-15)
    assert np.all(np.delete(r, n) < 1.0 - 1e-6)
    assert np.all((r >= 0.0) & (r <= 1.0))


@given(st.integers(1, 20))
def test_tool_reward_unimodal(n):
    """Claim (unimodality, n > 0): r_tool(0, n) = 0, r_tool strictly increases on m = 0..n, strictly decreases
    for m ≥ n, and tends to 0 as m → ∞ (f(m, n) → 2n, sin(π) = 0). Checked against the closed form
    sin(π·m/(m + n)) (= sin(f π/2n) with f = 2nm/(m + n))."""
    m = np.arange(M_MAX + 1, dtype=float)
    r = otc_tool_reward(m, np.full_like(m, n))
    np.testing.assert_allclose(r, np.sin(np.pi * m / (m + n)), rtol=1e-13, atol=1e-15)
    assert r[0] == 0.0
    assert np.all(np.diff(r[: n + 1]) > 0)
    assert np.all(np.diff(r[n:]) < 0)
    assert otc_tool_reward(np.array([1e9]), np.array([float(n)]))[0] < 1e-6


@given(st.sampled_from([0.25, 1.0, 3.0]))
def test_ppo_branch_values_and_decay(c):
    """Claim (OTC-PPO, n = 0): r_tool = cos(mπ/(2m + c)): 1 at m = 0, strictly decreasing, → cos(π/2) = 0;
    with c = 1 the first values are 1, ½, cos(2π/5) ≈ 0.309."""
    m = np.arange(M_MAX + 1, dtype=float)
    r = otc_tool_reward(m, np.zeros_like(m), c)
    np.testing.assert_allclose(r, [math.cos(k * math.pi / (2 * k + c)) for k in range(M_MAX + 1)], rtol=1e-13)
    assert r[0] == 1.0 and np.all(np.diff(r) < 0)
    assert otc_tool_reward(np.array([1e9]), np.array([0.0]), c)[0] < 1e-6
    if c == 1.0:
        np.testing.assert_allclose(r[:3], [1.0, 0.5, math.cos(2 * math.pi / 5)], rtol=1e-13)


@given(seeds(), st.sampled_from(["grpo", "ppo"]))
def test_reward_zero_for_wrong_answers(rng, variant):
    """Claim (r = α·r_tool·r_φ): a wrong answer is worth exactly 0 whatever its tool use; a correct one is worth
    α·r_tool ∈ [0, α]."""
    B = int(rng.integers(1, 16))
    calls, correct = rng.integers(0, 9, B), rng.random(B) < 0.5
    group = rng.integers(0, 4, B)
    alpha = float(rng.uniform(0.1, 3.0))
    r = otc_reward(calls, correct, group, OTCConfig(variant=variant, alpha=alpha))
    assert np.all(r[~correct] == 0.0)
    assert np.all((r[correct] >= 0.0) & (r[correct] <= alpha + 1e-12))


@given(seeds())
def test_grpo_n_is_fewest_calls_among_correct(rng):
    """Claim (OTC-GRPO's estimate of n): n is the fewest calls among the group's correct rollouts (a loop over
    groups here); so the cheapest correct rollout of a group gets the full reward α, and among correct rollouts
    of a group the reward never increases with the number of calls."""
    B = int(rng.integers(1, 16))
    calls, correct, group = rng.integers(0, 9, B), rng.random(B) < 0.6, rng.integers(0, 4, B)
    n = otc_optimal_calls(calls.astype(float), correct, group)
    for i in range(B):
        ok = [calls[j] for j in range(B) if group[j] == group[i] and correct[j]]
        assert n[i] == (min(ok) if ok else 0)
    r = otc_reward(calls, correct, group, OTCConfig(alpha=2.0))
    for k in np.unique(group):
        rows = (group == k) & correct
        if rows.any():
            m, rr = calls[rows], r[rows]
            assert rr[np.argmin(m)] == pytest.approx(2.0)
            order = np.argsort(m, kind="stable")
            assert np.all(np.diff(rr[order]) <= 1e-15)


@given(st.integers(0, 40), st.integers(0, 40))
def test_mapping_is_harmonic_mean(m, n):
    """Definition (mapping f): f(0, 0) = 0, f(m, 0) = m, otherwise the harmonic mean 2nm/(m + n), which lies
    between min(m, n) and max(m, n) and equals n at m = n."""
    f = float(otc_mapping(np.array([float(m)]), np.array([float(n)]))[0])
    if n == 0:
        assert f == m
    else:
        assert f == pytest.approx(2 * n * m / (m + n), rel=1e-15)
        assert min(m, n) - 1e-12 <= f <= max(m, n) + 1e-12
    if m == n:
        assert f == pytest.approx(n)


def test_composition_grpo_ppo():
    """Composition (the pipeline place: reward → advantage → loss): OTC rewards fed to the registry's grpo
    advantage and ppo loss. In a group whose correct rollouts used 1, 2 and 4 calls, the GRPO advantages are
    ordered 1 > 2 > 4 > wrong, and at ratio 1 the ppo gradient dlogp follows the reverse order (the 1-call
    rollout's log-probability is raised most, the wrong one lowered), whereas the plain correctness reward
    treats the three correct rollouts alike."""
    calls = np.array([1, 2, 4, 3])
    correct = np.array([True, True, True, False])
    group = np.zeros(4, dtype=int)
    mask = np.ones((4, 3), bool)
    rewards = otc_reward(calls, correct, group)
    adv = registry.get("grpo")(rewards=rewards, group=group, mask=mask)
    assert adv[0, 0] > adv[1, 0] > adv[2, 0] > adv[3, 0]
    logp = np.log(np.full((4, 3), 0.3))
    _, dlogp = registry.get("ppo")(logp=logp, old_logp=logp.copy(), adv=adv, mask=mask)
    assert dlogp[0, 0] < dlogp[1, 0] < dlogp[2, 0] < dlogp[3, 0]
    assert dlogp[0, 0] < 0 < dlogp[3, 0]
    plain = registry.get("grpo")(rewards=correct.astype(float), group=group, mask=mask)
    assert plain[0, 0] == plain[1, 0] == plain[2, 0]


def _bandit_expected_gradient(pi, success, G, reward_fn):
    """Exact E[Σ_i A_i ∇θ log π(m_i)] of GRPO (population std) on a softmax bandit over m, by enumerating every
    group of G (calls, correct) outcomes."""
    K = pi.shape[0]
    outcomes = [(m, ok) for m in range(K) for ok in (False, True)]
    p_out = np.array([pi[m] * (success[m] if ok else 1 - success[m]) for m, ok in outcomes])
    grad = np.zeros(K)
    for combo in itertools.product(range(len(outcomes)), repeat=G):
        prob = np.prod(p_out[list(combo)])
        ms = np.array([outcomes[c][0] for c in combo])
        oks = np.array([outcomes[c][1] for c in combo])
        r = reward_fn(ms, oks)
        sd = r.std()
        if sd == 0:
            continue
        A = (r - r.mean()) / sd
        for a, m in zip(A, ms):
            grad += prob * a * (np.eye(K)[m] - pi)
    return grad


def test_bandit_converges_to_optimal_calls():
    """Claim (the paper's motivation: OTC-GRPO learns the optimal number of calls): on a bandit whose action is
    the number of calls m ∈ {0..3}, success probability rising until m* = 1 and flat after it, exact expected-
    gradient GRPO ascent on OTC-GRPO rewards makes m* the most likely action; with the plain correctness reward
    m = 1, 2, 3 stay exactly tied (no preference among equally accurate call counts)."""
    success = np.array([0.2, 0.9, 0.9, 0.9])
    G, lr, steps = 3, 2.0, 25
    otc_fn = lambda ms, oks: otc_reward(ms, oks, np.zeros(len(ms), int))  # noqa: E731
    plain_fn = lambda ms, oks: oks.astype(float)  # noqa: E731
    finals = {}
    for name, fn in (("otc", otc_fn), ("plain", plain_fn)):
        theta = np.zeros(4)
        for _ in range(steps):
            pi = np.exp(theta - theta.max())
            pi /= pi.sum()
            theta = theta + lr * _bandit_expected_gradient(pi, success, G, fn)
        pi = np.exp(theta - theta.max())
        finals[name] = pi / pi.sum()
    assert np.argmax(finals["otc"]) == 1 and finals["otc"][1] > 0.5
    np.testing.assert_allclose(finals["plain"][1:], finals["plain"][1], rtol=1e-9)


def test_bad_input_raises():
    """Design, 'Bad input': negative or fractional calls, non-boolean correct, missing group for OTC-GRPO,
    length mismatches and bad constants raise RLSpecValueError naming the argument."""
    with pytest.raises(RLSpecValueError, match="calls"):
        otc_reward([-1, 2], [True, True], [0, 0])
    with pytest.raises(RLSpecValueError, match="calls"):
        otc_reward([1.5, 2], [True, True], [0, 0])
    with pytest.raises(RLSpecValueError, match="correct"):
        otc_reward([1, 2], [0.5, 1.0], [0, 0])
    with pytest.raises(RLSpecValueError, match="correct"):
        otc_reward([1, 2], [True], [0, 0])
    with pytest.raises(RLSpecValueError, match="group"):
        otc_reward([1, 2], [True, False])
    with pytest.raises(RLSpecValueError, match="group"):
        otc_reward([1, 2], [True, False], [0])
    with pytest.raises(RLSpecValueError, match="c"):
        OTCConfig(c=0.0)
    with pytest.raises(RLSpecValueError, match="variant"):
        OTCConfig(variant="dpo")
    assert otc_reward([1, 2], [True, False], config=OTCConfig(variant="ppo"))[1] == 0.0
