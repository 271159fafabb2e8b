"""SAPO soft-gate policy loss (torch). Mirrors :mod:`rlspec.reference.sapo`;
the registered loss runs its fused core (:mod:`rlspec.optimized.fused`).

f_τ(r) = (4/τ)·σ(τ(r − 1)), ℓ = −f·Â. ``torch.sigmoid`` is stable for any finite argument, so
log-ratios of ±50 give finite values and gradients in float32 as well as float64 (r = e^{50} ≈ 5·10²¹
is representable in float32); above |log r| ≈ 88 float32 overflows r itself: set ``log_ratio_clamp``.
"""

from __future__ import annotations

import torch

from rlspec.optimized import common, fused
from rlspec.optimized.registry import implements
from rlspec.reference._validate import positive
from rlspec.reference.sapo import SAPOConfig

_DEFAULT_CONFIG = SAPOConfig()  # frozen: one instance serves every call without a config

__all__ = ["SAPOConfig", "temperature", "sapo_gate", "sapo_weight", "sapo_loss"]


def temperature(adv: torch.Tensor, tau_pos: float, tau_neg: float) -> torch.Tensor:
    """τ = τ_pos where Â > 0, τ_neg elsewhere (same shape and dtype as ``adv``)."""
    positive(tau_pos, "tau_pos")
    positive(tau_neg, "tau_neg")
    return torch.where(adv > 0, torch.full_like(adv, tau_pos), torch.full_like(adv, tau_neg))


def sapo_gate(r: torch.Tensor, tau: torch.Tensor | float) -> torch.Tensor:
    """f_τ(r) = (4/τ)·σ(τ(r − 1)), written as 1 − σ(−x) for x ≥ 0 so that autograd's σ(1−σ) is taken on
    the small tail value: the weight e^{−|x|} survives up to |x| ≈ 745 (float64) instead of vanishing
    once σ(x) rounds to 1 (|x| ≳ 37 in float64, ≳ 17 in float32)."""
    x = tau * (r - 1.0)
    p = torch.where(x >= 0, 1.0 - torch.sigmoid(-x), torch.sigmoid(x))
    return (4.0 / tau) * p


def sapo_weight(r: torch.Tensor, tau: torch.Tensor | float) -> torch.Tensor:
    """w(r) = df_τ/dr = 4σ(x)σ(−x), x = τ(r − 1) (no 1 − σ cancellation)."""
    x = tau * (r - 1.0)
    return 4.0 * torch.sigmoid(x) * torch.sigmoid(-x)


def sapo_loss_autograd(logp, old_logp, adv, mask, ref_logp=None, config: SAPOConfig | None = None, group=None):
    """Scalar SAPO loss; ``loss.backward()`` gives ∂loss/∂logp = −c·Â·w(r)·r."""
    cfg = config or SAPOConfig()
    logp, old_logp, adv, mask, _ = common.policy_batch(logp, old_logp, adv, mask, ref_logp)
    r = common.ratio(logp, old_logp, cfg.log_ratio_clamp)  # (B, T)
    tau = temperature(adv, cfg.tau_pos, cfg.tau_neg)  # (B, T)
    ell = -sapo_gate(r, tau) * adv
    return common.aggregate_token_loss(ell, mask, cfg, group)


@implements("sapo")
def sapo_loss(logp, old_logp, adv, mask, ref_logp=None, config: SAPOConfig | None = None, group=None):
    """Scalar sapo loss through its fused core (:mod:`rlspec.optimized.fused`): value and gradient in one pass;
    :func:`sapo_loss_autograd` is the autograd formulation it falls back to (and validates with)."""
    return fused.fused_policy_loss("sapo", sapo_loss_autograd, logp, old_logp, adv, mask,
                                   config or _DEFAULT_CONFIG, group, ref_logp=ref_logp)
