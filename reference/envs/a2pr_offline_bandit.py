"""A one-step offline continuous bandit with a two-mode behaviour policy (the A2PR toy, arXiv 2405.19909).

One state, one action a ∈ ℝ, quadratic reward (the exact critic: with one step and γ = 0, Q = r)::

    r(a)   = −(a − a*)² − c0                       (c0 > 0 keeps |Q| away from 0: A2PR divides by mean |Q|)
    β(a)   = Σ_k p_k N(a; m_k, σ_k²)                 the behaviour policy that wrote the dataset
    V^β    = E_β r = −Σ_k p_k ((m_k − a*)² + σ_k²) − c0
    A(a)   = r(a) − V^β                            advantage of an action under β

The default is a "suboptimal mixed" dataset: half the actions near a good mode close to a*, half near
a bad mode far from it, so that behaviour cloning of every action (TD3+BC) is pulled towards the bad
mode, while advantage-guided regularisation (A2PR) keeps only the good one. Everything here is exact:
V^β in closed form, and the dataset is a fixed seeded draw whose empirical averages the properties use
as exact finite sums.

Stable API: :class:`OfflineBandit`, :func:`reward`, :func:`reward_grad`, :func:`behaviour_value`,
:func:`dataset`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import fail, positive


@dataclass(frozen=True)
class OfflineBandit:
    """r(a) = −(a − a_star)² − c0; behaviour = mixture of N(modes[k], sigmas[k]²) with weights p."""

    a_star: float = 0.5
    c0: float = 1.0
    modes: tuple[float, ...] = (0.3, -0.7)
    sigmas: tuple[float, ...] = (0.1, 0.1)
    p: tuple[float, ...] = (0.5, 0.5)

    def __post_init__(self) -> None:
        if not np.isfinite(float(self.a_star)):
            raise fail("a_star", repr(self.a_star), "a finite number")
        positive(self.c0, "c0", allow_zero=True)
        m, s, p = (np.asarray(x, dtype=np.float64) for x in (self.modes, self.sigmas, self.p))
        if m.ndim != 1 or m.size == 0 or s.shape != m.shape or p.shape != m.shape:
            raise fail("modes/sigmas/p", f"shapes {m.shape}, {s.shape}, {p.shape}", "equal non-empty 1-D lengths")
        if not (np.isfinite(m).all() and np.isfinite(s).all() and (s > 0).all()):
            raise fail("sigmas", repr(self.sigmas), "finite modes and positive standard deviations")
        if (p < 0).any() or abs(p.sum() - 1.0) > 1e-9:
            raise fail("p", repr(self.p), "mixture weights ≥ 0 summing to 1")


def reward(env: OfflineBandit, a) -> np.ndarray:
    """r(a) = −(a − a*)² − c0, elementwise."""
    a = np.asarray(a, dtype=np.float64)
    return -((a - env.a_star) ** 2) - env.c0


def reward_grad(env: OfflineBandit, a) -> np.ndarray:
    """dr/da = −2 (a − a*), elementwise (the critic's action gradient, exact here)."""
    return -2.0 * (np.asarray(a, dtype=np.float64) - env.a_star)


def behaviour_value(env: OfflineBandit) -> float:
    """V^β = E_{a~β} r(a) = −Σ_k p_k ((m_k − a*)² + σ_k²) − c0."""
    m, s, p = (np.asarray(x, dtype=np.float64) for x in (env.modes, env.sigmas, env.p))
    return float(-(p * ((m - env.a_star) ** 2 + s**2)).sum() - env.c0)


def dataset(env: OfflineBandit, rng: np.random.Generator, n: int) -> np.ndarray:
    """n behaviour actions (n,): mode k ~ p, then a ~ N(m_k, σ_k²)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise fail("n", repr(n), "an integer ≥ 1")
    k = rng.choice(len(env.p), size=int(n), p=np.asarray(env.p, dtype=np.float64))
    return np.asarray(env.modes)[k] + np.asarray(env.sigmas)[k] * rng.standard_normal(int(n))
