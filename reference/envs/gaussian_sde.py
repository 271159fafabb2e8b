"""Gaussian SDE steps of a flow-matching sampler: the exact small problem behind GRPO-Guard.

Flow-GRPO-style RL on a flow-matching model samples with an SDE instead of the ODE: each denoising
step draws the next latent from an isotropic Gaussian (arXiv 2505.05470 and 2510.22319; written here
with the positive step size dt, i.e. |dt| of the samplers that count time down)::

    x_{t−dt} ~ N(μ_θ(x_t, t), s_t² I),        s_t = σ_t·√dt        (x, μ ∈ R^D)

so the policy's log-density of a step, summed over the D latent dimensions, is

    log p_θ(x_{t−dt} | x_t) = −‖x_{t−dt} − μ_θ‖²/(2 s_t²) − D·log s_t − (D/2)·log 2π.

Flow-GRPO and its peers (Flow-Factory, verl-omni) *average* the per-dimension log-density over D
instead of summing it (``reduce="mean"``).

Off-policy algebra, exact (old policy μ_old sampled x = μ_old + s·ε with ε ~ N(0, I); Δμ = μ_old − μ_θ;
q = ‖Δμ‖² reduced over D like the log-density, k = 1 for ``sum`` and k = D for ``mean``)::

    log r = log p_θ(x) − log p_old(x) = −q/(2 s²) − (Δμ·ε)/(k s)
    E_ε[log r] = −q/(2 s²),   Var_ε[log r] = ‖Δμ‖²/(k s)²,   E_ε[r] = 1   (sum form; the mean form has E[r] ≠ 1)

The drift of a step of the Flow-GRPO SDE (Flow-Factory ``FlowMatchEulerDiscreteSDEScheduler``,
``dynamics_type='Flow-SDE'``; flow time t ∈ (0, 1), t = 1 pure noise, velocity v = v_θ(x_t, t))::

    μ = x_t − [v + σ_t²/(2t)·(x_t + (1 − t)·v)]·dt,     σ_t = η·√(t/(1 − t))

Functions here take NumPy arrays with the latent dimension last (…, D); σ and dt broadcast against
the leading axes (…). They are small on purpose: the property tests of ``grpo_guard`` sample from
them and differentiate through them by finite differences.
"""

from __future__ import annotations

import numpy as np

from rlspec.reference._validate import choice, fail

REDUCES = ("sum", "mean")


def _positive_array(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if not (np.isfinite(a).all() and (a > 0).all()):
        raise fail(name, f"values with min {a.min() if a.size else 'n/a'}", "finite values > 0")
    return a


def step_std(sigma, dt) -> np.ndarray:
    """s = σ·√dt, the standard deviation of one SDE step (shape of σ and dt broadcast)."""
    return _positive_array(sigma, "sigma") * np.sqrt(_positive_array(dt, "dt"))


def gaussian_step_logprob(x, mu, sigma, dt, reduce: str = "sum") -> np.ndarray:
    """log N(x; μ, σ²dt·I) of each step (…,), from x, μ (…, D); summed (``sum``) or averaged (``mean``) over D."""
    choice(reduce, "reduce", REDUCES)
    x, mu = np.asarray(x, dtype=np.float64), np.asarray(mu, dtype=np.float64)
    s = step_std(sigma, dt)[..., None]                                    # (…, 1)
    per_dim = -0.5 * ((x - mu) / s) ** 2 - np.log(s) - 0.5 * np.log(2.0 * np.pi)  # (…, D)
    return per_dim.sum(axis=-1) if reduce == "sum" else per_dim.mean(axis=-1)


def mean_shift_sq(mu, mu_old, reduce: str = "sum") -> np.ndarray:
    """‖μ − μ_old‖² (…,), reduced over D like the log-density (sum, or mean as Flow-GRPO's log-probs)."""
    choice(reduce, "reduce", REDUCES)
    d2 = (np.asarray(mu, dtype=np.float64) - np.asarray(mu_old, dtype=np.float64)) ** 2
    return d2.sum(axis=-1) if reduce == "sum" else d2.mean(axis=-1)


def sample_step(rng: np.random.Generator, mu_old, sigma, dt) -> tuple[np.ndarray, np.ndarray]:
    """One step of the behaviour policy: (x = μ_old + s·ε, ε), ε ~ N(0, I) of μ_old's shape."""
    mu_old = np.asarray(mu_old, dtype=np.float64)
    eps = rng.standard_normal(mu_old.shape)
    return mu_old + step_std(sigma, dt)[..., None] * eps, eps


def flow_grpo_sigma(t, eta: float = 0.7) -> np.ndarray:
    """σ_t = η·√(t/(1 − t)), Flow-GRPO's noise schedule (Flow-Factory default η = 0.7); t ∈ (0, 1)."""
    t = np.asarray(t, dtype=np.float64)
    if not ((t > 0) & (t < 1)).all():
        raise fail("t", f"values in [{t.min()}, {t.max()}]", "flow times in the open interval (0, 1)")
    return eta * np.sqrt(t / (1.0 - t))


def flow_sde_mean(x, v, t, sigma, dt) -> np.ndarray:
    """μ = x − [v + σ²/(2t)·(x + (1 − t)·v)]·dt: the Flow-GRPO SDE drift from x (…, D) with velocity v (…, D)."""
    x, v = np.asarray(x, dtype=np.float64), np.asarray(v, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)[..., None]
    sigma = np.asarray(sigma, dtype=np.float64)[..., None]
    dt = np.asarray(dt, dtype=np.float64)[..., None]
    return x - (v + sigma**2 / (2.0 * t) * (x + (1.0 - t) * v)) * dt


def flow_sde_mean_dv(t, sigma, dt) -> np.ndarray:
    """∂μ/∂v = −dt·(1 + σ²(1 − t)/(2t)) (…,), the same on every latent dimension."""
    t, sigma, dt = (np.asarray(a, dtype=np.float64) for a in (t, sigma, dt))
    return -dt * (1.0 + sigma**2 * (1.0 - t) / (2.0 * t))
