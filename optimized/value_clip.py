"""PPO clipped value loss (torch). Mirrors :mod:`rlspec.reference.value_clip`; autograd gives ∂loss/∂values."""

from __future__ import annotations

import torch

from rlspec.optimized import common
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.value_clip import ValueClipConfig


@implements("value_clip")
def value_clip_loss(values, old_values, returns, mask, config: ValueClipConfig | None = None) -> torch.Tensor:
    """Scalar ½ max((V − R)², (V_clip − R)²) aggregated over valid tokens; ``loss.backward()`` gives dvalues."""
    cfg = config or ValueClipConfig()
    if not isinstance(values, torch.Tensor) or values.ndim != 2:
        raise fail("values", f"{type(values).__name__} {getattr(values, 'shape', '')}", "a (B, T) torch.Tensor")
    mask = common.check_mask(mask, values.shape)
    V = common.upcast(common.clean(values, mask, "values"))
    V_old = common.upcast(common.clean(old_values, mask, "old_values")).detach()
    R = common.upcast(common.clean(returns, mask, "returns")).detach()
    ell = (V - R) ** 2
    if cfg.eps is not None:
        Vc = V_old + torch.clamp(V - V_old, -cfg.eps, cfg.eps)
        ell = torch.maximum(ell, (Vc - R) ** 2)
    return 0.5 * common.aggregate(ell, mask, cfg.agg, normalizer=cfg.normalizer, const=cfg.const,
                                  seq_denominator=cfg.seq_denominator)
