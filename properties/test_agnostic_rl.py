"""Properties of the agnostic-RL procedures (thesis arXiv 2506.01884; trajectory trees, spanning capacity, PSDP).

Expected values come from outside the code under test: closed forms, a brute force over every deterministic MDP,
exact enumeration of every trajectory tree (each generative call branches over its exact law), exact values of
:mod:`rlspec.reference.envs.layered_mdp` (checked against envs/tabular_mdp), and binomial tests for the
probabilistic guarantees (seeded; the false-alarm rate of each is stated).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from rlspec.reference import registry
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.agnostic_rl import (
    AgnosticRLConfig,
    PSDPConfig,
    agnostic_rl,
    concentrability,
    hoeffding_trees,
    psdp,
    psdp_epsilons,
    reached_pairs,
    spanning_capacity,
    trajectory_tree,
    trajectory_tree_select,
)
from rlspec.reference.envs import layered_mdp as lm

seeds = st.integers(0, 2**32 - 1)


# ---------------------------------------------------------------------------- spanning capacity


@settings(max_examples=30, deadline=None)
@given(seeds, st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 6))
def test_spanning_capacity_basic_bounds(seed, H, S, A, K):
    """1 ≤ C(Π) ≤ min(|Π|, S·A) (each policy adds at most one pair per layer; a layer has S·A pairs); a single
    policy has C = 1; the A constant-action policies (or a subset of k of them) have C = k; at layer 0 the count
    is the number of distinct first actions at the best start state."""
    rng = np.random.default_rng(seed)
    pol = rng.integers(0, A, size=(K, H, S))
    C, per_layer = spanning_capacity(pol, S, A)
    assert 1 <= C <= min(K, S * A) and C == per_layer.max()
    assert per_layer[0] == max(len(np.unique(pol[:, 0, s])) for s in range(S))   # layer 0: the best start state
    assert spanning_capacity(pol[:1], S, A)[0] == 1
    k = int(rng.integers(1, A + 1))
    const = np.broadcast_to(np.arange(k)[:, None, None], (k, H, S))
    assert spanning_capacity(const, S, A)[0] == k


@pytest.mark.parametrize("H,S,A", [(1, 2, 2), (2, 2, 2), (3, 2, 2), (3, 3, 2), (2, 3, 3), (2, 2, 3)])
def test_spanning_capacity_of_all_policies(H, S, A):
    """For Π = every deterministic policy, C = A·max_h r_h with r_0 = 1, r_{h+1} = min(S, A·r_h) (reachable
    states grow by a factor A per layer up to S, and every action is taken at each of them)."""
    r, best = 1, A
    for _ in range(H - 1):
        r = min(S, A * r)
        best = max(best, A * r)
    assert spanning_capacity(lm.all_policies(H, S, A), S, A)[0] == best


@settings(max_examples=25, deadline=None)
@given(seeds, st.integers(1, 3), st.integers(1, 5))
def test_spanning_capacity_is_attained_by_a_deterministic_mdp(seed, H, K):
    """The lazy search equals a brute force over EVERY deterministic MDP (start state × all next-state maps),
    layer by layer, for S = A = 2."""
    S, A = 2, 2
    pol = np.random.default_rng(seed).integers(0, A, size=(K, H, S))
    best = np.zeros(H, dtype=int)
    for s1 in range(S):
        for flat in itertools.product(range(S), repeat=(H - 1) * S * A):
            T = np.array(flat, dtype=np.int64).reshape(H - 1, S, A)
            for h, pairs in enumerate(reached_pairs(pol, s1, T)):
                best[h] = max(best[h], len(pairs))
    C, per_layer = spanning_capacity(pol, S, A)
    np.testing.assert_array_equal(per_layer, best)
    assert C == best.max()


# ---------------------------------------------------------------------------- trajectory trees, exactly


class _Branch(Exception):
    def __init__(self, n: int) -> None:
        self.n = n


def enumerate_trees(mdp, pol):
    """Every trajectory tree with its probability: run the tree with a scripted generative model whose draws
    are indices into the exact laws (start_outcomes, step_outcomes); an exhausted script branches."""
    leaves = []
    stack = [[]]
    while stack:
        script = stack.pop()
        pos, prob = [0], [1.0]

        def draw(outcomes, script=script, pos=pos, prob=prob):
            if pos[0] == len(script):
                raise _Branch(len(outcomes))
            value, p = outcomes[script[pos[0]]]
            pos[0] += 1
            prob[0] *= p
            return value

        try:
            G, calls = trajectory_tree(pol, lambda: draw(lm.start_outcomes(mdp)),
                                       lambda h, s, a: draw(lm.step_outcomes(mdp, h, s, a)))
        except _Branch as b:
            stack.extend(script + [i] for i in range(b.n))
            continue
        leaves.append((prob[0], G, calls))
    return leaves


CASES = [  # (seed, H, S, K, deterministic rewards)
    (0, 3, 2, 3, True), (1, 3, 2, 4, True), (2, 2, 2, 2, False), (3, 2, 3, 2, False), (4, 3, 2, 2, False),
]


@pytest.mark.parametrize("seed,H,S,K,det", CASES)
def test_tree_estimates_are_unbiased_exact(seed, H, S, K, det):
    """Unbiased tree estimates: summing over every possible trajectory tree (exact enumeration), E G(π) = J(π)
    for every π of the class at once, although the policies share draws."""
    rng = np.random.default_rng(seed)
    mdp = lm.random_layered_mdp(rng, H, S, 2, deterministic_rewards=det)
    pol = rng.integers(0, 2, size=(K, H, S))
    leaves = enumerate_trees(mdp, pol)
    assert sum(p for p, _, _ in leaves) == pytest.approx(1.0, abs=1e-12)
    EG = sum(p * G for p, G, _ in leaves)
    np.testing.assert_allclose(EG, lm.values(mdp, pol), atol=1e-12)


@pytest.mark.parametrize("seed,H,S,K,det", CASES)
def test_calls_per_tree_are_bounded_by_spanning_capacity(seed, H, S, K, det):
    """The call bound per tree: on every possible tree, the generative calls at layer h are at most
    max_M C_h(Π; M) ≤ C(Π), and in total at most H·C(Π); the bound is attained by some tree here."""
    rng = np.random.default_rng(seed)
    mdp = lm.random_layered_mdp(rng, H, S, 2, deterministic_rewards=det)
    pol = rng.integers(0, 2, size=(K, H, S))
    C, per_layer = spanning_capacity(pol, S, 2)
    leaves = enumerate_trees(mdp, pol)
    calls = np.array([c for _, _, c in leaves])
    assert np.all(calls <= per_layer[None, :])
    assert np.all(calls.sum(axis=1) <= H * C)
    assert np.any(np.all(calls == per_layer[None, :], axis=1)) or np.any(calls.max(axis=0) == per_layer)


def _exact_failure_probability(mdp, pol, eps):
    """Pr[J(π̂) < max J − ε] for ONE tree (n = 1), by enumeration (ties broken to the lowest index, as argmax)."""
    V = lm.values(mdp, pol)
    return sum(p for p, G, _ in enumerate_trees(mdp, pol) if V[int(G.argmax())] < V.max() - eps)


def test_epsilon_optimal_with_probability_one_minus_delta():
    """ε-optimality with probability ≥ 1 − δ (Hoeffding + union bound, n = ⌈2 log(2|Π|/δ)/ε²⌉), ε = 0.25,
    δ = 0.1, on a 3-layer MDP (q = 0.6 for action 0, 0.2 for action 1) with 3 policies of values 0.2, 0.33, 0.6
    (the best is listed last, so ties go against it). Over 200 seeded runs the
    number of failures must not exceed the 0.999-quantile of Binomial(200, δ) (false-alarm rate ≤ 1e-3 if the
    true failure probability were exactly δ). The test can fail: with n = 1 tree the exact failure probability
    (enumerated) is above 2δ."""
    eps, delta = 0.25, 0.1
    mdp = lm.LayeredMDP(P=np.full((2, 2, 2, 2), 0.5), q=np.array([[[0.6, 0.2], [0.6, 0.2]]] * 3), d1=np.full(2, 0.5))
    pol = np.stack([np.ones((3, 2), int), np.array([[0, 0], [1, 1], [1, 1]]), np.zeros((3, 2), int)])
    V = lm.values(mdp, pol)
    assert V.max() - np.sort(V)[-2] > eps                 # only the best policy is ε-optimal
    assert _exact_failure_probability(mdp, pol, eps) > 2 * delta
    n = hoeffding_trees(len(pol), eps, delta)
    assert n == int(np.ceil(2 * np.log(2 * 3 / delta) / eps**2))
    rng = np.random.default_rng(12345)
    R = 200
    fails = sum(V[trajectory_tree_select(mdp, pol, n, rng)["index"]] < V.max() - eps for _ in range(R))
    assert fails <= stats.binom.ppf(0.999, R, delta)


def test_registry_entry_reports_the_bound_quantities():
    """The registry entry (the conformance call): exact values equal layered_mdp's, regret = max V − V[index],
    n_trees is the Hoeffding count, every tree's calls ≤ H·C(Π), and it is deterministic given the seed."""
    spec = registry.get("agnostic_rl")
    x = spec.make_inputs(np.random.default_rng(5))
    x.pop("config")
    out = spec(**x)
    mdp = lm.LayeredMDP(P=x["P"], q=x["q"], d1=x["d1"])
    np.testing.assert_allclose(out["V"], lm.values(mdp, x["policies"]), atol=1e-12)
    assert out["regret"] == pytest.approx(out["V"].max() - out["V"][out["index"]])
    assert out["n_trees"] == hoeffding_trees(len(x["policies"]), 0.25, 0.1) == len(out["calls"])
    assert out["call_bound"] == mdp.H * spanning_capacity(x["policies"], mdp.S, mdp.A)[0]
    assert np.all(out["calls"] <= out["call_bound"])
    again = spec(**x)
    np.testing.assert_array_equal(again["V_hat"], out["V_hat"])


# ---------------------------------------------------------------------------- PSDP


def _maps(S, A, H):
    """The complete class: every map S → A at every layer, (H, A^S, S)."""
    m = np.array(list(itertools.product(range(A), repeat=S)), dtype=np.int64)
    return np.broadcast_to(m, (H,) + m.shape).copy()


@settings(max_examples=20, deadline=None)
@given(seeds, st.integers(1, 4), st.integers(1, 3), st.integers(1, 3))
def test_exact_psdp_with_complete_class_is_optimal(seed, H, S, A):
    """With a complete class (all maps S → A per layer), exact rollouts and full-support μ, PSDP is backward
    induction: J(π̂) = J* (envs/layered_mdp.optimum, itself checked against envs/tabular_mdp)."""
    rng = np.random.default_rng(seed)
    mdp = lm.random_layered_mdp(rng, H, S, A)
    mu = rng.dirichlet(np.ones(S), size=H)
    pi = psdp(mdp, mu, _maps(S, A, H), None, exact=True)
    V_star, _ = lm.optimum(mdp)
    assert lm.value(mdp, pi) == pytest.approx(float(mdp.d1 @ V_star[0]), abs=1e-12)
    np.testing.assert_allclose(psdp_epsilons(mdp, mu, pi), 0.0, atol=1e-12)


@settings(max_examples=10, deadline=None)
@given(seeds)
def test_psdp_performance_difference_bound(seed):
    """Performance difference (finite horizon, exact): J(π*) − J(π̂) = Σ_h E_{d_h^{π*}}[Q^{π̂}_h(s, π*_h(s)) −
    V^{π̂}_h(s)], bounded by Σ_h ‖d_h^{π*}/μ_h‖_∞ ε_h, for the output of sampled PSDP (n = 5, complete class)
    and π* optimal."""
    rng = np.random.default_rng(seed)
    H, S, A = 3, 3, 2
    mdp = lm.random_layered_mdp(rng, H, S, A)
    mu = rng.dirichlet(np.ones(S), size=H)
    pi = psdp(mdp, mu, _maps(S, A, H), 5, rng)
    _, pi_star = lm.optimum(mdp)
    V, Q = lm.q_values(mdp, pi)
    d = lm.occupancy(mdp, pi_star)
    pdl = sum(d[h] @ (Q[h][np.arange(S), pi_star[h]] - V[h]) for h in range(H))
    gap = lm.value(mdp, pi_star) - lm.value(mdp, pi)
    assert gap == pytest.approx(pdl, abs=1e-12)
    bound = float(concentrability(mdp, mu, pi_star) @ psdp_epsilons(mdp, mu, pi))
    assert gap <= bound + 1e-12


def test_sampled_psdp_errors_within_hoeffding():
    """With the complete class and n = 100 reset states per layer, ε_h ≤ 2 sqrt(log(2H|Π_h|/δ)/(2n)) for every
    layer in at least 1 − δ of the runs (δ = 0.1): over 40 seeded runs the failures must not exceed the
    0.999-quantile of Binomial(40, δ) (false-alarm rate ≤ 1e-3); J* − J(π̂) ≤ Σ_h C_h ε_h ≤ H·max C·t then."""
    rng = np.random.default_rng(2024)
    H, S, A, n, delta = 3, 3, 2, 100, 0.1
    mdp = lm.random_layered_mdp(rng, H, S, A)
    mu = rng.dirichlet(np.ones(S) * 3, size=H)
    cls = _maps(S, A, H)
    t = 2 * np.sqrt(np.log(2 * H * cls.shape[1] / delta) / (2 * n))
    R, fails = 40, 0
    for _ in range(R):
        eps_h = psdp_epsilons(mdp, mu, psdp(mdp, mu, cls, n, rng))
        fails += bool((eps_h > t).any())
    assert fails <= stats.binom.ppf(0.999, R, delta)


def test_psdp_fails_without_completeness():
    """PSDP needs completeness (the thesis, after Krishnamurthy–Li–Sekhari; our instance). H = 2, S = 3, A = 2;
    start x; action 0 → x, action 1 → y at layer 1; rewards only at layer 1: q(x, 0) = 1, q(y, 1) = q(z, 1) = 0.6,
    else 0. Π_0 = Π_1 = the two constant maps; μ_1 uniform on {x, y, z}. Exact PSDP picks 'always 1' at layer 1
    (μ-average 0.4 > 1/3), then action 1 at layer 0: J = 0.6/H = 0.3, while the class's best (0, 0) has J = 0.5,
    with concentrability ‖d^{π*}/μ‖_∞ = 3 — bounded, so the failure is the missing completeness. The complete
    class at layer 1 recovers J = 0.5."""
    P = np.zeros((1, 3, 2, 3))
    P[0, :, 0, 0] = 1.0
    P[0, :, 1, 1] = 1.0
    q = np.zeros((2, 3, 2))
    q[1, 0, 0], q[1, 1, 1], q[1, 2, 1] = 1.0, 0.6, 0.6
    d1 = np.array([1.0, 0.0, 0.0])
    mu = np.array([[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    const = np.array([[[0, 0, 0], [1, 1, 1]]] * 2)
    out = registry.get("agnostic_rl_psdp")(P=P, q=q, d1=d1, mu=mu, layer_classes=const,
                                           config=PSDPConfig(exact=True))
    assert out["value"] == pytest.approx(0.3) and out["best_in_class"] == pytest.approx(0.5)
    np.testing.assert_allclose(out["concentrability"], [1.0, 3.0])
    np.testing.assert_array_equal(out["policy"], [[1, 1, 1], [1, 1, 1]])
    mdp = lm.LayeredMDP(P=P, q=q, d1=d1)
    complete = np.stack([np.concatenate([const[0], _maps(3, 2, 1)[0][2:]]), _maps(3, 2, 1)[0]])
    assert lm.value(mdp, psdp(mdp, mu, complete, None, exact=True)) == pytest.approx(0.5)


# ---------------------------------------------------------------------------- bad input


def test_bad_input_raises():
    """Malformed MDPs, classes and configs name the argument."""
    x = registry.get("agnostic_rl").make_inputs(np.random.default_rng(0))
    x.pop("config")
    with pytest.raises(RLSpecValueError, match="policies"):
        agnostic_rl(**dict(x, policies=np.full_like(x["policies"], 5)))
    with pytest.raises(RLSpecValueError, match="d1"):
        agnostic_rl(**dict(x, d1=x["d1"] * 2))
    with pytest.raises(RLSpecValueError, match="epsilon"):
        AgnosticRLConfig(epsilon=0.0)
    with pytest.raises(RLSpecValueError, match="delta"):
        AgnosticRLConfig(delta=1.0)
    with pytest.raises(RLSpecValueError, match="n"):
        PSDPConfig(n=0)
    mdp = lm.LayeredMDP(P=x["P"], q=x["q"], d1=x["d1"])
    with pytest.raises(RLSpecValueError, match="mu"):
        psdp(mdp, np.ones((mdp.H, mdp.S)), _maps(mdp.S, 2, mdp.H), None, exact=True)


def make_figure(path="docs/algorithms/img/agnostic_rl.png"):  # pragma: no cover - run by hand for the docs page
    """Write the docs figure: the failure rate Pr[J(π̂) < max J − ε] of the trajectory-tree learner against the
    number of trees n on the instance of test_epsilon_optimal_with_probability_one_minus_delta (n = 1 exact by
    enumeration, the rest from 400 seeded runs each), with δ and the Hoeffding n marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eps, delta = 0.25, 0.1
    mdp = lm.LayeredMDP(P=np.full((2, 2, 2, 2), 0.5), q=np.array([[[0.6, 0.2], [0.6, 0.2]]] * 3), d1=np.full(2, 0.5))
    pol = np.stack([np.ones((3, 2), int), np.array([[0, 0], [1, 1], [1, 1]]), np.zeros((3, 2), int)])
    V = lm.values(mdp, pol)
    n_hoeff = hoeffding_trees(len(pol), eps, delta)
    ns = [1, 2, 4, 8, 16, 32, 64, n_hoeff]
    rng = np.random.default_rng(0)
    rates = [_exact_failure_probability(mdp, pol, eps)]
    for n in ns[1:]:
        rates.append(np.mean([V[trajectory_tree_select(mdp, pol, n, rng)["index"]] < V.max() - eps
                              for _ in range(400)]))
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.semilogx(ns, rates, "o-", label="failure rate (n = 1 exact; else 400 runs)")
    ax.axhline(delta, color="k", ls="--", lw=1, label=f"δ = {delta}")
    ax.axvline(n_hoeff, color="C3", ls=":", lw=1, label=f"Hoeffding n = ⌈2 log(2|Π|/δ)/ε²⌉ = {n_hoeff}")
    ax.set_xlabel("trajectory trees n")
    ax.set_ylabel("Pr[J(π̂) < max_Π J − ε]")
    ax.set_title("Trajectory-tree learner, |Π| = 3, H = 3, ε = 0.25")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
