"""A contextual softmax bandit with exact enumeration: the smallest policy-gradient problem.

Used by the baseline and step-size papers (OBLR-PO, POISE) so that their properties compare with exact
expectations instead of Monte-Carlo estimates.

The problem: contexts x ∈ {0, …, X−1} ("prompts") drawn with probabilities ρ(x); in each context a
categorical policy over K actions ("responses") with its own logits, θ ∈ ℝ^{X×K}::

    π_θ(a | x)  = softmax(θ[x])_a
    J(θ)        = Σ_x ρ(x) Σ_a π_θ(a|x) r(x, a)                         expected reward
    s(x, a)     = ∇_θ log π_θ(a|x) = e_{x,a} − Σ_b π_θ(b|x) e_{x,b}      score vector, in ℝ^{X·K}
    ‖s(x, a)‖²  = 1 − 2 π(a|x) + ‖π(·|x)‖²                               (only block x is non-zero)
    ∇J          = Σ_x ρ(x) Σ_a π(a|x) r(x, a) s(x, a)
    ∇²J         = ⊕_x ρ(x) [diag(u_x) − u_x π_xᵀ − π_x u_xᵀ],  u_x = π_x ⊙ (r(x, ·) − J_x)

Parameters are flattened row-major: index x·K + a. A single-context bandit is the case X = 1.

Smoothness: for rewards in an interval of width Δ, θ ↦ J(θ) is L-smooth with L = (5/2)·Δ (Mei, Xiao,
Szepesvári, Schuurmans, "On the Global Convergence Rates of Softmax Policy Gradient Methods", ICML 2020,
Lemma 2, stated there for r ∈ [0, 1]; the Hessian depends on r only through r − J, so it scales with Δ).
The bound is loose (the largest ‖∇²J‖ we found numerically is ≈ 0.2·Δ), but it is a proven one.

Enumeration: :func:`iid_outcomes` lists every ordered tuple of n i.i.d. draws from a finite
distribution with its probability, so that any estimator built from n samples has an exact mean and
covariance.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import fail


@dataclass(frozen=True)
class SoftmaxBandit:
    """Rewards r (X, K) and context probabilities ρ (X,) (uniform by default)."""

    r: np.ndarray
    rho: np.ndarray | None = None

    def __post_init__(self) -> None:
        r = np.asarray(self.r, dtype=np.float64)
        if r.ndim == 1:
            r = r[None, :]
        if r.ndim != 2 or r.shape[1] < 2 or not np.isfinite(r).all():
            raise fail("r", f"shape {r.shape}", "finite rewards of shape (X, K) or (K,), K ≥ 2 actions")
        rho = np.full(r.shape[0], 1.0 / r.shape[0]) if self.rho is None else np.asarray(self.rho, dtype=np.float64)
        if rho.shape != (r.shape[0],) or (rho < 0).any() or not np.isclose(rho.sum(), 1.0):
            raise fail("rho", f"{rho!r}", f"probabilities of the {r.shape[0]} contexts, summing to 1")
        object.__setattr__(self, "r", r)
        object.__setattr__(self, "rho", rho)

    @property
    def X(self) -> int:
        return self.r.shape[0]

    @property
    def K(self) -> int:
        return self.r.shape[1]

    @property
    def P(self) -> int:
        """Number of parameters, X·K."""
        return self.r.size

    def policy(self, theta: np.ndarray) -> np.ndarray:
        """π(a|x) (X, K) for logits θ (X, K) or flattened (X·K,)."""
        th = np.asarray(theta, dtype=np.float64).reshape(self.X, self.K)
        z = np.exp(th - th.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def scores(self, theta: np.ndarray) -> np.ndarray:
        """s(x, a) = ∇_θ log π(a|x), shape (X, K, X·K)."""
        pi = self.policy(theta)
        S = np.zeros((self.X, self.K, self.P))
        for x in range(self.X):
            S[x, :, x * self.K:(x + 1) * self.K] = np.eye(self.K) - pi[x][None, :]
        return S

    def objective(self, theta: np.ndarray) -> float:
        """J(θ) = Σ_x ρ(x) Σ_a π(a|x) r(x, a)."""
        return float(self.rho @ (self.policy(theta) * self.r).sum(axis=1))

    def gradient(self, theta: np.ndarray) -> np.ndarray:
        """∇J (X·K,) in closed form: block x is ρ(x) π_x ⊙ (r_x − J_x)."""
        pi = self.policy(theta)
        Jx = (pi * self.r).sum(axis=1, keepdims=True)
        return (self.rho[:, None] * pi * (self.r - Jx)).reshape(-1)

    def hessian(self, theta: np.ndarray) -> np.ndarray:
        """∇²J (X·K, X·K), block diagonal: ρ(x)[diag(u) − u πᵀ − π uᵀ], u = π ⊙ (r − J_x)."""
        pi = self.policy(theta)
        H = np.zeros((self.P, self.P))
        for x in range(self.X):
            u = pi[x] * (self.r[x] - pi[x] @ self.r[x])
            sl = slice(x * self.K, (x + 1) * self.K)
            H[sl, sl] = self.rho[x] * (np.diag(u) - np.outer(u, pi[x]) - np.outer(pi[x], u))
        return H

    def smoothness(self) -> float:
        """L = (5/2)·(max r − min r): a global bound on ‖∇²J‖ (Mei et al. 2020, Lemma 2)."""
        return 2.5 * float(self.r.max() - self.r.min())

    def joint(self, theta: np.ndarray) -> np.ndarray:
        """P(x, a) = ρ(x) π(a|x) (X, K): the distribution of one (prompt, response) draw."""
        return self.rho[:, None] * self.policy(theta)


def iid_outcomes(p: np.ndarray, n: int) -> Iterator[tuple[tuple[int, ...], float]]:
    """Every ordered n-tuple of indices of the flat distribution ``p`` with its probability Π p."""
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    for idx in itertools.product(range(p.size), repeat=n):
        yield idx, float(np.prod(p[list(idx)]))


def exact_moments(values: list[np.ndarray], probs: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (population) of a random vector given its outcomes and their probabilities."""
    V = np.stack([np.atleast_1d(v) for v in values])  # (N, P)
    w = np.asarray(probs)
    mean = w @ V
    D = V - mean
    return mean, (D * w[:, None]).T @ D
