"""Gaussian mixtures with exact diffusion / flow scores, and the samplers that use them (GPC and EXPO toys).

The small exact problem behind :mod:`rlspec.reference.gpc` (composition of diffusion / flow policies,
arXiv 2510.01068) and :mod:`rlspec.reference.expo` (an expressive base policy, arXiv 2507.07986): an
action distribution p over ℝ^d that is a Gaussian mixture, whose noised marginals and denoisers are
known in closed form, so that a "pretrained diffusion policy" is replaced by its exact ε-predictor.

Mixture and its score (responsibilities ρ_k(x) ∝ w_k N(x; μ_k, Σ_k))::

    p(x)       = Σ_k w_k N(x; μ_k, Σ_k)
    ∇ log p(x) = Σ_k ρ_k(x) · (−Σ_k⁻¹ (x − μ_k))

Variance-preserving forward process (DDPM; ᾱ_t = Π_{s≤t} (1 − β_s))::

    x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε          ⇒  p_t = Σ_k w_k N(√ᾱ_t μ_k, ᾱ_t Σ_k + (1 − ᾱ_t) I)
    ε*(x, t) = E[ε | x_t = x] = −√(1 − ᾱ_t) ∇ log p_t(x)        (Tweedie)

For a single Gaussian ε* is affine in x: ε*(x) = E_t x + f_t with E_t = √(1−ᾱ_t) C_t⁻¹, f_t = −√ᾱ_t E_t μ,
C_t = ᾱ_t Σ + (1 − ᾱ_t) I (:func:`gaussian_eps_affine`).

Ancestral DDPM step (the posterior q(x_{t−1} | x_t, x̂_0) with x̂_0 = (x_t − √(1−ᾱ_t) ε)/√ᾱ_t)::

    x_{t−1} = (√ᾱ_{t−1} β_t/(1−ᾱ_t)) x̂_0 + (√α_t (1−ᾱ_{t−1})/(1−ᾱ_t)) x_t + σ_t z
            = (x_t − β_t/√(1−ᾱ_t) ε)/√α_t + σ_t z            (without clipping x̂_0)
    σ_t² = β_t (1−ᾱ_{t−1})/(1−ᾱ_t)  ("small", diffusers' fixed_small, GPC's DP/DP3 config)
         = β_t                       ("large", the sampler of EXPO's code)
    no noise at the last step t = 0; ᾱ_{−1} := 1.

If every ε_t is affine in x the sampler is a linear-Gaussian recursion, and :func:`affine_ddpm_law`
returns the exact law (mean, covariance) of its output: no sampling error in the properties.

Schedules (index t = 0 … T−1): ``cosine`` (diffusers ``squaredcos_cap_v2``, used by GPC's DP / DP3
configs: β_t = min(1 − ᾱ((t+1)/T)/ᾱ(t/T), 0.999), ᾱ(u) = cos²((u + 0.008)/1.008 · π/2)), ``vp``
(EXPO's code: β_t = 1 − exp(−b_min/T − (b_max − b_min)(2t + 1)/(2T²)), b_min = 0.1, b_max = 10) and
``linear`` (β from 1e−4 to 2e−2).

Rectified flow (straight path x_u = (1 − u) x_0 + u x_1, x_0 ~ N(0, I) noise, x_1 ~ p, u ∈ [0, 1]); for a
Gaussian target N(μ, Σ) the velocity is affine (:func:`gaussian_velocity_affine`)::

    v(x, u) = E[x_1 − x_0 | x_u = x] = μ + (uΣ − (1 − u) I) C_u⁻¹ (x − uμ),   C_u = u²Σ + (1 − u)² I

Stable API: :class:`GaussianMixture`, :func:`gaussian_logpdf`, :func:`gaussian_score`,
:func:`log_density`, :func:`score`, :func:`sample`, :func:`noised`, :func:`eps_star`,
:class:`Schedule`, :func:`schedule`, :func:`ddpm_step`, :func:`ddpm_sample`, :func:`gaussian_eps_affine`,
:func:`affine_ddpm_law`, :func:`gaussian_velocity_affine`, :func:`euler_flow_sample`,
:func:`affine_flow_law`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import choice, fail, positive

_TOL = 1e-9


def _spd(cov: np.ndarray, name: str) -> np.ndarray:
    """Check a stack of symmetric positive-definite matrices (..., d, d)."""
    if not np.isfinite(cov).all() or np.abs(cov - np.swapaxes(cov, -1, -2)).max(initial=0.0) > 1e-9:
        raise fail(name, "non-finite or non-symmetric matrices", "symmetric positive-definite covariances")
    try:
        np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        raise fail(name, "a matrix that is not positive definite", "positive-definite covariances") from None
    return cov


@dataclass(frozen=True)
class GaussianMixture:
    """weights (K,) on the simplex, means (K, d), covs (K, d, d) symmetric positive definite."""

    weights: np.ndarray
    means: np.ndarray
    covs: np.ndarray

    def __post_init__(self) -> None:
        w = np.array(self.weights, dtype=np.float64).reshape(-1)
        mu = np.array(self.means, dtype=np.float64)
        cov = np.array(self.covs, dtype=np.float64)
        if mu.ndim != 2 or mu.shape[0] != w.shape[0] or mu.shape[0] == 0 or mu.shape[1] == 0:
            raise fail("means", f"shape {mu.shape}", f"({w.shape[0]}, d): one mean per weight, d ≥ 1")
        if cov.shape != mu.shape + (mu.shape[1],):
            raise fail("covs", f"shape {cov.shape}", f"{mu.shape + (mu.shape[1],)} (K, d, d)")
        if not np.isfinite(w).all() or (w < 0).any() or abs(w.sum() - 1.0) > _TOL:
            raise fail("weights", repr(w), "non-negative weights summing to 1")
        if not np.isfinite(mu).all():
            raise fail("means", "non-finite values", "finite means")
        _spd(cov, "covs")
        for name, v in (("weights", w), ("means", mu), ("covs", cov)):
            object.__setattr__(self, name, v)

    @property
    def K(self) -> int:
        return int(self.weights.shape[0])

    @property
    def d(self) -> int:
        return int(self.means.shape[1])


def _points(x, d: int) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1 and d == a.shape[0]:
        a = a[None, :]
    if a.ndim != 2 or a.shape[1] != d:
        raise fail("x", f"shape {a.shape}", f"(n, {d}) points")
    if not np.isfinite(a).all():
        raise fail("x", "non-finite values", "finite points")
    return a


def gaussian_logpdf(x, mu, cov) -> np.ndarray:
    """log N(x; μ, Σ) for points x (n, d), mean μ (d,), covariance Σ (d, d); shape (n,)."""
    mu = np.asarray(mu, dtype=np.float64)
    x = _points(x, mu.shape[0])
    L = np.linalg.cholesky(np.asarray(cov, dtype=np.float64))
    z = np.linalg.solve(L, (x - mu).T)                                   # (d, n)
    return -0.5 * (z**2).sum(axis=0) - np.log(np.diag(L)).sum() - 0.5 * mu.shape[0] * np.log(2 * np.pi)


def gaussian_score(x, mu, cov) -> np.ndarray:
    """∇_x log N(x; μ, Σ) = −Σ⁻¹ (x − μ), shape (n, d)."""
    mu = np.asarray(mu, dtype=np.float64)
    x = _points(x, mu.shape[0])
    return -np.linalg.solve(np.asarray(cov, dtype=np.float64), (x - mu).T).T


def _responsibilities(gm: GaussianMixture, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(log p(x) (n,), ρ (n, K)), by log-sum-exp; components of weight 0 are skipped."""
    logs = np.full((x.shape[0], gm.K), -np.inf)
    for k in range(gm.K):
        if gm.weights[k] > 0:
            logs[:, k] = np.log(gm.weights[k]) + gaussian_logpdf(x, gm.means[k], gm.covs[k])
    top = logs.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(logs - top).sum(axis=1))
    return lse, np.exp(logs - lse[:, None])


def log_density(gm: GaussianMixture, x) -> np.ndarray:
    """log p(x), shape (n,)."""
    return _responsibilities(gm, _points(x, gm.d))[0]


def score(gm: GaussianMixture, x) -> np.ndarray:
    """∇ log p(x) = Σ_k ρ_k(x) (−Σ_k⁻¹ (x − μ_k)), shape (n, d)."""
    x = _points(x, gm.d)
    _, rho = _responsibilities(gm, x)
    out = np.zeros_like(x)
    for k in range(gm.K):
        if gm.weights[k] > 0:
            out += rho[:, k:k + 1] * gaussian_score(x, gm.means[k], gm.covs[k])
    return out


def sample(gm: GaussianMixture, rng: np.random.Generator, n: int) -> np.ndarray:
    """n exact draws, shape (n, d): component k ~ w, then x = μ_k + L_k ξ."""
    k = rng.choice(gm.K, size=int(n), p=gm.weights)
    xi = rng.standard_normal((int(n), gm.d))
    L = np.linalg.cholesky(gm.covs)
    return gm.means[k] + np.einsum("nij,nj->ni", L[k], xi)


def noised(gm: GaussianMixture, alpha_bar: float) -> GaussianMixture:
    """The VP marginal p_t: means √ᾱ μ_k, covariances ᾱ Σ_k + (1 − ᾱ) I (ᾱ ∈ (0, 1])."""
    ab = float(alpha_bar)
    if not 0.0 < ab <= 1.0:
        raise fail("alpha_bar", repr(alpha_bar), "a number in (0, 1]")
    eye = np.eye(gm.d)
    return GaussianMixture(gm.weights, np.sqrt(ab) * gm.means, ab * gm.covs + (1.0 - ab) * eye[None])


def eps_star(gm: GaussianMixture, x, alpha_bar: float) -> np.ndarray:
    """The exact ε-predictor ε*(x, t) = −√(1 − ᾱ_t) ∇ log p_t(x), shape (n, d)."""
    return -np.sqrt(1.0 - float(alpha_bar)) * score(noised(gm, alpha_bar), x)


def gaussian_eps_affine(mu, cov, alpha_bar: float) -> tuple[np.ndarray, np.ndarray]:
    """(E, f) with ε*(x) = E x + f for the target N(μ, Σ): E = √(1−ᾱ) C⁻¹, f = −√ᾱ E μ, C = ᾱΣ + (1−ᾱ)I."""
    mu = np.asarray(mu, dtype=np.float64)
    ab = float(alpha_bar)
    C = ab * np.asarray(cov, dtype=np.float64) + (1.0 - ab) * np.eye(mu.shape[0])
    E = np.sqrt(1.0 - ab) * np.linalg.inv(C)
    return E, -np.sqrt(ab) * E @ mu


# ---------------------------------------------------------------------------- DDPM schedules and sampler


@dataclass(frozen=True)
class Schedule:
    """betas (T,), alphas = 1 − β, alpha_bars = cumulative products; index t = 0 … T−1."""

    betas: np.ndarray

    def __post_init__(self) -> None:
        b = np.array(self.betas, dtype=np.float64).reshape(-1)
        if b.size == 0 or not np.isfinite(b).all() or (b <= 0).any() or (b >= 1).any():
            raise fail("betas", repr(b), "at least one β in (0, 1)")
        object.__setattr__(self, "betas", b)

    @property
    def T(self) -> int:
        return int(self.betas.shape[0])

    @property
    def alphas(self) -> np.ndarray:
        return 1.0 - self.betas

    @property
    def alpha_bars(self) -> np.ndarray:
        return np.cumprod(self.alphas)


def schedule(T: int, kind: str = "cosine", *, s: float = 0.008, max_beta: float = 0.999, b_min: float = 0.1,
             b_max: float = 10.0, beta_start: float = 1e-4, beta_end: float = 2e-2) -> Schedule:
    """The β schedule ``kind`` ∈ {cosine, vp, linear} with T steps (see the module docstring)."""
    choice(kind, "kind", ("cosine", "vp", "linear"))
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T < 1:
        raise fail("T", repr(T), "an integer ≥ 1")
    t = np.arange(T, dtype=np.float64)
    if kind == "cosine":
        def abar(u):
            return np.cos((u + s) / (1 + s) * np.pi / 2) ** 2
        betas = np.minimum(1.0 - abar((t + 1) / T) / abar(t / T), max_beta)
    elif kind == "vp":
        betas = 1.0 - np.exp(-b_min / T - 0.5 * (b_max - b_min) * (2 * (t + 1) - 1) / T**2)
    else:
        betas = np.linspace(beta_start, beta_end, T)
    return Schedule(betas)


def _sigma(sch: Schedule, t: int, variance: str) -> float:
    if t == 0:
        return 0.0
    ab, ab_prev = sch.alpha_bars[t], sch.alpha_bars[t - 1]
    var = sch.betas[t] * (1.0 - ab_prev) / (1.0 - ab) if variance == "small" else sch.betas[t]
    return float(np.sqrt(var))


def ddpm_step(x, eps, t: int, sch: Schedule, z=None, *, variance: str = "small", clip: float | None = None) -> np.ndarray:
    """One ancestral step x_t → x_{t−1} given the predicted noise ε (same shape as x); z ~ N(0, I) or None (0).

    With ``clip`` the predicted x̂_0 is clipped to [−clip, clip] first (diffusers' ``clip_sample``).
    """
    choice(variance, "variance", ("small", "large"))
    x = np.asarray(x, dtype=np.float64)
    eps = np.asarray(eps, dtype=np.float64)
    ab = sch.alpha_bars[t]
    ab_prev = sch.alpha_bars[t - 1] if t > 0 else 1.0
    x0 = (x - np.sqrt(1.0 - ab) * eps) / np.sqrt(ab)
    if clip is not None:
        x0 = np.clip(x0, -clip, clip)
    mean = (np.sqrt(ab_prev) * sch.betas[t] / (1.0 - ab)) * x0 + (np.sqrt(sch.alphas[t]) * (1.0 - ab_prev) / (1.0 - ab)) * x
    sig = _sigma(sch, t, variance)
    return mean if (z is None or sig == 0.0) else mean + sig * np.asarray(z, dtype=np.float64)


def ddpm_sample(eps_fn: Callable[[np.ndarray, int], np.ndarray], x_T, noises, sch: Schedule, *,
                variance: str = "small", clip: float | None = None) -> np.ndarray:
    """Run the sampler from x_T (n, d) with per-step noises (T, n, d) (row t used at step t > 0)."""
    x = np.asarray(x_T, dtype=np.float64)
    noises = np.asarray(noises, dtype=np.float64)
    if noises.shape != (sch.T,) + x.shape:
        raise fail("noises", f"shape {noises.shape}", f"{(sch.T,) + x.shape} (T, n, d)")
    for t in range(sch.T - 1, -1, -1):
        x = ddpm_step(x, eps_fn(x, t), t, sch, noises[t], variance=variance, clip=clip)
    return x


def affine_ddpm_law(E, f, sch: Schedule, *, variance: str = "small", mean_T=None, cov_T=None) -> tuple[np.ndarray, np.ndarray]:
    """Exact (mean, covariance) of the sampler's output when ε_t(x) = E[t] x + f[t] (E (T, d, d), f (T, d)),
    x_T ~ N(mean_T, cov_T) (default N(0, I)), no clipping."""
    E = np.asarray(E, dtype=np.float64)
    f = np.asarray(f, dtype=np.float64)
    d = f.shape[1]
    m = np.zeros(d) if mean_T is None else np.asarray(mean_T, dtype=np.float64)
    S = np.eye(d) if cov_T is None else np.asarray(cov_T, dtype=np.float64)
    for t in range(sch.T - 1, -1, -1):
        c1 = 1.0 / np.sqrt(sch.alphas[t])
        c2 = sch.betas[t] / np.sqrt(1.0 - sch.alpha_bars[t])
        A = c1 * (np.eye(d) - c2 * E[t])
        m = A @ m - c1 * c2 * f[t]
        S = A @ S @ A.T + _sigma(sch, t, variance) ** 2 * np.eye(d)
    return m, S


# ---------------------------------------------------------------------------- rectified flow


def gaussian_velocity_affine(mu, cov, u: float) -> tuple[np.ndarray, np.ndarray]:
    """(E, f) with v(x, u) = E x + f for the target N(μ, Σ) on the straight path (u ∈ [0, 1))."""
    mu = np.asarray(mu, dtype=np.float64)
    cov = np.asarray(cov, dtype=np.float64)
    eye = np.eye(mu.shape[0])
    C = u**2 * cov + (1.0 - u) ** 2 * eye
    E = (u * cov - (1.0 - u) * eye) @ np.linalg.inv(C)
    return E, mu - u * E @ mu


def euler_flow_sample(v_fn: Callable[[np.ndarray, float], np.ndarray], x0, n_steps: int) -> np.ndarray:
    """Euler integration of dx/du = v(x, u) from u = 0 to 1 in ``n_steps`` equal steps."""
    positive(n_steps, "n_steps")
    x = np.asarray(x0, dtype=np.float64)
    h = 1.0 / int(n_steps)
    for k in range(int(n_steps)):
        x = x + h * v_fn(x, k * h)
    return x


def affine_flow_law(E, f, *, mean0=None, cov0=None) -> tuple[np.ndarray, np.ndarray]:
    """Exact (mean, covariance) of the Euler output when v(x, u_k) = E[k] x + f[k], u_k = k/n, x_0 ~ N(0, I)."""
    E = np.asarray(E, dtype=np.float64)
    f = np.asarray(f, dtype=np.float64)
    n, d = f.shape
    h = 1.0 / n
    m = np.zeros(d) if mean0 is None else np.asarray(mean0, dtype=np.float64)
    S = np.eye(d) if cov0 is None else np.asarray(cov0, dtype=np.float64)
    for k in range(n):
        A = np.eye(d) + h * E[k]
        m = A @ m + h * f[k]
        S = A @ S @ A.T
    return m, S
