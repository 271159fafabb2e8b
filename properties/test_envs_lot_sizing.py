"""The lot-sizing problem of :mod:`rlspec.reference.envs.lot_sizing` and its post-decision solvers.

The full MDP (:func:`lot_sizing.tabular`) is built from the one-period simulator ``step`` alone; the
post-decision tables (:func:`lot_sizing.decomposition`) from ``post_decision`` and ``demand_step``. The
solvers over post-decision states are checked against :mod:`rlspec.reference.envs.tabular_mdp` (linear
solve, value iteration, policy iteration), a hand-worked period, and Monte Carlo.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.envs import lot_sizing as ls
from rlspec.reference.envs import tabular_mdp as tm


@st.composite
def envs(draw):
    """Small random problems: 1-2 items, random costs and capacities, a random demand pmf."""
    n = draw(st.integers(1, 2))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    prod = tuple(int(v) for v in rng.integers(1, 4, size=n))
    return ls.LotSizing(
        production=prod, setup_cost=tuple(rng.uniform(0, 3, size=n)),
        setup_loss=tuple(int(rng.integers(0, p + 1)) for p in prod), holding=tuple(rng.uniform(0, 0.5, size=n)),
        lost_sales=tuple(rng.uniform(0, 4, size=n)), max_inventory=int(rng.integers(1, 4 if n == 2 else 6)),
        demand_pmf=tuple(rng.dirichlet(np.ones(int(rng.integers(1, 4))))), gamma=float(rng.uniform(0.0, 0.95)))


@settings(max_examples=15, deadline=None)
@given(envs())
def test_one_period_is_the_post_decision_step_then_the_demand_step(env):
    """Claim (the paper's split of the transition): for every s, a, W the whole period equals
    g(f(s, a), W) and its reward is c(s, a) + ρ(f(s, a), W)."""
    W, _ = ls.demand_outcomes(env)
    for s in ls.states(env):
        for a in range(env.n_actions):
            x, c = ls.post_decision(env, s, a)
            for w in W:
                s2, r = ls.step(env, s, a, w)
                g, rho = ls.demand_step(env, x, w)
                assert s2 == g
                assert r == pytest.approx(c + rho, abs=1e-12)


def test_a_period_worked_by_hand():
    """One item, p = 2, K = 1, ℓ = 1, h = 0.1, u = 3, I_max = 3, W ∈ {0, 1} w.p. ½ each. From stock 0 and an
    idle machine, producing is a changeover: x = (1, 1), c = −1. W = 0: stock 1, ρ = −0.1; W = 1: stock 0,
    ρ = 0. From (3, 1) producing again: no changeover, x = (5, 1); W = 0: capped to 3, ρ = −0.3."""
    env = ls.LotSizing(production=(2,), setup_cost=(1.0,), setup_loss=(1,), holding=(0.1,), lost_sales=(3.0,),
                       max_inventory=3, demand_pmf=(0.5, 0.5), gamma=0.5)
    assert ls.post_decision(env, (0, 0), 1) == ((1, 1), -1.0)
    assert ls.demand_step(env, (1, 1), (0,)) == ((1, 1), pytest.approx(-0.1))
    assert ls.demand_step(env, (1, 1), (1,)) == ((0, 1), 0.0)
    assert ls.post_decision(env, (3, 1), 1) == ((5, 1), 0.0)
    assert ls.demand_step(env, (5, 1), (0,)) == ((3, 1), pytest.approx(-0.3))
    assert ls.post_decision(env, (0, 1), 0) == ((0, 0), 0.0)          # idling resets the setup
    assert ls.demand_step(env, (0, 0), (1,)) == ((0, 0), -3.0)        # one lost sale
    mdp = ls.tabular(env)
    s = ls.state_index(env, (0, 0))
    assert mdp.R[s, 1] == pytest.approx(-1.0 + 0.5 * (-0.1))
    assert mdp.P[s, 1, ls.state_index(env, (1, 1))] == pytest.approx(0.5)
    assert mdp.P[s, 1, ls.state_index(env, (0, 1))] == pytest.approx(0.5)


@settings(max_examples=15, deadline=None)
@given(envs())
def test_full_mdp_equals_the_composition_of_the_tables(env):
    """P[s, a, ·] = G[f(s, a), ·] and R[s, a] = c(s, a) + E ρ(f(s, a), W) (the two builders agree)."""
    mdp, d = ls.tabular(env), ls.decomposition(env)
    np.testing.assert_allclose(mdp.P, d.G[d.F], atol=1e-12)
    np.testing.assert_allclose(mdp.R, d.c + d.rho[d.F], atol=1e-12)
    np.testing.assert_allclose(d.G.sum(axis=1), 1.0, atol=1e-12)


@settings(max_examples=15, deadline=None)
@given(envs(), st.integers(0, 2**32 - 1))
def test_post_decision_evaluation_equals_the_full_linear_solve(env, seed):
    """V^π from the solve over post-decision states, (I − γGΠ_F)V^x = ρ + γGΠ_c, equals V^π from
    (I − γP_π)V = r_π over pre-decision states (tabular_mdp.evaluate), and V^x = ρ + γ G V^π."""
    pi = np.random.default_rng(seed).dirichlet(np.ones(env.n_actions), size=env.S)
    mdp, d = ls.tabular(env), ls.decomposition(env)
    V, Vx = ls.evaluate_post(env, pi, d)
    V_ref, Q_ref = tm.evaluate(mdp, pi)
    np.testing.assert_allclose(V, V_ref, atol=1e-9, rtol=1e-9)
    np.testing.assert_allclose(d.c + Vx[d.F], Q_ref, atol=1e-9, rtol=1e-9)
    np.testing.assert_allclose(Vx, d.rho + env.gamma * d.G @ V_ref, atol=1e-9, rtol=1e-9)


@settings(max_examples=10, deadline=None)
@given(envs())
def test_post_decision_value_iteration_equals_the_optimum(env):
    """V* from value iteration over post-decision states equals V* from policy iteration on the full MDP
    (exact, Howard) within the value-iteration tolerance."""
    V, Vx = ls.post_value_iteration(env, tol=1e-10)
    sol = tm.policy_iteration(ls.tabular(env))
    np.testing.assert_allclose(V, sol.V, atol=1e-8)


@pytest.mark.parametrize("seed", [0, 1])
def test_simulated_returns_match_exact_values(seed):
    """The simulator: the mean discounted return of 4000 simulated 60-period episodes from d0 is within 5
    standard errors of the exact J(π) = d0·V^π (truncation error γ^60·max|r|/(1−γ) < 0.01 here)."""
    env = ls.LotSizing(gamma=0.8)
    rng = np.random.default_rng(seed)
    pi = rng.dirichlet(np.ones(env.n_actions), size=env.S)
    out = ls.simulate(env, pi, 4000, 60, rng)
    G = (out["rewards"] * env.gamma ** np.arange(60)).sum(axis=1)
    J = float(ls.initial_distribution(env) @ tm.evaluate(ls.tabular(env), pi)[0])
    assert abs(G.mean() - J) <= 5 * G.std() / np.sqrt(len(G)) + 0.01
    d = ls.decomposition(env)
    np.testing.assert_array_equal(out["posts"], d.F[out["states"], out["actions"]])


def test_initial_distribution_is_the_codes_reset():
    """d0 is uniform over stock 0..I_max − 1 per item and producing setups 1..n (``_random_initial_state``)."""
    env = ls.LotSizing()
    d0 = ls.initial_distribution(env)
    support = {tuple(s) for s in ls.states(env)[d0 > 0]}
    expect = set(itertools.product(range(env.max_inventory), range(env.max_inventory), (1, 2)))
    assert support == expect
    np.testing.assert_allclose(d0[d0 > 0], 1.0 / len(expect))


def test_bad_input_raises():
    """Invalid problems name the field."""
    with pytest.raises(RLSpecValueError, match="setup_loss"):
        ls.LotSizing(production=(2,), setup_loss=(3,), setup_cost=(1.0,), holding=(0.1,), lost_sales=(1.0,))
    with pytest.raises(RLSpecValueError, match="demand_pmf"):
        ls.LotSizing(demand_pmf=(0.5, 0.6))
    with pytest.raises(RLSpecValueError, match="gamma"):
        ls.LotSizing(gamma=1.0)
    with pytest.raises(RLSpecValueError, match="holding"):
        ls.LotSizing(holding=(0.1,))
    with pytest.raises(RLSpecValueError, match="pi"):
        ls.evaluate_post(ls.LotSizing(), np.ones((3, 3)))
