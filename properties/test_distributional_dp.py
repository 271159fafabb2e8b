"""Properties of stock-augmented distributional DP (arXiv 2501.13028) on tiny finite-horizon problems.

Independent references: exhaustive enumeration of every deterministic history-dependent policy (the
history holds every past state and reward; no stock is used) and of every deterministic Markov policy,
each giving the exact law of the return; the finite-horizon backward induction of
:mod:`rlspec.reference.envs.tabular_mdp` on the expected-reward MDP; and Monte-Carlo simulation for the
stock invariant. With γ ∈ {1, 1/2} and integer rewards every return is a dyadic number, so the
arithmetic is exact and thresholds cannot be missed by round-off.

Why enumerating *deterministic* policies suffices (used in the docstrings below): for an expected
utility the objective is linear in the law of the return, and for CVaR it is max_b of such a linear
objective, so for each b a deterministic policy attains the optimum over randomised ones; for Markov
policies the objective is multi-linear in the per-(t, s) action distributions (each (t, s) is visited
at most once per episode), so again a deterministic Markov policy attains the Markov optimum.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlspec.reference import registry
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.envs import tabular_mdp as tm

try:
    from rlspec.reference import distributional_dp as D
except ImportError:  # pragma: no cover - during development
    from rlspec.reference import _wip_distributional_dp as D

seeds = st.integers(0, 2**32 - 1)
UTILS = {"identity": lambda z: z, "hinge": lambda z: min(z, 0.0), "abs": lambda z: -abs(z),
         "threshold": lambda z: float(z >= 0)}


# ---------------------------------------------------------------------------- brute force (no stock)


def history_laws(mdp, H, s0):
    """Every law of G_0 from s0 under a deterministic history-dependent policy, as dicts value -> prob.

    A policy picks an action at every history (s_0, r_1, s_1, …, s_t); recursively, the laws reachable
    from a history are: for each action, every combination of one reachable law per outcome (s', r)."""
    g = mdp.gamma

    def rec(t, s, acc):
        if t == H:
            return [{acc: 1.0}]
        out = {}
        for a in range(mdp.A):
            outs = [(int(s2), k, mdp.PR[s, a, s2, k]) for s2, k in zip(*np.nonzero(mdp.PR[s, a]))]
            kids = [rec(t + 1, s2, acc + g ** t * mdp.r_atoms[k]) for s2, k, _ in outs]
            for combo in itertools.product(*kids):
                law = {}
                for (_, _, p), sub in zip(outs, combo):
                    for v, q in sub.items():
                        law[v] = law.get(v, 0.0) + p * q
                out[tuple(sorted((v, round(q, 14)) for v, q in law.items()))] = law
        return list(out.values())
    return rec(0, s0, 0.0)


def markov_laws(mdp, H, s0):
    """The law of G_0 from s0 under each of the (A^S)^H deterministic Markov policies π_t(s)."""
    laws = []
    for flat in itertools.product(range(mdp.A), repeat=mdp.S * H):
        act = np.array(flat).reshape(H, mdp.S)
        paths = {(s0, 0.0): 1.0}
        for t in range(H):
            nxt = {}
            for (s, acc), p in paths.items():
                for s2, k in zip(*np.nonzero(mdp.PR[s, act[t, s]])):
                    key = (int(s2), acc + mdp.gamma ** t * mdp.r_atoms[k])
                    nxt[key] = nxt.get(key, 0.0) + p * mdp.PR[s, act[t, s], s2, k]
            paths = nxt
        law = {}
        for (_, acc), p in paths.items():
            law[acc] = law.get(acc, 0.0) + p
        laws.append(law)
    return laws


def tail_mean(law, alpha):
    """CVaR_α by walking up the sorted atoms (written independently of the reference)."""
    total, seen = 0.0, 0.0
    for v, p in sorted(law.items()):
        take = min(p, max(alpha - seen, 0.0))
        total += take * v
        seen += p
    return total / alpha


def tiny(seed, gamma, H=None, support=None):
    rng = np.random.default_rng(seed)
    m = tm.random_reward_kernel_mdp(rng, 2, 2, [0.0, 1.0, 2.0], gamma=gamma, support=support or int(rng.integers(2, 4)))
    H = H or (3 if m.PR.astype(bool).sum(axis=(2, 3)).max() <= 2 else 2)
    return tm.RewardKernelMDP(PR=m.PR, r_atoms=m.r_atoms, gamma=gamma, d0=np.array([1.0, 0.0])), H


# ---------------------------------------------------------------------------- properties


@settings(max_examples=10, deadline=None)
@given(seed=seeds, gamma=st.sampled_from([1.0, 0.9, 0.5]), c0=st.floats(-3, 3))
def test_stock_invariant_by_simulation(seed, gamma, c0):
    """Stock augmentation: with C_{t+1} = (C_t + R_{t+1})/γ, every simulated episode has
    c₀ + G_0 = γ^t (C_t + G_t) at every t (the identity behind Z_t = γ Z_{t+1})."""
    rng = np.random.default_rng(seed)
    m = tm.random_reward_kernel_mdp(rng, 3, 2, rng.normal(size=3), gamma=gamma, support=3)
    H = 5
    for _ in range(20):
        s, c, rewards, stocks = int(rng.choice(3, p=m.d0)), c0, [], [c0]
        for _t in range(H):
            flat = rng.choice(m.PR[s, 0].size, p=m.PR[s, int(rng.integers(2))].ravel())
            s, k = divmod(int(flat), 3)
            rewards.append(m.r_atoms[k])
            c = D.stock_update(c, m.r_atoms[k], gamma)
            stocks.append(c)
        G = [sum(gamma ** j * r for j, r in enumerate(rewards[t:])) for t in range(H + 1)]
        for t in range(H + 1):
            assert c0 + G[0] == pytest.approx(gamma ** t * (stocks[t] + G[t]), abs=1e-9)


@settings(max_examples=50, deadline=None)
@given(seed=seeds, alpha=st.floats(0.01, 1.0))
def test_cvar_formulas_agree(seed, alpha):
    """CVaR_α as the mean of the lowest α-fraction equals max_b {b − E(b − Z)⁺/α} (Rockafellar–Uryasev),
    the max taken over the atoms, and no b on a fine grid does better."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 7))
    atoms, probs = np.sort(rng.normal(size=n)), rng.dirichlet(np.ones(n))
    law = dict(zip(atoms, probs))
    got = D.cvar((atoms, probs), alpha)
    assert got == pytest.approx(tail_mean(law, alpha), abs=1e-12)
    assert got == pytest.approx(max(D.cvar_rockafellar((atoms, probs), alpha, b) for b in atoms), abs=1e-12)
    grid = np.linspace(atoms.min() - 1, atoms.max() + 1, 401)
    assert max(D.cvar_rockafellar((atoms, probs), alpha, b) for b in grid) <= got + 1e-12


@settings(max_examples=12, deadline=None)
@given(seed=seeds, gamma=st.sampled_from([1.0, 0.5]), utility=st.sampled_from(sorted(UTILS)),
       c0=st.sampled_from([-3.0, -2.0, -1.5, -1.0, 0.0, 0.5]))
def test_expected_utility_equals_history_brute_force(seed, gamma, utility, c0):
    """Stock DVI is optimal for expected utilities: its E f(c₀ + G_0) equals the max over every deterministic
    history-dependent policy (which is the max over all policies, the objective being linear in the law),
    for γ = 1 and, f being positively homogeneous, for γ = 1/2."""
    m, H = tiny(seed, gamma)
    f = UTILS[utility]
    best = max(sum(p * f(c0 + v) for v, p in law.items()) for law in history_laws(m, H, 0))
    value, _, _ = D.optimize_expected_utility(m, H, utility, c0)
    assert value == pytest.approx(best, abs=1e-12)


@settings(max_examples=12, deadline=None)
@given(seed=seeds, gamma=st.sampled_from([1.0, 0.5]), alpha=st.sampled_from([0.1, 0.25, 0.5, 0.75, 1.0]))
def test_cvar_equals_history_brute_force_and_beats_markov(seed, gamma, alpha):
    """CVaR: the b-split + stock DVI optimum equals the max of CVaR_α over every deterministic
    history-dependent policy (hence over all policies), is ≥ the best Markov policy's CVaR (hence ≥ every
    randomised Markov policy's), and the law it returns has that CVaR. Equality with Markov holds when
    α = 1 (CVaR_1 = E G: standard RL, a Markov policy is optimal) and when H = 1 (one decision, one stock)."""
    m, H = tiny(seed, gamma)
    hist = max(tail_mean(law, alpha) for law in history_laws(m, H, 0))
    markov = max(tail_mean(law, alpha) for law in markov_laws(m, H, 0))
    value, _, dist, _ = D.optimize_cvar(m, H, alpha)
    assert value == pytest.approx(hist, abs=1e-12)
    assert value >= markov - 1e-12
    assert tail_mean(dict(zip(*dist)), alpha) == pytest.approx(value, abs=1e-12)
    if alpha == 1.0:
        assert value == pytest.approx(markov, abs=1e-12)
    one_step = max(tail_mean(law, alpha) for law in markov_laws(m, 1, 0))
    assert D.optimize_cvar(m, 1, alpha)[0] == pytest.approx(one_step, abs=1e-12)


def gamble():
    """Step 0 (state 0): reward 0 or 2 with probability ½ each, then state 1 (both actions alike).
    Step 1 (state 1): action 0 pays 1; action 1 pays 0 or 3 with probability ½ each."""
    PR = np.zeros((2, 2, 2, 4))                                   # reward atoms 0, 1, 2, 3
    PR[0, :, 1, 0] = PR[0, :, 1, 2] = 0.5
    PR[1, 0, 1, 1] = 1.0
    PR[1, 1, 1, 0] = PR[1, 1, 1, 3] = 0.5
    return tm.RewardKernelMDP(PR=PR, r_atoms=np.arange(4.0), gamma=1.0, d0=np.array([1.0, 0.0]))


def test_stock_strictly_beats_markov_on_a_gamble():
    """The stock matters: on the 2-step gamble, CVaR_0.75 over Markov policies is 5/3 (action 0 at step 1:
    returns {1, 3}, tail (½·1 + ¼·3)/¾), while gambling after the low first reward and not after the high
    one gives returns {0: ¼, 3: ¾} with CVaR_0.75 = (¼·0 + ½·3)/¾ = 2; the stock DVI finds 2 and the
    policy that gambles only when the stock is low."""
    m = gamble()
    assert max(tail_mean(law, 0.75) for law in markov_laws(m, 2, 0)) == pytest.approx(5 / 3)
    value, b, dist, policy = D.optimize_cvar(m, 2, 0.75)
    assert value == pytest.approx(2.0, abs=1e-12)
    assert dict(zip(*dist)) == pytest.approx({0.0: 0.25, 3.0: 0.75})
    c_low, c_high = -b + 0.0, -b + 2.0                            # stocks after the first reward, c₀ = −b
    assert policy[1][(1, c_low)] == 1 and policy[1][(1, c_high)] == 0


@settings(max_examples=15, deadline=None)
@given(seed=seeds, gamma=st.floats(0.1, 1.0), H=st.integers(1, 4))
def test_identity_utility_is_standard_value_iteration(seed, gamma, H):
    """Standard RL is the special case f(z) = z, c₀ = 0: stock DVI's value equals d0·V_0 of finite-horizon
    backward induction on the expected-reward MDP (any γ, random start distribution)."""
    rng = np.random.default_rng(seed)
    m = tm.random_reward_kernel_mdp(rng, 3, 2, rng.normal(size=3), gamma=gamma, support=2)
    value, _, _ = D.optimize_expected_utility(m, H, "identity", 0.0)
    assert value == pytest.approx(m.d0 @ tm.backward_induction(m.expected(), H).V[0], abs=1e-10)


@settings(max_examples=10, deadline=None)
@given(seed=seeds, utility=st.sampled_from(sorted(UTILS)), c0=st.sampled_from([-2.0, -1.0, 0.0]))
def test_dpi_monotone_and_reaches_dvi(seed, utility, c0):
    """Distributional policy iteration (γ = 1): the objective of the start law never decreases from one
    iterate to the next, and DPI stops at the DVI optimum."""
    m, H = tiny(seed, 1.0)
    f = UTILS[utility]
    K = lambda nu: float(sum(p * f(z) for z, p in zip(*nu)))  # noqa: E731
    values, _ = D.stock_dpi(m, H, K, c0)
    assert all(b >= a - 1e-12 for a, b in zip(values, values[1:]))
    assert values[-1] == pytest.approx(D.optimize_expected_utility(m, H, utility, c0)[0], abs=1e-12)


@settings(max_examples=10, deadline=None)
@given(seed=seeds, gamma=st.sampled_from([1.0, 0.5]))
def test_dvi_distribution_matches_policy_rollout(seed, gamma):
    """The distribution DVI carries for (s₀, c₀) is the law of c₀ + G_0 under its own greedy stock policy,
    computed here by forward enumeration of (state, stock, discounted return) paths."""
    m, H = tiny(seed, gamma)
    c0 = -1.0
    eta, policy = D.stock_dvi(m, H, lambda nu: float(nu[1] @ np.minimum(nu[0], 0)), c0)
    paths = {(0, c0, 0.0): 1.0}
    for t in range(H):
        nxt = {}
        for (s, c, acc), p in paths.items():
            a = policy[t][(s, c)]
            for s2, k in zip(*np.nonzero(m.PR[s, a])):
                key = (int(s2), (c + m.r_atoms[k]) / gamma, acc + gamma ** t * m.r_atoms[k])
                nxt[key] = nxt.get(key, 0.0) + p * m.PR[s, a, s2, k]
        paths = nxt
    law = {}
    for (_, _, acc), p in paths.items():
        law[c0 + acc] = law.get(c0 + acc, 0.0) + p
    assert dict(zip(*eta[0][(0, c0)])) == pytest.approx(law, abs=1e-12)


def test_greedy_cvar_is_not_optimal():
    """CVaR is not an expected utility: it is not indifferent to mixtures, so DVI that is greedy in CVaR_α
    of the local stock-augmented return (no b-split) stays below the optimum on the gamble (5/3 < 2)."""
    m = gamble()
    eta, _ = D.stock_dvi(m, 2, lambda nu: D.cvar(nu, 0.75), 0.0)
    greedy = tail_mean(dict(zip(*D.start_distribution(m, eta[0], 0.0))), 0.75)
    assert greedy < 2.0 - 1e-6
    assert greedy == pytest.approx(5 / 3)


def test_non_homogeneous_utility_breaks_dvi_when_discounted():
    """γ-localisation: with γ = ½ and f(z) = 1[z ≥ 1] (f(γz) is not a multiple of f(z)), DVI that ranks
    the local return Z_t by f is suboptimal on a 2-state instance (0.628 < 0.816 by brute force); the same
    objective written as c₀ = −1 and f(z) = 1[z ≥ 0] (positively homogeneous) is solved exactly."""
    m, H = tiny(3, 0.5, H=3, support=2)
    best = max(sum(p for v, p in law.items() if v >= 1) for law in history_laws(m, H, 0))
    eta, _ = D.stock_dvi(m, H, lambda nu: float(nu[1] @ (nu[0] >= 1)), 0.0)
    naive = float(D.start_distribution(m, eta[0], 0.0)[1] @ (D.start_distribution(m, eta[0], 0.0)[0] >= 1))
    assert naive < best - 0.1
    assert D.optimize_expected_utility(m, H, "threshold", -1.0)[0] == pytest.approx(best, abs=1e-12)


def test_registry_entry_returns_optimum_and_law():
    """The entry returns the CVaR optimum of the gamble (2) with a law of that CVaR, and max E G = 2.5."""
    spec = registry.get("distributional_dp")
    m = gamble()
    out = spec(PR=m.PR, r_atoms=m.r_atoms, d0=m.d0, config=spec.config(H=2, alpha=0.75))
    assert out["value"] == pytest.approx(2.0) and tail_mean(dict(zip(out["atoms"], out["probs"])), 0.75) == 2.0
    eu = spec(PR=m.PR, r_atoms=m.r_atoms, d0=m.d0, config=spec.config(H=2, objective="expected_utility"))
    assert eu["value"] == pytest.approx(2.5)                      # max E G = 1 + 1.5


def test_bad_input_raises():
    spec = registry.get("distributional_dp")
    m = gamble()
    with pytest.raises(RLSpecValueError, match="alpha"):
        spec.config(alpha=0.0)
    with pytest.raises(RLSpecValueError, match="utility"):
        spec.config(utility="exp")
    with pytest.raises(RLSpecValueError, match="gamma"):
        spec.config(gamma=0.0)
    with pytest.raises(RLSpecValueError, match="PR"):
        spec(PR=m.PR * 2, r_atoms=m.r_atoms, d0=m.d0)
    with pytest.raises(RLSpecValueError, match="r_atoms"):
        spec(PR=m.PR, r_atoms=np.array([0.0, np.nan, 1.0, 2.0]), d0=m.d0)
    with pytest.raises(RLSpecValueError, match="d0"):
        spec(PR=m.PR, r_atoms=m.r_atoms, d0=np.array([0.5, 0.6]))


def plot_cvar_gap(path="docs/algorithms/img/distributional_dp.png"):  # pragma: no cover - docs figure
    """Write the docs figure: optimal CVaR_α on the gamble over stock-Markov vs Markov policies."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    m = gamble()
    alphas = np.linspace(0.02, 1.0, 50)
    stock = [D.optimize_cvar(m, 2, a)[0] for a in alphas]
    markov = [max(tail_mean(law, a) for law in markov_laws(m, 2, 0)) for a in alphas]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(alphas, stock, label="stock-augmented DVI, b-split")
    ax.plot(alphas, markov, "--", label="best Markov policy")
    ax.set_xlabel("α")
    ax.set_ylabel("max CVaR_α(G)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
