"""A2PR (torch). Mirrors :mod:`rlspec.reference.a2pr`; gradients by autograd.

For training, :func:`a2pr_actor_objective` takes the tensors a user has at the actor step: π(s) (a leaf of
the actor's graph), Q_1(s, π(s)) computed by the critic on it (differentiable), the VAE reconstruction
of π(s) (differentiable through the VAE, as in the official code, or detached), the data actions and
the critic's values on them. ``loss.backward()`` then gives the actor gradient; λ, the mask and the
choice of ã carry no gradient (detached), as in the official ``A2PR.train``.

The registry entry (:func:`a2pr_actor_loss`) takes the reference's arrays: the critic is represented by
its value and action gradient at π(s) (a first-order surrogate that is exact in value and gradient at
that point) and the VAE by its reconstruction and optional Jacobian, and returns (loss, dpi) with dpi
from autograd.
"""

from __future__ import annotations

import numpy as np
import torch

from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.a2pr import A2PRConfig
from rlspec.reference.envs import a2pr_offline_bandit as ob


def _t(x, like: torch.Tensor | None = None, name: str = "x") -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    if like is None:
        return torch.as_tensor(np.asarray(x, dtype=np.float64))
    return torch.as_tensor(np.asarray(x, dtype=np.float64), dtype=like.dtype, device=like.device)


def _check(x: torch.Tensor, name: str, shape: tuple[int, ...]) -> torch.Tensor:
    if tuple(x.shape) != shape:
        raise fail(name, f"shape {tuple(x.shape)}", f"shape {shape}")
    if not bool(torch.isfinite(x).all()):
        raise fail(name, "non-finite values", "finite values")
    return x


def _actions(x: torch.Tensor, name: str, B: int | None = None, d: int | None = None) -> torch.Tensor:
    """The reference's ``_actions`` rule on a tensor: real (B, d_a), B, d_a ≥ 1, finite; same messages."""
    if x.ndim != 2 or x.dtype == torch.bool or x.dtype.is_complex:
        raise fail(name, f"an array of shape {tuple(x.shape)}, dtype {x.dtype}", "a real (B, d_a) array")
    if (B is not None and x.shape[0] != B) or (d is not None and x.shape[1] != d) or 0 in x.shape:
        raise fail(name, f"shape {tuple(x.shape)}", f"({B if B is not None else 'B'}, {d if d is not None else 'd_a'}), "
                                                    "B, d_a ≥ 1")
    if not bool(torch.isfinite(x).all()):
        raise fail(name, "non-finite values", "finite values")
    return x


def _values(x: torch.Tensor, name: str, B: int) -> torch.Tensor:
    """The reference's ``_values`` rule on a tensor: real (B,), finite; same messages."""
    if tuple(x.shape) != (B,) or x.dtype == torch.bool or x.dtype.is_complex:
        raise fail(name, f"an array of shape {tuple(x.shape)}, dtype {x.dtype}", f"a real array of shape ({B},)")
    if not bool(torch.isfinite(x).all()):
        raise fail(name, "non-finite values", "finite values")
    return x


def advantage(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """A(s, a) = Q_1(s, a) − V(s)."""
    return q - v


def augmented_action(a_data: torch.Tensor, a_vae: torch.Tensor, q_data: torch.Tensor, q_vae: torch.Tensor):
    """ã = â where Q_1(s, â) ≥ Q_1(s, a), else a; returns (ã, use_vae)."""
    use_vae = (q_vae >= q_data).detach()
    return torch.where(use_vae[:, None], a_vae, a_data), use_vae


def regularization_weight(q_data: torch.Tensor, q_vae: torch.Tensor, v: torch.Tensor, kappa: float) -> torch.Tensor:
    """m = κ·(1[Q_1(s, â) ≥ V] + 1[Q_1(s, a) > V]), detached."""
    return (kappa * ((q_vae >= v).to(q_vae.dtype) + (q_data > v).to(q_vae.dtype))).detach()


def q_scale(q_pi: torch.Tensor, alpha: float) -> torch.Tensor:
    """λ = α / mean |Q_1(s, π(s))|, detached."""
    denom = q_pi.detach().abs().mean()
    if float(denom) == 0.0:
        raise fail("q_pi", "all zeros", "at least one non-zero Q_1(s, π(s)) (λ = α/mean|Q| is undefined)")
    return alpha / denom


def a2pr_actor_objective(pi: torch.Tensor, q_pi: torch.Tensor, a_data: torch.Tensor, q_data: torch.Tensor,
                         a_vae: torch.Tensor, q_vae: torch.Tensor, v: torch.Tensor,
                         config: A2PRConfig | None = None) -> torch.Tensor:
    """L_π = −λ·mean Q_1(s, π(s)) + mean m·(π − ã)² (scalar; differentiable in π, q_pi and a_vae)."""
    cfg = config or A2PRConfig()
    B, d = pi.shape
    for x, n in ((a_data, "a_data"), (a_vae, "a_vae")):
        _check(x.detach(), n, (B, d))
    for x, n in ((q_pi, "q_pi"), (q_data, "q_data"), (q_vae, "q_vae"), (v, "v")):
        _check(x.detach(), n, (B,))
    lam = q_scale(q_pi, cfg.alpha)
    a_tilde, _ = augmented_action(a_data, a_vae, q_data.detach(), q_vae.detach())
    m = regularization_weight(q_data.detach(), q_vae.detach(), v.detach(), cfg.kappa)
    return -lam * q_pi.mean() + (m[:, None] * (pi - a_tilde) ** 2).mean()


@implements("a2pr")
def a2pr_actor_loss(pi_a, dq_pi, q_pi, a_data, q_data, a_vae, q_vae, v, dvae_dpi=None,
                    config: A2PRConfig | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_π, ∂L_π/∂π) with the critic linearised at π(s) and the VAE at its reconstruction (autograd)."""
    pi0 = _actions(_t(pi_a), "pi_a")  # validated in the reference's order, so the same argument is named
    B, d = pi0.shape
    if not pi0.dtype.is_floating_point:
        pi0 = pi0.to(torch.float64)
    g = _actions(_t(dq_pi, pi0), "dq_pi", B, d)
    a_data, a_hat = _actions(_t(a_data, pi0), "a_data", B, d), _actions(_t(a_vae, pi0), "a_vae", B, d)
    q_pi, q_data, q_vae, v = (_values(_t(x, pi0), n, B) for x, n in ((q_pi, "q_pi"), (q_data, "q_data"),
                                                                      (q_vae, "q_vae"), (v, "v")))
    q_scale(q_pi, (config or A2PRConfig()).alpha)  # all-zero Q raises before the Jacobian is looked at, as in the reference
    pi = pi0.detach().clone().requires_grad_(True)
    q_lin = q_pi + ((pi - pi0.detach()) * g).sum(-1)                        # Q_1(s, π) to first order, exact grad
    if dvae_dpi is not None:
        J = _check(_t(dvae_dpi, pi0), "dvae_dpi", (B, d, d))
        a_hat = a_hat + torch.einsum("bij,bj->bi", J, pi - pi0.detach())   # â(π) to first order
    with torch.enable_grad():
        loss = a2pr_actor_objective(pi, q_lin, a_data, q_data, a_hat, q_vae, v, config)
        (dpi,) = torch.autograd.grad(loss, pi)
    return loss.detach(), dpi


def td3bc_actor_objective(pi: torch.Tensor, q_pi: torch.Tensor, a_data: torch.Tensor, alpha: float = 2.5) -> torch.Tensor:
    """TD3+BC: −λ·mean Q_1(s, π(s)) + mean (π − a)²."""
    return -q_scale(q_pi, alpha) * q_pi.mean() + ((pi - a_data) ** 2).mean()


def critic_target(r, not_done, q1_targ_next, q2_targ_next, gamma: float) -> torch.Tensor:
    """y = r + γ (1 − d) min(Q̄_1, Q̄_2)(s′, ã′)."""
    return r + gamma * not_done * torch.minimum(q1_targ_next, q2_targ_next)


def value_target(r, not_done, y, q1_next, q2_next, gamma: float) -> torch.Tensor:
    """t_Q = min(y, r + γ (1 − d) min_i Q_i(s′, ã′))."""
    return torch.minimum(y, critic_target(r, not_done, q1_next, q2_next, gamma))


def target_action(pi_next, noise, config: A2PRConfig | None = None) -> torch.Tensor:
    """ã′ = clip(π̄(s′) + clip(ε, −c, c), −a_max, a_max)."""
    cfg = config or A2PRConfig()
    return (pi_next + noise.clamp(-cfg.noise_clip, cfg.noise_clip)).clamp(-cfg.max_action, cfg.max_action)


def epbl_vae_loss(recon, a_data, mu, std, q_data, v, config: A2PRConfig | None = None) -> torch.Tensor:
    """L_VAE = mean w·1[Q_1 − V > ε_A]·(D − a)² + kl_weight·KL(N(μ, σ) ‖ N(0, I)) (means over batch × dims)."""
    cfg = config or A2PRConfig()
    keep = (cfg.vae_weight * (advantage(q_data, v) > cfg.eps_A).to(recon.dtype)).detach()
    kl = -0.5 * (1.0 + torch.log(std**2) - mu**2 - std**2).mean()
    return (keep[:, None] * (recon - a_data) ** 2).mean() + cfg.kl_weight * kl


def bandit_train(env: ob.OfflineBandit, data, steps: int, lr: float, batch: int = 64,
                 config: A2PRConfig | None = None, *, theta0: float = 0.0, seed: int = 0, td3bc: bool = False,
                 density=None, lr_decay: float = 0.5, dtype: torch.dtype = torch.float64) -> np.ndarray:
    """The reference's offline-bandit run with ``torch.optim.SGD`` and autograd through the exact critic
    r(a) = −(a − a*)² − c0 (same random stream as :func:`rlspec.reference.a2pr.bandit_train`)."""
    from rlspec.reference.a2pr import EmpiricalDensity

    cfg = config or A2PRConfig()
    data = np.asarray(data, dtype=np.float64).reshape(-1)
    rng = np.random.default_rng(seed)
    V = ob.behaviour_value(env)
    dens = (density or EmpiricalDensity()).fit(data[:, None], cfg.vae_weight * (ob.reward(env, data) - V > cfg.eps_A))
    theta = torch.tensor(float(theta0), dtype=dtype, requires_grad=True)
    opt = torch.optim.SGD([theta], lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: (1.0 + k) ** (-lr_decay))

    def q(a):
        return -((a - env.a_star) ** 2) - env.c0

    traj = [float(theta0)]
    for _ in range(int(steps)):
        a = torch.as_tensor(data[rng.integers(0, data.size, batch)][:, None], dtype=dtype)
        pi = theta.expand(batch, 1)
        opt.zero_grad()
        if td3bc:
            loss = td3bc_actor_objective(pi, q(pi[:, 0]), a, cfg.alpha)
        else:
            ah = torch.as_tensor(dens.reconstruct(np.full((batch, 1), float(theta.detach())), rng), dtype=dtype)
            vv = torch.full((batch,), V, dtype=dtype)
            loss = a2pr_actor_objective(pi, q(pi[:, 0]), a, q(a[:, 0]), ah, q(ah[:, 0]), vv, cfg)
        loss.backward()                                   # dL/dθ = Σ_b ∂L/∂π_b, the reference's step
        opt.step()
        sched.step()
        traj.append(float(theta.detach()))
    return np.asarray(traj)
