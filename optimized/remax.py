"""ReMax advantage (torch). Mirrors :mod:`rlspec.reference.remax`: Â = R − r(greedy), or verl's reward-to-go form."""

from __future__ import annotations

import torch

from rlspec.optimized import common
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.remax import ReMaxConfig


def reward_to_go(r: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """G_it = Σ_{t'≥t} M_it' r_it' (B, T) by a flipped cumulative sum (padding already zeroed)."""
    return torch.flip(torch.cumsum(torch.flip(r, dims=[1]), dim=1), dims=[1])


def validate_remax(rewards, baseline_rewards, mask, group=None):
    """rewards (B,) or (B, T) (padding not read), baseline_rewards (B,), mask (B, T), optional group (B,)."""
    mask = common.check_mask(mask)
    if mask.ndim != 2:
        raise fail("mask", f"shape {tuple(mask.shape)}", "shape (B, T)")
    B = mask.shape[0]
    if not isinstance(rewards, torch.Tensor) or rewards.ndim not in (1, 2):
        raise fail("rewards", f"{type(rewards).__name__} {tuple(getattr(rewards, 'shape', ()))}",
                   f"a tensor of shape ({B},) or ({B}, T)")
    if rewards.ndim == 2:
        r = common.clean(rewards, mask, "rewards")
    else:
        if rewards.shape[0] != B:
            raise fail("rewards", f"shape {tuple(rewards.shape)}", f"shape ({B},)")
        if not bool(torch.isfinite(rewards).all()):
            raise fail("rewards", "non-finite values", "finite rewards")
        r = rewards
    b = baseline_rewards
    if not isinstance(b, torch.Tensor) or b.shape != (B,):
        raise fail("baseline_rewards", f"shape {tuple(getattr(b, 'shape', ()))}", f"shape ({B},)")
    if not bool(torch.isfinite(b).all()):
        raise fail("baseline_rewards", "non-finite values", "finite rewards")
    if group is not None:
        group = common.group_ids(group, B, device=b.device)
        if B:
            _, inv = torch.unique(group, return_inverse=True)
            n = int(inv.max()) + 1
            hi = torch.full((n,), -torch.inf, dtype=b.dtype, device=b.device).scatter_reduce(0, inv, b, "amax")
            lo = torch.full((n,), torch.inf, dtype=b.dtype, device=b.device).scatter_reduce(0, inv, b, "amin")
            if bool((hi != lo).any()):
                raise fail("baseline_rewards", "different values within a prompt group",
                           "one greedy-response reward per prompt (equal within a group)")
    return common.upcast(r), common.upcast(b), mask


@implements("remax")
def remax_advantage(rewards, baseline_rewards, mask, group=None, config: ReMaxConfig | None = None) -> torch.Tensor:
    cfg = config or ReMaxConfig()
    r, b, M = validate_remax(rewards, baseline_rewards, mask, group)
    if r.ndim == 1:
        A = (r - b).unsqueeze(1)
    elif cfg.reward_to_go:
        A = reward_to_go(r, M) - b.unsqueeze(1)
    else:
        A = (r.sum(dim=1) - b).unsqueeze(1)
    return torch.where(M, A, torch.zeros((), dtype=A.dtype, device=A.device))
