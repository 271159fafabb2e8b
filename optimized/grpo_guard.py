"""GRPO-Guard policy loss over denoising steps (torch). Mirrors :mod:`rlspec.reference.grpo_guard`; autograd
gives ∂loss/∂logp and, through ``mu_diff_sq`` (pass it with ``requires_grad`` or computed from μ_θ), the
gradient of the drift term — so that ∂log r̂/∂μ_θ = ε as in the paper's peers (Flow-Factory, verl-omni).

The registered loss runs its fused core (:mod:`rlspec.optimized.fused`) when no gradient is wanted through
``mu_diff_sq``; :func:`grpo_guard_loss_autograd` is the autograd formulation it falls back to (and validates with).

Half-precision inputs are computed in float32 (:func:`rlspec.optimized.common.upcast`): the clip range
1 ± 1e-4 is finer than bfloat16 resolves.
"""

from __future__ import annotations

import torch

from rlspec.optimized import common, fused
from rlspec.optimized.ppo import clipped_surrogate
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.grpo_guard import GRPOGuardConfig

__all__ = ["GRPOGuardConfig", "step_scale", "ratio_mean_shift", "rationorm_log_ratio", "step_weight",
           "grpo_guard_loss",
           "grpo_guard_loss_autograd"]


def step_scale(sigma: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
    """s = σ·√dt (B, T)."""
    return sigma * torch.sqrt(dt)


def ratio_mean_shift(mu_diff_sq: torch.Tensor, sigma: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
    """b = q/(2σ²dt) = −E[log r] (B, T)."""
    return mu_diff_sq / (2.0 * step_scale(sigma, dt) ** 2)


def rationorm_log_ratio(log_r: torch.Tensor, mu_diff_sq: torch.Tensor, sigma: torch.Tensor,
                        dt: torch.Tensor) -> torch.Tensor:
    """log r̂ = s·log r + q/(2s) (B, T)."""
    s = step_scale(sigma, dt)
    return s * log_r + mu_diff_sq / (2.0 * s)


def step_weight(dt: torch.Tensor, mode: str) -> torch.Tensor:
    """δ = 1/dt (``inverse_dt``) or 1 (``none``)."""
    return 1.0 / dt if mode == "inverse_dt" else torch.ones_like(dt)


def _step_input(x, mask: torch.Tensor, name: str, fill: float) -> torch.Tensor:
    """Cleaned (B, T) input: finite at valid steps (q ≥ 0, σ > 0, dt > 0), ``fill`` at padding."""
    x = common.upcast(common.clean(x, mask, name))
    ok = x >= 0 if name == "mu_diff_sq" else x > 0
    if not bool((ok | ~mask).all()):
        b, t = (int(i) for i in (~ok & mask).nonzero()[0])
        raise fail(name, f"{x[b, t].item()!r} at unmasked position ({b}, {t})",
                   "values ≥ 0" if name == "mu_diff_sq" else "values > 0")
    return torch.where(mask, x, torch.full((), fill, dtype=x.dtype, device=x.device))


def grpo_guard_loss_autograd(logp, old_logp, adv, mask, mu_diff_sq, sigma, dt, ref_logp=None,
                             config: GRPOGuardConfig | None = None, group=None):
    """Scalar GRPO-Guard loss; ``loss.backward()`` gives ∂loss/∂logp = c·δ·ψ'(r̂)·r̂·σ√dt (and ∂loss/∂q)."""
    cfg = config or GRPOGuardConfig()
    logp, old_logp, adv, mask, _ = common.policy_batch(logp, old_logp, adv, mask, ref_logp)
    q = _step_input(mu_diff_sq, mask, "mu_diff_sq", 0.0)
    sg = _step_input(sigma, mask, "sigma", 1.0).detach()
    h = _step_input(dt, mask, "dt", 1.0).detach()
    if cfg.adv_clip is not None:
        adv = torch.clamp(adv, -cfg.adv_clip, cfg.adv_clip)
    log_r = logp - old_logp                                                     # (B, T)
    u = rationorm_log_ratio(log_r, q, sg, h) if cfg.ratio_norm else log_r
    if cfg.log_ratio_clamp is not None:
        u = torch.clamp(u, -cfg.log_ratio_clamp, cfg.log_ratio_clamp)
    ell = step_weight(h, cfg.step_weight) * clipped_surrogate(torch.exp(u), adv, cfg.eps_low, cfg.eps_high)
    return common.aggregate_token_loss(ell, mask, cfg, group)


_DEFAULT_CONFIG = GRPOGuardConfig()  # frozen: one instance serves every call without a config


@implements("grpo_guard")
def grpo_guard_loss(logp, old_logp, adv, mask, mu_diff_sq, sigma, dt, ref_logp=None,
                    config: GRPOGuardConfig | None = None, group=None):
    """Scalar GRPO-Guard loss through its fused core (:mod:`rlspec.optimized.fused`): value and ∂loss/∂logp in one
    pass. A ``mu_diff_sq`` that requires a gradient (the drift term's ∂loss/∂q) takes
    :func:`grpo_guard_loss_autograd`, which is also the formulation the fused path falls back to and validates with."""
    cfg = config or _DEFAULT_CONFIG
    kw = dict(mu_diff_sq=mu_diff_sq, sigma=sigma, dt=dt, ref_logp=ref_logp)
    if isinstance(mu_diff_sq, torch.Tensor) and mu_diff_sq.requires_grad and torch.is_grad_enabled():
        return grpo_guard_loss_autograd(logp, old_logp, adv, mask, config=cfg, group=group, **kw)
    return fused.fused_policy_loss("grpo_guard", grpo_guard_loss_autograd, logp, old_logp, adv, mask, cfg, group,
                                   extra=(mu_diff_sq, sigma, dt), **kw)
