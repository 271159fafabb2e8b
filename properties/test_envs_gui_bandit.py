"""The GUI bandit (reference/envs/gui_bandit.py, CRAFT-GUI's toy) checked before the curriculum uses it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given

from properties.strategies import seeds
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.craft_gui import craft_gui_reward
from rlspec.reference.envs import gui_bandit as env


def test_reward_table_optimum_is_the_correct_actions():
    """On every task the composite reward is 1 exactly on the actions with the right type and a target cell
    (|S_n| of them: 9, 4, 1 by tier), and < 1 elsewhere; tiers and step counts are as stated."""
    tasks = env.make_tasks()
    assert [t.tier for t in tasks] == [0] * 4 + [1] * 4 + [2] * 4
    for t in tasks:
        fmt, type_ok, arg = env.rule_components(t)
        R = craft_gui_reward(fmt, type_ok, arg, env.judge_standin(t))
        typ, cell = env.action_parts(np.arange(env.N_ACTIONS))
        best = (typ == t.gt_type) & t.targets()[cell]
        assert best.sum() == env.TIER_SIZE[t.tier] ** 2 and np.isclose(R[best], 1.0).all() and (R[~best] < 1).all()
        assert t.steps == env.TIER_STEPS[t.tier]


def test_judge_standin_and_distances():
    """Chebyshev distance 0 inside the target, k rings out; the judge is type match × max(0, 1 − d/4) ∈ [0, 1]."""
    t = env.Task(gt_type=1, row=1, col=1, size=2, tier=1, steps=4)
    d = env.chebyshev_to_target(t).reshape(5, 5)
    assert d[1:3, 1:3].max() == 0 and d[0, 0] == 1 and d[4, 4] == 2 and d[4, 0] == 2
    j = env.judge_standin(t)
    assert j.min() >= 0 and j.max() == 1 and (j[:25] == 0).all()  # wrong type (click) ⇒ 0


@given(seeds())
def test_expected_reward_is_the_policy_average(rng):
    """J_n(θ) = Σ_a π(a|n) R[n, a] (loop) and ≤ max_a R[n, a]."""
    R = rng.random((3, env.N_ACTIONS))
    theta = rng.normal(size=(3, env.N_ACTIONS))
    pi = np.exp(theta) / np.exp(theta).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(env.expected_reward(theta, R), [(pi[n] * R[n]).sum() for n in range(3)], rtol=1e-12)
    assert (env.expected_reward(theta, R) <= R.max(axis=1)).all()


def test_bad_input_raises():
    with pytest.raises(RLSpecValueError, match="per_tier"):
        env.make_tasks(0)
