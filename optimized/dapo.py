"""DAPO (torch). Mirrors :mod:`rlspec.reference.dapo`;
the registered loss runs its fused core (:mod:`rlspec.optimized.fused`)."""

from __future__ import annotations

import torch

from rlspec.optimized import common, fused
from rlspec.optimized.ppo import clipped_surrogate
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.dapo import DAPOConfig, DynamicSamplingConfig, OverlongConfig

_DEFAULT_CONFIG = DAPOConfig()  # frozen: one instance serves every call without a config


def dapo_loss_autograd(logp, old_logp, adv, mask, ref_logp=None, config: DAPOConfig | None = None, group=None):
    """Scalar DAPO loss (clip-higher surrogate, token-mean by default); no KL term."""
    cfg = config or DAPOConfig()
    logp, old_logp, adv, mask, _ = common.policy_batch(logp, old_logp, adv, mask, ref_logp)
    r = common.ratio(logp, old_logp, cfg.log_ratio_clamp)
    return common.aggregate_token_loss(clipped_surrogate(r, adv, cfg.eps_low, cfg.eps_high), mask, cfg, group)


@implements("dapo")
def dapo_loss(logp, old_logp, adv, mask, ref_logp=None, config: DAPOConfig | None = None, group=None):
    """Scalar dapo loss through its fused core (:mod:`rlspec.optimized.fused`): value and gradient in one pass;
    :func:`dapo_loss_autograd` is the autograd formulation it falls back to (and validates with)."""
    return fused.fused_policy_loss("dapo", dapo_loss_autograd, logp, old_logp, adv, mask,
                                   config or _DEFAULT_CONFIG, group, ref_logp=ref_logp)

def soft_overlong_penalty(length: torch.Tensor, L_max: float, L_cache: float,
                          beyond_max: str = "paper") -> torch.Tensor:
    """R_len(|y|) of DAPO eq. (13), elementwise (B,)."""
    R = torch.clamp(((L_max - L_cache) - length) / L_cache, max=0.0)
    if beyond_max == "paper":
        R = torch.where(length > L_max, torch.full_like(R, -1.0), R)
    return R


@implements("dapo_overlong")
def dapo_overlong(lengths, config: OverlongConfig | None = None) -> torch.Tensor:
    """penalty_factor · R_len(|y|) per response (B,), float64."""
    cfg = config or OverlongConfig()
    if not isinstance(lengths, torch.Tensor) or lengths.ndim != 1:
        raise fail("lengths", f"{type(lengths).__name__} {tuple(getattr(lengths, 'shape', ()))}", "a 1-D tensor (B,)")
    if lengths.dtype == torch.bool or lengths.dtype.is_complex:
        raise fail("lengths", f"dtype {lengths.dtype}", "non-negative integer lengths")
    L = lengths.to(torch.float64)
    if not bool(torch.isfinite(L).all()) or bool((L < 0).any()) or bool((L != torch.round(L)).any()):
        raise fail("lengths", "negative, fractional or non-finite values", "non-negative integer lengths")
    return cfg.penalty_factor * soft_overlong_penalty(L, float(cfg.L_max), float(cfg.L_cache), cfg.beyond_max)


@implements("dapo_dynamic_sampling")
def dapo_dynamic_sampling(rewards, group, config: DynamicSamplingConfig | None = None) -> torch.Tensor:
    """keep (B,) bool: False for every sequence of a group whose rewards are all equal (scatter max/min)."""
    cfg = config or DynamicSamplingConfig()
    if not isinstance(rewards, torch.Tensor) or rewards.ndim != 1:
        raise fail("rewards", f"{type(rewards).__name__}", "a 1-D tensor (B,)")
    if not bool(torch.isfinite(rewards.to(torch.float64)).all()):
        raise fail("rewards", "non-finite values", "finite rewards")
    group = common.group_ids(group, rewards.shape[0], device=rewards.device)
    if rewards.numel() == 0:
        return torch.zeros(0, dtype=torch.bool)
    R = rewards.to(torch.float64)
    _, inv = torch.unique(group, return_inverse=True)
    G = int(inv.max()) + 1
    hi = torch.full((G,), -torch.inf, dtype=R.dtype).scatter_reduce(0, inv, R, "amax")
    lo = torch.full((G,), torch.inf, dtype=R.dtype).scatter_reduce(0, inv, R, "amin")
    size = torch.zeros(G, dtype=R.dtype).index_add_(0, inv, torch.ones_like(R))
    keep = (hi - lo) > cfg.atol
    if cfg.keep_singletons:
        keep = keep | (size == 1)
    return keep[inv]
