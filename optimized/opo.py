"""OPO advantage (torch, scatter ops). Mirrors :mod:`rlspec.reference.opo`: Â = R − Σ|o|R/Σ|o| per prompt group."""

from __future__ import annotations

import torch

from rlspec.optimized.grpo import validate_outcome
from rlspec.optimized.registry import implements
from rlspec.reference.opo import OPOConfig


def length_weighted_baseline(R: torch.Tensor, length: torch.Tensor, group: torch.Tensor):
    """b_i = Σ_{j∈g} |o_j| R_j / Σ_{j∈g} |o_j| (B,) (0 where the group has no token), and the group size."""
    _, inv = torch.unique(group, return_inverse=True)
    n = int(inv.max()) + 1 if R.numel() else 0
    zeros = torch.zeros(n, dtype=R.dtype, device=R.device)
    L = zeros.index_add(0, inv, length)[inv]
    S = zeros.index_add(0, inv, length * R)[inv]
    size = zeros.index_add(0, inv, torch.ones_like(R))[inv]
    return torch.where(L > 0, S / L.clamp(min=1), torch.zeros_like(R)), L, size


@implements("opo")
def opo_advantage(rewards, group, mask, config: OPOConfig | None = None) -> torch.Tensor:
    cfg = config or OPOConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    length = M.sum(dim=1).to(R.dtype)
    b, L, size = length_weighted_baseline(R, length, g)
    _, inv = torch.unique(g, return_inverse=True)
    n = int(inv.max()) + 1 if R.numel() else 0
    hi = torch.full((n,), -torch.inf, dtype=R.dtype, device=R.device).scatter_reduce(0, inv, R, "amax")[inv]
    lo = torch.full((n,), torch.inf, dtype=R.dtype, device=R.device).scatter_reduce(0, inv, R, "amin")[inv]
    A = torch.where((L > 0) & (hi != lo), R - b, torch.zeros_like(R))  # all-equal group: exactly 0
    if cfg.singleton == "raw":
        A = torch.where(size == 1, R, A)
    return torch.where(M, A.unsqueeze(1), torch.zeros((), dtype=A.dtype, device=A.device))
