"""DRO-style loss (torch). Mirrors :mod:`rlspec.reference.dro`;
the registered loss runs its fused core (:mod:`rlspec.optimized.fused`)."""

from __future__ import annotations

import torch

from rlspec.optimized import common, fused
from rlspec.optimized.registry import implements
from rlspec.reference.dro import DROConfig


def dro_loss_autograd(logp, old_logp, adv, mask, ref_logp=None, config: DROConfig | None = None, group=None):
    """Scalar loss Σ c ⊙ −(Â logp − ½β (log r)²)."""
    cfg = config or DROConfig()
    logp, old_logp, adv, mask, _ = common.policy_batch(logp, old_logp, adv, mask, ref_logp)
    log_r = logp - old_logp
    if cfg.log_ratio_clamp is not None:
        log_r = torch.clamp(log_r, -cfg.log_ratio_clamp, cfg.log_ratio_clamp)
    ell = -(adv * logp - 0.5 * cfg.beta * log_r * log_r)
    return common.aggregate_token_loss(ell, mask, cfg, group)


_DEFAULT_CONFIG = DROConfig()  # frozen: one instance serves every call without a config


@implements("dro")
def dro_loss(logp, old_logp, adv, mask, ref_logp=None, config: DROConfig | None = None, group=None):
    """Scalar dro loss through its fused core (:mod:`rlspec.optimized.fused`): value and gradient in one pass;
    :func:`dro_loss_autograd` is the autograd formulation it falls back to (and validates with)."""
    return fused.fused_policy_loss("dro", dro_loss_autograd, logp, old_logp, adv, mask,
                                   config or _DEFAULT_CONFIG, group, ref_logp=ref_logp)
