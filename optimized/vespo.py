"""VESPO (torch). Mirrors :mod:`rlspec.reference.vespo`; the kernel φ(W) is detached, autograd does the rest;
the registered loss runs its fused core (:mod:`rlspec.optimized.fused`)."""

from __future__ import annotations

import torch

from rlspec.optimized import common, fused
from rlspec.optimized.registry import implements
from rlspec.reference.vespo import VESPOConfig


def gamma_kernel(S: torch.Tensor, k: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """φ(W) = exp(λ + k S − λ e^S) (B,), S = log W."""
    return torch.exp(lam + k * S - lam * torch.exp(S))


def vespo_loss_autograd(logp, old_logp, adv, mask, ref_logp=None, config: VESPOConfig | None = None, group=None):
    """Scalar VESPO loss −Σ c ⊙ sg(φ(W_i)) Â logp."""
    cfg = config or VESPOConfig()
    logp, old_logp, adv, mask, _ = common.policy_batch(logp, old_logp, adv, mask, ref_logp)
    with torch.no_grad():
        d = logp - old_logp
        if cfg.log_ratio_clamp is not None:
            d = torch.clamp(d, -cfg.log_ratio_clamp, cfg.log_ratio_clamp)
        S = torch.where(mask, d, torch.zeros_like(d)).sum(1)
        S = torch.clamp(S, min=cfg.log_w_min, max=cfg.log_w_max)
        n = mask.sum(1).clamp(min=1)
        pos = torch.where(mask, adv, torch.zeros_like(adv)).sum(1) / n >= 0
        k = torch.where(pos, cfg.k_pos, cfg.k_neg).to(S.dtype)
        lam = torch.where(pos, cfg.lambda_pos, cfg.lambda_neg).to(S.dtype)
        phi = gamma_kernel(S, k, lam)  # (B,)
    return common.aggregate_token_loss(-phi[:, None] * adv * logp, mask, cfg, group)


_DEFAULT_CONFIG = VESPOConfig()  # frozen: one instance serves every call without a config


@implements("vespo")
def vespo_loss(logp, old_logp, adv, mask, ref_logp=None, config: VESPOConfig | None = None, group=None):
    """Scalar vespo loss through its fused core (:mod:`rlspec.optimized.fused`): value and gradient in one pass;
    :func:`vespo_loss_autograd` is the autograd formulation it falls back to (and validates with)."""
    return fused.fused_policy_loss("vespo", vespo_loss_autograd, logp, old_logp, adv, mask,
                                   config or _DEFAULT_CONFIG, group, ref_logp=ref_logp)
