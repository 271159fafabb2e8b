"""GPC (torch). Mirrors :mod:`rlspec.reference.gpc`: compose pretrained diffusion / flow policies at sampling time.

``eps_fns`` / ``v_fns`` are the user's policies (torch modules or callables ``f(x, t) -> ε`` / ``f(x, u) -> v``), each
already bound to its own observation; the composed samplers run them on one shared trajectory, as the official
``get_composed_action`` does with DP and DP3. Nothing is trained, so nothing needs gradients; the functions run under
``torch.no_grad()`` when called from a sampling loop (they do not disable autograd themselves, so a user can
differentiate through a composed step if they wish).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.gpc import GPCConfig


def _weights(w, K: int, convex: bool, like: torch.Tensor) -> torch.Tensor:
    w = torch.as_tensor(w, dtype=like.dtype, device=like.device)
    if tuple(w.shape) != (K,) or not bool(torch.isfinite(w).all()):
        raise fail("w", f"shape {tuple(w.shape)}", f"({K},) finite weights, one per policy")
    tol = 1e-2 if like.dtype in (torch.bfloat16, torch.float16) else 1e-6        # Σ w rounded in the dtype
    if convex and (bool((w < 0).any()) or abs(float(w.double().sum()) - 1.0) > tol):
        raise fail("w", repr(w.tolist()), "convex weights (w_k ≥ 0, Σ w_k = 1); set convex=False to extrapolate")
    return w


def _field(x, name: str) -> torch.Tensor:
    """The reference's ``_field`` rule on a tensor: a real (K, n, d) stack, K ≥ 1, finite; the same messages."""
    a = torch.as_tensor(x)
    if a.ndim != 3 or a.shape[0] == 0 or a.dtype == torch.bool or a.dtype.is_complex:
        raise fail(name, f"an array of shape {tuple(a.shape)}", "a real (K, n, d) stack, one prediction per policy")
    if not a.dtype.is_floating_point:
        a = a.to(torch.float64)
    if not bool(torch.isfinite(a).all()):
        raise fail(name, "non-finite values", "finite predictions")
    return a


def compose_eps(eps: torch.Tensor, w, convex: bool = True) -> torch.Tensor:
    """ε̂ = Σ_k w_k ε_k for eps (K, n, d); the same for scores and velocities."""
    eps = _field(eps, "eps")
    return torch.tensordot(_weights(w, eps.shape[0], convex, eps), eps, dims=1)


@implements("gpc")
def gpc_step(x, eps, w, alpha_bar_t, alpha_bar_prev, z, config: GPCConfig | None = None) -> dict:
    """One composed DDPM step (diffusers DDPMScheduler, ε-prediction): {"eps": ε̂, "x_prev": x_{t−1}}."""
    cfg = config or GPCConfig()
    eps = _field(eps, "eps")  # validated as the reference does, in its order, naming the same argument
    x = torch.as_tensor(x, dtype=eps.dtype, device=eps.device)
    if tuple(x.shape) != tuple(eps.shape[1:]) or not bool(torch.isfinite(x).all()):
        raise fail("x", f"shape {tuple(x.shape)}", f"finite values of shape {tuple(eps.shape[1:])} (n, d)")
    z = torch.as_tensor(z, dtype=eps.dtype, device=eps.device)
    if tuple(z.shape) != tuple(x.shape) or not bool(torch.isfinite(z).all()):
        raise fail("z", f"shape {tuple(z.shape)}", f"finite values of shape {tuple(x.shape)}")
    ab_prev = float(alpha_bar_prev)
    ab = float(alpha_bar_t)
    if not (0.0 < ab_prev <= 1.0):
        raise fail("alpha_bar_prev", repr(alpha_bar_prev), "a number in (0, 1]")
    if not (0.0 < ab < ab_prev):
        raise fail("alpha_bar_t", repr(alpha_bar_t), f"a number in (0, ᾱ_prev = {ab_prev})")
    eps_hat = compose_eps(eps, w, cfg.convex)
    beta = 1.0 - ab / ab_prev
    x0 = (x - (1.0 - ab) ** 0.5 * eps_hat) / ab**0.5
    if cfg.clip_sample is not None:
        x0 = x0.clamp(-cfg.clip_sample, cfg.clip_sample)
    out = (ab_prev**0.5 * beta / (1.0 - ab)) * x0 + ((1.0 - beta) ** 0.5 * (1.0 - ab_prev) / (1.0 - ab)) * x
    if ab_prev < 1.0:
        var = beta * (1.0 - ab_prev) / (1.0 - ab) if cfg.variance == "small" else beta
        out = out + var**0.5 * z
    return {"eps": eps_hat, "x_prev": out}


def gpc_flow_step(x: torch.Tensor, v: torch.Tensor, w, h: float, convex: bool = True) -> torch.Tensor:
    """x_{u+h} = x_u + h Σ_k w_k v_k(x_u, u)."""
    return x + h * compose_eps(v, w, convex)


def composed_ddpm_sample(eps_fns: Sequence[Callable[[torch.Tensor, int], torch.Tensor]], w, x_T: torch.Tensor,
                         noises: torch.Tensor, alpha_bars: torch.Tensor, config: GPCConfig | None = None) -> torch.Tensor:
    """The composed sampler on one shared trajectory: x_T (n, d), noises (T, n, d), alpha_bars (T,) = ᾱ_0 … ᾱ_{T−1}."""
    x = x_T
    T = len(alpha_bars)
    for t in range(T - 1, -1, -1):
        eps = torch.stack([f(x, t) for f in eps_fns])
        x = gpc_step(x, eps, w, float(alpha_bars[t]), float(alpha_bars[t - 1]) if t > 0 else 1.0, noises[t],
                     config)["x_prev"]
    return x


def composed_flow_sample(v_fns: Sequence[Callable[[torch.Tensor, float], torch.Tensor]], w, x0: torch.Tensor,
                         n_steps: int, convex: bool = True) -> torch.Tensor:
    """Euler integration of the composed velocity from u = 0 to 1."""
    x, h = x0, 1.0 / int(n_steps)
    for k in range(int(n_steps)):
        x = gpc_flow_step(x, torch.stack([f(x, k * h) for f in v_fns]), w, h, convex)
    return x
