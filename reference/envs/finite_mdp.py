"""Finite discounted MDPs with exact policy evaluation (one linear solve), for theory properties.

Used by BRRL (arXiv 2604.18578, Thm 4.2) to check policy-improvement claims without sampling.

A problem is P (S, A, S) transition probabilities, R (S, A) expected rewards, γ ∈ [0, 1) and d0 (S,)
the initial-state distribution; a policy π is (S, A), rows on the simplex::

    P_π(s, s') = Σ_a π(a|s) P(s, a, s'),   r_π(s) = Σ_a π(a|s) R(s, a)
    V_π = (I − γ P_π)⁻¹ r_π,   Q_π = R + γ P V_π,   A_π = Q_π − V_π,   η(π) = d0 · V_π
    d_π = (1 − γ) d0ᵀ (I − γ P_π)⁻¹          normalised discounted state-visitation distribution

Performance-difference lemma (Kakade & Langford, ICML 2002, Lemma 6.1), exact here::

    η(π') − η(π) = (1/(1 − γ)) Σ_s d_π'(s) Σ_a π'(a|s) A_π(s, a)

and d_π'(s) ≥ (1 − γ) d0(s) for every s (the first term of the series).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import fail, in_range


@dataclass(frozen=True)
class FiniteMDP:
    """P (S, A, S), R (S, A), gamma ∈ [0, 1), d0 (S,)."""

    P: np.ndarray
    R: np.ndarray
    gamma: float
    d0: np.ndarray

    def __post_init__(self) -> None:
        P, R, d0 = np.asarray(self.P, float), np.asarray(self.R, float), np.asarray(self.d0, float)
        if P.ndim != 3 or P.shape[0] != P.shape[2] or R.shape != P.shape[:2] or d0.shape != (P.shape[0],):
            raise fail("P, R, d0", f"shapes {P.shape}, {R.shape}, {d0.shape}", "(S, A, S), (S, A), (S,)")
        if (P < 0).any() or not np.allclose(P.sum(axis=2), 1.0) or (d0 < 0).any() or not np.isclose(d0.sum(), 1.0):
            raise fail("P, d0", "rows that are not distributions", "transition rows and d0 on the simplex")
        if not np.isfinite(R).all():
            raise fail("R", "non-finite values", "finite rewards")
        in_range(self.gamma, "gamma", 0.0, 1.0, hi_open=True)

    @property
    def S(self) -> int:
        return int(np.shape(self.P)[0])

    @property
    def A(self) -> int:
        return int(np.shape(self.P)[1])


def random_mdp(rng: np.random.Generator, S: int, A: int, gamma: float = 0.9) -> FiniteMDP:
    """A random dense MDP: Dirichlet(1) transition rows and d0, rewards N(0, 1)."""
    return FiniteMDP(P=rng.dirichlet(np.ones(S), size=(S, A)), R=rng.normal(size=(S, A)), gamma=gamma,
                     d0=rng.dirichlet(np.ones(S)))


def _policy(mdp: FiniteMDP, pi) -> np.ndarray:
    p = np.asarray(pi, dtype=float)
    if p.shape != (mdp.S, mdp.A) or (p < -1e-15).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-9):
        raise fail("pi", f"shape {p.shape} or rows off the simplex", f"a policy of shape ({mdp.S}, {mdp.A})")
    return p


def evaluate(mdp: FiniteMDP, pi) -> tuple[np.ndarray, np.ndarray]:
    """(V_π (S,), Q_π (S, A)) by one linear solve."""
    p = _policy(mdp, pi)
    P_pi = np.einsum("sa,sat->st", p, mdp.P)  # (S, S)
    r_pi = (p * mdp.R).sum(axis=1)  # (S,)
    V = np.linalg.solve(np.eye(mdp.S) - mdp.gamma * P_pi, r_pi)
    return V, mdp.R + mdp.gamma * mdp.P @ V


def expected_return(mdp: FiniteMDP, pi) -> float:
    """η(π) = d0 · V_π."""
    return float(mdp.d0 @ evaluate(mdp, pi)[0])


def visitation(mdp: FiniteMDP, pi) -> np.ndarray:
    """d_π = (1 − γ) d0ᵀ (I − γ P_π)⁻¹ (S,), a distribution."""
    p = _policy(mdp, pi)
    P_pi = np.einsum("sa,sat->st", p, mdp.P)
    return (1.0 - mdp.gamma) * np.linalg.solve((np.eye(mdp.S) - mdp.gamma * P_pi).T, mdp.d0)
