"""Layered finite-horizon MDPs with a generative model, for agnostic policy-learning theory.

A problem has H layers of S states each (the states of different layers are distinct, so a trajectory
visits each layer once), A actions, a start distribution d1 over layer 0 and::

    P (H−1, S, A, S)   P[h, s, a, s'] = Pr(s_{h+1} = s' | s_h = s, a_h = a)
    q (H, S, A)        Pr(r_h = 1/H | s, a); otherwise r_h = 0        (so every return lies in [0, 1])

The generative model returns one draw (r, s') for a queried (h, s, a) (:func:`sample_step`); its exact
law is :func:`step_outcomes`. A deterministic policy is an int array (H, S): the action in each state of
each layer; a policy class is an int array (K, H, S).

Exact quantities (backward induction, γ = 1)::

    V_H = 0,   Q_h(s, a) = q[h, s, a]/H + Σ_s' P[h, s, a, s'] V_{h+1}(s'),   V_h(s) = Q_h(s, π_h(s))
    J(π) = d1 · V_0,   d_0 = d1,   d_{h+1}(s') = Σ_s d_h(s) P[h, s, π_h(s), s']       (occupancies)

:func:`to_tabular` writes the problem as a :class:`rlspec.reference.envs.tabular_mdp.TabularMDP` on H·S + 1
states (the last one absorbing, reward 0), so :func:`evaluate` and :func:`optimum` are checked against
``tabular_mdp.evaluate_finite`` and ``backward_induction`` (``properties/test_envs_layered_mdp.py``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import fail
from rlspec.reference.envs import tabular_mdp

_TOL = 1e-9


@dataclass(frozen=True)
class LayeredMDP:
    """P (H−1, S, A, S), q (H, S, A) in [0, 1], d1 (S,). H ≥ 1 (P has shape (0, S, A, S) when H = 1)."""

    P: np.ndarray
    q: np.ndarray
    d1: np.ndarray

    def __post_init__(self) -> None:
        P, q, d1 = (np.array(x, dtype=np.float64) for x in (self.P, self.q, self.d1))
        if q.ndim != 3 or 0 in q.shape:
            raise fail("q", f"shape {q.shape}", "(H, S, A) with H, S, A ≥ 1")
        H, S, A = q.shape
        if P.shape != (H - 1, S, A, S):
            raise fail("P", f"shape {P.shape}", f"({H - 1}, {S}, {A}, {S}) = (H−1, S, A, S)")
        if d1.shape != (S,):
            raise fail("d1", f"shape {d1.shape}", f"({S},)")
        if not np.isfinite(P).all() or (P < 0).any() or (P.size and np.abs(P.sum(axis=3) - 1).max() > _TOL):
            raise fail("P", "rows that are not probability distributions", "P[h, s, a, :] ≥ 0 summing to 1")
        if not np.isfinite(q).all() or (q < 0).any() or (q > 1).any():
            raise fail("q", "values outside [0, 1]", "reward probabilities in [0, 1]")
        if not np.isfinite(d1).all() or (d1 < 0).any() or abs(d1.sum() - 1) > _TOL:
            raise fail("d1", "not a probability distribution", "d1 ≥ 0 summing to 1")
        object.__setattr__(self, "P", P)
        object.__setattr__(self, "q", q)
        object.__setattr__(self, "d1", d1)

    @property
    def H(self) -> int:
        return int(self.q.shape[0])

    @property
    def S(self) -> int:
        return int(self.q.shape[1])

    @property
    def A(self) -> int:
        return int(self.q.shape[2])


def random_layered_mdp(rng: np.random.Generator, H: int, S: int, A: int, *, support: int | None = None,
                       deterministic_rewards: bool = False) -> LayeredMDP:
    """Dirichlet(1) transitions (on ``support`` random next states if given), q ~ U(0, 1) (or in {0, 1}),
    d1 Dirichlet(1)."""
    P = np.zeros((H - 1, S, A, S))
    for h, s, a in itertools.product(range(H - 1), range(S), range(A)):
        idx = rng.choice(S, size=S if support is None else min(support, S), replace=False)
        P[h, s, a, idx] = rng.dirichlet(np.ones(len(idx)))
    q = rng.integers(0, 2, size=(H, S, A)).astype(float) if deterministic_rewards else rng.uniform(size=(H, S, A))
    return LayeredMDP(P=P, q=q, d1=rng.dirichlet(np.ones(S)))


def policy_array(mdp: LayeredMDP, policies, name: str = "policies") -> np.ndarray:
    """A policy (H, S) or class (K, H, S) of action indices, validated; returned as int64 (K, H, S)."""
    p = np.asarray(policies)
    if p.ndim == 2:
        p = p[None]
    if p.ndim != 3 or p.shape[1:] != (mdp.H, mdp.S) or p.shape[0] == 0:
        raise fail(name, f"shape {p.shape}", f"(K, {mdp.H}, {mdp.S}) action indices (K ≥ 1)")
    if not np.issubdtype(p.dtype, np.integer):
        if np.issubdtype(p.dtype, np.floating) and np.isfinite(p).all() and (p == np.round(p)).all():
            p = p.astype(np.int64)
        else:
            raise fail(name, f"dtype {p.dtype}", "integer action indices")
    if (p < 0).any() or (p >= mdp.A).any():
        raise fail(name, f"an action outside 0..{mdp.A - 1}", f"actions in 0..{mdp.A - 1}")
    return p.astype(np.int64)


def all_policies(H: int, S: int, A: int) -> np.ndarray:
    """Every deterministic layered policy, (A^(H·S), H, S) — tiny problems only."""
    return np.array(list(itertools.product(range(A), repeat=H * S)), dtype=np.int64).reshape(-1, H, S)


# ---------------------------------------------------------------------------- exact values


def q_values(mdp: LayeredMDP, policy) -> tuple[np.ndarray, np.ndarray]:
    """(V (H+1, S) with V[H] = 0, Q (H, S, A)) of one deterministic policy (H, S)."""
    pi = policy_array(mdp, policy, "policy")[0]
    V, Q = np.zeros((mdp.H + 1, mdp.S)), np.zeros((mdp.H, mdp.S, mdp.A))
    for h in range(mdp.H - 1, -1, -1):
        Q[h] = mdp.q[h] / mdp.H + (mdp.P[h] @ V[h + 1] if h < mdp.H - 1 else 0.0)
        V[h] = Q[h][np.arange(mdp.S), pi[h]]
    return V, Q


def value(mdp: LayeredMDP, policy) -> float:
    """J(π) = d1 · V_0^π ∈ [0, 1]."""
    return float(mdp.d1 @ q_values(mdp, policy)[0][0])


def values(mdp: LayeredMDP, policies) -> np.ndarray:
    """J(π_k) for every policy of a class (K, H, S), shape (K,)."""
    return np.array([value(mdp, p) for p in policy_array(mdp, policies)])


def optimum(mdp: LayeredMDP) -> tuple[np.ndarray, np.ndarray]:
    """(V* (H+1, S), an optimal policy (H, S)) by backward induction; ties to the lowest action."""
    V, pi = np.zeros((mdp.H + 1, mdp.S)), np.zeros((mdp.H, mdp.S), dtype=np.int64)
    for h in range(mdp.H - 1, -1, -1):
        Q = mdp.q[h] / mdp.H + (mdp.P[h] @ V[h + 1] if h < mdp.H - 1 else 0.0)
        pi[h], V[h] = Q.argmax(axis=1), Q.max(axis=1)
    return V, pi


def occupancy(mdp: LayeredMDP, policy) -> np.ndarray:
    """d (H, S): the law of s_h under π from d1."""
    pi = policy_array(mdp, policy, "policy")[0]
    d = np.zeros((mdp.H, mdp.S))
    d[0] = mdp.d1
    for h in range(mdp.H - 1):
        d[h + 1] = d[h] @ mdp.P[h][np.arange(mdp.S), pi[h]]
    return d


def to_tabular(mdp: LayeredMDP) -> tabular_mdp.TabularMDP:
    """The same problem on H·S + 1 states (index h·S + s; the last is absorbing), γ = 1, R = q/H."""
    H, S, A = mdp.H, mdp.S, mdp.A
    n = H * S + 1
    P, R = np.zeros((n, A, n)), np.zeros((n, A))
    for h in range(H):
        R[h * S:(h + 1) * S] = mdp.q[h] / H
        if h < H - 1:
            P[h * S:(h + 1) * S, :, (h + 1) * S:(h + 2) * S] = mdp.P[h]
        else:
            P[h * S:(h + 1) * S, :, n - 1] = 1.0
    P[n - 1, :, n - 1] = 1.0
    d0 = np.zeros(n)
    d0[:S] = mdp.d1
    return tabular_mdp.TabularMDP(P=P, R=R, gamma=1.0, d0=d0)


# ---------------------------------------------------------------------------- the generative model


def _draw(p: np.ndarray, u: float) -> int:
    """Inverse-CDF draw from the distribution p with a uniform u."""
    return min(int(np.searchsorted(np.cumsum(p), u, side="right")), len(p) - 1)


def sample_start(mdp: LayeredMDP, rng: np.random.Generator) -> int:
    """s_1 ~ d1."""
    return _draw(mdp.d1, rng.random())


def sample_step(mdp: LayeredMDP, h: int, s: int, a: int, rng: np.random.Generator) -> tuple[float, int]:
    """One generative call: (r, s') with r = 1/H w.p. q[h, s, a] (else 0) and s' ~ P[h, s, a] (−1 after the
    last layer)."""
    r = float(rng.random() < mdp.q[h, s, a]) / mdp.H
    s2 = _draw(mdp.P[h, s, a], rng.random()) if h < mdp.H - 1 else -1
    return r, s2


def start_outcomes(mdp: LayeredMDP) -> list[tuple[int, float]]:
    """The exact law of s_1: [(s, d1[s])] over the support."""
    return [(s, float(p)) for s, p in enumerate(mdp.d1) if p > 0]


def step_outcomes(mdp: LayeredMDP, h: int, s: int, a: int) -> list[tuple[tuple[float, int], float]]:
    """The exact law of one generative call: [((r, s'), probability)] over the support (r independent of s')."""
    rewards = [(0.0, 1.0 - mdp.q[h, s, a]), (1.0 / mdp.H, mdp.q[h, s, a])]
    nexts = [(-1, 1.0)] if h == mdp.H - 1 else [(int(t), float(p)) for t, p in enumerate(mdp.P[h, s, a])]
    return [((r, t), pr * pt) for (r, pr), (t, pt) in itertools.product(rewards, nexts) if pr * pt > 0]
