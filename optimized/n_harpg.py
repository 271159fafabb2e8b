"""N-PG-IGT and (N)-HARPG (torch). Mirrors :mod:`rlspec.reference.n_harpg`; the estimators come from autograd.

A user trains with these the way the authors' code does (arXiv 2302.01734; garage ``NIGT_optimizer.py`` and
``STORMHess_optimizer.py``): build log π_θ of the sampled actions with a differentiable policy, then

* g  = ∇_θ L̄,  L̄ = (1/N) Σ_n Σ_h log π_θ(a_nh|s_nh) Σ_{t≥h} γᵗ r_nt     (GPOMDP as a surrogate's gradient)
* B·v = ∇_θ(g·v) + (1/N) Σ_n (∇_θΦ_n·v) g_n,  Φ_n = Σ_t log π_θ(a_nt|s_nt)

The first term of B·v is a double backward; the second needs one number per trajectory, c_n = ∇Φ_n·v, which is a
forward-mode product obtained here by the double-vjp trick (c = ∂/∂w [(∂Φ/∂θ)ᵀw]·v), then
Σ_n c_n g_n = ∇_θ Σ_n c_n L_n with c detached. Nothing here assumes the policy is linear: ``estimates`` takes
any function θ ↦ log π (N, H). Unlike the code, the rank-one term is averaged per trajectory (the code multiplies
batch means); see the reference's Equation notes.

bfloat16 inputs are computed in float32 (and returned in bfloat16): a Hessian-vector product through
two backward passes loses every digit in bfloat16.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.envs import gaussian_bandit
from rlspec.reference.n_harpg import NHARPGConfig, momentum, step_size


def _batch(states, actions, rewards, mask, theta, v):
    """Validated tensors with padding zeroed (before anything enters the graph)."""
    if not isinstance(mask, torch.Tensor) or mask.ndim != 2 or mask.shape[0] == 0:
        raise fail("mask", f"{type(mask).__name__} {tuple(getattr(mask, 'shape', ()))}", "an (N, H) bool tensor, N ≥ 1")
    if mask.dtype != torch.bool:
        if mask.dtype.is_floating_point or bool(((mask != 0) & (mask != 1)).any()):
            raise fail("mask", f"dtype {mask.dtype}", "a boolean tensor (True = step counts)")
        mask = mask.bool()
    N, H = mask.shape
    if not isinstance(states, torch.Tensor) or states.ndim != 3 or tuple(states.shape[:2]) != (N, H):
        raise fail("states", f"shape {tuple(getattr(states, 'shape', ()))}", f"(N, H, P) with (N, H) = {(N, H)}")
    out = []
    for name, x, keep in (("states", states, mask[..., None]), ("actions", actions, mask), ("rewards", rewards, mask)):
        if not isinstance(x, torch.Tensor) or tuple(x.shape) != tuple(keep.shape[:2]) + tuple(x.shape[2:]) or \
                x.shape[:2] != mask.shape:
            raise fail(name, f"shape {tuple(getattr(x, 'shape', ()))}", f"leading shape {(N, H)}")
        if not bool(torch.isfinite(x[keep.expand_as(x)]).all()):
            raise fail(name, "a non-finite value at an unmasked position", "finite values wherever mask is True")
        out.append(torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device)))
    P = states.shape[2]
    for name, x in (("theta", theta), ("v", v)):
        if not isinstance(x, torch.Tensor) or tuple(x.shape) != (P,) or not bool(torch.isfinite(x).all()):
            raise fail(name, f"{tuple(getattr(x, 'shape', ()))}", f"a finite ({P},) tensor")
    return (*out, mask)


def gaussian_log_prob(states: torch.Tensor, actions: torch.Tensor, theta: torch.Tensor, sigma: float) -> torch.Tensor:
    """log N(a; θᵀx, σ²) at every step, (N, H)."""
    mean = states @ theta
    return -0.5 * ((actions - mean) / sigma) ** 2 - np.log(sigma) - 0.5 * np.log(2.0 * np.pi)


def reward_to_go(rewards: torch.Tensor, mask: torch.Tensor, discount: float) -> torch.Tensor:
    """Σ_{t≥h} γᵗ r_t (N, H) over valid steps (no gradient flows through rewards)."""
    w = torch.where(mask, rewards * discount ** torch.arange(rewards.shape[1], dtype=rewards.dtype,
                                                                device=rewards.device), torch.zeros_like(rewards))
    return torch.flip(torch.cumsum(torch.flip(w, [1]), 1), [1])


def gpomdp_surrogate(logp: torch.Tensor, rewards: torch.Tensor, mask: torch.Tensor, discount: float) -> torch.Tensor:
    """L_n = Σ_h log π_h · Σ_{t≥h} γᵗ r_t per trajectory, (N,): ∇L_n = g(τ_n)."""
    lp = torch.where(mask, logp, torch.zeros_like(logp))
    return (lp * reward_to_go(rewards, mask, discount).detach()).sum(dim=1)


def estimates(log_prob: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor, rewards: torch.Tensor,
              mask: torch.Tensor, discount: float, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean g, mean B·v) for any differentiable policy: ``log_prob(θ)`` returns log π of the sampled actions (N, H)."""
    th = theta.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logp = torch.where(mask, log_prob(th), torch.zeros((), dtype=th.dtype, device=th.device))
        L = gpomdp_surrogate(logp, rewards, mask, discount)                          # (N,)
        (g,) = torch.autograd.grad(L.mean(), th, create_graph=True)
        (hvp,) = torch.autograd.grad(g @ v, th, retain_graph=True)                 # (1/N) Σ ∇g_n v
        Phi = logp.sum(dim=1)                                                        # (N,)
        w = torch.zeros_like(Phi, requires_grad=True)
        (jt,) = torch.autograd.grad(Phi, th, grad_outputs=w, create_graph=True)    # Σ_n w_n ∇Φ_n
        (c,) = torch.autograd.grad(jt, w, grad_outputs=v, retain_graph=True)       # c_n = ∇Φ_n · v
        (rank1,) = torch.autograd.grad((c.detach() * L).mean(), th)                # (1/N) Σ c_n g_n
    return g.detach(), hvp + rank1


@implements("n_harpg")
def n_harpg_estimates(states, actions, rewards, mask, theta, v, config: NHARPGConfig | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """(grad (P,), hess_vec (P,)): batch means of g and B·v for a_t ~ N(θᵀx_t, σ²), by autograd."""
    cfg = config or NHARPGConfig()
    X, A, R, m = _batch(states, actions, rewards, mask, theta, v)
    dt = theta.dtype
    work = torch.float32 if dt in (torch.bfloat16, torch.float16) else dt
    X, A, R = X.to(work), A.to(work), R.to(work)
    g, hv = estimates(lambda th: gaussian_log_prob(X, A, th, cfg.sigma), theta.to(work), R, m, cfg.discount,
                      v.to(work))
    return g.to(dt), hv.to(dt)


# ---------------------------------------------------------------------------- the optimisers on torch tensors


def igt_point(theta: torch.Tensor, theta_prev: torch.Tensor, t: int, config: NHARPGConfig) -> torch.Tensor:
    """θ̃_t = θ_t + ((1 − η)/η)(θ_t − θ_{t−1}), η = η_t or (code timing) η_{t−1}."""
    eta = momentum(t, config) if config.igt_eta == "current" else (momentum(t - 1, config) if t > 0 else 1.0)
    return theta + (1.0 - eta) / eta * (theta - theta_prev)


def direction(d_prev: torch.Tensor | None, g: torch.Tensor, hv: torch.Tensor | None, t: int,
              config: NHARPGConfig) -> torch.Tensor:
    """d_t: (1 − η_t)d_{t−1} + η_t g (IGT) or (1 − η_t)(d_{t−1} + v_t) + η_t g (HARPG); d_0 = g."""
    if d_prev is None:
        return g.clone()
    eta = momentum(t, config)
    return (1.0 - eta) * (d_prev + (hv if hv is not None else 0.0)) + eta * g


def ascent_step(theta: torch.Tensor, d: torch.Tensor, t: int, config: NHARPGConfig) -> torch.Tensor:
    """θ + γ_t d/‖d‖ (normalized; no move if d = 0) or θ + γ_t d."""
    gamma_t = step_size(t, config)
    if not config.normalized:
        return theta + gamma_t * d
    n = torch.linalg.vector_norm(d)
    return theta.clone() if float(n) == 0.0 else theta + gamma_t * d / n


Sampler = Callable[[np.random.Generator, np.ndarray], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def run(sample: Sampler, log_prob: Callable, theta0, T: int, config: NHARPGConfig | None = None, seed: int = 0,
        dtype: torch.dtype = torch.float64) -> np.ndarray:
    """Train with N-PG-IGT / (N)-HARPG: ``sample(rng, θ)`` returns (batch, rewards (N, H), mask (N, H)) drawn at
    θ (NumPy), ``log_prob(θ, batch)`` log π (N, H) differentiable in θ. The random stream is the reference
    driver's (q first, then the Hessian batch, then the gradient batch), so a run replays
    :func:`rlspec.reference.n_harpg.run` given the same draws. Returns θ_0..θ_T, (T+1, P)."""
    cfg = config or NHARPGConfig()
    rng = np.random.default_rng(seed)
    theta = torch.as_tensor(np.atleast_1d(np.asarray(theta0, dtype=np.float64)), dtype=dtype)
    theta_prev, d = theta.clone(), None
    out = [theta.clone()]

    def est(point, v):
        batch, R, m = sample(rng, point.numpy().astype(np.float64))
        return estimates(lambda th: log_prob(th, batch), point, R, m, cfg.discount, v)

    for t in range(int(T)):
        zero = torch.zeros_like(theta)
        if cfg.method == "igt":
            g, _ = est(igt_point(theta, theta_prev, t, cfg), zero)
            hv = None
        else:
            q = float(rng.random())
            disp = theta - theta_prev
            hv = zero if t == 0 else est(q * theta + (1.0 - q) * theta_prev, disp)[1]
            g, _ = est(theta, zero)
        d = direction(d, g, hv, t, cfg)
        theta, theta_prev = ascent_step(theta, d, t, cfg), theta
        out.append(theta.clone())
    return torch.stack(out).numpy()


def run_bandit(env: gaussian_bandit.GaussianBandit, theta0, T: int, config: NHARPGConfig | None = None,
               seed: int = 0, batch: int = 1) -> np.ndarray:
    """:func:`run` on the Gaussian bandit with learned mean and log-std (θ = (μ, s)); same draws as
    ``ref.bandit_oracles(env, batch)``."""

    def sample(rng, th):
        a = gaussian_bandit.sample(rng, th, batch)
        R = torch.as_tensor(gaussian_bandit.reward(env, a)[:, None])
        return torch.as_tensor(a[:, None]), R, torch.ones((batch, 1), dtype=torch.bool)

    def log_prob(th, a):
        return -0.5 * ((a - th[0]) * torch.exp(-th[1])) ** 2 - th[1] - 0.5 * np.log(2.0 * np.pi)

    return run(sample, log_prob, theta0, T, config, seed)  # H = 1: the discount plays no role
