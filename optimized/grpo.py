"""GRPO / Dr. GRPO advantages (torch, vectorised with scatter ops). Mirrors :mod:`rlspec.reference.grpo`.

Advantages of half-precision (bf16/fp16) rewards are computed and returned in float32: group means and
stds of near-equal rewards cancel badly in bf16 (see :func:`rlspec.optimized.common.upcast`)."""

from __future__ import annotations

import torch

from rlspec.optimized import common
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.grpo import DrGRPOConfig, GRPOConfig


def group_stats(R: torch.Tensor, group: torch.Tensor, ddof: int):
    """Per-sequence group mean, std (``ddof``) and size, each (B,)."""
    _, inv = torch.unique(group, return_inverse=True)
    n_groups = int(inv.max()) + 1 if R.numel() else 0
    size = torch.zeros(n_groups, dtype=R.dtype, device=R.device).index_add_(0, inv, torch.ones_like(R))
    total = torch.zeros_like(size).index_add_(0, inv, R)
    mean = total / size
    hi = torch.full_like(size, -torch.inf).scatter_reduce(0, inv, R, "amax")
    lo = torch.full_like(size, torch.inf).scatter_reduce(0, inv, R, "amin")
    equal = hi == lo  # all-equal group: mean is exactly the reward, std exactly 0
    mean = torch.where(equal, hi, mean)
    sq = torch.zeros_like(size).index_add_(0, inv, (R - mean[inv]) ** 2)
    var = torch.where((size > ddof) & ~equal, sq / (size - ddof).clamp(min=1), torch.zeros_like(sq))
    return mean[inv], var.sqrt()[inv], size[inv]


def validate_outcome(rewards, group, mask):
    mask = common.check_mask(mask)
    if mask.ndim != 2:
        raise fail("mask", f"shape {tuple(mask.shape)}", "shape (B, T)")
    if rewards.ndim != 1 or rewards.shape[0] != mask.shape[0]:
        raise fail("rewards", f"shape {tuple(rewards.shape)}", f"shape ({mask.shape[0]},)")
    if not bool(torch.isfinite(rewards).all()):
        raise fail("rewards", "non-finite values", "finite rewards")
    group = common.group_ids(group, mask.shape[0], device=rewards.device)
    return common.upcast(rewards), group, mask  # group moments of bf16 rewards are taken in float32


def grpo_outcome_advantage(R: torch.Tensor, group: torch.Tensor, cfg: GRPOConfig) -> torch.Tensor:
    mean, std, size = group_stats(R, group, cfg.ddof)
    if cfg.singleton == "mean0std1":
        mean = torch.where(size == 1, torch.zeros_like(mean), mean)
        std = torch.where(size == 1, torch.ones_like(std), std)
    centred = R - mean
    if cfg.std_normalize:
        denom = std + cfg.eps if cfg.eps_placement == "outside" else torch.sqrt(std**2 + cfg.eps)
        A = torch.where(denom > 0, centred / torch.where(denom > 0, denom, torch.ones_like(denom)),
                        torch.zeros_like(centred))
    else:
        A = centred
    return torch.where(size == 1, torch.zeros_like(A), A) if cfg.singleton == "zero" else A


@implements("grpo")
def grpo_advantage(rewards, group, mask, config: GRPOConfig | None = None) -> torch.Tensor:
    cfg = config or GRPOConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    A = grpo_outcome_advantage(R, g, cfg)
    return torch.where(M, A.unsqueeze(1), torch.zeros((), dtype=A.dtype))


@implements("dr_grpo")
def dr_grpo_advantage(rewards, group, mask, config: GRPOConfig | None = None) -> torch.Tensor:
    return grpo_advantage(rewards, group, mask, config or DrGRPOConfig())
