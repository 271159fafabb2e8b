"""N-PG-IGT and (N)-HARPG: normalized policy gradient with implicit gradient transport, and Hessian-aided
recursive policy gradient, for Fisher-non-degenerate policies.

Fatkhullin, Barakat, Kireeva, He, "Stochastic Policy Gradient Methods: Improved Sample Complexity for
Fisher-non-degenerate Policies", arXiv 2302.01734 (ICML 2023). The paper body was not readable to us (only its
abstract); the estimators and both algorithms are confirmed in the authors' garage-based code
(``garage/torch/optimizers/NIGT_optimizer.py``, ``STORMHess_optimizer.py``, ``SGDM_optimizer.py`` and the
algorithm files that call them; the repository's name did not resolve in our index). Provenance per equation
is in ``EQUATIONS`` below.

Notation (ours ← paper). A trajectory τ = (s_0, a_0, r_0, …, s_{H−1}, a_{H−1}, r_{H−1}); discount γ (the
config's ``discount``; the paper's step sizes are also called γ_t, here ``step_size``); score s_h = ∇_θ log
π_θ(a_h|s_h); J_H(θ) = E Σ_{t<H} γᵗ r_t is *maximised* (ascent)::

    GPOMDP              g(τ, θ) = Σ_{t<H} (Σ_{h≤t} s_h) γᵗ r_t                              E g = ∇J_H
    Hessian estimator   B(τ, θ) = ∇_θ g(τ, θ) + g(τ, θ) ∇_θΦ(τ, θ)ᵀ,  Φ = Σ_t log π_θ(a_t|s_t)   E B = ∇²J_H
                        ∇_θ g = Σ_t (Σ_{h≤t} ∇²log π_h) γᵗ r_t,   ∇_θΦ = Σ_t s_t

    N-PG-IGT            θ̃_t = θ_t + ((1 − η_t)/η_t)(θ_t − θ_{t−1});  τ_t ~ π_{θ̃_t}
                        d_t = (1 − η_t) d_{t−1} + η_t g(τ_t, θ̃_t)
                        θ_{t+1} = θ_t + γ_t d_t/‖d_t‖
                        γ_t = γ_0·2/(t + 2),  η_t = η_0·(2/(t + 2))^{4/5}

    (N)-HARPG           q_t ~ U[0, 1];  θ̂_t = q_t θ_t + (1 − q_t) θ_{t−1};  τ̂_t ~ π_{θ̂_t};  τ_t ~ π_{θ_t}
                        v_t = B(τ̂_t, θ̂_t)(θ_t − θ_{t−1})
                        d_t = (1 − η_t)(d_{t−1} + v_t) + η_t g(τ_t, θ_t)
                        N-HARPG: θ_{t+1} = θ_t + γ_t d_t/‖d_t‖,  γ_t = γ_0·2/(t + 2)
                        HARPG:   θ_{t+1} = θ_t + γ_t d_t,        γ_t = γ_0·(2/(t + 2))^{1/2}
                        η_t = η_0·2/(t + 2)

Why the two corrections work (both are checked exactly in properties/test_n_harpg.py):

* E_{q,τ̂}[v_t] = ∫₀¹ ∇²J(θ_{t−1} + q(θ_t − θ_{t−1}))(θ_t − θ_{t−1}) dq = ∇J(θ_t) − ∇J(θ_{t−1}), so d_t is an
  unbiased recursive estimate of ∇J(θ_t) whenever d_{t−1} is one of ∇J(θ_{t−1}).
* For a quadratic J (affine ∇J) the IGT point transports the old average exactly:
  (1 − η)∇J(θ_{t−1}) + η∇J(θ̃_t) = ∇J(θ_t). This needs the same η_t in θ̃_t and in d_t.

Conventions (the paper's choices are not readable to us; we state ours):

* t = 0: θ_{−1} = θ_0 (no displacement, so θ̃_0 = θ̂_0 = θ_0 and v_0 = 0) and d_0 = g_0 whatever η_0 (the
  code sets the buffer to the first gradient; with the code's default η_0 = 1 the formulas agree).
* ‖d_t‖ = 0 in a normalized step: no move (θ_{t+1} = θ_t).
* ``igt_eta="previous"``: the code's timing, where the extrapolation at iteration t uses η_{t−1} (its
  ``update_model_to_line_point`` runs before ``step`` updates η; η_{−1} counts as 1). The default
  ``"current"`` uses η_t in both places, the reading under which the transport identity above holds.
* Mini-batches: the paper samples one trajectory per estimator; the code uses batches. The estimators here
  take N ≥ 1 trajectories and average the per-trajectory estimates (N = 1 is the paper).
* Masks: steps with mask False are absent (no score, no reward; their values are never read); a trajectory
  with no valid step contributes zeros. The time index of γᵗ is the array position.

The registry entry ``n_harpg`` evaluates the two estimators (batch means of g and of B·v) for the
linear-Gaussian policy a_t ~ N(θᵀx_t, σ²), x_t ∈ ℝᴾ, whose score and score-Jacobian are
s_h = (a_h − θᵀx_h) x_h/σ² and ∇²log π_h = −x_h x_hᵀ/σ². The step functions and the two drivers
(:func:`npg_igt`, :func:`harpg`) are in ``Spec.extras``; they take gradient / Hessian-vector oracles, so any
policy class can be plugged in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from rlspec.reference._validate import as_mask, choice, fail, finite_vector, in_range, positive
from rlspec.reference.envs import gaussian_bandit, lqr
from rlspec.reference.registry import Equation, Paper, Spec, register

N_HARPG_PAPER = Paper(arxiv="2302.01734", title="Stochastic Policy Gradient Methods: Improved Sample Complexity "
                      "for Fisher-non-degenerate Policies", year=2023)

METHODS = ("igt", "harpg")
IGT_ETA = ("current", "previous")


@dataclass(frozen=True)
class NHARPGConfig:
    """discount: γ of the return (garage's default 0.99, used by the code's algorithms); sigma: the std of the
    registry entry's linear-Gaussian policy (ours; the code learns a GaussianMLPPolicy's std).

    Optimiser (code defaults): method ``"igt"`` (N-PG-IGT) or ``"harpg"``; normalized True (N-PG-IGT, N-HARPG)
    or False (IGT, HARPG); gamma0 = γ_0 = 0.1 and eta0 = η_0 = 1 (the code's command-line defaults);
    igt_eta: ``"current"`` (η_t in the IGT extrapolation, default) or ``"previous"`` (the code's η_{t−1}).
    """

    discount: float = 0.99
    sigma: float = 1.0
    method: str = "harpg"
    normalized: bool = True
    gamma0: float = 0.1
    eta0: float = 1.0
    igt_eta: str = "current"

    def __post_init__(self) -> None:
        in_range(self.discount, "discount", 0.0, 1.0)
        positive(self.sigma, "sigma")
        choice(self.method, "method", METHODS)
        if not isinstance(self.normalized, (bool, np.bool_)):
            raise fail("normalized", repr(self.normalized), "True or False")
        positive(self.gamma0, "gamma0")
        in_range(self.eta0, "eta0", 0.0, 1.0, lo_open=True)
        choice(self.igt_eta, "igt_eta", IGT_ETA)


# ---------------------------------------------------------------------------- input validation


def _batch(states, actions, rewards, mask) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validated float64 copies (padding zeroed): states (N, H, P), actions (N, H), rewards (N, H), mask (N, H)."""
    m = as_mask(mask)
    if m.ndim != 2 or m.shape[0] == 0:
        raise fail("mask", f"shape {m.shape}", "(N, H) with N ≥ 1 trajectories")
    x = np.asarray(states)
    if x.ndim != 3 or x.shape[:2] != m.shape or x.shape[2] == 0:
        raise fail("states", f"shape {x.shape}", f"(N, H, P) = {m.shape + ('P ≥ 1',)}")
    out = []
    for name, arr, extra in (("states", x, (x.shape[2],)), ("actions", actions, ()), ("rewards", rewards, ())):
        a = np.asarray(arr)
        if a.shape != m.shape + extra or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise fail(name, f"shape {a.shape}, dtype {a.dtype}", f"real values of shape {m.shape + extra}")
        a = a.astype(np.float64, copy=True)
        keep = m if not extra else m[..., None]
        bad = ~np.isfinite(a) & keep
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise fail(name, f"a non-finite value at unmasked position {idx}", "finite values wherever mask is True")
        a[~np.broadcast_to(keep, a.shape)] = 0.0
        out.append(a)
    return out[0], out[1], out[2], m


# ---------------------------------------------------------------------------- estimators (any policy class)


def discounted_rewards(rewards: np.ndarray, mask: np.ndarray, discount: float) -> np.ndarray:
    """w_t = γᵗ r_t at valid steps, 0 elsewhere, (N, H)."""
    return np.where(mask, rewards * discount ** np.arange(rewards.shape[1]), 0.0)


def gpomdp_gradient(scores: np.ndarray, rewards: np.ndarray, mask: np.ndarray, discount: float) -> np.ndarray:
    """g(τ) = Σ_t (Σ_{h≤t} s_h) γᵗ r_t per trajectory, (N, P), from scores (N, H, P), rewards and mask (N, H)."""
    s = np.where(mask[..., None], scores, 0.0)
    return np.einsum("nt,ntp->np", discounted_rewards(rewards, mask, discount), np.cumsum(s, axis=1))


def hessian_estimate(scores: np.ndarray, score_jacobians: np.ndarray, rewards: np.ndarray, mask: np.ndarray,
                     discount: float) -> np.ndarray:
    """B(τ) = Σ_t (Σ_{h≤t} ∇²log π_h) γᵗ r_t + g(τ)(Σ_t s_t)ᵀ per trajectory, (N, P, P)."""
    s = np.where(mask[..., None], scores, 0.0)
    Hs = np.where(mask[..., None, None], score_jacobians, 0.0)
    w = discounted_rewards(rewards, mask, discount)
    grad_g = np.einsum("nt,ntpq->npq", w, np.cumsum(Hs, axis=1))
    return grad_g + np.einsum("np,nq->npq", gpomdp_gradient(s, rewards, mask, discount), s.sum(axis=1))


def hessian_vector(scores: np.ndarray, jac_v: np.ndarray, rewards: np.ndarray, mask: np.ndarray, discount: float,
                   v: np.ndarray) -> np.ndarray:
    """B(τ)v = Σ_t (Σ_{h≤t} ∇²log π_h v) γᵗ r_t + g(τ)·(Σ_t s_tᵀv) per trajectory, (N, P), without forming B.

    ``jac_v`` (N, H, P) holds ∇²log π_h v at each step.
    """
    s = np.where(mask[..., None], scores, 0.0)
    Hv = np.where(mask[..., None], jac_v, 0.0)
    w = discounted_rewards(rewards, mask, discount)
    return np.einsum("nt,ntp->np", w, np.cumsum(Hv, axis=1)) + gpomdp_gradient(s, rewards, mask, discount) * (
        s.sum(axis=1) @ v)[:, None]


# ---------------------------------------------------------------------------- the linear-Gaussian policy


def gaussian_scores(states: np.ndarray, actions: np.ndarray, theta: np.ndarray, sigma: float) -> np.ndarray:
    """s_h = (a_h − θᵀx_h) x_h/σ², (N, H, P), for a_h ~ N(θᵀx_h, σ²)."""
    return ((actions - states @ theta) / sigma**2)[..., None] * states


def gaussian_jac_v(states: np.ndarray, v: np.ndarray, sigma: float) -> np.ndarray:
    """∇²log π_h v = −x_h (x_hᵀv)/σ², (N, H, P)."""
    return -(states @ v / sigma**2)[..., None] * states


def n_harpg_estimates(states, actions, rewards, mask, theta, v, config: NHARPGConfig | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """The registry entry: batch means of the GPOMDP gradient g and of the Hessian-vector product B·v.

    Args: states (N, H, P) features x_t; actions (N, H) a_t ~ N(θᵀx_t, σ²); rewards (N, H); mask (N, H) bool;
    theta (P,) policy parameter (where the trajectories were drawn); v (P,) direction (θ_t − θ_{t−1} in HARPG).
    Returns: (grad (P,), hess_vec (P,)) = ((1/N) Σ_n g(τ_n), (1/N) Σ_n B(τ_n) v).
    """
    cfg = config or NHARPGConfig()
    X, A, R, m = _batch(states, actions, rewards, mask)
    P = X.shape[2]
    th, vv = finite_vector(theta, "theta", P), finite_vector(v, "v", P)
    s = gaussian_scores(X, A, th, cfg.sigma)
    g = gpomdp_gradient(s, R, m, cfg.discount)
    Bv = hessian_vector(s, gaussian_jac_v(X, vv, cfg.sigma), R, m, cfg.discount, vv)
    return g.mean(axis=0), Bv.mean(axis=0)


# ---------------------------------------------------------------------------- schedules and steps (pure)


def step_size(t: int, config: NHARPGConfig) -> float:
    """γ_t: γ_0·2/(t+2), except unnormalized HARPG: γ_0·(2/(t+2))^{1/2}."""
    base = 2.0 / (t + 2.0)
    if config.method == "harpg" and not config.normalized:
        return config.gamma0 * np.sqrt(base)
    return config.gamma0 * base


def momentum(t: int, config: NHARPGConfig) -> float:
    """η_t: η_0·(2/(t+2))^{4/5} for IGT, η_0·2/(t+2) for HARPG."""
    base = 2.0 / (t + 2.0)
    return config.eta0 * (base ** 0.8 if config.method == "igt" else base)


@dataclass(frozen=True)
class PGState:
    """θ_t, θ_{t−1} (= θ_0 at t = 0), d_{t−1} (None before the first update) and the iteration t."""

    theta: np.ndarray
    theta_prev: np.ndarray
    d: np.ndarray | None = None
    t: int = 0


def init_state(theta0) -> PGState:
    """The state before iteration 0: θ_0 = θ_{−1} = theta0, no direction yet."""
    th = finite_vector(np.atleast_1d(np.asarray(theta0, dtype=np.float64)), "theta0")
    return PGState(theta=th, theta_prev=th.copy())


def igt_point(state: PGState, config: NHARPGConfig) -> np.ndarray:
    """θ̃_t = θ_t + ((1 − η)/η)(θ_t − θ_{t−1}), η = η_t (``igt_eta="current"``) or η_{t−1} (code; η_{−1} = 1)."""
    if config.igt_eta == "current":
        eta = momentum(state.t, config)
    else:
        eta = momentum(state.t - 1, config) if state.t > 0 else 1.0
    return state.theta + (1.0 - eta) / eta * (state.theta - state.theta_prev)


def harpg_point(state: PGState, q: float) -> np.ndarray:
    """θ̂_t = q θ_t + (1 − q) θ_{t−1}, q ∈ [0, 1]."""
    return q * state.theta + (1.0 - q) * state.theta_prev


def igt_direction(d_prev: np.ndarray | None, g: np.ndarray, eta: float) -> np.ndarray:
    """d_t = (1 − η_t) d_{t−1} + η_t g  (d_0 = g)."""
    return g.copy() if d_prev is None else (1.0 - eta) * d_prev + eta * g


def harpg_direction(d_prev: np.ndarray | None, g: np.ndarray, hv: np.ndarray, eta: float) -> np.ndarray:
    """d_t = (1 − η_t)(d_{t−1} + v_t) + η_t g  (d_0 = g)."""
    return g.copy() if d_prev is None else (1.0 - eta) * (d_prev + hv) + eta * g


def ascent_step(theta: np.ndarray, d: np.ndarray, gamma_t: float, normalized: bool) -> np.ndarray:
    """θ + γ_t d/‖d‖ (normalized; no move if d = 0) or θ + γ_t d."""
    if not normalized:
        return theta + gamma_t * d
    n = float(np.linalg.norm(d))
    return theta.copy() if n == 0.0 else theta + gamma_t * d / n


def _advance(state: PGState, d: np.ndarray, config: NHARPGConfig) -> PGState:
    new = ascent_step(state.theta, d, step_size(state.t, config), config.normalized)
    return replace(state, theta=new, theta_prev=state.theta.copy(), d=d, t=state.t + 1)


def igt_update(state: PGState, g, config: NHARPGConfig) -> PGState:
    """One N-PG-IGT iteration given g = g(τ_t, θ̃_t): returns the new state (the argument is not modified)."""
    g = finite_vector(g, "g", state.theta.size)
    return _advance(state, igt_direction(state.d, g, momentum(state.t, config)), config)


def harpg_update(state: PGState, g, hv, config: NHARPGConfig) -> PGState:
    """One (N)-HARPG iteration given g = g(τ_t, θ_t) and hv = B(τ̂_t, θ̂_t)(θ_t − θ_{t−1})."""
    g = finite_vector(g, "g", state.theta.size)
    hv = finite_vector(hv, "hv", state.theta.size)
    return _advance(state, harpg_direction(state.d, g, hv, momentum(state.t, config)), config)


GradOracle = Callable[[np.random.Generator, np.ndarray], np.ndarray]
HvpOracle = Callable[[np.random.Generator, np.ndarray, np.ndarray], np.ndarray]


def npg_igt(grad_oracle: GradOracle, theta0, T: int, config: NHARPGConfig | None = None, seed: int = 0
            ) -> tuple[np.ndarray, np.ndarray]:
    """Run T iterations of N-PG-IGT (IGT if not normalized). ``grad_oracle(rng, θ̃)`` returns g at θ̃.

    Returns (θ_0..θ_T (T+1, P), d_0..d_{T−1} (T, P)). Deterministic given ``seed``.
    """
    cfg = config or NHARPGConfig(method="igt")
    rng = np.random.default_rng(seed)
    state = init_state(theta0)
    thetas, ds = [state.theta], []
    for _ in range(_count(T)):
        state = igt_update(state, grad_oracle(rng, igt_point(state, cfg)), cfg)
        thetas.append(state.theta)
        ds.append(state.d)
    return np.asarray(thetas), np.asarray(ds).reshape(len(ds), -1)


def harpg(grad_oracle: GradOracle, hvp_oracle: HvpOracle, theta0, T: int, config: NHARPGConfig | None = None,
          seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Run T iterations of (N)-HARPG. Each iteration draws q ~ U[0, 1] (first), then
    ``hvp_oracle(rng, θ̂_t, θ_t − θ_{t−1})`` (skipped at t = 0, where the displacement is 0) and
    ``grad_oracle(rng, θ_t)``. Returns (θ_0..θ_T, d_0..d_{T−1}). Deterministic given ``seed``.
    """
    cfg = config or NHARPGConfig(method="harpg")
    rng = np.random.default_rng(seed)
    state = init_state(theta0)
    thetas, ds = [state.theta], []
    for _ in range(_count(T)):
        q = float(rng.random())
        disp = state.theta - state.theta_prev
        hv = np.zeros_like(disp) if state.t == 0 else hvp_oracle(rng, harpg_point(state, q), disp)
        state = harpg_update(state, grad_oracle(rng, state.theta), hv, cfg)
        thetas.append(state.theta)
        ds.append(state.d)
    return np.asarray(thetas), np.asarray(ds).reshape(len(ds), -1)


def run(grad_oracle: GradOracle, hvp_oracle: HvpOracle | None, theta0, T: int, config: NHARPGConfig | None = None,
        seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The method named by ``config.method``: :func:`npg_igt` or :func:`harpg`."""
    cfg = config or NHARPGConfig()
    if cfg.method == "igt":
        return npg_igt(grad_oracle, theta0, T, cfg, seed)
    if hvp_oracle is None:
        raise fail("hvp_oracle", "None", "a Hessian-vector oracle for method 'harpg'")
    return harpg(grad_oracle, hvp_oracle, theta0, T, cfg, seed)


def _count(T) -> int:
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T < 0:
        raise fail("T", repr(T), "an integer ≥ 0 (iterations)")
    return int(T)


# ---------------------------------------------------------------------------- oracles on the small problems


def lqr_oracles(env: lqr.ScalarLQR, sigma: float, H: int, batch: int = 1) -> tuple[GradOracle, HvpOracle]:
    """GPOMDP / Hessian-vector oracles for the gain θ of u = θx + σε on a scalar LQR (``batch`` trajectories each)."""
    ones = np.ones((batch, H), dtype=bool)

    def grad(rng, theta):
        X, U, R = lqr.simulate(env, rng, theta, sigma, H, batch)
        s = gaussian_scores(X[..., None], U, np.atleast_1d(theta), sigma)
        return gpomdp_gradient(s, R, ones, env.gamma).mean(axis=0)

    def hvp(rng, theta, v):
        X, U, R = lqr.simulate(env, rng, theta, sigma, H, batch)
        s = gaussian_scores(X[..., None], U, np.atleast_1d(theta), sigma)
        return hessian_vector(s, gaussian_jac_v(X[..., None], v, sigma), R, ones, env.gamma, v).mean(axis=0)

    return grad, hvp


def bandit_oracles(env: gaussian_bandit.GaussianBandit, batch: int = 1, learn_std: bool = True, sigma: float = 1.0
                   ) -> tuple[GradOracle, HvpOracle]:
    """The same oracles on the one-step Gaussian bandit (H = 1), θ = (μ, log σ) or μ."""
    ones = np.ones((batch, 1), dtype=bool)

    def draw(rng, theta):
        a = gaussian_bandit.sample(rng, theta, batch, learn_std, sigma)
        return a, gaussian_bandit.score(a, theta, learn_std, sigma)[:, None, :], gaussian_bandit.reward(env, a)[:, None]

    def grad(rng, theta):
        _, s, r = draw(rng, theta)
        return gpomdp_gradient(s, r, ones, 1.0).mean(axis=0)

    def hvp(rng, theta, v):
        a, s, r = draw(rng, theta)
        jv = gaussian_bandit.score_jacobian(a, theta, learn_std, sigma) @ v
        return hessian_vector(s, jv[:, None, :], r, ones, 1.0, v).mean(axis=0)

    return grad, hvp


# ---------------------------------------------------------------------------- weak gradient domination


def gradient_domination_bound(weights, advantages, scores, grad, fisher) -> tuple[float, float, float]:
    """Relaxed weak gradient domination for a one-step problem (a bandit; γ = 0), from the points a_i of the
    optimal policy π* with weights w_i (quadrature or enumeration), A^θ(a_i), s_θ(a_i) = ∇log π_θ(a_i):

        w* = F(θ)⁻¹∇J(θ),  ε_bias = Σ_i w_i (A^θ(a_i) − w*ᵀs_θ(a_i))²,  G² = Σ_i w_i ‖s_θ(a_i)‖²
        J* − J(θ) = Σ_i w_i A^θ(a_i)  ≤  √ε_bias + G·‖w*‖  ≤  √ε_bias + (G/μ_F)‖∇J(θ)‖

    Returns (gap = Σ w_i A_i, bound = √ε_bias + G‖w*‖, eps_bias).
    """
    w = np.asarray(weights, float)
    A = np.asarray(advantages, float)
    S = np.asarray(scores, float).reshape(w.size, -1)
    w_star = np.linalg.solve(np.atleast_2d(fisher), np.atleast_1d(grad))
    eps_bias = float(w @ (A - S @ w_star) ** 2)
    G = float(np.sqrt(w @ (S**2).sum(axis=1)))
    return float(w @ A), float(np.sqrt(eps_bias) + G * np.linalg.norm(w_star)), eps_bias


# ---------------------------------------------------------------------------- registry


def make_inputs(rng: np.random.Generator) -> dict:
    """A batch of linear-Gaussian trajectories with ragged (prefix) masks and garbage in the padding."""
    N, H, P = int(rng.integers(1, 6)), int(rng.integers(1, 9)), int(rng.integers(1, 4))
    theta = rng.normal(size=P) * 0.5
    X = rng.normal(size=(N, H, P))
    A = X @ theta + rng.normal(size=(N, H))  # σ = 1, the config's default
    R = -(A - 1.0) ** 2 + rng.normal(size=(N, H)) * 0.1
    lengths = rng.integers(0, H + 1, size=N)
    lengths[0] = max(lengths[0], 1)
    mask = np.arange(H)[None, :] < lengths[:, None]
    for arr in (A, R):
        arr[~mask] = rng.choice([np.nan, np.inf, 1e30, -7.0])
    X[~mask] = np.nan
    return {"states": X, "actions": A, "rewards": R, "mask": mask, "theta": theta, "v": rng.normal(size=P)}


_CODE = "official code (garage fork) garage/torch/optimizers/"

EQUATIONS = (
    Equation("gpomdp", "g(τ,θ) = Σ_{t<H} (Σ_{h≤t} ∇log π_θ(a_h|s_h)) γᵗ r_t;  E g = ∇J_H",
             "arXiv 2302.01734, GPOMDP estimator (section not readable to us); our notes papers_C §1", "secondary",
             "gpomdp_gradient",
             note="the code trains on −mean(log π·A) over all steps with a learned baseline (garage VPG loss), a "
                  "variance-reduced form with the same mean; unbiasedness checked exactly in properties"),
    Equation("hessian-estimator", "B(τ,θ) = ∇_θ g(τ,θ) + g(τ,θ)∇_θΦ(τ,θ)ᵀ,  Φ = Σ_t log π_θ(a_t|s_t);  E B = ∇²J_H",
             "arXiv 2302.01734, Hessian estimator of (N)-HARPG (section not readable to us)", "official-code",
             "hessian_vector",
             note=_CODE + "STORMHess_optimizer.py step(): hvp + jac·(∇log_probs_loss·v) on batch means. Two "
                  "differences we read there: the rank-one term is a product of batch means (biased for N > 1; we "
                  "average per-trajectory products), and, assuming the base class's standard garage loss "
                  "−mean(log π·A) (not opened), that term enters with the opposite sign to −B·v on the loss scale. "
                  "E B = ∇²J_H is checked exactly in properties (bandit quadrature, tabular enumeration)"),
    Equation("igt-point", "θ̃_t = θ_t + ((1 − η_t)/η_t)(θ_t − θ_{t−1})",
             "arXiv 2302.01734, N-PG-IGT (Alg. 1 in our notes; paper text not readable)", "official-code", "igt_point",
             note=_CODE + "NIGT_optimizer.py update_model_to_line_point: (1/η)θ_t + (1 − 1/η)θ_{t−1}, called before "
                  "η is updated, so the code uses η_{t−1} (option igt_eta='previous'); the default uses η_t, the "
                  "only timing under which the transport identity holds (tested)"),
    Equation("igt-direction", "d_t = (1 − η_t)d_{t−1} + η_t g(τ_t, θ̃_t)", "arXiv 2302.01734, N-PG-IGT (Alg. 1 in our notes)",
             "official-code", "igt_direction", note=_CODE + "SGDM_optimizer.py compute_grad_estimator (moving_avg)"),
    Equation("normalized-step", "θ_{t+1} = θ_t + γ_t d_t/‖d_t‖  (HARPG: θ_t + γ_t d_t)",
             "arXiv 2302.01734, N-PG-IGT and (N)-HARPG (Alg. 1-2 in our notes)", "official-code", "ascent_step",
             note=_CODE + "SGDM_optimizer.py update_the_displacement (loss scale: θ − γ d/‖d‖ with d of the loss)"),
    Equation("harpg-point", "q_t ~ U[0,1],  θ̂_t = q_t θ_t + (1 − q_t)θ_{t−1},  v_t = B(τ̂_t, θ̂_t)(θ_t − θ_{t−1})",
             "arXiv 2302.01734, (N)-HARPG (Alg. 2 in our notes)", "official-code", "harpg_point",
             note=_CODE + "STORMHess_optimizer.py update_model_to_random_line_point, get_vector_diff; the code's "
                  "Hessian batch is hessian_batch_size trajectories"),
    Equation("harpg-direction", "d_t = (1 − η_t)(d_{t−1} + v_t) + η_t g(τ_t, θ_t)",
             "arXiv 2302.01734, (N)-HARPG (Alg. 2 in our notes)", "official-code", "harpg_direction",
             note=_CODE + "STORMHess_optimizer.py compute_grad_estimator: buffer + hvp, × (1 − η), + η·grad; the "
                  "first buffer is the gradient"),
    Equation("schedules", "γ_t = γ_0·2/(t+2) (HARPG: γ_0(2/(t+2))^{1/2});  η_t = η_0(2/(t+2))^{4/5} (IGT), "
             "η_0·2/(t+2) (HARPG);  γ_0 = 0.1, η_0 = 1",
             "arXiv 2302.01734, step-size choices of the convergence theorems (not readable to us)",
             "official-code", "step_size",
             note=_CODE + "NIGT_optimizer.py / STORMHess_optimizer.py update_gamma, update_eta (iteration counter "
                  "starts at 0); γ_0, η_0 are the code's command-line defaults per our notes; the theory's constants "
                  "were not readable"),
    Equation("unbiased-correction", "E_{q,τ̂}[v_t] = ∇J(θ_t) − ∇J(θ_{t−1})",
             "arXiv 2302.01734, motivation of the HARPG correction (our notes papers_C §1, property 1)", "reconstructed",
             "harpg_point",
             note="fundamental theorem of calculus along the segment with E B = ∇²J; checked exactly by "
                  "Gauss-Legendre in q × Gauss-Hermite / enumeration in τ"),
    Equation("gradient-domination", "J* − J(θ) ≤ √ε_bias + G‖w*‖ ≤ √ε_bias + (G/μ_F)‖∇J(θ)‖, w* = F⁻¹∇J",
             "arXiv 2302.01734, relaxed weak gradient domination (Fisher non-degeneracy + compatible FA bias)",
             "reconstructed", "gradient_domination_bound",
             note="our derivation for one-step problems (γ = 0) with G² the π*-second moment of the score (the "
                  "Gaussian score is unbounded); the paper's exact statement and constants were not readable"),
)

register(Spec(
    name="n_harpg", kind="tabular", family="classic-rl", paper=N_HARPG_PAPER, status="implemented",
    summary="GPOMDP and Hessian-aided estimators; normalized PG with implicit gradient transport (N-PG-IGT) and "
            "Hessian-aided recursive PG ((N)-HARPG) as pure steps, checked on a Gaussian bandit, a tabular MDP and LQR",
    fn=n_harpg_estimates, config_cls=NHARPGConfig, equations=EQUATIONS, outputs=("grad", "hess_vec"),
    make_inputs=make_inputs,
    gradient="the entry returns estimators of ∇J and ∇²J·v themselves: g = Σ_t (Σ_{h≤t} s_h) γᵗ r_t, "
             "Bv = Σ_t (Σ_{h≤t} ∇²log π_h v) γᵗ r_t + g·(Σ_t s_t)ᵀv with s_h = (a_h − θᵀx_h)x_h/σ², "
             "∇²log π_h v = −x_h(x_hᵀv)/σ²; optimized/ gets the same by double backward through log π",
    properties=(
        "properties/test_n_harpg.py::test_gpomdp_unbiased_on_gaussian_bandit: E g = ∇J exactly (Gauss-Hermite)",
        "properties/test_n_harpg.py::test_hessian_estimator_unbiased_on_gaussian_bandit: E B = ∇²J exactly",
        "properties/test_n_harpg.py::test_estimators_unbiased_on_tabular_mdp: E g = ∇J_H, E B = ∇²J_H by enumerating "
        "every trajectory of a random 2-state softmax MDP (FD of the exact J_H)",
        "properties/test_n_harpg.py::test_harpg_correction_unbiased_exact: E_{q,τ̂} v_t = ∇J(θ_t) − ∇J(θ_{t−1}) "
        "(Gauss-Legendre × Gauss-Hermite, learned mean and std)",
        "properties/test_n_harpg.py::test_harpg_correction_unbiased_on_tabular_mdp: same by enumeration on an MDP",
        "properties/test_n_harpg.py::test_harpg_oracle_sampling_is_unbiased: the sampling path (q, τ̂ draws) "
        "averages to ∇J(θ_t) − ∇J(θ_{t−1}) (Monte Carlo, 5 s.e.)",
        "properties/test_n_harpg.py::test_lqr_estimators_unbiased: E g = dJ_H/dθ, E Bv = d²J_H/dθ²·v on LQR "
        "(Monte Carlo, 5 s.e.)",
        "properties/test_n_harpg.py::test_entry_matches_per_step_formulas: registry entry = estimators on explicit "
        "scores; padding never read",
        "properties/test_n_harpg.py::test_harpg_recursion_tracks_exact_gradient: with exact expectations "
        "d_t = ∇J(θ_t) at every step (unbiased recursion)",
        "properties/test_n_harpg.py::test_igt_transport_exact_on_quadratic: noise-free IGT gives d_t = ∇J(θ_t) on a "
        "quadratic; the code's η_{t−1} timing does not",
        "properties/test_n_harpg.py::test_normalized_step_length_and_schedules: ‖θ_{t+1} − θ_t‖ = γ_t, schedules",
        "properties/test_n_harpg.py::test_updates_are_pure_and_replayable: inputs not mutated, step-by-step replay "
        "= driver",
        "properties/test_n_harpg.py::test_weak_gradient_domination_on_bandits: J(π') − J(θ) ≤ √ε_bias + G‖w*‖ ≤ "
        "√ε_bias + (G/μ_F)‖∇J‖ for Gaussian comparators π' (exact quadrature; ε_bias > 0 here)",
        "properties/test_n_harpg.py::test_converges_on_gaussian_bandit: N-PG-IGT, N-HARPG, HARPG with one action "
        "per estimator reach μ* = a* (3 seeds, 1000 iterations, |μ_T − a*| ≤ 0.08)",
        "properties/test_n_harpg.py::test_converges_on_lqr: the three methods reach the optimal gain of J_H on "
        "scalar LQR (3 seeds, |θ_T − θ*_H| ≤ 0.06, J* − J ≤ 0.5% of |J*|)",
        "properties/test_n_harpg.py::test_optimized_matches_reference: torch autograd estimators = hand formulas; "
        "torch run = reference run",
        "properties/test_n_harpg.py::test_bad_input_raises",
        "untested: Theorem (N-PG-IGT) Õ(ε^{-2.5}) and Theorem (N-HARPG) Õ(ε^{-2}) trajectories to a global "
        "ε-optimum up to √ε_bias — sample-complexity rates with unstated constants; a finite run cannot confirm an "
        "asymptotic order (the notes' log-log slopes −0.4 / −0.5 are at best a soft, noisy indication)",
        "untested: HARPG (unnormalized) E‖∇J‖ ≤ ε in O(ε^{-3}) — a rate, same reason",
        "untested: the exact constants of the relaxed weak gradient domination lemma in the discounted MDP case — "
        "the paper's statement was not readable; only our one-step derivation is tested",
    ),
    extras={"init_state": init_state, "igt_update": igt_update, "harpg_update": harpg_update,
            "igt_point": igt_point, "harpg_point": harpg_point, "npg_igt": npg_igt, "harpg": harpg, "run": run,
            "step_size": step_size, "momentum": momentum, "lqr_oracles": lqr_oracles,
            "bandit_oracles": bandit_oracles, "gradient_domination_bound": gradient_domination_bound,
            "figures": (("img/n_harpg.png", "N-PG-IGT, N-HARPG and HARPG on scalar LQR (γ = 0.8, H = 10, σ = 1, "
                         "batches of 32 trajectories): the gain θ_t of three seeds against the optimal gain θ*_H of the "
                         "exact truncated return"),)},
))
