"""Agnostic RL on small layered MDPs: spanning capacity, trajectory trees, PSDP.

Gene Li, "Agnostic Reinforcement Learning: Foundations and Algorithms" (PhD thesis, TTIC), arXiv 2506.01884.
Only the abstract was readable to us. The thesis studies agnostic policy learning — find π̂ with
J(π̂) ≥ max_{π∈Π} J(π) − ε for a given class Π, with no assumption that Π contains an optimal policy —
across access models (generative model, local simulator, μ-reset, online), coverage conditions and
representational conditions (spanning capacity). It builds on Jia, Li, Rakhlin, Sekhari, Srebro, "When is
Agnostic Reinforcement Learning Statistically Tractable?" (NeurIPS 2023, arXiv 2310.06113; abstract read:
"spanning capacity depends solely on Π; with a generative model bounded spanning capacity characterizes
PAC learnability") and Krishnamurthy, Li, Sekhari (COLT 2025, arXiv 2504.05405). This module implements the
concrete tabular procedures those results are about, on :mod:`rlspec.reference.envs.layered_mdp`
(H layers of S states, A actions, returns in [0, 1]); the thesis's own theorem statements and constants
were not recovered (see ``missing`` in the registry entry).

Spanning capacity (Jia et al. 2023; definition as in our notes, not read in the paper)::

    C_h(Π; M) = |{(s_h, a_h) : some π ∈ Π reaches s_h at layer h in M and π_h(s_h) = a_h}|
    C(Π) = max_h max_{M deterministic} C_h(Π; M)          M: a start state and next-state maps T_h(s, a)

computed here by exhaustive search over deterministic MDPs on the layered state space (only the transitions
of reached pairs are enumerated). Facts checked in the tests: 1 ≤ C(Π) ≤ |Π|; C(Π) ≤ A·S; for the class of
all policies C = A·max_h r_h with r_1 = 1, r_{h+1} = min(S, A·r_h).

Trajectory tree (Kearns, Mansour, Ng 1999), generative model: draw s_1 ~ d1 once; follow every π ∈ Π from s_1,
and the first time any policy plays a at (h, s) make one generative call (r, s') ~ (R, P)(h, s, a) and reuse
it for every policy that later plays a at (h, s). The sampled pairs form a deterministic MDP, so

    calls per tree at layer h = C_h(Π; sampled M) ≤ C(Π),    calls per tree ≤ H·C(Π),

and each policy's return G(π) in the tree is distributed as its return in the real MDP (a policy visits each
layer once, so it never reuses its own draws): E G(π) = J(π) for every π. With n trees, V̂(π) = (1/n)Σ_i G_i(π)
and π̂ = argmax V̂. Hoeffding (returns in [0, 1]) and a union bound over Π give

    n ≥ 2 log(2|Π|/δ)/ε²   ⇒   Pr[J(π̂) ≥ max_Π J − ε] ≥ 1 − δ,     total calls ≤ n·H·C(Π)

(our derivation: each |V̂(π) − J(π)| ≤ ε/2 with probability ≥ 1 − 2exp(−nε²/2)).

PSDP (Bagnell, Kakade, Ng, Schneider 2003) with μ-resets: for h = H−1, …, 0: draw n states s^i ~ μ_h, play every
action a once from s^i and roll out the already chosen π̂_{h+1:H} to get Q̂(s^i, a); set
π̂_h = argmax_{π_h ∈ Π_h} (1/n)Σ_i Q̂(s^i, π_h(s^i)). With exact rollouts (``exact=True``) Q̂ = Q^{π̂}_h and the
average is the μ_h expectation. Performance difference (exact, any π̂ and comparator π*)::

    J(π*) − J(π̂) = Σ_h E_{s∼d_h^{π*}} [Q^{π̂}_h(s, π*_h(s)) − Q^{π̂}_h(s, π̂_h(s))]
                 ≤ Σ_h ‖d_h^{π*}/μ_h‖_∞ · ε_h,      ε_h = E_{μ_h}[max_a Q^{π̂}_h(s, a) − Q^{π̂}_h(s, π̂_h(s))]

so with a complete class (Π_h = every map S → A) and n samples per layer, ε_h ≤ 2·sqrt(log(2H·|Π_h|/δ)/(2n))
for all h with probability ≥ 1 − δ (Hoeffding + union bound, ours). Without completeness PSDP can stay far
from the best policy of Π even with exact rollouts and bounded concentrability (the thesis's point, after
Krishnamurthy, Li, Sekhari; our three-state instance is in the tests).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import fail, in_range
from rlspec.reference.envs import layered_mdp as lm
from rlspec.reference.registry import Equation, Paper, Spec, register

THESIS = Paper(arxiv="2506.01884", title="Agnostic Reinforcement Learning: Foundations and Algorithms", year=2025)


def _count(value, name: str, lo: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise fail(name, repr(value), f"an integer ≥ {lo}")
    return int(value)


# ---------------------------------------------------------------------------- spanning capacity


def reached_pairs(policies: np.ndarray, start: int, T: np.ndarray) -> list[set[tuple[int, int]]]:
    """In the deterministic MDP (start state, T (H−1, S, A) next states): per layer h the set of pairs (s, a)
    that some policy of the class (K, H, S) reaches and plays."""
    K, H, _ = policies.shape
    out: list[set[tuple[int, int]]] = [set() for _ in range(H)]
    s = np.full(K, start)
    for h in range(H):
        a = policies[np.arange(K), h, s]
        out[h].update(zip(s.tolist(), a.tolist()))
        if h < H - 1:
            s = T[h, s, a]
    return out


def spanning_capacity(policies, S: int, A: int) -> tuple[int, np.ndarray]:
    """C(Π) = max_h max_M C_h(Π; M) by exhaustive search over deterministic layered MDPs.

    Args: policies (K, H, S) action indices; S states per layer; A actions.
    Returns: (C, per_layer (H,)) with per_layer[h] = max_M C_h(Π; M). Only the next states of pairs that are
    reached are enumerated (the rest cannot change any count), layer by layer.
    """
    pol = np.asarray(policies, dtype=np.int64)
    if pol.ndim != 3 or pol.shape[2] != S or pol.shape[0] == 0 or (pol < 0).any() or (pol >= A).any():
        raise fail("policies", f"shape {pol.shape}", f"(K, H, {S}) action indices in 0..{A - 1}")
    H = pol.shape[1]
    best = np.zeros(H, dtype=np.int64)
    seen: set = set()

    def visit(h: int, groups: dict[int, frozenset]) -> None:
        key = (h, frozenset(groups.items()))
        if key in seen:
            return
        seen.add(key)
        pairs: dict[tuple[int, int], set[int]] = {}
        for s, ks in groups.items():
            for k in ks:
                pairs.setdefault((s, int(pol[k, h, s])), set()).add(k)
        best[h] = max(best[h], len(pairs))
        if h == H - 1:
            return
        keys = sorted(pairs)
        for nxt in itertools.product(range(S), repeat=len(keys)):
            new: dict[int, set[int]] = {}
            for pair, s2 in zip(keys, nxt):
                new.setdefault(s2, set()).update(pairs[pair])
            visit(h + 1, {s2: frozenset(ks) for s2, ks in new.items()})

    for s1 in range(S):
        visit(0, {s1: frozenset(range(pol.shape[0]))})
    return int(best.max()), best


# ---------------------------------------------------------------------------- trajectory trees


def trajectory_tree(policies: np.ndarray, start: Callable[[], int],
                    gen: Callable[[int, int, int], tuple[float, int]]) -> tuple[np.ndarray, np.ndarray]:
    """One trajectory tree: the return G(π) (K,) of every policy of the class (K, H, S), and the generative
    calls made at each layer (H,). ``start()`` draws s_1; ``gen(h, s, a)`` is one generative call (r, s');
    each queried (h, s, a) is drawn once and shared by all policies."""
    K, H, _ = policies.shape
    s1 = int(start())
    cache: dict[tuple[int, int, int], tuple[float, int]] = {}
    calls = np.zeros(H, dtype=np.int64)
    G = np.zeros(K)
    for k in range(K):
        s = s1
        for h in range(H):
            a = int(policies[k, h, s])
            if (h, s, a) not in cache:
                cache[(h, s, a)] = gen(h, s, a)
                calls[h] += 1
            r, s = cache[(h, s, a)]
            G[k] += r
    return G, calls


def hoeffding_trees(n_policies: int, epsilon: float, delta: float) -> int:
    """n = ⌈2 log(2|Π|/δ)/ε²⌉: enough trees for Pr[J(π̂) ≥ max J − ε] ≥ 1 − δ (returns in [0, 1])."""
    return int(math.ceil(2.0 * math.log(2.0 * n_policies / delta) / epsilon**2))


def trajectory_tree_select(mdp: lm.LayeredMDP, policies, n: int, rng: np.random.Generator) -> dict:
    """The learner: n trajectory trees from the generative model, π̂ = argmax V̂ (ties to the lowest index).
    Returns dict with ``index``, ``V_hat`` (K,), ``calls`` (n, H) per tree and layer."""
    pol = lm.policy_array(mdp, policies)
    n = _count(n, "n")
    G = np.zeros((n, pol.shape[0]))
    calls = np.zeros((n, mdp.H), dtype=np.int64)
    for i in range(n):
        G[i], calls[i] = trajectory_tree(pol, lambda: lm.sample_start(mdp, rng),
                                         lambda h, s, a: lm.sample_step(mdp, h, s, a, rng))
    V_hat = G.mean(axis=0)
    return {"index": int(V_hat.argmax()), "V_hat": V_hat, "calls": calls}


@dataclass(frozen=True)
class AgnosticRLConfig:
    """epsilon, delta: the PAC target (accuracy, failure probability); n_trees: None = the Hoeffding count
    :func:`hoeffding_trees`; seed: of the generative model's draws. (Our defaults: no paper values exist.)"""

    epsilon: float = 0.25
    delta: float = 0.1
    n_trees: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        in_range(self.epsilon, "epsilon", 0.0, 1.0, lo_open=True)
        in_range(self.delta, "delta", 0.0, 1.0, lo_open=True, hi_open=True)
        if self.n_trees is not None:
            _count(self.n_trees, "n_trees")
        _count(self.seed, "seed", lo=0)


def agnostic_rl(P, q, d1, policies, config: AgnosticRLConfig | None = None) -> dict:
    """Agnostic PAC learning with a generative model by trajectory trees, with the quantities the guarantee uses.

    Args: P (H−1, S, A, S), q (H, S, A), d1 (S,): a layered MDP (:mod:`rlspec.reference.envs.layered_mdp`);
    policies (K, H, S) the class Π.
    Returns: dict with ``index`` (the chosen policy), ``V_hat`` (K,) the tree estimates, ``V`` (K,) the exact
    values, ``regret`` = max V − V[index], ``n_trees``, ``calls`` (n_trees,) generative calls per tree,
    ``spanning_capacity`` C(Π) and ``call_bound`` = H·C(Π).
    """
    cfg = config or AgnosticRLConfig()
    mdp = lm.LayeredMDP(P=P, q=q, d1=d1)
    pol = lm.policy_array(mdp, policies)
    n = cfg.n_trees or hoeffding_trees(pol.shape[0], cfg.epsilon, cfg.delta)
    out = trajectory_tree_select(mdp, pol, n, np.random.default_rng(cfg.seed))
    V = lm.values(mdp, pol)
    C, _ = spanning_capacity(pol, mdp.S, mdp.A)
    return {"index": out["index"], "V_hat": out["V_hat"], "V": V, "regret": float(V.max() - V[out["index"]]),
            "n_trees": n, "calls": out["calls"].sum(axis=1), "spanning_capacity": C, "call_bound": mdp.H * C}


# ---------------------------------------------------------------------------- PSDP


def rollout_return(mdp: lm.LayeredMDP, tail: np.ndarray, h: int, s: int, a: int, rng: np.random.Generator) -> float:
    """One sampled return from (h, s) playing a, then the policy ``tail`` (H, S) at layers h+1 … H−1."""
    r, s2 = lm.sample_step(mdp, h, s, a, rng)
    for t in range(h + 1, mdp.H):
        r2, s2 = lm.sample_step(mdp, t, s2, int(tail[t, s2]), rng)
        r += r2
    return r


def psdp(mdp: lm.LayeredMDP, mu, layer_classes, n: int | None, rng: np.random.Generator | None = None,
         exact: bool = False) -> np.ndarray:
    """PSDP with μ-resets over the product class Π_0 × … × Π_{H−1}.

    Args: mu (H, S) reset distributions; layer_classes (H, K, S) the candidate maps S → A per layer; n samples
    per layer (ignored with ``exact``); ``exact``: use Q^{π̂}_h and the μ_h expectation instead of samples.
    Returns: the policy π̂ (H, S). Ties go to the lowest candidate index.
    """
    mu = np.asarray(mu, dtype=np.float64)
    if mu.shape != (mdp.H, mdp.S) or (mu < 0).any() or np.abs(mu.sum(axis=1) - 1).max() > 1e-9:
        raise fail("mu", f"shape {mu.shape} or rows off the simplex", f"({mdp.H}, {mdp.S}) distributions")
    cls = np.asarray(layer_classes, dtype=np.int64)
    if cls.ndim != 3 or cls.shape[0] != mdp.H or cls.shape[2] != mdp.S or (cls < 0).any() or (cls >= mdp.A).any():
        raise fail("layer_classes", f"shape {cls.shape}", f"({mdp.H}, K, {mdp.S}) action indices")
    pi = np.zeros((mdp.H, mdp.S), dtype=np.int64)
    for h in range(mdp.H - 1, -1, -1):
        if exact:
            _, Q = lm.q_values(mdp, pi)
            score = (mu[h][None, :] * Q[h][np.arange(mdp.S)[None, :], cls[h]]).sum(axis=1)   # (K,)
        else:
            states = rng.choice(mdp.S, size=_count(n, "n"), p=mu[h])
            Qhat = np.array([[rollout_return(mdp, pi, h, int(s), a, rng) for a in range(mdp.A)] for s in states])
            score = Qhat[np.arange(len(states))[None, :], cls[h][:, states]].mean(axis=1)    # (K,)
        pi[h] = cls[h][int(score.argmax())]
    return pi


def psdp_epsilons(mdp: lm.LayeredMDP, mu, pi) -> np.ndarray:
    """ε_h = E_{μ_h}[max_a Q^π_h(s, a) − Q^π_h(s, π_h(s))] (H,): how far π_h is from greedy on μ_h."""
    _, Q = lm.q_values(mdp, pi)
    pi = lm.policy_array(mdp, pi, "pi")[0]
    gap = Q.max(axis=2) - Q[np.arange(mdp.H)[:, None], np.arange(mdp.S)[None, :], pi]
    return (np.asarray(mu) * gap).sum(axis=1)


def concentrability(mdp: lm.LayeredMDP, mu, comparator) -> np.ndarray:
    """C_h = max_s d_h^{π*}(s)/μ_h(s) (H,) (inf where μ_h misses a state π* visits)."""
    d = lm.occupancy(mdp, comparator)
    mu = np.asarray(mu, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(d > 0, d / mu, 0.0)
    return ratio.max(axis=1)


@dataclass(frozen=True)
class PSDPConfig:
    """n: reset states per layer; exact: exact rollouts and μ-expectations; seed: of the draws. (Ours.)"""

    n: int = 200
    exact: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        _count(self.n, "n")
        if not isinstance(self.exact, (bool, np.bool_)):
            raise fail("exact", repr(self.exact), "True or False")
        _count(self.seed, "seed", lo=0)


def agnostic_rl_psdp(P, q, d1, mu, layer_classes, config: PSDPConfig | None = None) -> dict:
    """PSDP under μ-resets on a layered MDP, with the exact quantities of its guarantee.

    Args: P, q, d1: the layered MDP; mu (H, S) reset distributions; layer_classes (H, K, S) per-layer candidates.
    Returns: dict with ``policy`` (H, S), ``value`` J(π̂), ``best_in_class`` max over the product class,
    ``optimum`` J*, ``epsilons`` (H,) and ``concentrability`` (H,) against the best policy of the class.
    """
    cfg = config or PSDPConfig()
    mdp = lm.LayeredMDP(P=P, q=q, d1=d1)
    pi = psdp(mdp, mu, layer_classes, cfg.n, np.random.default_rng(cfg.seed), exact=cfg.exact)
    cls = np.asarray(layer_classes, dtype=np.int64)
    product = np.array([np.stack(c) for c in itertools.product(*[list(cls[h]) for h in range(mdp.H)])])
    Vc = lm.values(mdp, product)
    best = product[int(Vc.argmax())]
    V_star, _ = lm.optimum(mdp)
    return {"policy": pi, "value": lm.value(mdp, pi), "best_in_class": float(Vc.max()),
            "optimum": float(mdp.d1 @ V_star[0]), "epsilons": psdp_epsilons(mdp, mu, pi),
            "concentrability": concentrability(mdp, mu, best)}


# ---------------------------------------------------------------------------- conformance inputs


def make_inputs(rng: np.random.Generator) -> dict:
    """A random layered MDP (H ∈ {2, 3}, S ∈ {2, 3}, A = 2) and a class of 2-4 random policies."""
    H, S = int(rng.integers(2, 4)), int(rng.integers(2, 4))
    mdp = lm.random_layered_mdp(rng, H, S, 2)
    K = int(rng.integers(2, 5))
    return {"P": mdp.P, "q": mdp.q, "d1": mdp.d1, "policies": rng.integers(0, 2, size=(K, H, S)),
            "config": {"n_trees": int(rng.integers(5, 40)), "seed": int(rng.integers(0, 1000))}}


def make_psdp_inputs(rng: np.random.Generator) -> dict:
    """A random layered MDP (H ∈ {2, 3}, S = 3, A = 2), full-support resets, 3 random candidates per layer."""
    H, S = int(rng.integers(2, 4)), 3
    mdp = lm.random_layered_mdp(rng, H, S, 2)
    return {"P": mdp.P, "q": mdp.q, "d1": mdp.d1, "mu": rng.dirichlet(np.ones(S), size=H),
            "layer_classes": rng.integers(0, 2, size=(H, 3, S)),
            "config": {"n": int(rng.integers(3, 20)), "seed": int(rng.integers(0, 1000))}}


# ---------------------------------------------------------------------------- registry

_ABS = "arXiv 2506.01884 (abstract only was readable); definitions as in our notes papers_C §3"
UNTESTED = (
    "untested: with a generative model, bounded spanning capacity is necessary for agnostic PAC learning (the "
    "lower-bound half of the characterization, Jia et al. 2023) — a lower bound quantifies over all algorithms",
    "untested: online access: a class of bounded spanning capacity that needs superpolynomially many samples, and "
    "POPLER's guarantee under the sunflower property — POPLER and the sunflower structure are not implemented",
    "untested: the thesis's negative results for local-simulator and μ-reset access, and its coverability / policy "
    "emulator (Block MDP) results — constructions and theorem statements not recovered (abstract only)",
)

register(Spec(
    name="agnostic_rl", kind="tabular", family="theory", paper=THESIS, status="partial",
    summary="agnostic PAC policy learning on layered MDPs: spanning capacity by exhaustive search, and the "
            "trajectory-tree learner with a generative model (unbiased estimates, ≤ H·C(Π) calls per tree)",
    fn=agnostic_rl, config_cls=AgnosticRLConfig, make_inputs=make_inputs,
    outputs=("index", "V_hat", "V", "regret", "n_trees", "calls", "spanning_capacity", "call_bound"),
    missing="the thesis's own algorithms and theorems (POPLER and the sunflower property, the policy emulator for "
            "Block MDPs, coverability-based and lower-bound results) were not recovered: only its abstract was "
            "readable; implemented are the tabular procedures it builds on (spanning capacity, trajectory trees, "
            "PSDP) with our own constants",
    equations=(
        Equation("spanning-capacity", "C(Π) = max_h max_{M det.} |{(s_h, a_h): ∃π ∈ Π reaching s_h in M, π(s_h) = a_h}|",
                 "Jia, Li, Rakhlin, Sekhari, Srebro, arXiv 2310.06113 (abstract names it; definition from our notes)",
                 "reconstructed", "spanning_capacity",
                 note="the max over deterministic MDPs on a layered state space of S states per layer; " + _ABS),
        Equation("trajectory-tree", "one draw per queried (h, s, a), shared by every π; V̂(π) = (1/n)Σ_i G_i(π); "
                 "π̂ = argmax V̂", "Kearns, Mansour, Ng 1999 (reusable trajectories), as used by Jia et al. 2023",
                 "secondary", "trajectory_tree", note="E G(π) = J(π) checked by exact enumeration of trees"),
        Equation("tree-call-bound", "calls per tree at layer h ≤ C(Π); per tree ≤ H·C(Π)",
                 "our notes papers_C §3 (B) (the sampled pairs form a deterministic MDP)", "reconstructed",
                 "trajectory_tree", note="checked on every tree of the exact enumeration"),
        Equation("hoeffding-trees", "n = ⌈2 log(2|Π|/δ)/ε²⌉ ⇒ Pr[J(π̂) ≥ max_Π J − ε] ≥ 1 − δ",
                 "derived here: Hoeffding on returns in [0, 1] and a union bound over Π", "reconstructed",
                 "hoeffding_trees"),
        Equation("psdp", "π̂_h = argmax_{π_h ∈ Π_h} (1/n) Σ_i Q̂(s^i, π_h(s^i)), s^i ~ μ_h, h = H−1 … 0",
                 "Bagnell, Kakade, Ng, Schneider 2003 (Policy Search by Dynamic Programming); our notes §3 (C)",
                 "secondary", "psdp"),
        Equation("psdp-bound", "J(π*) − J(π̂) = Σ_h E_{d_h^{π*}}[Q^{π̂}_h(s, π*) − Q^{π̂}_h(s, π̂)] ≤ Σ_h ‖d_h^{π*}/μ_h‖_∞ ε_h",
                 "performance difference lemma (Kakade & Langford 2002), finite horizon; the bound needs ε_h "
                 "relative to the greedy action, i.e. a complete class", "reconstructed", "psdp_epsilons"),
    ),
    gradient="none: a selection procedure, not a loss",
    properties=(
        "properties/test_agnostic_rl.py::test_spanning_capacity_basic_bounds: 1 ≤ C(Π) ≤ min(|Π|, S·A); one policy "
        "gives 1; constant-action policies give min(|Π|, A)",
        "properties/test_agnostic_rl.py::test_spanning_capacity_of_all_policies: C(Π_all) = A·max_h min(S, A^h) "
        "(closed form) by exhaustive search",
        "properties/test_agnostic_rl.py::test_spanning_capacity_is_attained_by_a_deterministic_mdp: a brute force "
        "over every deterministic MDP (all transitions) gives the same C(Π)",
        "properties/test_agnostic_rl.py::test_tree_estimates_are_unbiased_exact: E G(π) = J(π) for every π, by exact "
        "enumeration of all trajectory trees",
        "properties/test_agnostic_rl.py::test_calls_per_tree_are_bounded_by_spanning_capacity: on every enumerated "
        "tree, calls at layer h ≤ C_h(Π) and in total ≤ H·C(Π)",
        "properties/test_agnostic_rl.py::test_epsilon_optimal_with_probability_one_minus_delta: at the Hoeffding n "
        "the failure rate over 200 seeded runs is ≤ δ (binomial test, false-alarm rate 1e-3); with n = 1 it is not",
        "properties/test_agnostic_rl.py::test_registry_entry_reports_the_bound_quantities: the entry's outputs agree "
        "with the exact values and bounds",
        "properties/test_agnostic_rl.py::test_bad_input_raises: malformed MDPs, classes and configs name the argument",
        *UNTESTED,
    ),
    extras={"spanning_capacity": spanning_capacity, "trajectory_tree": trajectory_tree,
            "hoeffding_trees": hoeffding_trees, "select": trajectory_tree_select,
            "figures": (("img/agnostic_rl.png", "Failure rate of the trajectory-tree learner against the number of "
                         "trees (|Π| = 3, H = 3, ε = 0.25; n = 1 exact by enumeration, else 400 seeded runs): below "
                         "δ = 0.1 from n = 4 on, far earlier than the Hoeffding count n = 132"),)},
))

register(Spec(
    name="agnostic_rl_psdp", kind="tabular", family="theory", paper=THESIS, status="partial",
    summary="PSDP with μ-resets on layered MDPs: exact and sampled backward policy search over a product class, "
            "with the concentrability and per-layer errors of its guarantee",
    fn=agnostic_rl_psdp, config_cls=PSDPConfig, make_inputs=make_psdp_inputs,
    outputs=("policy", "value", "best_in_class", "optimum", "epsilons", "concentrability"),
    missing="the thesis's μ-reset results (its lower bounds and constants) were not recovered (abstract only); "
            "the procedure is PSDP as in Bagnell et al. 2003 with our Hoeffding constants",
    equations=(
        Equation("psdp", "π̂_h = argmax_{π_h ∈ Π_h} (1/n) Σ_i Q̂(s^i, π_h(s^i)), s^i ~ μ_h, h = H−1 … 0",
                 "Bagnell, Kakade, Ng, Schneider 2003; our notes papers_C §3 (C)", "secondary", "psdp"),
        Equation("psdp-bound", "J(π*) − J(π̂) ≤ Σ_h ‖d_h^{π*}/μ_h‖_∞ ε_h,  ε_h = E_{μ_h}[max_a Q^{π̂}_h − Q^{π̂}_h(s, π̂_h)]",
                 "performance difference lemma, finite horizon (derived here)", "reconstructed", "psdp_epsilons"),
        Equation("psdp-sample-error", "complete Π_h: ε_h ≤ 2 sqrt(log(2H|Π_h|/δ)/(2n)) for all h w.p. ≥ 1 − δ",
                 "derived here: Hoeffding on Q̂ ∈ [0, 1] and a union bound over layers and candidates",
                 "reconstructed", "psdp"),
    ),
    gradient="none: a selection procedure, not a loss",
    properties=(
        "properties/test_agnostic_rl.py::test_exact_psdp_with_complete_class_is_optimal: exact PSDP over all maps "
        "S → A equals backward induction (full-support μ)",
        "properties/test_agnostic_rl.py::test_psdp_performance_difference_bound: J(π*) − J(π̂) = PDL sum ≤ "
        "Σ_h C_h ε_h (exact, sampled PSDP outputs)",
        "properties/test_agnostic_rl.py::test_sampled_psdp_errors_within_hoeffding: ε_h ≤ 2 sqrt(log(2H|Π_h|/δ)/(2n)) "
        "for all h in ≥ 1 − δ of 60 seeded runs (binomial test, false-alarm rate 1e-3)",
        "properties/test_agnostic_rl.py::test_psdp_fails_without_completeness: a 3-state instance with "
        "concentrability 3 where exact PSDP over constant maps returns 0.3 against 0.5 for the best of the class",
        "untested: the thesis's lower bounds for μ-reset access without completeness — quantified over all algorithms",
    ),
    extras={"psdp": psdp, "epsilons": psdp_epsilons, "concentrability": concentrability},
))
