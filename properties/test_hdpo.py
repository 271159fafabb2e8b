"""Properties of HDPO (arXiv 2306.11246) on the single-store inventory problem.

Expected values come from outside the code under test: scipy's distributions (CDFs, quantiles),
central finite differences of the simulated cost, and exact dynamic programming on an integer grid
(:mod:`rlspec.reference.envs.inventory`, which shares no code with the simulator in :mod:`rlspec.reference.hdpo`).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from rlspec.reference import registry
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.envs import inventory
from rlspec.reference.hdpo import HDPOConfig, hdpo_objective, hdpo_train, pathwise_grad, simulate_costs

DISTS = {
    "poisson": (inventory.Demand("poisson", mean=5.0), stats.poisson(5.0)),
    "normal": (inventory.Demand("normal", mean=5.0, std=1.6), stats.norm(5.0, 1.6)),
    "uniform": (inventory.Demand("uniform", low=1.0, high=9.0), stats.uniform(1.0, 8.0)),
}


@given(kind=st.sampled_from(sorted(DISTS)), q=st.floats(0.05, 0.95), h=st.floats(0.1, 5.0), p=st.floats(0.1, 20.0),
       seed=st.integers(0, 2**31 - 1))
def test_newsvendor_pathwise_derivative_is_unbiased(kind, q, h, p, seed):
    """Newsvendor (L=0, T=1, backlog): the mean of the pathwise derivative h·1[d<S] − p·1[d>S] is
    d/dS E c(S) = h F(S) − p (1 − F(S)); checked against scipy's F within 5 Monte-Carlo standard errors."""
    demand, dist = DISTS[kind]
    S = float(dist.ppf(q))
    if kind == "poisson":  # a non-integer level, where E c is differentiable
        S += float(np.random.default_rng(seed).uniform(0.05, 0.95))
    N = 20000
    d = demand.sample(np.random.default_rng(seed), (N, 1))
    g = pathwise_grad(S, d, L=0, h=h, p=p, lost_sales=False, x0=np.array([0.0]))
    F = dist.cdf(S)
    exact = h * F - p * (1.0 - F)
    se = g.std() / np.sqrt(N)
    assert abs(g.mean() - exact) <= 5 * se + 1e-12


@given(q=st.floats(0.01, 0.99), h=st.floats(0.0, 5.0), p=st.floats(0.0, 20.0), seed=st.integers(0, 2**31 - 1))
def test_newsvendor_formula_matches_rollout(q, h, p, seed):
    """For L=0, T=1 and backlog, the simulator's per-path derivative is exactly h·1[d<S] − p·1[d>S]
    and the cost is h(S−d)⁺ + p(d−S)⁺ (demand on a 0.5 grid, so ties d = S occur: derivative 0 there)."""
    rng = np.random.default_rng(seed)
    d = rng.integers(0, 21, size=(64, 1)) * 0.5
    # dyadic levels (exact arithmetic: the order (S − x0)⁺ brings the stock exactly to S), half of them ties
    S = float(np.round(q * 20) * 0.5) if rng.random() < 0.5 else float(np.round(q * 10 * 1024) / 1024)
    x0 = np.array([-1.0])  # start below every S, so that the order is always positive
    g = pathwise_grad(S, d, L=0, h=h, p=p, lost_sales=False, x0=x0)
    c = simulate_costs(S, d, L=0, h=h, p=p, lost_sales=False, x0=x0)
    dd = d[:, 0]
    np.testing.assert_array_equal(g, h * (dd < S) - p * (dd > S))
    np.testing.assert_allclose(c, h * np.maximum(S - dd, 0) + p * np.maximum(dd - S, 0), rtol=0, atol=1e-12)


@given(L=st.integers(0, 3), lost=st.booleans(), h=st.floats(0.1, 5.0), p=st.floats(0.1, 20.0),
       S=st.floats(0.5, 40.0), T=st.integers(1, 25), seed=st.integers(0, 2**31 - 1))
def test_pathwise_gradient_equals_crn_finite_difference(L, lost, h, p, S, T, seed):
    """The hand-derived pathwise derivative dJ/dS equals the central finite difference
    (J(S+ε) − J(S−ε))/2ε computed on the same demand paths (common random numbers), for continuous
    demand (kinks have probability zero), any lead time, backlog or lost sales, random initial state."""
    rng = np.random.default_rng(seed)
    B = 32
    demand = inventory.Demand("uniform", low=0.0, high=8.0) if lost else inventory.Demand("normal", mean=4.0, std=2.0)
    D = demand.sample(rng, (B, T))
    width = max(L, 1)
    x0 = rng.uniform(0.0, 10.0, size=(B, width)) if lost else rng.uniform(-5.0, 10.0, size=(B, width))
    cfg = HDPOConfig(L=L, h=h, p=p, lost_sales=lost)
    eps = 1e-6
    _, g = hdpo_objective(S, D, cfg, x0)
    fd = (hdpo_objective(S + eps, D, cfg, x0)[0] - hdpo_objective(S - eps, D, cfg, x0)[0]) / (2 * eps)
    assert abs(g - fd) <= 1e-6 * (1 + abs(fd))


@pytest.mark.parametrize("kind", ["normal", "poisson"])
def test_hdpo_converges_to_critical_fractile(kind):
    """HDPO on the newsvendor (L=0, T=1, backlog, h=1, p=9) converges to the critical fractile
    S* = F⁻¹(p/(p+h)) = F⁻¹(0.9) (scipy's quantile). SGD with rate 0.5/√(k+1), 200 steps of 1000 paths,
    started at S=2; the mean of the last 50 iterates is within 0.1 of S* for Normal(5, 1.6)
    (S* ≈ 7.05; within 0.25 for Poisson(5), whose S* = 8 is a kink of E c), for each of 3 seeds."""
    demand, dist = DISTS[kind]
    S_star = float(dist.ppf(9.0 / (9.0 + 1.0)))
    tol = 0.1 if kind == "normal" else 0.25
    cfg = HDPOConfig(L=0, h=1.0, p=9.0, lost_sales=False)
    for seed in range(3):
        traj = hdpo_train(2.0, lambda r: demand.sample(r, (1000, 1)), 200, 0.5, cfg, seed=seed, lr_decay=0.5)
        assert abs(traj[-50:].mean() - S_star) <= tol, (seed, traj[-50:].mean(), S_star)


@pytest.mark.parametrize("L", [1, 2])
def test_hdpo_backlog_lead_time_converges_to_lead_time_quantile(L):
    """Backlog with lead time L: HDPO's base-stock level converges to the p/(p+h) quantile of the
    (L+1)-period demand, here Normal((L+1)·10, (L+1)·4) (scipy), within 0.15 (under 0.055 σ_{L+1}) on the mean of
    the last 50 of 200 SGD steps (500 paths of 12 periods, start S = 10, empty initial state), 2 seeds."""
    S_star = float(stats.norm((L + 1) * 10.0, np.sqrt(L + 1) * 2.0).ppf(0.9))
    demand = inventory.Demand("normal", mean=10.0, std=2.0)
    cfg = HDPOConfig(L=L, h=1.0, p=9.0, lost_sales=False)
    for seed in range(2):
        traj = hdpo_train(10.0, lambda r: demand.sample(r, (500, 12)), 200, 0.5, cfg, seed=seed, lr_decay=0.5)
        assert abs(traj[-50:].mean() - S_star) <= 0.15, (seed, traj[-50:].mean(), S_star)


LOST = {"demand": inventory.Demand("poisson", mean=3.0), "h": 1.0, "p": 9.0, "ymax": 25}


def _exact(L, base_stock=None):
    return inventory.lost_sales_average_cost(LOST["demand"], L, LOST["h"], LOST["p"], ymax=LOST["ymax"],
                                             base_stock=base_stock)


def _simulated(S, L, seed, B=2000, T=160, warm=30):
    D = LOST["demand"].sample(np.random.default_rng(seed), (B, T))
    c = simulate_costs(S, D, L=L, h=LOST["h"], p=LOST["p"], lost_sales=True, ignore_periods=warm)
    return c.mean(), c.std() / np.sqrt(B)


@pytest.mark.parametrize("L", [1, 2])
def test_lost_sales_simulator_matches_exact_base_stock_cost(L):
    """Cross-check of two independent computations: the simulated long-run cost of an integer
    base-stock level (lost sales, Poisson(3), h=1, p=9) equals its exact Markov-chain average cost
    (value iteration of the fixed policy) within 4 standard errors + 0.01 warm-up allowance; and the DP
    optimum is below every base-stock cost (Odoni lower bound ≤ exact cost)."""
    opt = _exact(L)
    assert opt.upper - opt.lower < 1e-6
    for S in (7, 11) if L == 2 else (6, 9):
        exact = _exact(L, S).gain
        sim, se = _simulated(float(S), L, seed=100 + S)
        assert abs(sim - exact) <= 4 * se + 0.01, (S, sim, exact, se)
        assert opt.lower <= exact + 1e-9


@pytest.mark.parametrize("L", [1, 2])
def test_lost_sales_hdpo_between_dp_optimum_and_best_base_stock(L):
    """Lost sales, L ∈ {1, 2}, Poisson(3), h=1, p=9: the cost of HDPO's base-stock level (200 SGD steps
    on 200 paths × 30 periods, 8 ignored, start S=4) is ≥ the exact optimal DP cost g* (its Odoni lower
    bound, minus 3 standard errors) and within 1 % + 3 standard errors of the best base-stock level
    found by exact grid search over integer levels 4..16 (the base-stock cost is piecewise linear
    between integers for integer demand, so the grid holds the best level)."""
    opt = _exact(L)
    best = min(_exact(L, S).gain for S in range(4, 17))
    cfg = HDPOConfig(L=L, h=LOST["h"], p=LOST["p"], lost_sales=True, ignore_periods=8)
    traj = hdpo_train(4.0, lambda r: LOST["demand"].sample(r, (200, 30)), 200, 1.0, cfg, seed=7, lr_decay=0.5)
    S_hdpo = float(traj[-50:].mean())
    cost, se = _simulated(S_hdpo, L, seed=11)
    assert cost >= opt.lower - 3 * se, (cost, opt.lower)
    assert cost <= best * 1.01 + 3 * se, (S_hdpo, cost, best)
    assert opt.gain < best  # base-stock is not optimal under lost sales with a lead time


def test_bad_input_raises():
    """Bad input raises RLSpecValueError naming the argument: h<0, p<0, NaN demands, negative or
    non-integer L, ignore_periods ≥ T, a wrong x0 shape, negative demand with lost sales, h = p = 0
    in the critical fractile; the torch version rejects NaN demands too."""
    spec = registry.get("hdpo")
    D = np.full((4, 5), 3.0)
    for bad in ({"h": -1.0}, {"p": -0.5}, {"L": -1}, {"L": 1.5}, {"ignore_periods": -2}):
        with pytest.raises(RLSpecValueError, match=next(iter(bad))):
            spec.config(**bad)
    with pytest.raises(RLSpecValueError, match="demands"):
        spec(S=5.0, demands=np.where(np.eye(4, 5) > 0, np.nan, D))
    with pytest.raises(RLSpecValueError, match="demands"):
        spec(S=5.0, demands=-D)
    with pytest.raises(RLSpecValueError, match="ignore_periods"):
        spec(S=5.0, demands=D, config=spec.config(ignore_periods=5))
    with pytest.raises(RLSpecValueError, match="x0"):
        spec(S=5.0, demands=D, x0=np.zeros(3))
    with pytest.raises(RLSpecValueError, match="S"):
        spec(S=np.nan, demands=D)
    with pytest.raises(RLSpecValueError, match="h"):
        simulate_costs(5.0, D, h=-1.0)
    with pytest.raises(RLSpecValueError, match="L"):
        pathwise_grad(5.0, D, L=-1)
    with pytest.raises(RLSpecValueError, match="h \\+ p"):
        inventory.critical_fractile(0.0, 0.0)
    torch = pytest.importorskip("torch")
    from rlspec import optimized

    with pytest.raises(RLSpecValueError, match="demands"):
        optimized.get("hdpo")(torch.tensor(5.0), torch.tensor(np.where(np.eye(4, 5) > 0, np.nan, D)))


def test_optimized_matches_reference_float64():
    """The torch implementation (autograd through the simulator) returns the reference's cost and
    pathwise gradient in float64 to 1e-10 relative, through the conformance adapter, on the registry's
    make_inputs cases with random L, backlog/lost sales and ignore_periods; and its Adam/softplus
    training trajectory equals the reference's (same demand stream)."""
    pytest.importorskip("torch")
    import rlspec.optimized.hdpo as opt_hdpo
    from rlspec.conformance.adapters.optimized_adapter import OptimizedAdapter

    spec, adapter = registry.get("hdpo"), OptimizedAdapter()
    rng = np.random.default_rng(2023)
    for _ in range(10):
        inputs = spec.make_inputs(rng)
        cfg = spec.config(L=int(rng.integers(0, 5)), lost_sales=bool(rng.random() < 0.5),
                          ignore_periods=int(rng.integers(0, 3)))
        cost, grad = spec(**inputs, config=cfg)
        out = adapter.run(spec, inputs, cfg, "float64")
        assert abs(float(out["cost"]) - cost) <= 1e-10 * max(1.0, abs(cost))
        assert abs(float(out["dcost_dS"]) - grad) <= 1e-10 * max(1.0, abs(grad))
    demand, cfg = inventory.Demand("poisson", mean=5.0), HDPOConfig(L=1, lost_sales=True)
    kw = dict(config=cfg, optimizer="adam", seed=3, parametrization="softplus", lr_decay=0.3)
    a = hdpo_train(10.0, lambda r: demand.sample(r, (32, 6)), 15, 0.5, **kw)
    b = opt_hdpo.hdpo_train(10.0, lambda r: demand.sample(r, (32, 6)), 15, 0.5, **kw)
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)
