"""TAPO policy loss (torch). Mirrors :mod:`rlspec.reference.tapo` (arXiv 2510.07038, code Goer17/TAPO).

DAPO's clip-higher surrogate (the registry's torch PPO pieces) with the dual clip, on the model's own tokens
M′ = M ∧ ¬U: tool-output tokens are replaced by zeros before any arithmetic, so their values are never read
and autograd gives them an exactly zero gradient. ``tool_in_denominator=True`` is the official code's
token-mean over the attention mask (tool tokens counted, with ℓ = 0). The registered loss runs PPO's fused core
(:mod:`rlspec.optimized.fused`) on M′ (coefficients of M with ``tool_in_denominator``); :func:`tapo_loss_autograd`
is the autograd formulation it falls back to.
"""

from __future__ import annotations

import torch

from rlspec.optimized import common, fused
from rlspec.optimized.dapo import soft_overlong_penalty
from rlspec.optimized.ppo import clipped_surrogate
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.tapo import TAPOConfig, TAPOOverlongConfig

__all__ = ["TAPOConfig", "TAPOOverlongConfig", "model_token_mask", "model_length", "tapo_overlong", "tapo_loss",
           "tapo_loss_autograd", "tapo_dynamic_sampling"]


def model_token_mask(mask: torch.Tensor, tool_mask: torch.Tensor | None) -> torch.Tensor:
    """M′ = M ∧ ¬U (B, T) bool; ``tool_mask`` None means no tools."""
    M = common.check_mask(mask)
    if M.ndim != 2:
        raise fail("mask", f"shape {tuple(M.shape)}", "shape (B, T)")
    if tool_mask is None:
        return M
    return M & ~common.check_mask(tool_mask, M.shape, "tool_mask")


def dual_clip(ell: torch.Tensor, adv: torch.Tensor, c: float) -> torch.Tensor:
    """For Â < 0: ℓ ← −c Â where ℓ > −c Â (strictly, as the reference: at a tie the unclipped branch keeps its
    gradient, where ``torch.minimum`` would split it in half)."""
    cap = -c * adv
    return torch.where((adv < 0) & (ell > cap), cap, ell)


def tapo_loss_autograd(logp, old_logp, adv, mask, ref_logp=None, config: TAPOConfig | None = None, group=None,
                       tool_mask=None):
    """Scalar TAPO loss; ``loss.backward()`` gives −c·Â·r on the unclipped model tokens, 0 on tool tokens."""
    cfg = config or TAPOConfig()
    Mp = model_token_mask(mask, tool_mask)
    logp, old_logp, adv, Mp, _ = common.policy_batch(logp, old_logp, adv, Mp, ref_logp)
    r = common.ratio(logp, old_logp, cfg.log_ratio_clamp)  # (B, T)
    ell = clipped_surrogate(r, adv, cfg.eps_low, cfg.eps_high)
    if cfg.dual_clip_c is not None:
        ell = dual_clip(ell, adv, cfg.dual_clip_c)
    if cfg.tool_in_denominator:  # the code: coefficients of the attention mask, ℓ = 0 on tool tokens
        c = common.coefficients(common.check_mask(mask), cfg.agg, group=group, normalizer=cfg.normalizer,
                                const=cfg.const, seq_denominator=cfg.seq_denominator, dtype=ell.dtype)
        return (c * torch.where(Mp, ell, torch.zeros((), dtype=ell.dtype))).sum()
    return common.aggregate_token_loss(ell, Mp, cfg, group)


_DEFAULT_CONFIG = TAPOConfig()  # frozen: one instance serves every call without a config


@implements("tapo")
def tapo_loss(logp, old_logp, adv, mask, ref_logp=None, config: TAPOConfig | None = None, group=None,
              tool_mask=None):
    """Scalar TAPO loss through PPO's fused core on the model's tokens M′ = M ∧ ¬U (:mod:`rlspec.optimized.fused`):
    value and gradient in one pass; :func:`tapo_loss_autograd` is the autograd formulation it falls back to (and
    validates with)."""
    cfg = config or _DEFAULT_CONFIG
    Mp = model_token_mask(mask, tool_mask)
    coef_mask = common.check_mask(mask) if cfg.tool_in_denominator and tool_mask is not None else None
    return fused.fused_policy_loss("tapo", tapo_loss_autograd, logp, old_logp, adv, Mp, cfg, group,
                                   coef_mask=coef_mask, slow_mask=mask, ref_logp=ref_logp, tool_mask=tool_mask)


def model_length(mask: torch.Tensor, tool_mask: torch.Tensor | None = None) -> torch.Tensor:
    """L_model (B,) float64: response tokens the model wrote."""
    return model_token_mask(mask, tool_mask).sum(dim=1).to(torch.float64)


def tapo_overlong(mask: torch.Tensor, tool_mask: torch.Tensor | None = None,
                  config: TAPOOverlongConfig | None = None) -> torch.Tensor:
    """R_len (B,) = κ · min(((L_max − L_buf) − L_model)/L_buf, 0), float64."""
    cfg = config or TAPOOverlongConfig()
    return cfg.kappa * soft_overlong_penalty(model_length(mask, tool_mask), float(cfg.L_max), float(cfg.L_buf),
                                             beyond_max="linear")


def tapo_dynamic_sampling(acc: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    """keep (B,) bool: groups whose acc values are not all equal, or singletons (the registry's DAPO filter)."""
    from rlspec.optimized.dapo import dapo_dynamic_sampling
    from rlspec.reference.dapo import DynamicSamplingConfig

    return dapo_dynamic_sampling(acc.to(torch.float64), group, DynamicSamplingConfig(keep_singletons=True))
