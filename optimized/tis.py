"""TIS: PPO with a truncated rollout-mismatch weight (torch). Mirrors :mod:`rlspec.reference.tis`."""

from __future__ import annotations

import torch

from rlspec.optimized import common, fused
from rlspec.optimized.ppo import clipped_surrogate, dual_clip
from rlspec.optimized.registry import implements
from rlspec.reference.tis import TISConfig

_DEFAULT_CONFIG = TISConfig()  # frozen: one instance serves every call without a config


def truncated_is_weight(old_logp: torch.Tensor, rollout_logp: torch.Tensor, C: float, C_min: float | None = None,
                        mode: str = "truncate") -> torch.Tensor:
    """sg(min(π_old/π_rollout, C)) (B, T), ≥ C_min if given; 'mask': 0 outside [C_min, C]."""
    rho = torch.exp(old_logp - rollout_logp).detach()
    lo = 0.0 if C_min is None else C_min
    if mode == "truncate":
        return torch.clamp(rho, lo, C)
    return torch.where((rho >= lo) & (rho <= C), rho, torch.zeros_like(rho))


def tis_loss_autograd(logp, old_logp, adv, mask, rollout_logp=None, ref_logp=None, config: TISConfig | None = None,
             group=None):
    """Scalar TIS-weighted PPO loss Σ c ⊙ w ⊙ ℓ_PPO."""
    cfg = config or TISConfig()
    logp, old_logp, adv, mask, _ = common.policy_batch(logp, old_logp, adv, mask, ref_logp)
    roll = old_logp if rollout_logp is None else common.upcast(common.clean(rollout_logp, mask, "rollout_logp"))
    w = truncated_is_weight(old_logp, roll, cfg.C, cfg.C_min, cfg.mode)
    ell = clipped_surrogate(common.ratio(logp, old_logp, cfg.log_ratio_clamp), adv, cfg.eps_low, cfg.eps_high)
    if cfg.dual_clip_c is not None:
        ell = dual_clip(ell, adv, cfg.dual_clip_c)
    return common.aggregate_token_loss(w * ell, mask, cfg, group)


@implements("tis")
def tis_loss(logp, old_logp, adv, mask, rollout_logp=None, ref_logp=None, config: TISConfig | None = None, group=None):
    """Scalar TIS loss through its fused core (:mod:`rlspec.optimized.fused`): value and gradient in one pass;
    :func:`tis_loss_autograd` is the autograd formulation it falls back to (and validates with)."""
    return fused.fused_policy_loss("tis", tis_loss_autograd, logp, old_logp, adv, mask,
                                   config or _DEFAULT_CONFIG, group, extra=rollout_logp, rollout_logp=rollout_logp,
                                   ref_logp=ref_logp)
