"""FiberPO fiber-bundle gating (torch). Mirrors :mod:`rlspec.reference.fiberpo`. The registered loss runs its fused
core (:mod:`rlspec.optimized.fused`): the per-row channel aggregates, the gate and the reference's hand-derived
vector-Jacobian product (a local term plus a rank-two coupling inside each row) in one pass;
:func:`fiberpo_loss_autograd` is the autograd formulation it falls back to (and validates with).

G = w_base · r̃ with w_base = exp(g(log s⁺; C⁺, T) − g(log s⁻; C⁻, T)) per trajectory and
r̃ = exp(clip(l·u, ±ε) − clip(l·v, ±ε)) per token. Kinks follow the reference's conventions: ``torch.relu``
(relu'(0) = 0) for the channels, ``torch.clamp`` (derivative 1 on the closed interval) for the fiber
clips, ``torch.where`` for the three regimes of g. log G is bounded by C⁺ + 2ε above and −C⁻ − 2ε below,
so no ratio is ever exponentiated: log-ratios of ±50 are safe in float32.
"""

from __future__ import annotations

import torch

from rlspec.optimized import common, fused
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


def fiberpo_loss_autograd(logp, old_logp, adv, mask, ref_logp=None, config: FiberPOConfig | None = None, group=None):
    """Scalar FiberPO loss Σ c ⊙ (−G ⊙ Â); ``loss.backward()`` gives the block-diagonal gradient."""
    cfg = config or FiberPOConfig()
    logp, old_logp, adv, mask, _ = common.policy_batch(logp, old_logp, adv, mask, ref_logp)
    x = logp - old_logp  # (B, T), zero at padding
    if cfg.log_ratio_clamp is not None:
        x = torch.clamp(x, -cfg.log_ratio_clamp, cfg.log_ratio_clamp)
    G = fiberpo_gate(x, mask, cfg.c_pos, cfg.c_neg, cfg.eps)
    return common.aggregate_token_loss(-G * adv, mask, cfg, group)


def _gate_slope(a: torch.Tensor, C, T: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(g(a; C, T), dg/da) with the regimes of :func:`aggregate_gate`: pass-through (1), rollback (−T), zeroed (0)."""
    pas = a.abs() <= C
    roll = a.abs() * T < (T + 1.0) * C
    s = torch.where(a >= 0, 1.0, -1.0)
    g = torch.where(pas, a, torch.where(roll, s * (T + 1.0) * C - T * a, 0.0))
    return g, torch.where(pas, 1.0, torch.where(roll, -T, 0.0))


def fiberpo_core(lp, old, adv, mask, c, p, extra=None, ref=None, *, agg, clamp=False, need_grad=True):
    """FiberPO: ℓ = −G Â, G = exp(g(log s⁺; C⁺, T) − g(log s⁻; C⁻, T) + clip(l u, ±ε) − clip(l v, ±ε)) and the
    reference's vector-Jacobian product ∂L/∂x_s = κ_s φ'_s + (p_s/T) Σ_t κ_t α_t − (q_s/T) Σ_t κ_t β_t,
    κ = −c Â G (0 where the log-ratio clamp binds): two row reductions (the channels, then Σ κα and Σ κβ) in the
    kernel. p = (C⁺, C⁻, ε, log_ratio_clamp, q)."""
    x, o, a, _, fin = fused._inputs(lp, old, adv, p, None, ref)
    mask = fused._valid(mask, p.dtype)
    d = x - o
    inside = None
    if clamp:
        inside = (d >= -p[3]) & (d <= p[3])
        d = torch.clamp(d, -p[3], p[3])
    T = fused._count(mask, p.dtype, 1)
    Ts = T.clamp(min=1.0)
    sp = torch.where(mask, torch.relu(d), 0.0).sum(dim=1, keepdim=True) / Ts
    sn = torch.where(mask, torch.relu(-d), 0.0).sum(dim=1, keepdim=True) / Ts
    pos = d >= 0  # the sign label l = +1 (sign(0) = +1)
    lu = torch.where(pos, d - sp, d + sn)  # l·u = x − l·log s^{(l)}
    lv = torch.where(pos, -sn, sp)  # l·v = −l·log s^{(−l)}
    eps = p[2]
    gp, gp1 = _gate_slope(sp, p[0], T)
    gn, gn1 = _gate_slope(sn, p[1], T)
    G = torch.exp(gp - gn + torch.clamp(lu, -eps, eps) - torch.clamp(lv, -eps, eps))
    cf = fused._coef(mask, c, p[-1], agg)
    ell = -G * a
    term = cf * ell + fin
    loss = torch.where(mask, term, 0.0).sum()
    if not need_grad:
        return loss, None
    kappa = torch.where(mask, cf * ell, 0.0)  # ∂L/∂log G = −c Â G
    dphi = (lu.abs() <= eps).to(d.dtype)
    dpsi = (lv.abs() <= eps).to(d.dtype)
    alpha = gp1 - torch.where(pos, dphi, dpsi)
    beta = -gn1 + torch.where(pos, dpsi, dphi)
    Ka = (kappa * alpha).sum(dim=1, keepdim=True) / Ts
    Kb = (kappa * beta).sum(dim=1, keepdim=True) / Ts
    g = kappa * dphi + torch.where(d > 0, Ka, 0.0) - torch.where(d < 0, Kb, 0.0)
    if inside is not None:
        g = torch.where(inside, g, 0.0)
    return loss, torch.where(mask, g, 0.0).to(lp.dtype)


_DEFAULT_CONFIG = FiberPOConfig()  # frozen: one instance serves every call without a config


@implements("fiberpo")
def fiberpo_loss(logp, old_logp, adv, mask, ref_logp=None, config: FiberPOConfig | None = None, group=None):
    """Scalar FiberPO loss Σ c ⊙ (−G ⊙ Â) through its fused core (:mod:`rlspec.optimized.fused`): value and the
    block-diagonal gradient in one pass; :func:`fiberpo_loss_autograd` is the autograd formulation it falls back to
    (and validates with)."""
    return fused.fused_policy_loss("fiberpo", fiberpo_loss_autograd, logp, old_logp, adv, mask,
                                   config or _DEFAULT_CONFIG, group, ref_logp=ref_logp)


fused.CORES["fiberpo"] = fused.Core(fiberpo_core, lambda c: (c.c_pos, c.c_neg, c.eps, c.log_ratio_clamp or 0.0),
                                    lambda c: {"clamp": c.log_ratio_clamp is not None})
