"""PPO clipped surrogate (torch). Mirrors :mod:`rlspec.reference.ppo`;
the registered loss runs its fused core (:mod:`rlspec.optimized.fused`)."""

from __future__ import annotations

import torch

from rlspec.optimized import common, fused
from rlspec.optimized.registry import implements
from rlspec.reference.ppo import PPOConfig

_DEFAULT_CONFIG = PPOConfig()  # frozen: one instance serves every call without a config


def clipped_surrogate(r: torch.Tensor, adv: torch.Tensor, eps_low: float, eps_high: float) -> torch.Tensor:
    """ℓ = −min(r Â, clip(r, 1−ε_low, 1+ε_high) Â)  (B, T)."""
    return -torch.minimum(r * adv, torch.clamp(r, 1.0 - eps_low, 1.0 + eps_high) * adv)


def dual_clip(ell: torch.Tensor, adv: torch.Tensor, c: float) -> torch.Tensor:
    """For Â < 0: ℓ ← min(ℓ, −c Â). At a tie (ℓ = −c Â exactly) the surrogate branch and its gradient are kept,
    as in the reference (``torch.minimum`` would split the gradient 50/50 there)."""
    cap = -c * adv
    return torch.where((adv < 0) & (ell > cap), cap, ell)


def ppo_clip_loss_autograd(logp, old_logp, adv, mask, ref_logp=None, config: PPOConfig | None = None, group=None):
    """Scalar PPO loss; ``loss.backward()`` gives the per-token weights ∂loss/∂logp."""
    cfg = config or PPOConfig()
    logp, old_logp, adv, mask, _ = common.policy_batch(logp, old_logp, adv, mask, ref_logp)
    r = common.ratio(logp, old_logp, cfg.log_ratio_clamp)
    ell = clipped_surrogate(r, adv, cfg.eps_low, cfg.eps_high)
    if cfg.dual_clip_c is not None:
        ell = dual_clip(ell, adv, cfg.dual_clip_c)
    return common.aggregate_token_loss(ell, mask, cfg, group)


@implements("ppo")
def ppo_clip_loss(logp, old_logp, adv, mask, ref_logp=None, config: PPOConfig | None = None, group=None):
    """Scalar ppo loss through its fused core (:mod:`rlspec.optimized.fused`): value and gradient in one pass;
    :func:`ppo_clip_loss_autograd` is the autograd formulation it falls back to (and validates with)."""
    return fused.fused_policy_loss("ppo", ppo_clip_loss_autograd, logp, old_logp, adv, mask,
                                   config or _DEFAULT_CONFIG, group, ref_logp=ref_logp)
