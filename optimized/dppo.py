"""DPPO Binary-TV / Binary-KL (torch). Mirrors :mod:`rlspec.reference.dppo`; the mask is held fixed (no gradient);
the registered loss runs its fused core (:mod:`rlspec.optimized.fused`)."""

from __future__ import annotations

import torch

from rlspec.optimized import common, fused
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.dppo import DPPOConfig


def trust_region_mask(adv, logp, old_logp, cfg: DPPOConfig) -> torch.Tensor:
    """M ∈ {0, 1} (B, T): 0 where the update leaves the binary TV/KL trust region in Â's direction."""
    with torch.no_grad():
        mu = torch.exp(old_logp)
        if cfg.trust_region == "tv":
            D = (mu - torch.exp(logp)).abs()
        else:
            om_mu, om_pi = -torch.expm1(old_logp), -torch.expm1(logp)
            tail = om_mu * (torch.log(om_mu + cfg.kl_eps) - torch.log(om_pi + cfg.kl_eps))
            tail = torch.where(om_mu + cfg.kl_eps == 0, torch.zeros_like(tail), tail)
            D = mu * (old_logp - logp) + tail
        blocked = ((adv > 0) & (logp > old_logp) & (D > cfg.delta_high)) | \
                  ((adv < 0) & (logp < old_logp) & (D > cfg.delta_low))
        return (~blocked).to(logp.dtype)


def dppo_loss_autograd(logp, old_logp, adv, mask, ref_logp=None, config: DPPOConfig | None = None, group=None):
    """Scalar loss: Σ c ⊙ −M r Â (paper) or Σ c ⊙ −sg(M min(r, c)) Â logp (verl's "tis")."""
    cfg = config or DPPOConfig()
    logp, old_logp, adv, mask, _ = common.policy_batch(logp, old_logp, adv, mask, ref_logp)
    if cfg.trust_region == "kl":
        for name, x in (("logp", logp), ("old_logp", old_logp)):
            if bool((x[mask] > 0).any()):
                raise fail(name, "a positive log-prob", "log-probs <= 0 for trust_region='kl'")
    r = common.ratio(logp, old_logp, cfg.log_ratio_clamp)
    M = trust_region_mask(adv, logp.detach(), old_logp, cfg)
    if cfg.surrogate == "ratio":
        ell = -M * r * adv
    else:
        w = (M * (r if cfg.is_cap is None else torch.clamp(r, max=cfg.is_cap))).detach()
        ell = -w * adv * logp
    return common.aggregate_token_loss(ell, mask, cfg, group)


_DEFAULT_CONFIG = DPPOConfig()  # frozen: one instance serves every call without a config


@implements("dppo")
def dppo_loss(logp, old_logp, adv, mask, ref_logp=None, config: DPPOConfig | None = None, group=None):
    """Scalar dppo loss through its fused core (:mod:`rlspec.optimized.fused`): value and gradient in one pass;
    :func:`dppo_loss_autograd` is the autograd formulation it falls back to (and validates with)."""
    return fused.fused_policy_loss("dppo", dppo_loss_autograd, logp, old_logp, adv, mask,
                                   config or _DEFAULT_CONFIG, group, ref_logp=ref_logp)
