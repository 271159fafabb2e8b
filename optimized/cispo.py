"""CISPO (torch). Mirrors :mod:`rlspec.reference.cispo`;
the registered loss runs its fused core (:mod:`rlspec.optimized.fused`)."""

from __future__ import annotations

import torch

from rlspec.optimized import common, fused
from rlspec.optimized.registry import implements
from rlspec.reference.cispo import CISPOConfig

_DEFAULT_CONFIG = CISPOConfig()  # frozen: one instance serves every call without a config


def clipped_is_weight(r: torch.Tensor, eps_low: float | None, eps_high: float) -> torch.Tensor:
    """sg(clip(r, 1−ε_low, 1+ε_high)); no lower bound when ε_low is None."""
    return torch.clamp(r, min=None if eps_low is None else 1.0 - eps_low, max=1.0 + eps_high).detach()


def cispo_loss_autograd(logp, old_logp, adv, mask, ref_logp=None, config: CISPOConfig | None = None, group=None):
    """Scalar CISPO loss −Σ c ⊙ sg(r̂) Â logp."""
    cfg = config or CISPOConfig()
    logp, old_logp, adv, mask, _ = common.policy_batch(logp, old_logp, adv, mask, ref_logp)
    w = clipped_is_weight(common.ratio(logp, old_logp, cfg.log_ratio_clamp), cfg.eps_low, cfg.eps_high)
    return common.aggregate_token_loss(-w * adv * logp, mask, cfg, group)


@implements("cispo")
def cispo_loss(logp, old_logp, adv, mask, ref_logp=None, config: CISPOConfig | None = None, group=None):
    """Scalar cispo loss through its fused core (:mod:`rlspec.optimized.fused`): value and gradient in one pass;
    :func:`cispo_loss_autograd` is the autograd formulation it falls back to (and validates with)."""
    return fused.fused_policy_loss("cispo", cispo_loss_autograd, logp, old_logp, adv, mask,
                                   config or _DEFAULT_CONFIG, group, ref_logp=ref_logp)
