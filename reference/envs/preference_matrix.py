"""A small preference game: n responses, a preference matrix, and its (regularised) Nash policies.

Used by the general-preference / Nash-learning papers (INPO) so that their properties compare with the
exact equilibrium instead of sampled win rates.

The problem: one prompt, n candidate responses, P[y, y'] = P(y ≻ y') ∈ [0, 1] with P + Pᵀ = 1 (so
P[y, y] = ½). Policies are points of the simplex Δ_n. The symmetric two-player constant-sum game
of Munos et al. (Nash learning from human feedback) and INPO (arXiv 2407.00617), with a KL anchor
π_ref and strength τ ≥ 0::

    P(y ≻ π)        = Σ_y' P[y, y'] π(y') = (P π)_y                       win rate of y against π
    P(π ≻ π')       = πᵀ P π'                                             P(π ≻ π) = ½ for every π
    J(π, π')        = πᵀ P π' − τ KL(π ‖ π_ref) + τ KL(π' ‖ π_ref)        player 1 maximises, player 2 minimises
    π*_τ            = argmax_π min_π' J(π, π')                            unique for τ > 0; π*_τ ∝ π_ref e^{P π*_τ / τ}

Duality gap of a symmetric profile (π, π) (our derivation; it is ≥ 0 and = 0 exactly at π*_τ)::

    DualGap_τ(π) = max_π' J(π', π) − min_π' J(π, π')
                 = 2 [τ log Σ_y π_ref(y) e^{(Pπ)_y / τ} + τ KL(π ‖ π_ref)] − 1      (τ > 0)
                 = 2 max_y (P π)_y − 1                                             (τ = 0)

(using Pᵀ = 1 − P: min_π' πᵀPπ' = 1 − max_π' π'ᵀPπ). Without regularisation (τ = 0) a Nash policy
π* is any solution of the linear program max_{π, v} v s.t. (πᵀ P)_j ≥ v for all j (its value is ½);
:func:`nash_lp` solves it with scipy's HiGHS. A transitive (Bradley-Terry) matrix has the best response
as a pure Nash policy; rock-paper-scissors has the uniform one.

Stable API: :class:`PreferenceGame`, :func:`check_preference`, :func:`rock_paper_scissors`,
:func:`bradley_terry`, :func:`random_preference`, :func:`win_rates`, :func:`win_prob`, :func:`duality_gap`,
:func:`best_response_value`, :func:`nash_lp`, :func:`regularized_nash`, :func:`kl`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import fail, positive

_TOL = 1e-9


def check_preference(P, name: str = "P", complementary: bool = True) -> np.ndarray:
    """Float64 copy of a square preference matrix with entries in [0, 1] (and P + Pᵀ = 1 if asked)."""
    P = np.array(P, dtype=np.float64)
    if P.ndim != 2 or P.shape[0] != P.shape[1] or P.shape[0] < 2:
        raise fail(name, f"shape {P.shape}", "a square (n, n) matrix, n ≥ 2")
    if not np.isfinite(P).all() or (P < 0).any() or (P > 1).any():
        raise fail(name, "entries outside [0, 1] or non-finite", "probabilities P(y ≻ y') in [0, 1]")
    if complementary and np.abs(P + P.T - 1.0).max() > _TOL:
        raise fail(name, f"max |P + Pᵀ − 1| = {np.abs(P + P.T - 1.0).max():.3g}", "P(y ≻ y') + P(y' ≻ y) = 1")
    return P


def check_simplex(pi, n: int, name: str) -> np.ndarray:
    """Float64 copy of a probability vector of length n."""
    p = np.array(pi, dtype=np.float64)
    if p.shape != (n,) or not np.isfinite(p).all() or (p < 0).any() or abs(p.sum() - 1.0) > _TOL:
        raise fail(name, f"{p!r}", f"a probability vector of length {n}")
    return p


@dataclass(frozen=True)
class PreferenceGame:
    """P (n, n) with P + Pᵀ = 1, reference policy pi_ref (n,) (uniform by default)."""

    P: np.ndarray
    pi_ref: np.ndarray | None = None

    def __post_init__(self) -> None:
        P = check_preference(self.P)
        ref = np.full(P.shape[0], 1.0 / P.shape[0]) if self.pi_ref is None else self.pi_ref
        ref = check_simplex(ref, P.shape[0], "pi_ref")
        if (ref <= 0).any():
            raise fail("pi_ref", f"{ref!r}", "full support (every response has π_ref > 0)")
        object.__setattr__(self, "P", P)
        object.__setattr__(self, "pi_ref", ref)

    @property
    def n(self) -> int:
        return self.P.shape[0]


def rock_paper_scissors(strength: float = 1.0) -> np.ndarray:
    """P = ½ + (strength/2)·C with C the cyclic ±1 matrix: y_i beats y_{i+1 mod 3}. strength ∈ [0, 1]."""
    C = np.array([[0.0, 1.0, -1.0], [-1.0, 0.0, 1.0], [1.0, -1.0, 0.0]])
    return 0.5 + 0.5 * float(strength) * C


def bradley_terry(rewards) -> np.ndarray:
    """P[y, y'] = σ(r_y − r_y'): a transitive preference matrix."""
    r = np.asarray(rewards, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(-(r[:, None] - r[None, :])))


def random_preference(rng: np.random.Generator, n: int) -> np.ndarray:
    """A random general (possibly intransitive) matrix: P = (A + 1 − Aᵀ)/2 with A uniform on [0, 1]."""
    A = rng.uniform(size=(n, n))
    return (A + 1.0 - A.T) / 2.0


def win_rates(P, pi) -> np.ndarray:
    """P(y ≻ π) = (P π)_y for every response y, (n,)."""
    return np.asarray(P, dtype=np.float64) @ np.asarray(pi, dtype=np.float64)


def win_prob(P, pi, pi2) -> float:
    """P(π ≻ π') = πᵀ P π'."""
    return float(np.asarray(pi) @ np.asarray(P) @ np.asarray(pi2))


def kl(p, q) -> float:
    """KL(p ‖ q) = Σ p log p/q (0·log 0 = 0; ∞ if p puts mass where q has none)."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    on = p > 0
    if (q[on] <= 0).any():
        return float("inf")
    return float((p[on] * np.log(p[on] / q[on])).sum())


def _lse(z: np.ndarray, w: np.ndarray) -> float:
    """log Σ w e^z, stably."""
    m = z.max()
    return float(m + np.log((w * np.exp(z - m)).sum()))


def best_response_value(P, pi, pi_ref=None, tau: float = 0.0) -> float:
    """max_π' [π'ᵀ P π − τ KL(π' ‖ π_ref)] = τ log Σ π_ref e^{Pπ/τ} (τ > 0), max_y (Pπ)_y (τ = 0)."""
    g = win_rates(P, pi)
    if tau == 0:
        return float(g.max())
    ref = np.full(len(g), 1.0 / len(g)) if pi_ref is None else np.asarray(pi_ref, dtype=np.float64)
    return tau * _lse(g / tau, ref)


def duality_gap(P, pi, pi_ref=None, tau: float = 0.0) -> float:
    """DualGap_τ(π) of the symmetric profile (π, π); see the module docstring. ≥ 0, = 0 at π*_τ."""
    tau = positive(tau, "tau", allow_zero=True)
    P = check_preference(P)
    pi = check_simplex(pi, P.shape[0], "pi")
    ref = np.full(P.shape[0], 1.0 / P.shape[0]) if pi_ref is None else check_simplex(pi_ref, P.shape[0], "pi_ref")
    reg = 0.0 if tau == 0 else tau * kl(pi, ref)
    return 2.0 * (best_response_value(P, pi, ref, tau) + reg) - 1.0


def nash_lp(P) -> np.ndarray:
    """A Nash policy of the unregularised game: argmax_π min_j (πᵀP)_j by linear programming (HiGHS)."""
    from scipy.optimize import linprog

    P = check_preference(P)
    n = P.shape[0]
    c = np.zeros(n + 1)
    c[-1] = -1.0                                             # maximise v
    A_ub = np.hstack([-P.T, np.ones((n, 1))])                # v − (πᵀP)_j ≤ 0
    A_eq = np.hstack([np.ones((1, n)), np.zeros((1, 1))])
    res = linprog(c, A_ub=A_ub, b_ub=np.zeros(n), A_eq=A_eq, b_eq=[1.0],
                  bounds=[(0, None)] * n + [(None, None)], method="highs")
    if not res.success:  # pragma: no cover - a bounded feasible LP always solves
        raise RuntimeError(f"nash_lp: linprog failed: {res.message}")
    pi = np.clip(res.x[:n], 0.0, None)
    return pi / pi.sum()


def regularized_nash(P, pi_ref=None, tau: float = 1.0, tol: float = 1e-13) -> np.ndarray:
    """π*_τ: the unique solution of π = softmax(log π_ref + Pπ/τ), τ > 0.

    Solved by minimising the convex DualGap_τ over logits (L-BFGS), then Newton's method on the fixed
    point; raises if the residual is not below ``tol``.
    """
    from scipy.optimize import minimize

    tau = positive(tau, "tau")
    P = check_preference(P)
    n = P.shape[0]
    ref = np.full(n, 1.0 / n) if pi_ref is None else check_simplex(pi_ref, n, "pi_ref")
    if (ref <= 0).any():
        raise fail("pi_ref", f"{ref!r}", "full support")
    logref = np.log(ref)

    def softmax(z):
        e = np.exp(z - z.max())
        return e / e.sum()

    def gap(theta):
        pi = softmax(theta)
        s = softmax(logref + P @ pi / tau)
        value = 2.0 * (tau * _lse(P @ pi / tau, ref) + tau * float(pi @ (np.log(pi) - logref))) - 1.0
        v = 2.0 * (P.T @ s + tau * (np.log(pi) - logref + 1.0))              # ∂DG/∂π
        return value, pi * (v - pi @ v)                                      # chain rule through softmax

    theta = minimize(gap, logref.copy(), jac=True, method="L-BFGS-B", options={"maxiter": 2000, "gtol": 1e-12}).x
    pi = softmax(theta)
    for _ in range(50):                                      # Newton on G(π) = π − softmax(log π_ref + Pπ/τ)
        s = softmax(logref + P @ pi / tau)
        G = pi - s
        if np.abs(G).max() < tol:
            return pi
        J = np.eye(n) - (np.diag(s) - np.outer(s, s)) @ P / tau
        pi = pi - np.linalg.solve(J, G)
        pi = np.clip(pi, 1e-300, None)
        pi = pi / pi.sum()
    s = softmax(logref + P @ pi / tau)
    if np.abs(pi - s).max() >= tol:
        raise RuntimeError(f"regularized_nash: fixed-point residual {np.abs(pi - s).max():.3g} ≥ {tol}")
    return pi
