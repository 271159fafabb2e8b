"""Stop-properly penalty (torch). Mirrors :mod:`rlspec.reference.stop_properly_penalty`."""

from __future__ import annotations

import torch

from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.stop_properly_penalty import StopProperlyConfig


@implements("stop_properly_penalty")
def stop_properly_penalty(rewards, truncated, config: StopProperlyConfig | None = None) -> torch.Tensor:
    """R' = R, c·R (truncated, c ≥ 0) or c (truncated, c < 0), shape (B,)."""
    cfg = config or StopProperlyConfig()
    if not isinstance(rewards, torch.Tensor) or rewards.ndim != 1:
        raise fail("rewards", f"{type(rewards).__name__} {tuple(getattr(rewards, 'shape', ()))}", "a 1-D tensor (B,)")
    if not bool(torch.isfinite(rewards).all()):
        raise fail("rewards", "non-finite values", "finite rewards")
    if not isinstance(truncated, torch.Tensor) or truncated.shape != rewards.shape:
        raise fail("truncated", f"shape {tuple(getattr(truncated, 'shape', ()))}", f"shape {tuple(rewards.shape)}")
    if truncated.dtype != torch.bool:
        if truncated.dtype.is_floating_point or bool(((truncated != 0) & (truncated != 1)).any()):
            raise fail("truncated", f"dtype {truncated.dtype}", "booleans")
        truncated = truncated.bool()
    c = float(cfg.coef)
    hit = rewards * c if c >= 0 else torch.full_like(rewards, c)
    return torch.where(truncated, hit, rewards)
