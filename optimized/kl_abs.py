"""|logp − ref_logp| as a KL loss (torch). Mirrors :mod:`rlspec.reference.kl_abs`; gradients come from autograd."""

from __future__ import annotations

import torch

from rlspec.optimized import common
from rlspec.optimized.registry import implements
from rlspec.reference.kl_abs import KLAbsConfig


@implements("kl_abs")
def kl_abs_loss(logp, ref_logp, mask, config: KLAbsConfig | None = None, group=None):
    """Scalar Σ c ⊙ |logp − ref_logp| (straight-through: value of |δ|, gradient of ½δ²)."""
    cfg = config or KLAbsConfig()
    mask = common.check_mask(mask, logp.shape)
    lp = common.upcast(common.clean(logp, mask, "logp"))
    ref = common.upcast(common.clean(ref_logp, mask, "ref_logp")).detach()
    d = lp - ref
    if cfg.log_ratio_clamp is not None:
        d = torch.clamp(d, -cfg.log_ratio_clamp, cfg.log_ratio_clamp)
    k = d.abs()
    if cfg.value_clamp is not None:
        k = torch.clamp(k, -cfg.value_clamp, cfg.value_clamp)
    if cfg.straight_through_k2:
        st = 0.5 * (lp - ref) ** 2
        k = st - st.detach() + k.detach()
    return common.aggregate_token_loss(k, mask, cfg, group)
