"""R²VPO ratio-variance penalty and dual update (torch). Mirrors :mod:`rlspec.reference.r2vpo`; the registered loss
runs its fused core (:mod:`rlspec.optimized.fused`), with its autograd formulation as fallback.

ℓ = −(r Â − λ (r − 1)²) with r − 1 = expm1(log r) (no cancellation near r = 1); λ ← max(0, λ + η(V̂ − δ)).
The default ``log_ratio_clamp=20`` keeps (r − 1)² ≤ e^{40} ≈ 2.4·10¹⁷, representable in float32 (e^{100}
is not).
"""

from __future__ import annotations

import dataclasses

import torch

from rlspec.optimized import common, fused
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail, positive
from rlspec.reference.r2vpo import R2VPOConfig, R2VPOState, check_state

__all__ = ["R2VPOConfig", "R2VPOState", "init_state", "ratio_variance", "dual_update", "effective_advantage",
           "r2vpo_loss"]


def _log_ratio(logp: torch.Tensor, old_logp: torch.Tensor, clamp: float | None) -> torch.Tensor:
    x = logp - old_logp
    return x if clamp is None else torch.clamp(x, -clamp, clamp)


def ratio_variance(logp, old_logp, mask, weights=None, log_ratio_clamp: float | None = None) -> torch.Tensor:
    """V̂ = Σ w (r − 1)² / Σ w over valid tokens (w = 1: token-mean); 0-d tensor, 0 for an empty mask."""
    mask = common.check_mask(mask, logp.shape)
    x = _log_ratio(common.clean(logp, mask, "logp"), common.clean(old_logp, mask, "old_logp"), log_ratio_clamp)
    w = mask.to(x.dtype) if weights is None else common.clean(weights, mask, "weights").to(x.dtype)
    if bool((w < 0).any()):
        raise fail("weights", "negative values", "weights >= 0")
    total = w.sum()
    return (w * torch.expm1(x) ** 2).sum() / total if total > 0 else total * 0.0


def effective_advantage(r: torch.Tensor, adv: torch.Tensor, lam: float) -> torch.Tensor:
    """Ã = Â − 2λ(r − 1)."""
    return adv - 2.0 * positive(lam, "lam", allow_zero=True) * (r - 1.0)


def init_state(config: R2VPOConfig | None = None) -> R2VPOState:
    """λ = λ₀."""
    return R2VPOState(lam=(config or R2VPOConfig()).lam_init)


def dual_update(state: R2VPOState, var_hat, config: R2VPOConfig | None = None) -> R2VPOState:
    """λ ← max(0, λ + η_λ (V̂ − δ)); ``var_hat`` a float or 0-d tensor (read as a float). Pure."""
    cfg = config or R2VPOConfig()
    lam = check_state(state)
    v = positive(float(var_hat.detach()) if isinstance(var_hat, torch.Tensor) else var_hat, "var_hat", allow_zero=True)
    return R2VPOState(lam=max(0.0, lam + cfg.lr_dual * (v - cfg.delta)))


def r2vpo_loss_autograd(logp, old_logp, adv, mask, ref_logp=None, config: R2VPOConfig | None = None, group=None,
                        lam: float | None = None):
    """Scalar R²VPO loss Σ c ⊙ −(r Â − λ (r − 1)²); ``loss.backward()`` gives −c·r·(Â − 2λ(r − 1))."""
    cfg = config or R2VPOConfig()
    lam = cfg.lam_init if lam is None else positive(lam, "lam", allow_zero=True)
    logp, old_logp, adv, mask, _ = common.policy_batch(logp, old_logp, adv, mask, ref_logp)
    rm1 = torch.expm1(_log_ratio(logp, old_logp, cfg.log_ratio_clamp))  # (B, T): r − 1
    ell = -((rm1 + 1.0) * adv - lam * rm1**2)
    return common.aggregate_token_loss(ell, mask, cfg, group)


_DEFAULT_CONFIG = R2VPOConfig()  # frozen: one instance serves every call without a config


@implements("r2vpo")
def r2vpo_loss(logp, old_logp, adv, mask, ref_logp=None, config: R2VPOConfig | None = None, group=None,
               lam: float | None = None):
    """Scalar r2vpo loss through its fused core (:mod:`rlspec.optimized.fused`; ``lam``, the current multiplier,
    defaults to the config's λ₀): value and gradient in one pass; :func:`r2vpo_loss_autograd` is the autograd
    formulation it falls back to (and validates with)."""
    cfg = config or _DEFAULT_CONFIG
    if lam is not None and lam != cfg.lam_init:  # the core reads λ from the config: one with this step's λ
        cfg = dataclasses.replace(cfg, lam_init=positive(lam, "lam", allow_zero=True))
    return fused.fused_policy_loss("r2vpo", r2vpo_loss_autograd, logp, old_logp, adv, mask, cfg, group,
                                   ref_logp=ref_logp, lam=lam)
