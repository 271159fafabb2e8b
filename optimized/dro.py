"""DRO-style loss (torch). Mirrors :mod:`rlspec.reference.dro`; gradients come from autograd."""

from __future__ import annotations

import torch

from rlspec.optimized import common
from rlspec.optimized.registry import implements
from rlspec.reference.dro import DROConfig


@implements("dro")
def dro_loss(logp, old_logp, adv, mask, ref_logp=None, config: DROConfig | None = None, group=None):
    """Scalar loss Σ c ⊙ −(Â logp − ½β (log r)²)."""
    cfg = config or DROConfig()
    logp, old_logp, adv, mask, _ = common.policy_batch(logp, old_logp, adv, mask, ref_logp)
    log_r = logp - old_logp
    if cfg.log_ratio_clamp is not None:
        log_r = torch.clamp(log_r, -cfg.log_ratio_clamp, cfg.log_ratio_clamp)
    ell = -(adv * logp - 0.5 * cfg.beta * log_r * log_r)
    return common.aggregate_token_loss(ell, mask, cfg, group)
