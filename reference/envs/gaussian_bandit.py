"""A 1-D Gaussian bandit with a quadratic reward: J, ∇J and ∇²J in closed form, expectations exact.

The smallest continuous-action policy-gradient problem (used by N-PG-IGT / (N)-HARPG, arXiv 2302.01734).
One action a ∈ ℝ per episode, drawn from a Gaussian policy with learned mean and log-standard-deviation,
θ = (μ, s), σ = eˢ::

    π_θ(a)   = N(a; μ, σ²),        log π_θ(a) = −(a − μ)²/(2σ²) − s − ½ log 2π
    r(a)     = −c·(a − a*)² + r0                                  (c > 0; best action a*)
    J(θ)     = E_{a~π_θ} r(a) = −c·((μ − a*)² + σ²) + r0
    ∇J(θ)    = (−2c(μ − a*),  −2cσ²)
    ∇²J(θ)   = diag(−2c, −4cσ²)

Score and its Jacobian (z = (a − μ)/σ)::

    ∇ log π   = (z/σ,  z² − 1)
    ∇² log π  = [[−1/σ², −2z/σ], [−2z/σ, −2z²]]
    F(θ)      = E[∇log π ∇log πᵀ] = diag(1/σ², 2)                 Fisher information (non-degenerate)

With the standard deviation frozen (``learn_std=False`` in the functions below) the parameter is μ alone
and every vector / matrix is the first coordinate / entry of the above.

Exact expectations. Every estimator built from one action (REINFORCE / GPOMDP gradient, the Hessian
estimator r(∇²log π + ∇log π ∇log πᵀ)) is a polynomial in a of degree ≤ 6 here, so
:func:`expect` (Gauss–Hermite quadrature with n nodes, exact for polynomials of degree ≤ 2n − 1)
returns its mean to rounding error: properties compare with exact values, not Monte-Carlo estimates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import fail, positive


@dataclass(frozen=True)
class GaussianBandit:
    """r(a) = −c·(a − a_star)² + r0, actions from N(μ, e^{2s})."""

    a_star: float = 1.0
    c: float = 1.0
    r0: float = 0.0

    def __post_init__(self) -> None:
        for name in ("a_star", "r0"):
            v = float(getattr(self, name))
            if not np.isfinite(v):
                raise fail(name, repr(getattr(self, name)), "a finite number")
        positive(self.c, "c")


def _theta(theta, learn_std: bool) -> tuple[float, float]:
    t = np.asarray(theta, dtype=np.float64).reshape(-1)
    want = 2 if learn_std else 1
    if t.shape != (want,) or not np.isfinite(t).all():
        raise fail("theta", f"{t!r}", f"{want} finite value(s): " + ("(mu, log_sigma)" if learn_std else "(mu,)"))
    return float(t[0]), float(t[1]) if learn_std else 0.0


def _sigma(theta, learn_std: bool, sigma: float) -> tuple[float, float]:
    mu, s = _theta(theta, learn_std)
    return mu, (float(np.exp(s)) if learn_std else positive(sigma, "sigma"))


def reward(env: GaussianBandit, a) -> np.ndarray:
    """r(a) = −c·(a − a*)² + r0, elementwise."""
    a = np.asarray(a, dtype=np.float64)
    return -env.c * (a - env.a_star) ** 2 + env.r0


def log_prob(a, theta, learn_std: bool = True, sigma: float = 1.0) -> np.ndarray:
    """log N(a; μ, σ²), elementwise in a."""
    mu, sd = _sigma(theta, learn_std, sigma)
    z = (np.asarray(a, dtype=np.float64) - mu) / sd
    return -0.5 * z**2 - np.log(sd) - 0.5 * np.log(2.0 * np.pi)


def score(a, theta, learn_std: bool = True, sigma: float = 1.0) -> np.ndarray:
    """∇_θ log π_θ(a), shape a.shape + (P,), P = 2 (μ, s) or 1 (μ)."""
    mu, sd = _sigma(theta, learn_std, sigma)
    z = (np.asarray(a, dtype=np.float64) - mu) / sd
    parts = [z / sd] + ([z**2 - 1.0] if learn_std else [])
    return np.stack(parts, axis=-1)


def score_jacobian(a, theta, learn_std: bool = True, sigma: float = 1.0) -> np.ndarray:
    """∇²_θ log π_θ(a), shape a.shape + (P, P)."""
    mu, sd = _sigma(theta, learn_std, sigma)
    z = (np.asarray(a, dtype=np.float64) - mu) / sd
    if not learn_std:
        return np.broadcast_to(-1.0 / sd**2, z.shape)[..., None, None].copy()
    H = np.empty(z.shape + (2, 2))
    H[..., 0, 0] = -1.0 / sd**2
    H[..., 0, 1] = H[..., 1, 0] = -2.0 * z / sd
    H[..., 1, 1] = -2.0 * z**2
    return H


def objective(env: GaussianBandit, theta, learn_std: bool = True, sigma: float = 1.0) -> float:
    """J(θ) = −c·((μ − a*)² + σ²) + r0."""
    mu, sd = _sigma(theta, learn_std, sigma)
    return -env.c * ((mu - env.a_star) ** 2 + sd**2) + env.r0


def gradient(env: GaussianBandit, theta, learn_std: bool = True, sigma: float = 1.0) -> np.ndarray:
    """∇J(θ) = (−2c(μ − a*), −2cσ²) (first entry only when the std is frozen)."""
    mu, sd = _sigma(theta, learn_std, sigma)
    g = [-2.0 * env.c * (mu - env.a_star)] + ([-2.0 * env.c * sd**2] if learn_std else [])
    return np.asarray(g)


def hessian(env: GaussianBandit, theta, learn_std: bool = True, sigma: float = 1.0) -> np.ndarray:
    """∇²J(θ) = diag(−2c, −4cσ²) (the 1×1 block −2c when the std is frozen)."""
    mu, sd = _sigma(theta, learn_std, sigma)
    d = [-2.0 * env.c] + ([-4.0 * env.c * sd**2] if learn_std else [])
    return np.diag(d)


def fisher(theta, learn_std: bool = True, sigma: float = 1.0) -> np.ndarray:
    """F(θ) = E[∇log π ∇log πᵀ] = diag(1/σ², 2) (or [[1/σ²]])."""
    mu, sd = _sigma(theta, learn_std, sigma)
    return np.diag([1.0 / sd**2] + ([2.0] if learn_std else []))


def optimum(env: GaussianBandit, sigma: float) -> tuple[float, float]:
    """(μ*, J*) for a frozen standard deviation σ: μ* = a*, J* = −cσ² + r0."""
    sd = positive(sigma, "sigma")
    return env.a_star, -env.c * sd**2 + env.r0


def expect(fn: Callable[[np.ndarray], np.ndarray], theta, learn_std: bool = True, sigma: float = 1.0,
           n: int = 24) -> np.ndarray:
    """E_{a~π_θ}[fn(a)] by n-node Gauss–Hermite quadrature (exact for polynomials of degree ≤ 2n − 1).

    ``fn`` maps the node array (n,) to values of shape (n, ...); returns the mean, shape (...).
    """
    mu, sd = _sigma(theta, learn_std, sigma)
    x, w = np.polynomial.hermite_e.hermegauss(int(n))  # weight e^{−x²/2}, Σw = √(2π)
    vals = np.asarray(fn(mu + sd * x), dtype=np.float64)
    return np.tensordot(w / np.sqrt(2.0 * np.pi), vals, axes=(0, 0))


def sample(rng: np.random.Generator, theta, n: int, learn_std: bool = True, sigma: float = 1.0) -> np.ndarray:
    """n actions a ~ N(μ, σ²), shape (n,)."""
    mu, sd = _sigma(theta, learn_std, sigma)
    return mu + sd * rng.standard_normal(int(n))
