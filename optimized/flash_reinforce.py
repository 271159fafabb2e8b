"""FlashREINFORCE advantage (torch). Mirrors :mod:`rlspec.reference.flash_reinforce`: Â_i = R_i − mean_batch R."""

from __future__ import annotations

import torch

from rlspec.optimized import common
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail


@implements("flash_reinforce")
def flash_reinforce_advantage(rewards, group, mask, config=None) -> torch.Tensor:
    """(B, T) advantages: the batch-mean baseline subtracted, broadcast over valid tokens; group unused."""
    mask = common.check_mask(mask)
    if mask.ndim != 2:
        raise fail("mask", f"shape {tuple(mask.shape)}", "shape (B, T)")
    B = mask.shape[0]
    if not isinstance(rewards, torch.Tensor) or rewards.shape != (B,):
        raise fail("rewards", f"shape {tuple(getattr(rewards, 'shape', ()))}", f"a tensor of shape ({B},)")
    if not bool(torch.isfinite(rewards).all()):
        raise fail("rewards", "non-finite values", "finite rewards")
    common.group_ids(group, B, device=rewards.device)  # validated only: the baseline ignores prompts
    R = common.upcast(rewards)
    A = R - R.mean() if B else R  # (B,)
    return torch.where(mask, A.unsqueeze(1), torch.zeros((), dtype=A.dtype))
