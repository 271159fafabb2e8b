"""The tool bandit (reference/envs/tool_bandit.py, TAPO's toy) checked before TAPO uses it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties.strategies import seeds
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.envs import tool_bandit as env


@given(seeds())
def test_expected_reward_is_the_policy_average_and_bounded_by_the_optimum(rng):
    """J_q(θ) = Σ_a π(a|q) P[q, a] (checked by an explicit loop over actions) and J_q ≤ J*_q = max_a P[q, a],
    with equality for the deterministic policy a*(q) (a softmax with a large margin)."""
    theta = rng.normal(size=(2, 3)) * 3
    pi = np.exp(theta) / np.exp(theta).sum(axis=1, keepdims=True)
    loop = [sum(pi[q, a] * env.P_CORRECT[q, a] for a in range(3)) for q in range(2)]
    np.testing.assert_allclose(env.expected_reward(theta), loop, rtol=1e-13)
    assert (env.expected_reward(theta) <= env.optimum() + 1e-15).all()
    best = np.full((2, 3), -50.0)
    best[np.arange(2), env.optimal_actions()] = 50.0
    np.testing.assert_allclose(env.expected_reward(best), env.optimum(), atol=1e-12)
    assert env.optimal_actions().tolist() == [1, 2] and env.optimum().tolist() == [0.9, 0.95]


@given(st.integers(0, 2), st.integers(0, 4))
def test_episode_layout(action, n_tool):
    """Decision at position 0, the answer last; tool-output tokens exist (and are flagged) only after a tool call."""
    valid, tool, decision = env.episode_layout(action, n_tool)
    assert valid.shape == (2 + n_tool,) and valid[0] and valid[-1] and decision.tolist() == [True] + [False] * (n_tool + 1)
    assert tool.sum() == (n_tool if action else 0) and not (tool & ~valid).any() and not tool[[0, -1]].any()


def test_bad_input_raises():
    with pytest.raises(RLSpecValueError, match="action"):
        env.episode_layout(3)
    with pytest.raises(RLSpecValueError, match="P"):
        env.optimum(np.array([[1.5, 0.0, 0.0]]))
