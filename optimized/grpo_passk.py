"""Pass@k leave-one-out-max advantage (torch). Mirrors :mod:`rlspec.reference.grpo_passk`.

Vectorised per group with scatter ops: the best reward, the second best (the max after removing one copy of
the best) and the first row that holds the best. Half-precision rewards are computed in float32."""

from __future__ import annotations

import torch

from rlspec.optimized.grpo import validate_outcome
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.grpo_passk import GRPOPassKConfig


def passk_outcome_advantage(R: torch.Tensor, group: torch.Tensor, cfg: GRPOPassKConfig) -> torch.Tensor:
    """Per-sequence advantage (B,): R_max − R_second at the group's first argmax row, 0 elsewhere."""
    B = R.shape[0]
    if B == 0:
        return R.clone()
    _, inv = torch.unique(group, return_inverse=True)
    G = int(inv.max()) + 1
    size = torch.zeros(G, dtype=R.dtype).index_add_(0, inv, torch.ones_like(R))
    if cfg.singleton == "raise" and bool((size < 2).any()):
        raise fail("group", "a group of one rollout", "at least 2 rollouts per group (singleton='raise')")
    best = torch.full((G,), -torch.inf, dtype=R.dtype).scatter_reduce(0, inv, R, "amax")
    rows = torch.arange(B)
    is_best = R == best[inv]
    first = torch.full((G,), B, dtype=torch.long).scatter_reduce(0, inv, torch.where(is_best, rows, B), "amin")
    winner = rows == first[inv]  # (B,) one row per group
    second = torch.full((G,), -torch.inf, dtype=R.dtype).scatter_reduce(
        0, inv, torch.where(winner, torch.full_like(R, -torch.inf), R), "amax")
    A = torch.where(winner & (size[inv] >= 2), R - second[inv], torch.zeros_like(R))
    if cfg.std_normalize:
        mean = torch.zeros(G, dtype=R.dtype).index_add_(0, inv, R) / size
        var = torch.zeros(G, dtype=R.dtype).index_add_(0, inv, (R - mean[inv]) ** 2) / (size - 1).clamp(min=1)
        A = torch.where(A != 0, A / (var.sqrt()[inv] + cfg.eps), A)
    return A


@implements("grpo_passk")
def grpo_passk_advantage(rewards, group, mask, config: GRPOPassKConfig | None = None) -> torch.Tensor:
    """(B, T) advantage, zero at masked positions."""
    cfg = config or GRPOPassKConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    A = passk_outcome_advantage(R, g, cfg)
    return torch.where(M, A.unsqueeze(1), torch.zeros((), dtype=A.dtype))
