"""Off-policy sequence mask (torch). Mirrors :mod:`rlspec.reference.off_policy_sequence_mask`."""

from __future__ import annotations

import torch

from rlspec.optimized import common
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.off_policy_sequence_mask import OffPolicySequenceMaskConfig


@implements("off_policy_sequence_mask")
def off_policy_sequence_mask(logp, old_logp, adv, mask, config: OffPolicySequenceMaskConfig | None = None
                             ) -> torch.Tensor:
    """keep (B,) bool: (Â_i ≥ 0) ∨ (mean_t (old_logp − logp) ≤ δ)."""
    cfg = config or OffPolicySequenceMaskConfig()
    if not isinstance(logp, torch.Tensor) or logp.ndim != 2:
        raise fail("logp", f"{type(logp).__name__} {getattr(logp, 'shape', '')}", "a (B, T) torch.Tensor")
    m = common.check_mask(mask, logp.shape)
    lp, olp = common.clean(logp, m, "logp").double(), common.clean(old_logp, m, "old_logp").double()
    if not isinstance(adv, torch.Tensor) or adv.shape != (m.shape[0],) or not bool(torch.isfinite(adv).all()):
        raise fail("adv", f"{getattr(adv, 'shape', type(adv).__name__)}", f"a finite ({m.shape[0]},) tensor")
    D = (olp - lp).sum(1) / m.sum(1).clamp(min=1)
    return (adv >= 0) | (D <= cfg.delta)
