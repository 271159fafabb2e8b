"""High-entropy token mask (torch). Mirrors :mod:`rlspec.reference.high_entropy_mask`."""

from __future__ import annotations

import torch

from rlspec.optimized import common
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.high_entropy_mask import HighEntropyMaskConfig


@implements("high_entropy_mask")
def high_entropy_mask(entropy, mask, config: HighEntropyMaskConfig | None = None) -> torch.Tensor:
    """keep (B, T) bool: valid tokens with entropy ≥ the (1 − ρ)-quantile of the batch's valid entropies."""
    cfg = config or HighEntropyMaskConfig()
    m = common.check_mask(mask, getattr(entropy, "shape", None))
    H = common.clean(entropy, m, "entropy").double()  # the quantile in float64: no threshold rounding
    if bool((H[m] < 0).any()):
        raise fail("entropy", f"a negative value {H[m].min().item()!r}", "entropies ≥ 0 at valid positions")
    if not bool(m.any()):
        return torch.zeros_like(m)
    tau = torch.quantile(H[m], 1.0 - cfg.rho, interpolation=cfg.interpolation)
    return ((H >= tau) if cfg.inclusive else (H > tau)) & m
