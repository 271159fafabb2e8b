"""GSPO and GSPO-token (torch). Mirrors :mod:`rlspec.reference.gspo`;
the registered loss runs its fused core (:mod:`rlspec.optimized.fused`)."""

from __future__ import annotations

import torch

from rlspec.optimized import common, fused
from rlspec.optimized.ppo import clipped_surrogate
from rlspec.optimized.registry import implements
from rlspec.reference.gspo import GSPOConfig

_DEFAULT_CONFIG = GSPOConfig()  # frozen: one instance serves every call without a config


def sequence_log_ratio(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(1/n_i) Σ_t M (logp − old_logp), (B,); 0 for empty rows. Inputs already cleaned (padding 0)."""
    n = mask.sum(dim=1).clamp(min=1).to(logp.dtype)
    return torch.where(mask, logp - old_logp, torch.zeros((), dtype=logp.dtype)).sum(dim=1) / n


def sequence_ratio(logp, old_logp, mask, clamp: float | None = None) -> torch.Tensor:
    """s_i = exp(mean_t log r_it) (B,), the sequence log-ratio clamped to ±clamp when given."""
    m = sequence_log_ratio(logp, old_logp, mask)
    if clamp is not None:
        m = torch.clamp(m, -clamp, clamp)
    return common.exp(m)  # beyond the dtype's range: inf with a zero gradient, not NaN


def sequence_advantage(adv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Â_i = masked token-mean of adv (B,)."""
    n = mask.sum(dim=1).clamp(min=1).to(adv.dtype)
    return torch.where(mask, adv, torch.zeros((), dtype=adv.dtype)).sum(dim=1) / n


def gspo_loss_autograd(logp, old_logp, adv, mask, ref_logp=None, config: GSPOConfig | None = None, group=None):
    """Scalar GSPO loss: per-sequence clipped loss broadcast to tokens, then aggregated."""
    cfg = config or GSPOConfig()
    logp, old_logp, adv, mask, _ = common.policy_batch(logp, old_logp, adv, mask, ref_logp)
    s = sequence_ratio(logp, old_logp, mask, cfg.log_ratio_clamp)  # (B,)
    ell = clipped_surrogate(s, sequence_advantage(adv, mask), cfg.eps_low, cfg.eps_high)  # (B,)
    return common.aggregate_token_loss(ell.unsqueeze(1).expand_as(logp), mask, cfg, group)


@implements("gspo")
def gspo_loss(logp, old_logp, adv, mask, ref_logp=None, config: GSPOConfig | None = None, group=None):
    """Scalar gspo loss through its fused core (:mod:`rlspec.optimized.fused`): value and gradient in one pass;
    :func:`gspo_loss_autograd` is the autograd formulation it falls back to (and validates with)."""
    return fused.fused_policy_loss("gspo", gspo_loss_autograd, logp, old_logp, adv, mask,
                                   config or _DEFAULT_CONFIG, group, ref_logp=ref_logp)

def gspo_token_loss_autograd(logp, old_logp, adv, mask, ref_logp=None, config: GSPOConfig | None = None, group=None):
    """Scalar GSPO-token loss with s_it = sg[s_i]·π_θ/sg[π_θ] (value s_i, token-local gradient)."""
    cfg = config or GSPOConfig()
    logp, old_logp, adv, mask, _ = common.policy_batch(logp, old_logp, adv, mask, ref_logp)
    log_s = torch.log(sequence_ratio(logp, old_logp, mask, cfg.log_ratio_clamp)).detach()  # (B,)
    s_t = common.exp(log_s.unsqueeze(1) + logp - logp.detach())  # (B, T)
    return common.aggregate_token_loss(clipped_surrogate(s_t, adv, cfg.eps_low, cfg.eps_high), mask, cfg, group)


@implements("gspo_token")
def gspo_token_loss(logp, old_logp, adv, mask, ref_logp=None, config: GSPOConfig | None = None, group=None):
    """Scalar gspo_token loss through its fused core (:mod:`rlspec.optimized.fused`): value and gradient in one pass;
    :func:`gspo_token_loss_autograd` is the autograd formulation it falls back to (and validates with)."""
    return fused.fused_policy_loss("gspo_token", gspo_token_loss_autograd, logp, old_logp, adv, mask,
                                   config or _DEFAULT_CONFIG, group, ref_logp=ref_logp)
