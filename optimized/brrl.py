"""BPO and GBPO losses (torch). Mirrors :mod:`rlspec.reference.brrl`; the registered BPO loss runs its fused core
(:mod:`rlspec.optimized.fused`), :func:`bpo_loss_autograd` is the autograd formulation it falls back to.

ℓ = (|Â| + c_tv)·|r − sg(r*)| with r* = 1 − ε_low + (ε_low + ε_high)·σ(z): z = ``target_adv`` or Â/λ (BPO), or the
group-relative t_i = (Â_i − median_g Â)/T (GBPO). ``torch.sigmoid`` saturates cleanly for any z (also ±inf in
float32 when Â/λ overflows), and autograd's |x|' is sign(x), 0 at x = 0, the reference's subgradient.
Half-precision inputs are computed in float32 (:func:`rlspec.optimized.common.upcast`).
"""

from __future__ import annotations

import torch

from rlspec.optimized import common, fused
from rlspec.optimized.registry import implements
from rlspec.reference.brrl import BRRLConfig, GBPOConfig

__all__ = ["BRRLConfig", "GBPOConfig", "target_ratio", "bpo_token_loss", "bpo_loss", "bpo_loss_autograd", "sequence_advantage",
           "gbpo_target", "gbpo_loss",
           "gbpo_loss_autograd"]


def target_ratio(z: torch.Tensor, eps_low: float, eps_high: float) -> torch.Tensor:
    """r* = 1 − ε_low + (ε_low + ε_high)·σ(z)."""
    return (1.0 - eps_low) + (eps_low + eps_high) * torch.sigmoid(z)


def bpo_token_loss(r: torch.Tensor, adv: torch.Tensor, r_star: torch.Tensor, tv_coef: float = 0.0) -> torch.Tensor:
    """ℓ = (|Â| + c_tv)·|r − r*| (B, T); r* is a constant (detached by the caller)."""
    return (adv.abs() + tv_coef) * (r - r_star).abs()


def _bpo_core(logp, old_logp, adv, mask, z, eps_low, eps_high, tv_coef, cfg, group):
    r = common.ratio(logp, old_logp, cfg.log_ratio_clamp)  # (B, T)
    r_star = target_ratio(z, eps_low, eps_high).detach()  # (B, T)
    return common.aggregate_token_loss(bpo_token_loss(r, adv, r_star, tv_coef), mask, cfg, group)


def bpo_loss_autograd(logp, old_logp, adv, mask, ref_logp=None, config: BRRLConfig | None = None, target_adv=None,
                      group=None):
    """Scalar BPO loss; ``loss.backward()`` gives ∂loss/∂logp = c·(|Â| + c_tv)·sign(r − r*)·r."""
    cfg = config or BRRLConfig()
    logp, old_logp, adv, mask, _ = common.policy_batch(logp, old_logp, adv, mask, ref_logp)
    if target_adv is None:
        z = adv / cfg.lam  # (B, T)
    else:
        z = common.upcast(common.clean(target_adv, mask, "target_adv")).detach().to(logp.dtype)
    return _bpo_core(logp, old_logp, adv, mask, z, cfg.eps_low, cfg.eps_high, cfg.tv_coef, cfg, group)


_DEFAULT_BPO = BRRLConfig()  # frozen: one instance serves every call without a config


@implements("brrl")
def bpo_loss(logp, old_logp, adv, mask, ref_logp=None, config: BRRLConfig | None = None, target_adv=None,
             group=None):
    """Scalar BPO loss through its fused core (:mod:`rlspec.optimized.fused`): value and gradient
    ∂loss/∂logp = c·(|Â| + c_tv)·sign(r − r*)·r in one pass; :func:`bpo_loss_autograd` is the autograd
    formulation it falls back to (and validates with)."""
    return fused.fused_policy_loss("brrl", bpo_loss_autograd, logp, old_logp, adv, mask, config or _DEFAULT_BPO,
                                   group, extra=target_adv, call_flags={"target": target_adv is not None},
                                   ref_logp=ref_logp, target_adv=target_adv)


def sequence_advantage(adv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Â_i = masked token-mean of adv (B,); 0 for a row with no valid token."""
    n = mask.sum(dim=1)
    total = torch.where(mask, adv, torch.zeros((), dtype=adv.dtype, device=adv.device)).sum(dim=1)
    return torch.where(n > 0, total / n.clamp(min=1).to(adv.dtype), torch.zeros_like(total))


def _median(x: torch.Tensor) -> torch.Tensor:
    """numpy's median: the middle value, or the mean of the two middle values."""
    s, _ = torch.sort(x)
    n = s.numel()
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def gbpo_target(A: torch.Tensor, counted: torch.Tensor, group, temperature: float,
                singleton: str = "median-self") -> torch.Tensor:
    """t_i = (Â_i − median over the counted rows of i's prompt)/T (B,); see the reference for the conventions."""
    if group is None:
        g = torch.zeros(A.shape[0], dtype=torch.long, device=A.device)
    else:  # the reference's rule: any integers, integral floats; strings/fractions raise naming group
        g = common.group_ids(group, A.shape[0], device=A.device)
    t = torch.zeros_like(A)
    for k in torch.unique(g[counted]):
        rows = counted & (g == k)
        x = A[rows]
        if x.numel() == 1:
            med = torch.zeros_like(x[0]) if singleton == "median-zero" else x[0]
        else:
            med = _median(x)
        t[rows] = (x - med) / temperature
    return t


def gbpo_loss_autograd(logp, old_logp, adv, mask, ref_logp=None, config: GBPOConfig | None = None, group=None):
    """Scalar GBPO loss; ``loss.backward()`` gives ∂loss/∂logp = c·|Â|·sign(r − r*_i)·r."""
    cfg = config or GBPOConfig()
    logp, old_logp, adv, mask, _ = common.policy_batch(logp, old_logp, adv, mask, ref_logp)
    if group is not None:
        group = common.group_ids(group, logp.shape[0], device=logp.device)
    t = gbpo_target(sequence_advantage(adv, mask), mask.any(dim=1), group, cfg.temperature, cfg.singleton)  # (B,)
    z = t.unsqueeze(1).expand_as(logp)  # (B, T)
    return _bpo_core(logp, old_logp, adv, mask, z, cfg.eps_low, cfg.eps_high, 0.0, cfg, group)


_DEFAULT_GBPO = GBPOConfig()  # frozen: one instance serves every call without a config


def _gbpo_row_target(logp, adv, mask, group, cfg) -> torch.Tensor | None:
    """GBPO's target z = t_i broadcast over (B, T) in the compute dtype (float32 for half precision), or None where
    the inputs are not the fused path's (non-tensors, shapes that differ: the autograd formulation names them)."""
    if not (isinstance(logp, torch.Tensor) and isinstance(adv, torch.Tensor) and isinstance(mask, torch.Tensor)
            and logp.ndim == 2 and adv.shape == logp.shape and mask.shape == logp.shape and adv.is_floating_point()
            and fused.mode() != "off"):
        return None
    m = common.check_mask(mask, logp.shape)
    a = common.upcast(adv.detach())
    if group is not None:
        group = common.group_ids(group, logp.shape[0], device=logp.device)
    t = gbpo_target(sequence_advantage(a, m), m.any(dim=1), group, cfg.temperature, cfg.singleton)  # (B,)
    return t.unsqueeze(1).expand(logp.shape)


@implements("gbpo")
def gbpo_loss(logp, old_logp, adv, mask, ref_logp=None, config: GBPOConfig | None = None, group=None):
    """Scalar GBPO loss through BPO's fused core with the row targets t_i (:mod:`rlspec.optimized.fused`): value and
    gradient ∂loss/∂logp = c·|Â|·sign(r − r*_i)·r in one pass after the per-prompt median; :func:`gbpo_loss_autograd`
    is the autograd formulation it falls back to (and validates with)."""
    cfg = config or _DEFAULT_GBPO
    z = _gbpo_row_target(logp, adv, mask, group, cfg)
    if z is None:
        return gbpo_loss_autograd(logp, old_logp, adv, mask, ref_logp=ref_logp, config=cfg, group=group)
    return fused.fused_policy_loss("gbpo", gbpo_loss_autograd, logp, old_logp, adv, mask, cfg, group, extra=z,
                                   extra_f32=True, ref_logp=ref_logp)
