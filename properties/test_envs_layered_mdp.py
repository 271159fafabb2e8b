"""The layered MDPs of :mod:`rlspec.reference.envs.layered_mdp`: exact values against
:mod:`rlspec.reference.envs.tabular_mdp` and path enumeration, the generative model against its exact law."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.envs import layered_mdp as lm
from rlspec.reference.envs import tabular_mdp as tm

seeds = st.integers(0, 2**32 - 1)


def _flat_policy(mdp, pi):
    """A layered policy (H, S) as a stationary one-hot policy of the flattened MDP (H·S + 1, A)."""
    out = np.zeros((mdp.H * mdp.S + 1, mdp.A))
    out[np.arange(mdp.H * mdp.S), pi.reshape(-1)] = 1.0
    out[-1, 0] = 1.0
    return out


@settings(max_examples=30, deadline=None)
@given(seeds, st.integers(1, 4), st.integers(1, 3), st.integers(1, 3))
def test_evaluation_and_optimum_against_tabular_solvers(seed, H, S, A):
    """V^π and V* by backward induction on the layers equal tabular_mdp.evaluate_finite / backward_induction
    on the flattened MDP (γ = 1, H steps)."""
    rng = np.random.default_rng(seed)
    mdp = lm.random_layered_mdp(rng, H, S, A)
    pi = rng.integers(0, A, size=(H, S))
    flat = lm.to_tabular(mdp)
    V, Q = lm.q_values(mdp, pi)
    Vf, _ = tm.evaluate_finite(flat, _flat_policy(mdp, pi), H)
    np.testing.assert_allclose(V[0], Vf[0][:S], atol=1e-12)
    assert lm.value(mdp, pi) == pytest.approx(float(flat.d0 @ Vf[0]), abs=1e-12)
    V_star, pi_star = lm.optimum(mdp)
    sol = tm.backward_induction(flat, H)
    np.testing.assert_allclose(V_star[0], sol.V[0][:S], atol=1e-12)
    assert lm.value(mdp, pi_star) == pytest.approx(float(mdp.d1 @ V_star[0]), abs=1e-12)


@settings(max_examples=20, deadline=None)
@given(seeds)
def test_optimum_is_the_best_of_all_policies(seed):
    """J* = max over all A^(H·S) deterministic policies (brute force), H = 2, S = 2, A = 2."""
    mdp = lm.random_layered_mdp(np.random.default_rng(seed), 2, 2, 2)
    V_star, _ = lm.optimum(mdp)
    assert lm.values(mdp, lm.all_policies(2, 2, 2)).max() == pytest.approx(float(mdp.d1 @ V_star[0]), abs=1e-12)


@settings(max_examples=20, deadline=None)
@given(seeds, st.integers(1, 3), st.integers(1, 3))
def test_value_and_occupancy_by_path_enumeration(seed, H, S):
    """J(π) = Σ over state paths of Pr(path)·Σ_h q/H, and d_h(s) = Pr(s_h = s), summed path by path."""
    rng = np.random.default_rng(seed)
    mdp = lm.random_layered_mdp(rng, H, S, 2)
    pi = rng.integers(0, 2, size=(H, S))
    J, d = 0.0, np.zeros((H, S))
    for path in itertools.product(range(S), repeat=H):
        p = mdp.d1[path[0]]
        for h in range(H - 1):
            p *= mdp.P[h, path[h], pi[h, path[h]], path[h + 1]]
        J += p * sum(mdp.q[h, path[h], pi[h, path[h]]] / H for h in range(H))
        for h in range(H):
            d[h, path[h]] += p
    assert lm.value(mdp, pi) == pytest.approx(J, abs=1e-12)
    np.testing.assert_allclose(lm.occupancy(mdp, pi), d, atol=1e-12)


def test_generative_model_matches_its_exact_law():
    """Frequencies of 20000 draws of (r, s') at one (h, s, a) are within 5 standard errors of step_outcomes, and
    the outcome probabilities sum to 1 with E r = q/H."""
    rng = np.random.default_rng(0)
    mdp = lm.random_layered_mdp(rng, 3, 3, 2)
    law = dict(lm.step_outcomes(mdp, 1, 2, 1))
    assert sum(law.values()) == pytest.approx(1.0)
    assert sum(p * r for (r, _), p in law.items()) == pytest.approx(mdp.q[1, 2, 1] / 3)
    N = 20000
    draws = [lm.sample_step(mdp, 1, 2, 1, rng) for _ in range(N)]
    for out, p in law.items():
        freq = sum(d == out for d in draws) / N
        assert abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / N) + 1e-12
    assert lm.step_outcomes(mdp, 2, 0, 0)[0][0][1] == -1          # no next state after the last layer


def test_bad_input_raises():
    """Malformed problems and policies name the argument."""
    with pytest.raises(RLSpecValueError, match="P"):
        lm.LayeredMDP(P=np.ones((1, 2, 2, 2)), q=np.zeros((2, 2, 2)), d1=np.array([0.5, 0.5]))
    with pytest.raises(RLSpecValueError, match="q"):
        lm.LayeredMDP(P=np.full((1, 2, 2, 2), 0.5), q=np.full((2, 2, 2), 1.5), d1=np.array([0.5, 0.5]))
    with pytest.raises(RLSpecValueError, match="d1"):
        lm.LayeredMDP(P=np.full((1, 2, 2, 2), 0.5), q=np.zeros((2, 2, 2)), d1=np.array([0.5, 0.6]))
    mdp = lm.random_layered_mdp(np.random.default_rng(0), 2, 2, 2)
    with pytest.raises(RLSpecValueError, match="policy"):
        lm.value(mdp, np.full((2, 2), 2))
