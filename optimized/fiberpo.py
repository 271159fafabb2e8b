"""FiberPO fiber-bundle gating (torch). Mirrors :mod:`rlspec.reference.fiberpo`; gradients come from autograd.

G = w_base · r̃ with w_base = exp(g(log s⁺; C⁺, T) − g(log s⁻; C⁻, T)) per trajectory and
r̃ = exp(clip(l·u, ±ε) − clip(l·v, ±ε)) per token. Kinks follow the reference's conventions: ``torch.relu``
(relu'(0) = 0) for the channels, ``torch.clamp`` (derivative 1 on the closed interval) for the fiber
clips, ``torch.where`` for the three regimes of g. log G is bounded by C⁺ + 2ε above and −C⁻ − 2ε below,
so no ratio is ever exponentiated: log-ratios of ±50 are safe in float32.
"""

from __future__ import annotations

import torch

from rlspec.optimized import common
from rlspec.optimized.registry import implements
from rlspec.reference._validate import positive
from rlspec.reference.fiberpo import FiberPOConfig

__all__ = ["FiberPOConfig", "channel_aggregates", "aggregate_gate", "base_weight", "sign_label", "fiber_residuals",
           "fiber_factor", "fiberpo_gate", "fiberpo_loss"]


def channel_aggregates(log_r: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(log s⁺, log s⁻, T) (B,) each; padding must already be zero in ``log_r``."""
    M = mask.to(log_r.dtype)
    T = M.sum(dim=1)
    Ts = T.clamp(min=1.0)
    return (torch.relu(log_r) * M).sum(dim=1) / Ts, (torch.relu(-log_r) * M).sum(dim=1) / Ts, T


def aggregate_gate(a: torch.Tensor, C: float, T: torch.Tensor) -> torch.Tensor:
    """g(a; C, T): a (|a| ≤ C), sign(a)(T+1)C − T a (C < |a| < (1+1/T)C), 0 otherwise."""
    s = torch.where(a >= 0, torch.ones_like(a), -torch.ones_like(a))
    rollback = s * (T + 1.0) * C - T * a
    zero = torch.zeros_like(a)
    return torch.where(a.abs() <= C, a, torch.where(a.abs() * T < (T + 1.0) * C, rollback, zero))


def base_weight(log_s_pos, log_s_neg, T, c_pos: float, c_neg: float) -> torch.Tensor:
    """w_base = exp(g(log s⁺; C⁺, T) − g(log s⁻; C⁻, T)) (B,)."""
    return torch.exp(aggregate_gate(log_s_pos, c_pos, T) - aggregate_gate(log_s_neg, c_neg, T))


def sign_label(log_r: torch.Tensor) -> torch.Tensor:
    """l = sign(x), sign(0) = +1 (no gradient)."""
    return torch.where(log_r >= 0, torch.ones_like(log_r), -torch.ones_like(log_r)).detach()


def fiber_residuals(log_r, log_s_pos, log_s_neg) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(l, l·u, l·v) (B, T) with u = l x − log s^{(l)}, v = −log s^{(−l)}."""
    l = sign_label(log_r)
    sp, sn = log_s_pos.unsqueeze(1), log_s_neg.unsqueeze(1)
    own, other = torch.where(l > 0, sp, sn), torch.where(l > 0, sn, sp)
    return l, l * (l * log_r - own), l * (-other)


def fiber_factor(lu: torch.Tensor, lv: torch.Tensor, eps: float) -> torch.Tensor:
    """r̃ = exp(clip(l·u, ±ε) − clip(l·v, ±ε))."""
    return torch.exp(torch.clamp(lu, -eps, eps) - torch.clamp(lv, -eps, eps))


def fiberpo_gate(log_r: torch.Tensor, mask: torch.Tensor, c_pos: float, c_neg: float, eps: float) -> torch.Tensor:
    """G = w_base · r̃ (B, T), 0 at masked positions; ``log_r`` must be zero at masked positions."""
    c_pos, c_neg, eps = positive(c_pos, "c_pos"), positive(c_neg, "c_neg"), positive(eps, "eps")
    sp, sn, T = channel_aggregates(log_r, mask)  # (B,) each
    _, lu, lv = fiber_residuals(log_r, sp, sn)  # (B, T) each
    log_base = aggregate_gate(sp, c_pos, T) - aggregate_gate(sn, c_neg, T)  # (B,)
    z = log_base.unsqueeze(1) + torch.clamp(lu, -eps, eps) - torch.clamp(lv, -eps, eps)
    return torch.where(mask, torch.exp(z), torch.zeros_like(z))


@implements("fiberpo")
def fiberpo_loss(logp, old_logp, adv, mask, ref_logp=None, config: FiberPOConfig | None = None, group=None):
    """Scalar FiberPO loss Σ c ⊙ (−G ⊙ Â); ``loss.backward()`` gives the block-diagonal gradient."""
    cfg = config or FiberPOConfig()
    logp, old_logp, adv, mask, _ = common.policy_batch(logp, old_logp, adv, mask, ref_logp)
    x = logp - old_logp  # (B, T), zero at padding
    if cfg.log_ratio_clamp is not None:
        x = torch.clamp(x, -cfg.log_ratio_clamp, cfg.log_ratio_clamp)
    G = fiberpo_gate(x, mask, cfg.c_pos, cfg.c_neg, cfg.eps)
    return common.aggregate_token_loss(-G * adv, mask, cfg, group)
