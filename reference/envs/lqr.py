"""Scalar discounted LQR with a linear-Gaussian policy: exact returns, their θ-derivatives, Riccati.

Used by N-PG-IGT / (N)-HARPG (arXiv 2302.01734) so that a policy-gradient run is compared with a known
optimum. Dynamics, policy and reward (rewards are negative costs; the policy gain θ is the parameter)::

    x_0 ~ N(0, s0),     x_{t+1} = a·x_t + b·u_t + w_t,   w_t ~ N(0, σ_w²)
    u_t = θ·x_t + σ·ε_t,  ε_t ~ N(0, 1)             (log π_θ(u|x) = −(u − θx)²/(2σ²) + const)
    r_t = −(q·x_t² + r·u_t²)

Exact return of a gain. The second moment m_t = E x_t² obeys m_{t+1} = ρ m_t + β with ρ = (a + bθ)² and
β = b²σ² + σ_w², and E r_t = −(q + rθ²) m_t − rσ², so for horizon H (or H = ∞ when γρ < 1)::

    J_H(θ) = −Σ_{t<H} γᵗ [(q + rθ²) m_t + rσ²]
    J_∞(θ) = −(q + rθ²)·(s0 + γβ/(1 − γ))/(1 − γρ) − rσ²/(1 − γ)

θ-derivatives of J_H by forward mode through the recursion (m' = ∂m/∂θ, ρ' = 2b(a + bθ), ρ'' = 2b²)::

    m'_{t+1} = ρ' m_t + ρ m'_t,     m''_{t+1} = ρ'' m_t + 2ρ' m'_t + ρ m''_t      (m'_0 = m''_0 = 0)

Riccati. With discount γ the optimal (deterministic) feedback u = K x has
P = q + γa²P − (γabP)²/(r + γb²P) and K = −γabP/(r + γb²P). Every linear policy's J_∞ is
−(q + rθ²)/(1 − γρ) times a positive constant plus a θ-free term, and the same is true of the value
x ↦ −P_θ x² of the noiseless problem, so K also maximises J_∞ for any s0, σ, σ_w (certainty equivalence):
the exact optimum a policy-gradient run on J_∞ should reach. A finite horizon H shifts the best gain
slightly (:func:`optimal_gain`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import fail, in_range, positive


@dataclass(frozen=True)
class ScalarLQR:
    """x' = a x + b u + w, cost q x² + r u², discount gamma, w ~ N(0, sigma_w²), x0 ~ N(0, s0)."""

    a: float = 1.0
    b: float = 1.0
    q: float = 1.0
    r: float = 1.0
    gamma: float = 0.9
    sigma_w: float = 0.0
    s0: float = 1.0

    def __post_init__(self) -> None:
        for name in ("a", "b"):
            if not np.isfinite(float(getattr(self, name))):
                raise fail(name, repr(getattr(self, name)), "a finite number")
        if float(self.b) == 0.0:
            raise fail("b", "0", "b ≠ 0 (the control must act on the state)")
        positive(self.q, "q")
        positive(self.r, "r")
        in_range(self.gamma, "gamma", 0.0, 1.0, lo_open=True, hi_open=True)
        positive(self.sigma_w, "sigma_w", allow_zero=True)
        positive(self.s0, "s0", allow_zero=True)


def _gain(theta) -> float:
    t = np.asarray(theta, dtype=np.float64).reshape(-1)
    if t.shape != (1,) or not np.isfinite(t).all():
        raise fail("theta", repr(theta), "one finite gain (scalar or shape (1,))")
    return float(t[0])


def _horizon(H) -> int | None:
    if H is None:
        return None
    if isinstance(H, bool) or not isinstance(H, (int, np.integer)) or H < 1:
        raise fail("H", repr(H), "an integer ≥ 1, or None for the infinite horizon")
    return int(H)


def riccati(env: ScalarLQR, tol: float = 1e-14, max_iter: int = 100_000) -> tuple[float, float]:
    """(P, K): the discounted Riccati fixed point (value iteration on P from q) and the optimal gain."""
    a, b, q, r, g = env.a, env.b, env.q, env.r, env.gamma
    P = q
    for _ in range(max_iter):
        P_new = q + g * a * a * P - (g * a * b * P) ** 2 / (r + g * b * b * P)
        if abs(P_new - P) <= tol * max(1.0, abs(P)):
            P = P_new
            break
        P = P_new
    else:
        raise fail("env", repr(env), "a stabilisable system (the Riccati iteration did not converge)")
    return P, -g * a * b * P / (r + g * b * b * P)


def stabilising_interval(env: ScalarLQR) -> tuple[float, float]:
    """Gains with γ(a + bθ)² < 1, the open interval where J_∞ is finite."""
    half = 1.0 / np.sqrt(env.gamma)
    lo, hi = (-half - env.a) / env.b, (half - env.a) / env.b
    return (min(lo, hi), max(lo, hi))


def moments(env: ScalarLQR, theta, sigma: float, H: int) -> np.ndarray:
    """(m_t, m'_t, m''_t) for t < H, shape (3, H): E x_t² and its first two θ-derivatives."""
    th, H = _gain(theta), _horizon(H)
    if H is None:
        raise fail("H", "None", "a finite horizon")
    sd = positive(sigma, "sigma", allow_zero=True)
    rho, drho, ddrho = (env.a + env.b * th) ** 2, 2 * env.b * (env.a + env.b * th), 2 * env.b**2
    beta = env.b**2 * sd**2 + env.sigma_w**2
    out = np.zeros((3, H))
    m, dm, ddm = env.s0, 0.0, 0.0
    for t in range(H):
        out[:, t] = m, dm, ddm
        m, dm, ddm = rho * m + beta, drho * m + rho * dm, ddrho * m + 2 * drho * dm + rho * ddm
    return out


def objective_derivatives(env: ScalarLQR, theta, sigma: float, H: int | None = None) -> tuple[float, float, float]:
    """(J, dJ/dθ, d²J/dθ²) of the discounted return, horizon H (None: infinite, needs γ(a+bθ)² < 1)."""
    th, H = _gain(theta), _horizon(H)
    sd = positive(sigma, "sigma", allow_zero=True)
    q, r, g = env.q, env.r, env.gamma
    c0, c1, c2 = q + r * th**2, 2 * r * th, 2 * r  # (q + rθ²) and its derivatives
    if H is None:
        rho, drho, ddrho = (env.a + env.b * th) ** 2, 2 * env.b * (env.a + env.b * th), 2 * env.b**2
        if g * rho >= 1.0:
            raise fail("theta", repr(theta), f"a stabilising gain in {stabilising_interval(env)} (γ(a+bθ)² < 1)")
        beta = env.b**2 * sd**2 + env.sigma_w**2
        k = env.s0 + g * beta / (1.0 - g)
        D = 1.0 - g * rho
        S, dS = k / D, k * g * drho / D**2
        ddS = k * (g * ddrho / D**2 + 2 * (g * drho) ** 2 / D**3)
        J = -c0 * S - r * sd**2 / (1.0 - g)
        return J, -(c1 * S + c0 * dS), -(c2 * S + 2 * c1 * dS + c0 * ddS)
    m, dm, ddm = moments(env, th, sd, H)
    w = g ** np.arange(H)
    J = -float(w @ (c0 * m + r * sd**2))
    dJ = -float(w @ (c1 * m + c0 * dm))
    ddJ = -float(w @ (c2 * m + 2 * c1 * dm + c0 * ddm))
    return J, dJ, ddJ


def objective(env: ScalarLQR, theta, sigma: float, H: int | None = None) -> float:
    """J_H(θ) (H = None: J_∞)."""
    return objective_derivatives(env, theta, sigma, H)[0]


def optimal_gain(env: ScalarLQR, sigma: float, H: int | None = None) -> tuple[float, float]:
    """(θ*, J(θ*)): the best stationary gain for horizon H.

    For H = None this is the Riccati gain K. For finite H (where J_H is a polynomial in θ, defined for every
    gain) it is the maximiser reached by damped Newton ascent with the exact first and second derivatives,
    started at K (Armijo backtracking; a gradient step where d²J ≥ 0).
    """
    _, K = riccati(env)
    if _horizon(H) is None:
        return K, objective(env, K, sigma, None)
    th = K
    J, d1, d2 = objective_derivatives(env, th, sigma, H)
    for _ in range(500):
        direction = -d1 / d2 if d2 < 0 else d1
        step = 1.0
        while step > 1e-20:
            J_new = objective(env, th + step * direction, sigma, H)
            if J_new >= J + 1e-4 * step * d1 * direction:
                break
            step *= 0.5
        th_new = th + step * direction
        if th_new == th:
            break
        th = th_new
        J, d1, d2 = objective_derivatives(env, th, sigma, H)
        if abs(d1) <= 1e-13 * (1.0 + abs(J)):
            break
    return th, J


def simulate(env: ScalarLQR, rng: np.random.Generator, theta, sigma: float, H: int, n: int
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n trajectories of H steps under u = θx + σε: (states (n, H), actions (n, H), rewards (n, H))."""
    th, H = _gain(theta), _horizon(H)
    sd = positive(sigma, "sigma", allow_zero=True)
    n = int(n)
    x = np.sqrt(env.s0) * rng.standard_normal(n)
    X, U, R = np.empty((n, H)), np.empty((n, H)), np.empty((n, H))
    for t in range(H):
        u = th * x + sd * rng.standard_normal(n)
        X[:, t], U[:, t], R[:, t] = x, u, -(env.q * x**2 + env.r * u**2)
        x = env.a * x + env.b * u + env.sigma_w * rng.standard_normal(n)
    return X, U, R
