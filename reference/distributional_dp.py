"""Distributional dynamic programming with stock augmentation: optimising statistical functionals of the return.

Ávila Pires, Rowland, Borsa, Guo, Khetarpal, Barreto, Abel, Munos, Dabney, "Optimizing Return
Distributions with Distributional Dynamic Programming", arXiv 2501.13028 (JMLR 2025). No code was
found. Only the abstract and the table of contents were readable to us (sections: 3 stock-augmented
return distribution optimisation, 4 distributional DP, 5 applications, 6 the DηN agent); the
abstract fixes the method: augment the state with a statistic of the rewards since the first step
(the "stock"), run distributional value / policy iteration on the augmented MDP, and optimise
objectives such as CVaR and homeostatic regulation. The formulas below are the standard
stock-augmentation construction as we rebuilt it (provenance ``reconstructed`` in ``EQUATIONS``).

Notation (finite horizon H, steps t = 0 … H−1, discount γ ∈ (0, 1], random rewards R_{t+1})::

    G_t = Σ_{k=0}^{H−t−1} γ^k R_{t+k+1}          return from step t (G_H = 0)
    C_{t+1} = (C_t + R_{t+1}) / γ,  C_0 = c₀      stock
    Z_t = C_t + G_t                               stock-augmented return;  Z_t = γ Z_{t+1},  Z_0 = c₀ + G_0
    η_t(s, c) = law(Z_t | S_t = s, C_t = c)       its distribution, a finite list of atoms here

Distributional Bellman equations on the augmented MDP (``(γ·)_#`` scales the atoms by γ)::

    η_H(s, c) = δ_c
    η_t(s, c) = Σ_{s', k} PR[s, a, s', k] · (γ·)_# η_{t+1}(s', (c + r_k)/γ),   a = π_t(s, c)   (evaluation)
    DVI:  a*_t(s, c) ∈ argmax_a K(the same mixture under a)                                   (optimality)
    DPI:  evaluate π, then π'_t(s, c) ∈ argmax_a K(mixture under a with η^π_{t+1}); repeat

Objective K(law(c₀ + G_0)) of the start distribution (the mixture over s₀ ~ d0). Expected utilities
K(ν) = E_{Z~ν} f(Z) are handled by DVI when the ranking of K is unchanged by the γ-scaling in
Z_0 = γ^t Z_t: always for γ = 1, and for γ < 1 when f is positively homogeneous, f(γz) = g(γ) f(z)
(our derived sufficient condition)::

    identity   f(z) = z             standard RL (c₀ = 0)
    hinge      f(z) = min(z, 0)     with c₀ = −b: E min(G − b, 0)    (CVaR's inner problem)
    abs        f(z) = −|z|          with c₀ = −target: homeostatic regulation, −E|G − target|
    threshold  f(z) = 1[z ≥ 0]      with c₀ = −target: Pr(G ≥ target)

CVaR of the lower tail at level α ∈ (0, 1] (Rockafellar–Uryasev), optimised over b and policies::

    CVaR_α(G) = max_b { b − E(b − G)⁺ / α } = max_b { b + E min(G − b, 0) / α }
    max_π CVaR_α(G^π) = max_b { b + (1/α) max_π E min(c₀ + G^π, 0) |_{c₀ = −b} }

b ranges over the finitely many values the return can take (the CVaR of a finite distribution is
attained at one of its atoms), so the outer max is exact. Every (b, policy) pair is a stock-Markov
policy (π_t(s, c)); it is at least as good as any Markov policy (π_t(s)), strictly on some problems
(the two coincide when α = 1, where CVaR is the mean, and when H = 1, where there is one stock).

Conventions: finite horizon only (the stock then takes finitely many values, reached exactly by
a forward pass; no lattice or interpolation); greedy ties go to the lowest action whose K is within
1e-12 of the best; distributions are (atoms, probs) with atoms sorted and exact duplicates merged.
Config defaults are ours (the paper's examples could not be read).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import choice, fail, in_range
from rlspec.reference.envs import tabular_mdp
from rlspec.reference.registry import Equation, Paper, Spec, register

DDP_PAPER = Paper(arxiv="2501.13028", year=2025,
                  title="Optimizing Return Distributions with Distributional Dynamic Programming")

Dist = tuple[np.ndarray, np.ndarray]  # (atoms (n,), probs (n,)), atoms sorted
UTILITIES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": lambda z: z,
    "hinge": lambda z: np.minimum(z, 0.0),
    "abs": lambda z: -np.abs(z),
    "threshold": lambda z: (z >= 0).astype(np.float64),
}
_TIE = 1e-12


@dataclass(frozen=True)
class DistDPConfig:
    """H: horizon; gamma: discount in (0, 1]; objective: 'cvar' or 'expected_utility'; alpha: CVaR level
    in (0, 1]; utility: f for 'expected_utility' (identity, hinge, abs, threshold); c0: initial stock for
    'expected_utility' (CVaR sets c0 = −b itself). Defaults are ours."""

    H: int = 3
    gamma: float = 1.0
    objective: str = "cvar"
    alpha: float = 0.25
    utility: str = "identity"
    c0: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.H, bool) or not isinstance(self.H, (int, np.integer)) or self.H < 1:
            raise fail("H", repr(self.H), "an integer horizon ≥ 1")
        in_range(self.gamma, "gamma", 0.0, 1.0, lo_open=True)
        choice(self.objective, "objective", ("cvar", "expected_utility"))
        in_range(self.alpha, "alpha", 0.0, 1.0, lo_open=True)
        choice(self.utility, "utility", tuple(UTILITIES))
        if not np.isfinite(float(self.c0)):
            raise fail("c0", repr(self.c0), "a finite initial stock")


# ---------------------------------------------------------------------------- distributions and functionals


def delta(c: float) -> Dist:
    """δ_c."""
    return np.array([float(c)]), np.array([1.0])


def mixture(parts: list[tuple[float, Dist]]) -> Dist:
    """Σ_j w_j ν_j for (w_j, ν_j) pairs (weights ≥ 0 summing to one); equal atoms merged, zero weights dropped."""
    atoms = np.concatenate([d[0] for w, d in parts if w > 0])
    probs = np.concatenate([w * d[1] for w, d in parts if w > 0])
    uniq, inv = np.unique(atoms, return_inverse=True)
    return uniq, np.bincount(inv, weights=probs, minlength=len(uniq))


def scale(d: Dist, gamma: float) -> Dist:
    """(γ·)_# ν: the law of γZ for Z ~ ν (γ > 0 keeps the order of the atoms)."""
    return gamma * d[0], d[1]


def expected_utility(d: Dist, f: Callable[[np.ndarray], np.ndarray]) -> float:
    """K(ν) = E_{Z~ν} f(Z)."""
    return float(d[1] @ f(d[0]))


def cvar(d: Dist, alpha: float) -> float:
    """CVaR_α(Z) = (1/α) ∫_0^α F⁻¹(u) du, the mean of the lowest α-fraction (atoms split at the boundary)."""
    atoms, probs = d
    below = np.concatenate([[0.0], np.cumsum(probs)[:-1]])     # mass strictly below each atom
    take = np.clip(alpha - below, 0.0, probs)                   # how much of each atom is in the tail
    return float(take @ atoms / alpha)


def cvar_rockafellar(d: Dist, alpha: float, b: float) -> float:
    """b − E(b − Z)⁺/α, whose max over b is CVaR_α(Z)."""
    return float(b - d[1] @ np.maximum(b - d[0], 0.0) / alpha)


# ---------------------------------------------------------------------------- the stock-augmented MDP


def stock_update(c: float, r: float, gamma: float) -> float:
    """C_{t+1} = (C_t + R_{t+1}) / γ."""
    return (c + r) / gamma


def reachable_stocks(mdp: tabular_mdp.RewardKernelMDP, H: int, c0: float) -> list[dict[int, list[float]]]:
    """For t = 0 … H, the stocks each state can hold at step t from (s₀ ∈ supp d0, c₀) (any actions)."""
    layers = [{s: [float(c0)] for s in np.flatnonzero(mdp.d0 > 0)}]
    for _ in range(H):
        nxt: dict[int, set[float]] = {}
        for s, cs in layers[-1].items():
            mass = mdp.PR[s].sum(axis=0) > 0                    # (S, K): outcomes some action can reach
            for s2, k in zip(*np.nonzero(mass)):
                nxt.setdefault(int(s2), set()).update(stock_update(c, mdp.r_atoms[k], mdp.gamma) for c in cs)
        layers.append({s: sorted(cs) for s, cs in nxt.items()})
    return layers


def backup(mdp: tabular_mdp.RewardKernelMDP, eta_next: dict, s: int, c: float, a: int) -> Dist:
    """Σ_{s', k} PR[s, a, s', k] (γ·)_# η_{t+1}(s', (c + r_k)/γ): the one-step distributional backup."""
    parts = []
    for s2, k in zip(*np.nonzero(mdp.PR[s, a])):
        nu = eta_next[(int(s2), stock_update(c, mdp.r_atoms[k], mdp.gamma))]
        parts.append((mdp.PR[s, a, s2, k], scale(nu, mdp.gamma)))
    return mixture(parts)


def _argmax(values: list[float]) -> int:
    best = max(values)
    return next(i for i, v in enumerate(values) if v >= best - _TIE * (1 + abs(best)))


def stock_dvi(mdp: tabular_mdp.RewardKernelMDP, H: int, K: Callable[[Dist], float], c0: float):
    """Distributional value iteration (finite horizon: one backward sweep) on the reachable augmented states.

    Returns (eta, policy): eta[t][(s, c)] the distribution of Z_t under the greedy policy, policy[t][(s, c)]
    the greedy action (argmax_a K of the backup, ties to the lowest index).
    """
    layers = reachable_stocks(mdp, H, c0)
    eta = [dict() for _ in range(H + 1)]
    policy = [dict() for _ in range(H)]
    for s, cs in layers[H].items():
        for c in cs:
            eta[H][(s, c)] = delta(c)
    for t in range(H - 1, -1, -1):
        for s, cs in layers[t].items():
            for c in cs:
                cands = [backup(mdp, eta[t + 1], s, c, a) for a in range(mdp.A)]
                a = _argmax([K(nu) for nu in cands])
                eta[t][(s, c)], policy[t][(s, c)] = cands[a], a
    return eta, policy


def evaluate_stock_policy(mdp: tabular_mdp.RewardKernelMDP, H: int, policy, c0: float) -> list[dict]:
    """η^π_t(s, c) for a stock-Markov policy given as a function policy(t, s, c) -> action."""
    layers = reachable_stocks(mdp, H, c0)
    eta = [dict() for _ in range(H + 1)]
    for s, cs in layers[H].items():
        for c in cs:
            eta[H][(s, c)] = delta(c)
    for t in range(H - 1, -1, -1):
        for s, cs in layers[t].items():
            for c in cs:
                eta[t][(s, c)] = backup(mdp, eta[t + 1], s, c, int(policy(t, s, c)))
    return eta


def start_distribution(mdp: tabular_mdp.RewardKernelMDP, eta0: dict, c0: float) -> Dist:
    """law(c₀ + G_0) = Σ_s d0(s) η_0(s, c₀)."""
    return mixture([(mdp.d0[s], eta0[(int(s), float(c0))]) for s in np.flatnonzero(mdp.d0 > 0)])


def stock_dpi(mdp: tabular_mdp.RewardKernelMDP, H: int, K: Callable[[Dist], float], c0: float,
              max_iter: int = 100) -> tuple[list[float], dict]:
    """Distributional policy iteration from the policy 'action 0 everywhere': evaluate, improve greedily in K
    (keeping the current action unless another is better by more than 1e-12); stop when stable.

    Returns (K of the start distribution per iterate, the final policy as a dict (t, s, c) -> a).
    """
    pol: dict = {}
    values = []
    for _ in range(max_iter):
        eta = evaluate_stock_policy(mdp, H, lambda t, s, c, pol=pol: pol.get((t, s, c), 0), c0)
        values.append(K(start_distribution(mdp, eta[0], c0)))
        new = {}
        for t in range(H):
            for (s, c) in eta[t]:
                ks = [K(backup(mdp, eta[t + 1], s, c, a)) for a in range(mdp.A)]
                cur = pol.get((t, s, c), 0)
                best = _argmax(ks)
                new[(t, s, c)] = cur if ks[cur] >= ks[best] - _TIE * (1 + abs(ks[best])) else best
        if all(new[k] == pol.get(k, 0) for k in new):
            return values, pol
        pol = new
    raise fail("max_iter", repr(max_iter), "enough iterations for policy iteration to stabilise")


def optimize_expected_utility(mdp: tabular_mdp.RewardKernelMDP, H: int, utility: str, c0: float) -> tuple[float, Dist, dict]:
    """max over stock-Markov policies of E f(c₀ + G_0) by stock DVI: (value, law(c₀ + G_0), policy)."""
    f = UTILITIES[choice(utility, "utility", tuple(UTILITIES))]
    eta, policy = stock_dvi(mdp, H, lambda nu: expected_utility(nu, f), c0)
    start = start_distribution(mdp, eta[0], c0)
    return expected_utility(start, f), start, policy


def return_values(mdp: tabular_mdp.RewardKernelMDP, H: int) -> np.ndarray:
    """Every value G_0 can take (from any start state, under any actions): γ^H c_H for c₀ = 0."""
    layers = reachable_stocks(mdp, H, 0.0)
    return np.unique([mdp.gamma ** H * c for cs in layers[H].values() for c in cs])


def optimize_cvar(mdp: tabular_mdp.RewardKernelMDP, H: int, alpha: float) -> tuple[float, float, Dist, dict]:
    """max over policies of CVaR_α(G_0): for each candidate b (a value G_0 can take) solve the hinge
    problem with c₀ = −b by stock DVI, keep the best b + V_b/α.

    Returns (CVaR*, b*, law(G_0) under the optimal stock policy, that policy for c₀ = −b*).
    """
    best = None
    for b in return_values(mdp, H):
        Vb, start, policy = optimize_expected_utility(mdp, H, "hinge", -b)
        if best is None or b + Vb / alpha > best[0] + _TIE * (1 + abs(best[0])):
            best = (b + Vb / alpha, float(b), (start[0] + b, start[1]), policy)
    return best


# ---------------------------------------------------------------------------- registry entry


def distributional_dp(PR, r_atoms, d0, config: DistDPConfig | None = None) -> dict:
    """The registry entry: the optimal value of the configured objective by stock-augmented DVI.

    Args: PR (S, A, S, K) joint law of (next state, reward atom); r_atoms (K,); d0 (S,).
    Returns {"value": K*, "b": the CVaR threshold b* (the initial stock's negative; c0 for expected
    utilities), "atoms", "probs": law(G_0) under the optimal stock-Markov policy}.
    """
    cfg = config or DistDPConfig()
    mdp = tabular_mdp.RewardKernelMDP(PR=PR, r_atoms=r_atoms, gamma=cfg.gamma, d0=d0)
    if cfg.objective == "cvar":
        value, b, dist, _ = optimize_cvar(mdp, cfg.H, cfg.alpha)
        return {"value": value, "b": b, "atoms": dist[0], "probs": dist[1]}
    value, start, _ = optimize_expected_utility(mdp, cfg.H, cfg.utility, cfg.c0)
    return {"value": value, "b": -float(cfg.c0), "atoms": start[0] - cfg.c0, "probs": start[1]}


def make_inputs(rng: np.random.Generator) -> dict:
    """A random problem: S ∈ [2, 3], A = 2, integer reward atoms {0, 1, 2}, each (s, a) on 2–3 outcomes."""
    S = int(rng.integers(2, 4))
    mdp = tabular_mdp.random_reward_kernel_mdp(rng, S, 2, [0.0, 1.0, 2.0], support=int(rng.integers(2, 4)))
    return {"PR": mdp.PR, "r_atoms": mdp.r_atoms, "d0": mdp.d0}


EQUATIONS = (
    Equation("stock", "C_{t+1} = (C_t + R_{t+1})/γ;  Z_t = C_t + G_t = γ Z_{t+1};  Z_0 = c₀ + G_0",
             "arXiv 2501.13028 abstract (state augmented with a statistic of past rewards) and §3 title; update "
             "rebuilt by us", "reconstructed", "stock_update",
             note="the invariant Z_t = γ Z_{t+1} is checked by simulation in the properties"),
    Equation("stock-bellman", "η_t(s,c) = Σ PR[s,a,s',k] (γ·)_# η_{t+1}(s', (c + r_k)/γ);  η_H(s,c) = δ_c",
             "§4 (distributional DP), rebuilt by us", "reconstructed", "backup"),
    Equation("dvi", "a*_t(s,c) ∈ argmax_a K(Σ PR[s,a,s',k] (γ·)_# η_{t+1}(s', (c + r_k)/γ))",
             "§4 (distributional value iteration), rebuilt by us", "reconstructed", "stock_dvi"),
    Equation("dpi", "π_{k+1}(t,s,c) ∈ argmax_a K(backup of η^{π_k}_{t+1} under a)",
             "§4 (distributional policy iteration), rebuilt by us", "reconstructed", "stock_dpi"),
    Equation("cvar", "CVaR_α(G) = max_b {b − E(b − G)⁺/α};  inner problem: c₀ = −b, f(z) = min(z, 0)",
             "Rockafellar & Uryasev (2000); CVaR named as an application in the abstract (§5)", "secondary",
             "optimize_cvar", note="b restricted to the values G_0 can take, which is exact for finite returns"),
    Equation("utilities", "f(z) = z (standard RL), min(z,0) (CVaR inner), −|z| (homeostasis), 1[z ≥ 0] (threshold)",
             "abstract (§5 applications: CVaR, homeostatic regulation); f's for the last two are ours",
             "reconstructed", "UTILITIES",
             note="γ < 1 needs f(γz) = g(γ) f(z) (positively homogeneous) for DVI to stay optimal: our derivation"),
)

register(Spec(
    name="distributional_dp", kind="tabular", family="theory", paper=DDP_PAPER, status="partial",
    summary="stock-augmented distributional value / policy iteration; CVaR, homeostasis, threshold objectives",
    fn=distributional_dp, config_cls=DistDPConfig, equations=EQUATIONS, outputs=("value", "b", "atoms", "probs"),
    make_inputs=make_inputs,
    missing="finite horizon only (the infinite-horizon DVI/DPI with their error bounds and a continuous stock "
            "are not built); the DηN deep agent (§6) is not built; the paper's exact conditions and theorem "
            "statements could not be read (only the abstract): the optimality conditions here are our derivation",
    gradient="no gradient: exact dynamic programming",
    properties=(
        "properties/test_distributional_dp.py::test_stock_invariant_by_simulation: c₀ + G_0 = γ^t (C_t + G_t)",
        "properties/test_distributional_dp.py::test_cvar_formulas_agree: sorted-tail CVaR = max_b Rockafellar–Uryasev",
        "properties/test_distributional_dp.py::test_expected_utility_equals_history_brute_force: stock DVI "
        "value = max over all deterministic history-dependent policies (γ = 1 any f; γ < 1 homogeneous f)",
        "properties/test_distributional_dp.py::test_cvar_equals_history_brute_force_and_beats_markov: stock CVaR "
        "optimum = history-dependent brute force ≥ best Markov policy; = Markov when α = 1 or H = 1",
        "properties/test_distributional_dp.py::test_stock_strictly_beats_markov_on_a_gamble: strict gap on a "
        "2-step gamble (CVaR_0.75: 2 vs 5/3)",
        "properties/test_distributional_dp.py::test_identity_utility_is_standard_value_iteration: f(z) = z, "
        "c₀ = 0 ⇒ backward induction on the expected-reward MDP",
        "properties/test_distributional_dp.py::test_dpi_monotone_and_reaches_dvi: DPI values non-decreasing, "
        "end at the DVI optimum",
        "properties/test_distributional_dp.py::test_dvi_distribution_matches_policy_rollout: DVI's η_0 = law of "
        "the return of its own policy by forward enumeration",
        "properties/test_distributional_dp.py::test_greedy_cvar_is_not_optimal: K = CVaR is not indifferent "
        "to mixtures; greedy DVI in CVaR itself loses to the b-split",
        "properties/test_distributional_dp.py::test_non_homogeneous_utility_breaks_dvi_when_discounted: "
        "γ < 1 with f(z) = 1[z ≥ 1] (not homogeneous) is suboptimal; moving the 1 into c₀ fixes it",
        "properties/test_distributional_dp.py::test_bad_input_raises",
        "untested: the infinite-horizon DVI/DPI convergence bounds (§4) — finite horizon only here, and the "
        "statements could not be read",
        "untested: the paper's characterisation of which objectives distributional DP can optimise (§4) — "
        "its exact statement could not be read; the last two properties above only show instances on either "
        "side of our sufficient condition (mixture indifference, homogeneity under γ)",
        "untested: DηN (§6, DQN-based agent) — not built",
    ),
    extras={"stock_dvi": stock_dvi, "stock_dpi": stock_dpi, "optimize_cvar": optimize_cvar,
            "optimize_expected_utility": optimize_expected_utility, "cvar": cvar,
            "evaluate_stock_policy": evaluate_stock_policy,
            "figures": (("img/distributional_dp.png", "Optimal CVaR_α of the return on the two-step gamble "
                         "(properties/test_distributional_dp.py::gamble): stock-augmented DVI with the b-split "
                         "against the best Markov policy (properties/test_distributional_dp.py::plot_cvar_gap)"),)},
))
