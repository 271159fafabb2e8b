"""The scalar LQR (:mod:`rlspec.reference.envs.lqr`) checked before anything uses it.

Expected values come from outside the module: scipy's discrete algebraic Riccati solver, scipy's bounded
scalar minimiser, central finite differences and a seeded Monte-Carlo simulation.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from scipy import linalg, optimize

from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.envs import lqr

systems = st.builds(lqr.ScalarLQR, a=st.floats(-1.5, 1.5), b=st.floats(0.3, 2.0) | st.floats(-2.0, -0.3),
                    q=st.floats(0.1, 3.0), r=st.floats(0.1, 3.0), gamma=st.floats(0.5, 0.97),
                    sigma_w=st.floats(0.0, 1.0), s0=st.floats(0.1, 2.0))


@given(env=systems)
def test_riccati_matches_scipy_dare(env):
    """P solves the discounted DARE (scipy solve_discrete_are on √γ·a, √γ·b) and K = −γabP/(r + γb²P)."""
    P, K = lqr.riccati(env)
    g = env.gamma
    P_ref = float(linalg.solve_discrete_are(np.array([[np.sqrt(g) * env.a]]), np.array([[np.sqrt(g) * env.b]]),
                                            np.array([[env.q]]), np.array([[env.r]]))[0, 0])
    assert P == pytest.approx(P_ref, rel=1e-9)
    assert K == pytest.approx(-g * env.a * env.b * P_ref / (env.r + g * env.b**2 * P_ref), rel=1e-9, abs=1e-12)


@given(env=systems, sigma=st.floats(0.0, 1.5))
def test_riccati_gain_maximises_exact_return(env, sigma):
    """Certainty equivalence: the Riccati gain K maximises the exact J_∞(θ) of u = θx + σε for any σ, σ_w, s0
    (compared with scipy's bounded scalar minimiser on the stabilising interval)."""
    lo, hi = lqr.stabilising_interval(env)
    pad = 1e-6 * (hi - lo)
    res = optimize.minimize_scalar(lambda t: -lqr.objective(env, t, sigma), bounds=(lo + pad, hi - pad),
                                   method="bounded", options={"xatol": 1e-10})
    _, K = lqr.riccati(env)
    assert K == pytest.approx(res.x, abs=1e-5 * (1 + abs(K)))
    assert lqr.objective(env, K, sigma) >= -res.fun - 1e-12 * (1 + abs(res.fun))


@given(env=systems, sigma=st.floats(0.0, 1.5), u=st.floats(0.05, 0.95), H=st.integers(1, 30) | st.none())
def test_derivatives_match_finite_differences(env, sigma, u, H):
    """dJ/dθ and d²J/dθ² (forward mode through the moment recursion, or the closed form for H = ∞)
    equal central finite differences of J."""
    lo, hi = lqr.stabilising_interval(env)
    th = lo + u * (hi - lo)
    J, d1, d2 = lqr.objective_derivatives(env, th, sigma, H)
    h = 1e-5 * (hi - lo)
    fd1 = (lqr.objective(env, th + h, sigma, H) - lqr.objective(env, th - h, sigma, H)) / (2 * h)
    fd2 = (lqr.objective_derivatives(env, th + h, sigma, H)[1] - lqr.objective_derivatives(env, th - h, sigma, H)[1]) / (2 * h)
    assert d1 == pytest.approx(fd1, rel=1e-5, abs=1e-6 * (1 + abs(J)))
    assert d2 == pytest.approx(fd2, rel=1e-5, abs=1e-6 * (1 + abs(d1)))


@given(env=systems, sigma=st.floats(0.0, 1.5), u=st.floats(0.1, 0.9))
def test_finite_horizon_return_tends_to_infinite_horizon(env, sigma, u):
    """J_H(θ) → J_∞(θ) as H → ∞ (stabilising θ; the truncation error decays like (γ·max(1, ρ))^H)."""
    lo, hi = lqr.stabilising_interval(env)
    th = lo + u * (hi - lo)
    rate = env.gamma * max(1.0, (env.a + env.b * th) ** 2)
    assume(rate < 0.97)
    H = int(np.ceil(np.log(1e-13) / np.log(rate))) + 5
    J_inf = lqr.objective(env, th, sigma)
    assert lqr.objective(env, th, sigma, H) == pytest.approx(J_inf, rel=1e-8, abs=1e-10)


def test_simulation_matches_exact_return():
    """The sample mean of Σγᵗ r_t over simulated trajectories is J_H within 5 standard errors (seeded;
    false-alarm rate < 1e-5); so is E x_t² at each step (checked at t = H − 1)."""
    env = lqr.ScalarLQR(a=0.9, b=0.5, q=1.0, r=0.5, gamma=0.9, sigma_w=0.3, s0=1.0)
    H, n, th, sd = 15, 100_000, -0.6, 0.4
    X, U, R = lqr.simulate(env, np.random.default_rng(1), th, sd, H, n)
    ret = R @ env.gamma ** np.arange(H)
    assert abs(ret.mean() - lqr.objective(env, th, sd, H)) <= 5 * ret.std() / np.sqrt(n)
    m = lqr.moments(env, th, sd, H)[0]
    assert abs((X[:, -1] ** 2).mean() - m[-1]) <= 5 * (X[:, -1] ** 2).std() / np.sqrt(n)
    np.testing.assert_allclose(R, -(env.q * X**2 + env.r * U**2))


@given(env=systems, sigma=st.floats(0.0, 1.0), H=st.integers(2, 40))
def test_finite_horizon_optimal_gain(env, sigma, H):
    """optimal_gain(H) is a stationary point of J_H with d²J_H < 0, and no gain on a fine grid around the
    Riccati gain (polished by scipy's bounded minimiser) does better; for H = None it is the Riccati gain."""
    th, J = lqr.optimal_gain(env, sigma, H)
    _, d1, d2 = lqr.objective_derivatives(env, th, sigma, H)
    assert abs(d1) <= 1e-8 * (1 + abs(J)) and d2 < 0
    K = lqr.riccati(env)[1]
    width = 4.0 * (1.0 + abs(env.a)) / abs(env.b)
    grid = np.linspace(K - width, K + width, 801)
    vals = np.array([lqr.objective(env, t, sigma, H) for t in grid])
    i = int(vals.argmax())
    res = optimize.minimize_scalar(lambda t: -lqr.objective(env, t, sigma, H), bounds=(grid[max(i - 1, 0)],
                                   grid[min(i + 1, grid.size - 1)]), method="bounded", options={"xatol": 1e-12})
    assert J >= max(vals.max(), -res.fun) - 1e-9 * (1 + abs(J))
    assert lqr.optimal_gain(env, sigma, None)[0] == K


def test_bad_input_raises():
    """b = 0, γ ∉ (0, 1), r ≤ 0, a non-stabilising gain for H = ∞ and H < 1 are rejected, naming the argument."""
    with pytest.raises(RLSpecValueError, match="b"):
        lqr.ScalarLQR(b=0.0)
    with pytest.raises(RLSpecValueError, match="gamma"):
        lqr.ScalarLQR(gamma=1.0)
    with pytest.raises(RLSpecValueError, match="r"):
        lqr.ScalarLQR(r=0.0)
    with pytest.raises(RLSpecValueError, match="theta"):
        lqr.objective(lqr.ScalarLQR(a=1.0, b=1.0, gamma=0.9), 5.0, 0.1)
    with pytest.raises(RLSpecValueError, match="H"):
        lqr.objective(lqr.ScalarLQR(), 0.0, 0.1, H=0)
