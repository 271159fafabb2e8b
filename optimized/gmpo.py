"""GMPO (torch). Mirrors :mod:`rlspec.reference.gmpo`;
the registered loss runs its fused core (:mod:`rlspec.optimized.fused`)."""

from __future__ import annotations

import torch

from rlspec.optimized import common, fused
from rlspec.optimized.gspo import sequence_advantage
from rlspec.optimized.registry import implements
from rlspec.reference.gmpo import GMPOConfig

_DEFAULT_CONFIG = GMPOConfig()  # frozen: one instance serves every call without a config


def sign_aware_clip(d: torch.Tensor, A: torch.Tensor, eps_low: float, eps_high: float) -> torch.Tensor:
    """d̃ = min(d, ε_high) where Â ≥ 0, max(d, −ε_low) where Â < 0 (clamp: gradient 0 where it binds)."""
    return torch.where(A >= 0, torch.clamp(d, max=eps_high), torch.clamp(d, min=-eps_low))


def geometric_mean_ratio(dt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """s_i = exp(masked mean of d̃) (B,); 1 for rows without a valid token."""
    n = mask.sum(dim=1).clamp(min=1).to(dt.dtype)
    return torch.exp(torch.where(mask, dt, torch.zeros((), dtype=dt.dtype, device=dt.device)).sum(dim=1) / n)


def gmpo_loss_autograd(logp, old_logp, adv, mask, ref_logp=None, config: GMPOConfig | None = None, group=None):
    """Scalar GMPO loss: −Â_i s_i per sequence, broadcast to its tokens, then aggregated."""
    cfg = config or GMPOConfig()
    logp, old_logp, adv, mask, _ = common.policy_batch(logp, old_logp, adv, mask, ref_logp)
    d = logp - old_logp
    if cfg.log_ratio_clamp is not None:
        d = torch.clamp(d, -cfg.log_ratio_clamp, cfg.log_ratio_clamp)
    A = sequence_advantage(adv, mask)  # (B,)
    s = geometric_mean_ratio(sign_aware_clip(d, A.unsqueeze(1), cfg.eps_low, cfg.eps_high), mask)  # (B,)
    ell = (-A * s).unsqueeze(1).expand_as(logp)  # (B, T)
    return common.aggregate_token_loss(ell, mask, cfg, group)


@implements("gmpo")
def gmpo_loss(logp, old_logp, adv, mask, ref_logp=None, config: GMPOConfig | None = None, group=None):
    """Scalar gmpo loss through its fused core (:mod:`rlspec.optimized.fused`): value and gradient in one pass;
    :func:`gmpo_loss_autograd` is the autograd formulation it falls back to (and validates with)."""
    return fused.fused_policy_loss("gmpo", gmpo_loss_autograd, logp, old_logp, adv, mask,
                                   config or _DEFAULT_CONFIG, group, ref_logp=ref_logp)
