"""RLOO advantage (torch, vectorised with scatter ops). Mirrors :mod:`rlspec.reference.rloo`."""

from __future__ import annotations

import torch

from rlspec.optimized.grpo import validate_outcome
from rlspec.optimized.registry import implements
from rlspec.reference.rloo import RLOOConfig


def leave_one_out_baseline(R: torch.Tensor, group: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """b_i = (Σ_{j∈group(i)} R_j − R_i)/(G_i − 1) and G_i, each (B,); b = 0 for singleton groups."""
    _, inv = torch.unique(group, return_inverse=True)
    n_groups = int(inv.max()) + 1 if R.numel() else 0
    G = torch.zeros(n_groups, dtype=R.dtype, device=R.device).index_add_(0, inv, torch.ones_like(R))[inv]
    S = torch.zeros(n_groups, dtype=R.dtype, device=R.device).index_add_(0, inv, R)[inv]
    b = torch.where(G > 1, (S - R) / (G - 1).clamp(min=1), torch.zeros_like(R))
    return b, G


def rloo_outcome_advantage(R: torch.Tensor, group: torch.Tensor, cfg: RLOOConfig) -> torch.Tensor:
    b, G = leave_one_out_baseline(R, group)
    _, inv = torch.unique(group, return_inverse=True)
    n = int(inv.max()) + 1 if R.numel() else 0
    hi = torch.full((n,), -torch.inf, dtype=R.dtype, device=R.device).scatter_reduce(0, inv, R, "amax")[inv]
    lo = torch.full((n,), torch.inf, dtype=R.dtype, device=R.device).scatter_reduce(0, inv, R, "amin")[inv]
    A = torch.where(hi == lo, torch.zeros_like(R), R - b)  # all-equal group: exactly 0, as the reference
    return torch.where(G == 1, torch.zeros_like(A) if cfg.singleton == "zero" else R, A)


@implements("rloo")
def rloo_advantage(rewards, group, mask, config: RLOOConfig | None = None) -> torch.Tensor:
    cfg = config or RLOOConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    A = rloo_outcome_advantage(R, g, cfg)
    return torch.where(M, A.unsqueeze(1), torch.zeros((), dtype=A.dtype, device=A.device))
