"""The A2PR offline bandit (:mod:`rlspec.reference.envs.a2pr_offline_bandit`) checked before A2PR uses it.

Expected values come from outside the closed forms: Gauss–Hermite quadrature of the reward under each
mixture component, central finite differences, and a seeded Monte-Carlo draw with a 5-σ tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.envs import a2pr_offline_bandit as ob

envs = st.builds(
    lambda a, c0, m1, m2, s1, s2, p: ob.OfflineBandit(a, c0, (m1, m2), (s1, s2), (p, 1 - p)),
    st.floats(-1, 1), st.floats(0, 1), st.floats(-1, 1), st.floats(-1, 1), st.floats(0.01, 0.5),
    st.floats(0.01, 0.5), st.floats(0, 1))


@settings(max_examples=40, deadline=None)
@given(env=envs)
def test_behaviour_value_is_the_quadrature_mean_reward(env):
    """V^β = Σ_k p_k E_{N(m_k, σ_k²)} r, each expectation by 20-node Gauss–Hermite quadrature of r itself."""
    x, w = np.polynomial.hermite_e.hermegauss(20)
    q = sum(pk * (w / np.sqrt(2 * np.pi)) @ ob.reward(env, mk + sk * x)
            for mk, sk, pk in zip(env.modes, env.sigmas, env.p))
    assert abs(ob.behaviour_value(env) - q) <= 1e-10 * (1 + abs(q))


@settings(max_examples=40, deadline=None)
@given(env=envs, a=st.floats(-2, 2))
def test_reward_grad_is_the_derivative(env, a):
    """dr/da equals the central finite difference of r."""
    h = 1e-6
    fd = (ob.reward(env, a + h) - ob.reward(env, a - h)) / (2 * h)
    assert abs(ob.reward_grad(env, a) - fd) <= 1e-6


def test_dataset_mean_reward_matches_behaviour_value():
    """The mean reward of 200 000 seeded behaviour actions is V^β within 5 standard errors."""
    env = ob.OfflineBandit()
    r = ob.reward(env, ob.dataset(env, np.random.default_rng(0), 200_000))
    assert abs(r.mean() - ob.behaviour_value(env)) <= 5 * r.std() / np.sqrt(r.size)


def test_bad_input_raises():
    with pytest.raises(RLSpecValueError, match="p"):
        ob.OfflineBandit(p=(0.5, 0.6))
    with pytest.raises(RLSpecValueError, match="sigmas"):
        ob.OfflineBandit(sigmas=(0.1, -1.0))
    with pytest.raises(RLSpecValueError, match="n"):
        ob.dataset(ob.OfflineBandit(), np.random.default_rng(0), 0)
